import * as fs from 'node:fs';
import * as path from 'node:path';

/** The request bodies of the captured Claude Code traffic (../shared/claude-code-traffic), or none when it is absent. */
export function capturedBodies(): Array<{ file: string; body: Record<string, unknown> }> {
  const dir = path.resolve(__dirname, '../../../shared/claude-code-traffic');
  if (!fs.existsSync(dir)) return [];
  const out: Array<{ file: string; body: Record<string, unknown> }> = [];
  for (const file of ['anthropic.jsonl', 'bedrock.jsonl', 'vertex.jsonl']) {
    for (const line of fs.readFileSync(path.join(dir, file), 'utf8').split('\n')) {
      if (!line) continue;
      const body = (JSON.parse(line) as { body: Record<string, unknown> | null }).body;
      if (body) out.push({ file, body });
    }
  }
  return out;
}
