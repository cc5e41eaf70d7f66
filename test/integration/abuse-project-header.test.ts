import * as assert from 'node:assert/strict';
import { writtenCalls } from '../helpers/audit';
import { startGateway, type TestGateway } from '../helpers/gateway';
import { MockAnthropic } from '../helpers/mock-anthropic';

const KEYS = {
  nobody: 'ccgw-key-without-a-project-for-the-test-01',
  web: 'ccgw-key-of-project-web-for-the-abuse-test',
  multi: 'ccgw-key-that-may-charge-a-and-b-for-test1',
  any: 'ccgw-key-that-may-charge-any-project-test1',
};

/**
 * The x-claude-code-gateway-project header chooses a project only for keys allowed to choose it (`projects` on the key,
 * or "*"); naming any other project is a 403 that names the header and the allowed projects, before anything is sent
 * or reserved, so no key spends a project budget it does not belong to.
 */
describe('abuse: the project header never spends another project budget', () => {
  let upstream: MockAnthropic;
  let gw: TestGateway;

  before(async () => {
    upstream = await new MockAnthropic().start();
    gw = await startGateway({
      profiles: [{ name: 'anthropic', provider: 'anthropic', apiKey: 'sk-ant-project-test', baseUrl: upstream.url }],
      keys: [
        { id: 'nobody', key: KEYS.nobody },
        { id: 'web-dev', key: KEYS.web, project: 'web' },
        { id: 'multi', key: KEYS.multi, projects: ['a', 'b'] },
        { id: 'any', key: KEYS.any, projects: '*' },
      ],
      budgets: [
        { scope: 'project:victim', usd: 100, period: 'day' },
        { scope: 'project:b', usd: 100, period: 'day' },
      ],
    });
  });
  after(async () => {
    await gw.close();
    await upstream.stop();
  });

  const call = (key: string, project?: string) =>
    fetch(`${gw.url}/anthropic/v1/messages`, {
      method: 'POST',
      headers: { 'x-api-key': key, 'content-type': 'application/json', 'anthropic-version': '2023-06-01', ...(project === undefined ? {} : { 'x-claude-code-gateway-project': project }) },
      body: JSON.stringify({ model: 'claude-haiku-4-5', max_tokens: 8, messages: [{ role: 'user', content: 'hi' }] }),
    });
  const spent = (scope: string) => gw.runtime.budgets().find((b) => b.scope === scope)!;

  for (const [who, key, allowed] of [
    ['a key without a project', KEYS.nobody, /may not choose a project/],
    ['a key with its own project', KEYS.web, /it may use "web"/],
    ['a key with a list of projects', KEYS.multi, /it may use "a", "b"/],
  ] as const) {
    it(`${who} naming another project is a 403 naming the header; nothing is sent, reserved or charged`, async () => {
      const before = upstream.requests.length;
      const res = await call(key, 'victim');
      const body = (await res.json()) as { type: string; error: { type: string; message: string } };
      assert.equal(res.status, 403);
      assert.equal(body.type, 'error');
      assert.equal(body.error.type, 'permission_error');
      assert.match(body.error.message, /x-claude-code-gateway-project/);
      assert.match(body.error.message, allowed);
      assert.equal(upstream.requests.length, before, 'nothing reached the upstream');
      const victim = spent('project:victim');
      assert.equal(victim.spentUsd, 0);
      assert.equal(victim.reservedUsd, 0);
    });
  }

  it('a key charges its own project without the header, and with a header that repeats it', async () => {
    for (const header of [undefined, 'web']) {
      const res = await call(KEYS.web, header);
      assert.equal(res.status, 200);
      await res.text();
      assert.equal((await writtenCalls(gw.auditDir)).pop()!.project, 'web');
    }
  });

  it('a key charges one of its listed projects, and any project with "*"', async () => {
    const res = await call(KEYS.multi, 'b');
    assert.equal(res.status, 200);
    await res.text();
    const r = (await writtenCalls(gw.auditDir)).pop()!;
    assert.equal(r.project, 'b');
    assert.ok(spent('project:b').spentUsd > 0, 'charged to project:b');

    const any = await call(KEYS.any, 'victim');
    assert.equal(any.status, 200);
    await any.text();
    assert.equal((await writtenCalls(gw.auditDir)).pop()!.project, 'victim');
    assert.ok(spent('project:victim').spentUsd > 0);
  });

  it('GET /budgets shows a key the budgets of the projects it may charge, and no other', async () => {
    const scopes = async (key: string) => ((await (await fetch(`${gw.url}/budgets`, { headers: { 'x-api-key': key } })).json()) as { budgets: Array<{ scope: string }> }).budgets.map((b) => b.scope);
    assert.deepEqual(await scopes(KEYS.multi), ['project:b']);
    assert.deepEqual(await scopes(KEYS.nobody), []);
    assert.deepEqual((await scopes(KEYS.any)).sort(), ['project:b', 'project:victim']);
  });
});
