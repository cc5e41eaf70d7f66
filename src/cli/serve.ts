import { randomUUID } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { claudeCodeEnv, formatEnv } from '../core/env';
import { buildGateway, REDACT_PATHS } from '../core/gateway/build';
import { isLoopbackHost } from '../core/gateway/browser-guard';
import { GatewayRuntime } from '../core/runtime';
import { openPostgresStore } from '../core/store/postgres-adapter';
import { followFileKeys } from '../core/store/file-keys';
import { cliKeyRing, keyReferenceFor, loadCliConfig } from './context';
import { VERSION } from './version';

export interface ServeOptions {
  config?: string;
  host?: string;
  port?: string;
  logLevel?: string;
}

/** How long in-flight streams may run after SIGINT/SIGTERM before the process exits anyway. */
export const DRAIN_MS = 10_000;

/** `claude-code-gateway serve`: run the gateway until a signal, printing how to point Claude Code at it. */
export async function serve(opts: ServeOptions): Promise<void> {
  const ctx = loadCliConfig(opts.config);
  const { config } = ctx;
  if (ctx.created) process.stderr.write(`Created a default configuration at ${ctx.file}\n`);
  if (opts.host) config.listen.host = opts.host;
  if (opts.port !== undefined) {
    const port = Number(opts.port);
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`--port: must be an integer from 0 to 65535, got "${opts.port}"`);
    config.listen.port = port;
  }
  const shared = config.store.kind === 'postgres';
  if (!isLoopbackHost(config.listen.host) && config.keys.length === 0 && !shared) {
    throw new UsageError(
      `Refusing to listen on ${config.listen.host} without configured keys: anyone who can reach it could spend on your providers. Add "keys" to ${ctx.file} (see the README), or listen on 127.0.0.1.`,
    );
  }
  // A shared store's keys are its own (plus the config's): no machine-local key is made for a replica.
  const keys = cliKeyRing(config, { createLocalKey: !shared });
  for (const w of keys.warnings) process.stderr.write(`warning: ${w}\n`);
  // The store is opened before the gateway listens: a replica that cannot reach its database does not start.
  const instanceId = randomUUID();
  const store = shared ? await openPostgresStore(config, { instanceId, version: VERSION }) : undefined;
  if (store) {
    await keys.follow(store.pg.keys);
    process.stderr.write(`store: PostgreSQL at ${store.where} (schema ${store.pg.schema}, version ${store.pg.migration.version})\n`);
  } else {
    // The file store: keys made with `keys create` live in <dataDir>/keys.json; followed while serving (no restart).
    await followFileKeys(keys, config.dataDir);
  }
  const runtime = new GatewayRuntime({ config, keys, version: VERSION, store, instanceId });
  const accounting = runtime.accountant.health?.() as { audit?: { writable: boolean; error?: string; tamper?: { message: string } } } | undefined;
  if (accounting?.audit?.tamper) process.stderr.write(`error: ${accounting.audit.tamper.message}. Recorded in the log as a "tamper" event; \`audit verify\` fails from now on.\n`);
  if (accounting?.audit && !accounting.audit.writable) {
    process.stderr.write(
      `warning: the audit log in ${config.audit.dir} cannot be written (${accounting.audit.error}); ${config.audit.failOpen ? 'serving without an audit trail (audit.failOpen)' : 'model calls are refused with 503 until it can'}\n`,
    );
  }
  const active = runtime.profile(config.activeProfile)!;
  if (active.unusable) process.stderr.write(`warning: ${active.unusable}\n`);
  else warnMissingKey(active.apiKey);

  const app = buildGateway({
    runtime,
    listenHost: config.listen.host,
    logger: { level: opts.logLevel ?? config.logLevel, redact: { paths: REDACT_PATHS, censor: '[redacted]' } },
  });
  await app.listen({ host: config.listen.host, port: config.listen.port });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : config.listen.port;
  const host = config.listen.host.includes(':') ? `[${config.listen.host}]` : config.listen.host;
  const url = `http://${host}:${port}`;
  const env = claudeCodeEnv({ gatewayUrl: url, profile: active });
  const { ref } = keyReferenceFor(ctx);
  installSignalHandlers(app, runtime);
  process.stdout.write(`Claude Code Gateway listening on ${url}\n`);
  process.stdout.write(`# Point Claude Code at it (profile "${active.name}", ${active.provider}):\n${formatEnv(env, 'sh', ref)}\n`);
}

function warnMissingKey(apiKey: string | undefined): void {
  const m = apiKey ? /^\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}$/.exec(apiKey) : null;
  if (m && !process.env[m[1]]) {
    process.stderr.write(`warning: ${m[1]} is not set; model calls on the active profile will fail until it is (the gateway still starts).\n`);
  }
}

function installSignalHandlers(app: FastifyInstance, runtime: GatewayRuntime): void {
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    process.stderr.write(`${signal}: no longer accepting connections; waiting up to ${DRAIN_MS / 1000} s for ${runtime.callsInFlight} call(s) in flight\n`);
    // The store writes what it queued and returns its leases before the process exits.
    const exit = () => void runtime.close().finally(() => process.exit(0));
    const timer = setTimeout(() => {
      app.server.closeAllConnections();
      exit();
    }, DRAIN_MS);
    timer.unref();
    // Connections that turn idle after close() began (keep-alive clients) are closed as they do.
    const sweep = setInterval(() => app.server.closeIdleConnections(), 100);
    sweep.unref();
    app
      .close()
      .catch(() => undefined)
      .finally(exit);
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

/** A command-line mistake: printed without a stack, exit status 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}
