import * as path from 'node:path';
import { verifyAudit } from '../core/accounting/audit-verify';
import { loadCliConfig } from './context';

export interface AuditVerifyOptions {
  config?: string;
  dir?: string;
  json?: boolean;
}

/**
 * `claude-code-gateway audit verify`: checks the hash chain and the head; exit status 0 only when the log is intact
 * (gaps allowed) and no start of the gateway ever found it tampered with (a `tamper` record fails it for good).
 */
export function auditVerifyCommand(opts: AuditVerifyOptions): { text: string; exitCode: number } {
  const dir = opts.dir ?? loadCliConfig(opts.config).config.audit.dir;
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
