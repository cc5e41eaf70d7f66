import * as vscode from 'vscode';
import { configFromSettings, SECTION, settingsFrom, type RawSettings } from '../core/config/editor-settings';

export { configFromSettings, SECTION, type RawSettings };

/**
 * The `claudeGateway.*` settings as the gateway uses them: read per source through `inspect()`, so the
 * machine settings (profiles, port, budgets, rate limits, audit) come from user settings only, and a
 * workspace's choice of profile counts only when the workspace is trusted (core/config/editor-settings.ts).
 */
export function readSettings(): RawSettings {
  const c = vscode.workspace.getConfiguration(SECTION);
  return settingsFrom((key) => c.inspect(key), vscode.workspace.isTrusted);
}
