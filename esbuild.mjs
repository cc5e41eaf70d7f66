// One esbuild context, two entry points: the VS Code extension and the standalone CLI.
import * as esbuild from 'esbuild';

const production = process.argv.includes('--production');
const watch = process.argv.includes('--watch');

const common = {
  bundle: true,
  format: 'cjs',
  platform: 'node',
  target: 'node20',
  sourcemap: !production,
  minify: production,
  logLevel: 'info',
  // The AWS SDK and google-auth-library pull optional modules they only use in other runtimes.
  external: ['vscode'],
};

const contexts = await Promise.all([
  esbuild.context({ ...common, entryPoints: { extension: 'src/extension.ts' }, outdir: 'dist' }),
  esbuild.context({
    ...common,
    entryPoints: { cli: 'src/cli.ts' },
    outdir: 'dist',
    banner: { js: '#!/usr/bin/env node' },
  }),
  // The usage dashboard's webview script with Chart.js, for the browser sandbox of a webview.
  esbuild.context({ ...common, platform: 'browser', format: 'iife', target: 'es2022', external: [], entryPoints: { dashboard: 'src/webview/dashboard.js' }, outdir: 'dist/webview' }),
]);

if (watch) {
  await Promise.all(contexts.map((c) => c.watch()));
} else {
  await Promise.all(contexts.map((c) => c.rebuild()));
  await Promise.all(contexts.map((c) => c.dispose()));
}
