import * as assert from 'node:assert/strict';
import { Scrubber } from '../../src/core/accounting/records';
import { HeldSecrets } from '../../src/core/credentials/held-secrets';
import { generateKey, KeyRing } from '../../src/core/gateway/keys';

describe('audit scrubber: every secret the gateway holds', () => {
  it('learns secrets resolved after it was built, and removes them JSON-escaped too', () => {
    const held = new HeldSecrets();
    const scrub = new Scrubber('full', [], { held });
    assert.equal(scrub.text('helper-output-123456'), 'helper-output-123456');
    held.add('helper-output-123456\n');
    held.add('quote"and\\slash-secret');
    assert.equal(scrub.text('x helper-output-123456 y'), 'x [redacted] y');
    assert.equal(scrub.text(JSON.stringify({ s: 'quote"and\\slash-secret' })), '{"s":"[redacted]"}');
  });

  it("removes a PEM private key line by line, however its newlines were quoted", () => {
    const held = new HeldSecrets();
    const lines = ['MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7', 'qC0NR2NmZmQxZjM4ZWI0NzU2YjYyMGFmZDQ0MzQ4YWU1OTQ2YzI2'];
    const pem = `-----BEGIN PRIVATE KEY-----\n${lines.join('\n')}\n-----END PRIVATE KEY-----\n`;
    held.addPem(pem);
    const scrub = new Scrubber('full', [], { held });
    for (const quoted of [pem, JSON.stringify(pem), JSON.stringify(JSON.stringify({ private_key: pem }))]) {
      const out = scrub.text(quoted);
      for (const l of lines) assert.ok(!out.includes(l), quoted.slice(0, 40));
    }
  });

  it("removes the ring's keys, its token secret and the tokens it signed, in full mode too", () => {
    const ring = new KeyRing(Buffer.from('the-token-secret-of-this-ring'));
    const key = generateKey();
    ring.add({ id: 'w' }, key);
    const scrub = new Scrubber('full', [], { keys: ring });
    const token = ring.issueToken('w', 60_000);
    const out = scrub.text(`${key} the-token-secret-of-this-ring ${token}`);
    assert.equal(out, '[redacted] [redacted] [redacted]');
    const later = generateKey();
    ring.add({ id: 'later' }, later);
    assert.equal(scrub.text(`k=${later}`), 'k=[redacted]');
  });
});
