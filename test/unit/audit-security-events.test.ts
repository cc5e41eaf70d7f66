// Security events: a token bucket bounds the records a flood writes; the rest is one summary; a record keeps the path
// without its query and without any credential the request presented.
import * as assert from 'node:assert/strict';
import { Scrubber } from '../../src/core/accounting/records';
import { SECURITY_EVENTS_PER_MINUTE, SecurityEventLog, securityEventOf } from '../../src/core/accounting/security-events';

describe('security events', () => {
  it('a burst of the bucket size, then one a second; the rest is summarised with counts per code', () => {
    const written: Array<{ type: string; fields: Record<string, unknown> }> = [];
    const t0 = 1_000_000;
    const log = new SecurityEventLog((type, fields) => written.push({ type, fields }), SECURITY_EVENTS_PER_MINUTE, t0);
    const ev = (code: string) => ({ code, status: 403, method: 'POST', path: '/v1/messages' });
    for (let i = 0; i < 1000; i++) log.record(ev(i % 2 ? 'CCGW_UNKNOWN_KEY' : 'CCGW_NO_CREDENTIAL'), t0);
    assert.equal(written.length, SECURITY_EVENTS_PER_MINUTE);
    // 10 s later the bucket holds 10 more.
    for (let i = 0; i < 100; i++) log.record(ev('CCGW_UNKNOWN_KEY'), t0 + 10_000);
    assert.equal(written.length, SECURITY_EVENTS_PER_MINUTE + 10);
    log.summarise(t0 + 10_000);
    const summary = written.at(-1)!;
    assert.equal(summary.type, 'security_suppressed');
    assert.equal(summary.fields.count, 1100 - SECURITY_EVENTS_PER_MINUTE - 10);
    const codes = summary.fields.codes as Record<string, number>;
    assert.equal(codes.CCGW_UNKNOWN_KEY + codes.CCGW_NO_CREDENTIAL, summary.fields.count);
    log.summarise(t0 + 20_000);
    assert.equal(written.length, SECURITY_EVENTS_PER_MINUTE + 11, 'nothing left out: no second summary');
    log.dispose();
  });

  it('the record keeps no query, no presented credential (plain or encoded) and no configured secret', () => {
    const key = 'ccgw-presented-key-0123456789abcdef';
    const e = securityEventOf(
      {
        code: 'CCGW_UNSAFE_PATH',
        status: 400,
        method: 'POST',
        url: `/profiles/${encodeURIComponent(key + '/x')}/v1/${key}/sk-ant-configured-secret-1?api_key=${key}`,
        remote: '127.0.0.1',
        headers: { authorization: `Bearer ${key}` },
      },
      new Scrubber('redacted', ['sk-ant-configured-secret-1']),
    );
    assert.equal(e.path, '/profiles/[redacted]%2Fx/v1/[redacted]/[redacted]');
    assert.ok(!JSON.stringify(e).includes(key));
  });
});
