import { Command, CommanderError } from 'commander';
import { ConfigError } from './core/config/validate';
import { envCommand } from './cli/env-command';
import { serve, UsageError } from './cli/serve';
import { tokenCommand } from './cli/token-command';
import { usageCommand } from './cli/usage-command';
import { auditVerifyCommand } from './cli/audit-command';
import { budgetListCommand, budgetOverrideCommand } from './cli/budget-command';
import { keysCreateCommand, keysListCommand, keysRevokeCommand } from './cli/keys-command';
import { storeGrantsCommand, storeMigrateCommand } from './cli/store-command';
import { VERSION } from './cli/version';
import { FileKeyError } from './core/store/file-keys';
import { StoreError } from './core/store/postgres/sql';

/** The standalone command line: the same gateway as the extension, without VS Code. */
function program(): Command {
  const cli = new Command('claude-code-gateway')
    .description('A local gateway between Claude Code and Anthropic, Amazon Bedrock, Google Vertex AI and LiteLLM.')
    .version(VERSION, '-v, --version')
    .showHelpAfterError()
    // Set before the commands are added so they inherit it: their command-line mistakes exit 2 too (see main).
    .exitOverride();

  const configOption = ['-c, --config <file>', 'config file (default: $CLAUDE_CODE_GATEWAY_CONFIG, else ~/.claude-code-gateway/config.json)'] as const;

  cli
    .command('serve')
    .description('run the gateway (creates a default config on first run)')
    .option(...configOption)
    .option('--host <host>', 'listen address (default from config: 127.0.0.1)')
    .option('-p, --port <port>', 'listen port; 0 picks a free one (default from config: 4747)')
    .option('--log-level <level>', 'fatal, error, warn, info, debug, trace or silent')
    .action(async (opts) => serve(opts));

  cli
    .command('env')
    .description('print the environment that points Claude Code at the gateway')
    .option(...configOption)
    .option('--profile <name>', 'profile to use (default: activeProfile)')
    .option('--shell <shell>', 'sh, fish, powershell or json', 'sh')
    .option('--key <id>', 'gateway key to reference (default: the first configured key, or the generated one)')
    .option('--reveal-key', 'print the generated key itself instead of a reference to its file')
    .action((opts) => {
      process.stdout.write(envCommand(opts) + '\n');
    });

  cli
    .command('token')
    .description("print a short-lived signed token for a key (for Claude Code's apiKeyHelper)")
    .option(...configOption)
    .option('--key <id>', 'key id (default: the first configured key, or the generated one)')
    .option('--ttl <duration>', 'lifetime, e.g. 30m, 1h, 7d', '1h')
    .action((opts) => {
      process.stdout.write(tokenCommand(opts) + '\n');
    });

  cli
    .command('usage')
    .description("print requests, tokens by kind and cost from the audit log (UTC): the files, or every replica's records in a PostgreSQL store")
    .option(...configOption)
    .option('--dir <dir>', 'audit folder (default: audit.dir from the config; with a PostgreSQL store, the store)')
    .option('--since <date>', 'YYYY-MM-DD or an ISO time (default: the start of this UTC month)')
    .option('--by <group>', 'day, model, key, team, project or profile')
    .option('--json', 'print the JSON that GET /usage returns')
    .action(async (opts) => {
      process.stdout.write((await usageCommand(opts)) + '\n');
    });

  // `budget` and `budget override` talk to a running gateway. The connection options are budget's, read by override
  // too (commander gives an option to the parent wherever it appears, so `budget override … --config F` works).
  const budget = cli
    .command('budget')
    .description("list the running gateway's budgets: limit, spend, reservations, reset time, overrides (UTC)")
    .option(...configOption)
    .option('--url <url>', 'address of the running gateway (default: "listen" in the config)')
    .option('--key <id>', 'key to act as (default: the first admin key of the config, or the generated one)')
    .option('--json', 'print the JSON the gateway answers')
    .action(async (opts) => {
      process.stdout.write((await budgetListCommand(opts)) + '\n');
    });
  budget
    .command('override')
    .description('raise or lower a budget on the running gateway until cleared (admin key; recorded in the audit log)')
    .argument('<scope>', 'global, key:<id>, team:<name>, project:<name> or profile:<name>')
    .argument('[usd]', 'the new limit in USD')
    .option('--period <period>', 'day, week or month (needed when the scope has more than one budget)')
    .option('--clear', 'remove the override: the configured limit applies again')
    .configureHelp({ showGlobalOptions: true })
    .action(async (scope: string, usd: string | undefined, _opts, command: Command) => {
      process.stdout.write((await budgetOverrideCommand(scope, usd, command.optsWithGlobals())) + '\n');
    });

  const audit = cli.command('audit').description('the hash-chained audit log');
  audit
    .command('verify')
    .description('check the hash chain; names the first edited, removed, reordered or inserted line, or with a PostgreSQL store the first such record of each chain (exit 0 only when intact)')
    .option(...configOption)
    .option('--dir <dir>', 'audit folder (default: audit.dir from the config; with a PostgreSQL store, the store)')
    .option('--json', 'print the result as JSON')
    .action(async (opts) => {
      const r = await auditVerifyCommand(opts);
      process.stdout.write(r.text + '\n');
      process.exitCode = r.exitCode;
    });

  const keys = cli
    .command('keys')
    .description("the gateway keys kept in the store (the data directory's keys.json, or PostgreSQL); running gateways follow them within 2 s");
  keys
    .command('create')
    .description('make a key and print it once on stdout; the store keeps only its SHA-256')
    .requiredOption('--id <id>', 'key id, used in scopes as key:<id> (1-64 letters, digits, ".", "_", "@" or "-")')
    .option('--team <team>', 'team the key spends for (team:<team> budgets and limits)')
    .option('--project <project>', 'project the key spends for (project:<project>)')
    .option('--admin', 'may use the admin routes (budget overrides, /control)')
    .option(...configOption)
    .action(async (opts) => {
      const r = await keysCreateCommand(opts);
      process.stderr.write(r.note + '\n');
      process.stdout.write(r.key + '\n');
    });
  keys
    .command('list')
    .description("list the store's keys and the config's keys[] (never a key or its hash)")
    .option('--json', 'print them as JSON (with created and revoked times)')
    .option(...configOption)
    .action(async (opts) => {
      process.stdout.write((await keysListCommand(opts)) + '\n');
    });
  keys
    .command('revoke')
    .description("revoke a key made with `keys create` (the config's keys[] are revoked in the config: \"revoked\": true)")
    .argument('<id>', 'key id')
    .option(...configOption)
    .action(async (id: string, opts) => {
      process.stdout.write((await keysRevokeCommand(id, opts)) + '\n');
    });

  const store = cli.command('store').description('the PostgreSQL store: schema and grants (see docs/team.md)');
  store
    .command('migrate')
    .description("create or upgrade the store's schema (safe while replicas start); run with the owner role's URL")
    .option(...configOption)
    .option('--url <url>', "the owner role's database URL (default: store.url from the config)")
    .action(async (opts) => {
      process.stdout.write((await storeMigrateCommand(opts)) + '\n');
    });
  store
    .command('grants')
    .description('print the least-privilege GRANT SQL for the role the gateways serve with (run it as the owner)')
    .requiredOption('--role <role>', 'the serving role')
    .option('--schema <schema>', 'the schema (default: store.schema from --config, else ccgw)')
    .option(...configOption)
    .action((opts) => {
      process.stdout.write(storeGrantsCommand(opts) + '\n');
    });

  return cli;
}

async function main(argv: string[]): Promise<void> {
  const cli = program();
  try {
    await cli.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      process.exit(err.exitCode === 0 ? 0 : 2);
    }
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(2);
    }
    if (err instanceof StoreError || err instanceof FileKeyError) {
      process.stderr.write(`error: ${err.message}\n`);
      process.exit(1);
    }
    if (err instanceof UsageError) {
      process.stderr.write(`error: ${err.message}\n`);
      process.exit(2);
    }
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'EADDRINUSE') {
      process.stderr.write(`error: the address is already in use (${e.message}); another gateway may be running. Use --port to pick another.\n`);
      process.exit(1);
    }
    process.stderr.write(`error: ${e.message ?? String(err)}\n`);
    process.exit(1);
  }
}

void main(process.argv);
