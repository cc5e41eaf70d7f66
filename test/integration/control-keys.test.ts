import * as assert from 'node:assert/strict';
import { generateKey } from '../../src/core/gateway/keys';
import { startGateway, type TestGateway } from '../helpers/gateway';
import { MockAnthropic } from '../helpers/mock-anthropic';

/** `/control/keys/:id`: another window registers its key; it must never replace or remove a key it did not register. */
describe('control keys: registering never takes over an existing key', () => {
  let upstream: MockAnthropic;
  let gw: TestGateway;
  let controlKey: string;
  const put = (id: string, key: string, by = controlKey) =>
    fetch(`${gw.url}/control/keys/${encodeURIComponent(id)}`, { method: 'PUT', headers: { authorization: `Bearer ${by}`, 'content-type': 'application/json' }, body: JSON.stringify({ key, project: 'p' }) });
  const del = (id: string, by = controlKey) => fetch(`${gw.url}/control/keys/${encodeURIComponent(id)}`, { method: 'DELETE', headers: { authorization: `Bearer ${by}` } });
  const health = (key: string) => fetch(`${gw.url}/usage`, { headers: { authorization: `Bearer ${key}` } });

  before(async () => {
    upstream = await new MockAnthropic().start();
    gw = await startGateway({
      profiles: [{ name: 'a', provider: 'anthropic', apiKey: 'sk-ant-x', baseUrl: upstream.url }],
      keys: [{ id: 'ci', key: 'ci-configured-key-0123456789' }],
    });
    controlKey = generateKey();
    gw.runtime.keys.add({ id: 'control', admin: true }, controlKey);
  });
  after(async () => {
    await gw.close();
    await upstream.stop();
  });

  it('the admin key, a configured key and the other admin key cannot be re-registered: 409, and they keep working as before', async () => {
    for (const id of ['test', 'ci', 'control']) {
      const res = await put(id, `attacker-key-for-${id}-0123456789`);
      assert.equal(res.status, 409, id);
      const body = (await res.json()) as { type: string; error: { type: string; message: string } };
      assert.equal(body.type, 'error');
      assert.match(body.error.message, new RegExp(`key id "${id}" is already in use`));
    }
    assert.equal(gw.runtime.keys.get('test')!.admin, true, 'the admin key keeps its admin flag');
    assert.equal((await health(gw.key)).status, 200);
    assert.equal((await health('ci-configured-key-0123456789')).status, 200);
    assert.equal((await health('attacker-key-for-test-0123456789')).status, 403);
  });

  it('nor removed: 409, the key still authenticates', async () => {
    for (const id of ['test', 'ci']) assert.equal((await del(id)).status, 409, id);
    assert.equal((await health(gw.key)).status, 200);
  });

  it('a new id registers; its registrant can register it again (a new window key) and remove it', async () => {
    assert.equal((await put('window:w1', 'window-key-one-0123456789')).status, 204);
    assert.equal((await health('window-key-one-0123456789')).status, 200);
    assert.equal((await put('window:w1', 'window-key-two-0123456789')).status, 204);
    assert.equal((await health('window-key-two-0123456789')).status, 200);
    assert.equal((await health('window-key-one-0123456789')).status, 403);
    // Another admin did not register it: refused.
    assert.equal((await put('window:w1', 'window-key-three-0123456789', gw.key)).status, 409);
    assert.equal((await del('window:w1', gw.key)).status, 409);
    assert.equal((await del('window:w1')).status, 204);
    assert.equal((await health('window-key-two-0123456789')).status, 403);
  });
});
