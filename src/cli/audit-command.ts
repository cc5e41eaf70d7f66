import * as path from 'node:path';
import { verifyAudit } from '../core/accounting/audit-verify';
import { verifyStoreAudit, type StoreVerifyResult } from '../core/store/postgres/audit-verify';
import { loadCliConfig } from './context';
import { openCliPgStore, storeAuditKey } from './store-context';

export interface AuditVerifyOptions {
  config?: string;
  dir?: string;
  json?: boolean;
}

/**
 * `claude-code-gateway audit verify`: checks the hash chain and the head; exit status 0 only when the log is intact
 * (gaps allowed) and no start of the gateway ever found it tampered with (a `tamper` record fails it for good).
 */
export async function auditVerifyCommand(opts: AuditVerifyOptions): Promise<{ text: string; exitCode: number }> {
  const config = opts.dir === undefined ? loadCliConfig(opts.config).config : undefined;
  if (config?.store.kind === 'postgres') {
    const key = storeAuditKey(config.store);
    const pg = await openCliPgStore(config.store);
    try {
      return formatStoreVerify(await verifyStoreAudit(pg.pool, { schema: pg.schema, key }), pg.where, opts.json);
    } finally {
      await pg.close();
    }
  }
  const dir = opts.dir ?? config!.audit.dir;
  const r = verifyAudit(dir);
  if (opts.json) return { text: JSON.stringify({ dir, ...r }, null, 2), exitCode: r.intact ? 0 : 1 };
  const lines: string[] = [];
  for (const g of r.gaps) lines.push(`gap: ${path.basename(g.file)} line ${g.line}${g.seq ? ` (seq ${g.seq})` : ''}: ${g.reason}`);
  for (const t of r.recorded) if (t !== r.tamper) lines.push(`tamper recorded: ${t.message}`);
  if (r.tamper) {
    lines.push(`TAMPERED (${r.tamper.kind}): ${r.tamper.message}`);
    lines.push(`checked ${r.records} record(s) in ${r.files} file(s) under ${dir} before the first problem`);
  } else {
    lines.push(`intact: ${r.records} record(s) in ${r.files} file(s) under ${dir}, last seq ${r.lastSeq}${r.gaps.length ? `, ${r.gaps.length} recorded gap(s)` : ''}`);
  }
  return { text: lines.join('\n'), exitCode: r.intact ? 0 : 1 };
}

/**
 * The same report over a PostgreSQL store: one line per recorded gap and per broken chain (its first edited, removed
 * or inserted record), then the verdict; exit status 0 only when no chain is broken.
 */
function formatStoreVerify(r: StoreVerifyResult, where: string, json: boolean | undefined): { text: string; exitCode: number } {
  const exitCode = r.intact ? 0 : 1;
  if (json) return { text: JSON.stringify({ store: where, ...r }, null, 2), exitCode };
  const lines: string[] = [];
  for (const g of r.gaps) lines.push(`gap: chain ${g.chain}${g.seq !== undefined ? ` seq ${g.seq}` : ''}: ${g.reason}`);
  for (const t of r.tamper) lines.push(`TAMPERED (${t.kind}): ${t.message}`);
  const chains = `${r.chains} chain(s) of ${where}${r.keyed ? ' (keyed)' : ''}`;
  if (r.intact) lines.push(`intact: ${r.records} record(s) in ${chains}${r.gaps.length ? `, ${r.gaps.length} recorded gap(s)` : ''}`);
  else lines.push(`checked ${r.records} record(s) in ${chains}; ${r.tamper.length} chain(s) broken`);
  return { text: lines.join('\n'), exitCode };
}
