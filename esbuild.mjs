// One esbuild context, two entry points: the VS Code extension and the standalone CLI.
import * as esbuild from 'esbuild';
import fs from 'node:fs/promises';
import path from 'node:path';

const production = process.argv.includes('--production');
const watch = process.argv.includes('--watch');

// V8 keeps a script's whole source in memory, one byte per character only when every character is Latin-1. esbuild
// escapes non-ASCII characters in code but copies comments as they are, so one curly quote in a bundled library's
// comment doubled the memory of the 5 MB bundle's source (11 MB). Escaping them as \uXXXX (inert in comments, the
// same character in strings, regular expressions and identifiers) keeps it at one byte a character.
const asciiOnly = {
  name: 'ascii-only',
  setup(build) {
    build.onEnd(async (result) => {
      if (result.errors.length) return;
      const dir = build.initialOptions.outdir;
      for (const name of Object.keys(build.initialOptions.entryPoints)) {
        const file = path.join(dir, `${name}.js`);
        const text = await fs.readFile(file, 'utf8');
        // eslint-disable-next-line no-control-regex
        if (!/[^\x00-\x7f]/.test(text)) continue;
        await fs.writeFile(file, text.replace(/[^\x00-\x7f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`));
      }
    });
  },
};

const common = {
  plugins: [asciiOnly],
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
