import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { peekTopLevel } from '../../src/core/gateway/json-peek';

describe('peekTopLevel', () => {
  it('reads top-level scalars and ignores nested keys of the same name', () => {
    const body = Buffer.from(JSON.stringify({ messages: [{ role: 'user', content: [{ type: 'text', text: 'a "model": "x" \\"model\\"' }], model: 'nested' }], tools: [{ input_schema: { properties: { model: { type: 'string' } } } }], model: 'claude-opus-4-8', stream: true }));
    assert.deepEqual(peekTopLevel(body, ['model', 'stream']), { model: 'claude-opus-4-8', stream: true });
  });

  it('handles escapes, whitespace, and non-object bodies', () => {
    assert.deepEqual(peekTopLevel(Buffer.from(' { "a\\"b" : 1 , "model" : "m\\u00e9" }'), ['model']), { model: 'mé' });
    assert.equal(peekTopLevel(Buffer.from('[1,2]'), ['model']), undefined);
    assert.equal(peekTopLevel(Buffer.alloc(0), ['model']), undefined);
    assert.deepEqual(peekTopLevel(Buffer.from('{"model": "unterminated'), ['model']), {});
  });

  it('agrees with JSON.parse on every captured Claude Code request', () => {
    const dir = path.resolve(__dirname, '../../../shared/claude-code-traffic');
    if (!fs.existsSync(dir)) return;
    let checked = 0;
    for (const file of ['anthropic.jsonl', 'bedrock.jsonl', 'vertex.jsonl']) {
      for (const line of fs.readFileSync(path.join(dir, file), 'utf8').split('\n')) {
        if (!line) continue;
        const rec = JSON.parse(line) as { body: Record<string, unknown> | null };
        if (!rec.body) continue;
        const buf = Buffer.from(JSON.stringify(rec.body));
        const peek = peekTopLevel(buf, ['model', 'stream', 'max_tokens']);
        for (const k of ['model', 'stream', 'max_tokens'] as const) assert.deepEqual(peek?.[k], rec.body[k], `${file}: ${k}`);
        checked++;
      }
    }
    assert.ok(checked > 50, `checked ${checked} captured bodies`);
  });
});
