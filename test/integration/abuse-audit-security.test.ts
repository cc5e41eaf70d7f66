// Refusals by authentication (401/403) and by path confinement (400 CCGW_UNSAFE_PATH) are security events: each is
// an audit record (code, status, method, path without query, remote address, key id when known) that never holds the
// presented key or token, and a flood of them writes a bounded number of records, not one per request.
import * as assert from 'node:assert/strict';
import { SECURITY_EVENTS_PER_MINUTE } from '../../src/core/accounting/security-events';
import { verifyAudit } from '../../src/core/accounting/audit-verify';
import { messagesBody, rawRequest, startAbuseGateway, type AbuseGateway } from '../helpers/abuse';
import { allText, readAudit } from '../helpers/audit';

describe('abuse: security events in the audit log', function () {
  this.timeout(120_000);
  let gw: AbuseGateway;
  let auditDir: string;

  beforeEach(async () => {
    gw = await startAbuseGateway();
    auditDir = gw.runtime.config.audit.dir;
  });
  afterEach(async () => {
    await gw.assertNoLeaks();
    await gw.close();
  });

  const security = () => {
    gw.runtime.accountant.flush?.();
    return readAudit(auditDir).filter((r) => r.type === 'security');
  };

  it('each kind of refusal is one record naming what was refused, never the credential or the query', async () => {
    const badKey = `ccgw-not-a-key-${'z'.repeat(30)}`;
    const expired = gw.runtime.keys.issueToken('test', 1000, Date.now() - 60_000);
    const post = (path: string, headers: Record<string, string>) => gw.fetch(path, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: messagesBody() });
    const answers = [
      await post(`/v1/messages?token=${badKey}`, { authorization: `Bearer ${badKey}` }),
      await post('/v1/messages', { 'x-api-key': gw.secrets.revokedKey }),
      await post('/v1/messages', { authorization: `Bearer ${expired}` }),
      await post('/v1/messages', {}),
      await post('/anthropic/v1/messages', { authorization: `Bearer ${gw.secrets.key}`, origin: 'https://evil.example' }),
    ];
    assert.deepEqual(
      answers.map((a) => a.status),
      [403, 403, 401, 401, 403],
    );
    // Path confinement: a dot segment, sent raw so that nothing normalises it first.
    const body = messagesBody();
    const raw = await rawRequest(
      gw.port,
      `POST /anthropic/v1/%2e%2e/%2e%2e/admin?k=${badKey} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${gw.secrets.key}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
    assert.equal(raw.status, 400, raw.raw.slice(0, 300));
    assert.equal(raw.headers['x-gateway-error'], 'CCGW_UNSAFE_PATH');

    const recs = security();
    const shape = recs.map((r) => ({ code: r.code, status: r.status, method: r.method, path: r.path, key: r.key }));
    assert.deepEqual(shape, [
      { code: 'CCGW_UNKNOWN_KEY', status: 403, method: 'POST', path: '/v1/messages', key: undefined },
      { code: 'CCGW_REVOKED_KEY', status: 403, method: 'POST', path: '/v1/messages', key: 'gone' },
      { code: 'CCGW_EXPIRED_TOKEN', status: 401, method: 'POST', path: '/v1/messages', key: undefined },
      { code: 'CCGW_NO_CREDENTIAL', status: 401, method: 'POST', path: '/v1/messages', key: undefined },
      { code: 'CCGW_FORBIDDEN_ORIGIN', status: 403, method: 'POST', path: '/anthropic/v1/messages', key: undefined },
      { code: 'CCGW_UNSAFE_PATH', status: 400, method: 'POST', path: '/anthropic/v1/%2e%2e/%2e%2e/admin', key: recs[5]?.key },
    ]);
    for (const r of recs) assert.equal(r.remote, '127.0.0.1');
    const text = allText(auditDir);
    for (const secret of [badKey, expired, gw.secrets.revokedKey, gw.secrets.key]) assert.ok(!text.includes(secret), 'a presented credential reached the audit log');
    assert.ok(!text.includes('?token=') && !text.includes('?k='), 'no query string in the log');
    // The new kinds keep the log verifiable and out of usage.
    const v = verifyAudit(auditDir);
    assert.equal(v.intact, true, JSON.stringify(v.tamper));
    const usage = await gw.fetch('/usage?since=2000-01-01', { headers: { authorization: `Bearer ${gw.secrets.key}` } });
    assert.equal(usage.status, 200, usage.body);
    assert.equal((JSON.parse(usage.body) as { totals: { requests: number } }).totals.requests, 0, 'security records are not calls');
  });

  it('a flood of 10,000 bad-key requests writes a bounded number of records, with one summary of the rest', async () => {
    const badKey = `ccgw-flood-${'q'.repeat(40)}`;
    const total = 10_000;
    const t0 = Date.now();
    let next = 0;
    const worker = async () => {
      while (next < total) {
        next++;
        const res = await fetch(`${gw.url}/v1/messages?api_key=${badKey}`, { method: 'POST', headers: { authorization: `Bearer ${badKey}`, 'content-type': 'application/json' }, body: '{}' });
        assert.equal(res.status, 403);
        await res.arrayBuffer();
      }
    };
    await Promise.all(Array.from({ length: 32 }, worker));
    const seconds = Math.ceil((Date.now() - t0) / 1000);
    const individual = security();
    // A burst of SECURITY_EVENTS_PER_MINUTE, then one a second as the bucket refills.
    assert.ok(individual.length >= SECURITY_EVENTS_PER_MINUTE, `${individual.length}`);
    assert.ok(individual.length <= SECURITY_EVENTS_PER_MINUTE + seconds + 1, `${individual.length} records for a ${seconds} s flood`);
    // Stopping writes the summary of what the bucket left out (the minute's timer would, had the test waited).
    gw.runtime.accountant.dispose?.();
    const dir = auditDir;
    const all = readAudit(dir);
    const summaries = all.filter((r) => r.type === 'security_suppressed');
    assert.equal(summaries.length, 1, 'the rest is summarised (written at the latest when the gateway stops)');
    assert.equal((summaries[0].count as number) + individual.length, total);
    assert.deepEqual(summaries[0].codes, { CCGW_UNKNOWN_KEY: total - individual.length });
    const text = all.map((r) => JSON.stringify(r)).join('\n');
    assert.ok(!text.includes(badKey), 'the presented key is in no record');
    assert.equal(verifyAudit(dir).intact, true);
  });
});
