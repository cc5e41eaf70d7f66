import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/** The real Claude Code CLI installed from npm (@anthropic-ai/claude-code). */
export const CLAUDE_BIN = path.resolve(__dirname, '../../node_modules/.bin/claude');

/** Variables that keep Claude Code from reaching anything but the gateway. */
export const CLAUDE_PRIVACY_ENV = {
  DISABLE_TELEMETRY: '1',
  DISABLE_ERROR_REPORTING: '1',
  CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1',
  DISABLE_AUTOUPDATER: '1',
};

export interface ClaudeRun {
  code: number | null;
  stdout: string;
  stderr: string;
  /** The parsed `--output-format json` result, when stdout held one. */
  result?: { type: string; subtype?: string; is_error?: boolean; result?: string; total_cost_usd?: number; usage?: Record<string, unknown> };
}

/**
 * Runs `claude -p <prompt> --output-format json` with a fresh HOME and only the given environment
 * (plus PATH), so nothing from the machine's own Claude Code setup leaks in.
 */
export function runClaude(prompt: string, env: Record<string, string>, opts: { timeoutMs?: number; args?: string[] } = {}): Promise<ClaudeRun> {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'ccgw-claude-home-'));
  const cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'ccgw-claude-cwd-'));
  return new Promise((resolve) => {
    execFile(
      CLAUDE_BIN,
      ['-p', prompt, '--output-format', 'json', ...(opts.args ?? [])],
      {
        cwd,
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home, ...CLAUDE_PRIVACY_ENV, ...env },
        timeout: opts.timeoutMs ?? 90_000,
        maxBuffer: 16 << 20,
      },
      (err, stdout, stderr) => {
        let result: ClaudeRun['result'];
        try {
          result = JSON.parse(stdout.trim().split('\n').pop() ?? '');
        } catch {
          result = undefined;
        }
        fs.rmSync(home, { recursive: true, force: true });
        fs.rmSync(cwd, { recursive: true, force: true });
        resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr, result });
      },
    );
  });
}
