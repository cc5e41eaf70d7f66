import * as vscode from 'vscode';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { verifyAudit, type VerifyResult } from '../core/accounting/audit-verify';
import type { GatewayController } from './controller';

/** The newest daily audit file (`audit-YYYY-MM-DD.jsonl`), if the log has one. */
export function newestAuditFile(dir: string): string | undefined {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return undefined;
  }
  const newest = names.filter((n) => /^audit-\d{4}-\d{2}-\d{2}\.jsonl$/.test(n)).sort().pop();
  return newest ? path.join(dir, newest) : undefined;
}

/** Open Audit Log: today's (newest) audit file, read-only in an editor, scrolled to the end. */
export async function openAuditLog(controller: GatewayController): Promise<string | undefined> {
  const dir = controller.gatewayConfig.audit.dir;
  const file = newestAuditFile(dir);
  if (!file) {
    void vscode.window.showInformationMessage(`Claude Gateway: no audit records yet in ${dir}.`);
    return undefined;
  }
  const doc = await vscode.workspace.openTextDocument(vscode.Uri.file(file));
  const editor = await vscode.window.showTextDocument(doc, { preview: true });
  const end = doc.lineAt(Math.max(0, doc.lineCount - 1)).range.end;
  editor.revealRange(new vscode.Range(end, end));
  return file;
}

/** Verify Audit Log: checks the hash chain and reports intact, gaps, or the first tampered line (opened at it). */
export async function verifyAuditLog(controller: GatewayController, quiet?: boolean): Promise<VerifyResult & { dir: string }> {
  const dir = controller.gatewayConfig.audit.dir;
  const r = verifyAudit(dir);
  if (quiet) return { dir, ...r };
  if (r.tamper) {
    const choice = await vscode.window.showErrorMessage(`Claude Gateway: the audit log was altered (${r.tamper.kind}): ${r.tamper.message}`, 'Open at the Line');
    if (choice) {
      const doc = await vscode.workspace.openTextDocument(vscode.Uri.file(r.tamper.file));
      const line = Math.max(0, Math.min(doc.lineCount - 1, r.tamper.line - 1));
      await vscode.window.showTextDocument(doc, { selection: doc.lineAt(line).range });
    }
  } else {
    const gaps = r.gaps.length ? `, ${r.gaps.length} recorded gap(s) (${r.gaps.map((g) => g.reason).join('; ')})` : '';
    void vscode.window.showInformationMessage(`Claude Gateway: audit log intact: ${r.records} records in ${r.files} file(s), last seq ${r.lastSeq}${gaps}.`);
  }
  return { dir, ...r };
}
