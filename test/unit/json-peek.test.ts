import * as assert from 'node:assert/strict';
import { peekTopLevel } from '../../src/core/gateway/json-peek';
import { capturedBodies } from '../helpers/traffic';

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
    const captured = capturedBodies();
    if (!captured.length) return;
    let checked = 0;
    for (const { file, body } of captured) {
      const peek = peekTopLevel(Buffer.from(JSON.stringify(body)), ['model', 'stream', 'max_tokens']);
      for (const k of ['model', 'stream', 'max_tokens'] as const) assert.deepEqual(peek?.[k], body[k], `${file}: ${k}`);
      checked++;
    }
    assert.ok(checked > 50, `checked ${checked} captured bodies`);
  });
});
