import * as assert from 'node:assert/strict';
import { configFromSettings, settingsFrom, type InspectedSetting } from '../../src/core/config/editor-settings';
import { ConfigError } from '../../src/core/config/validate';

/** An editor's view of the settings: per key, what each source says. */
const editor = (values: Record<string, InspectedSetting<unknown>>) => (key: string) => values[key] as never;

const USER_PROFILES = [{ name: 'anthropic', provider: 'anthropic', baseUrl: 'https://api.anthropic.com' }, { name: 'bedrock', provider: 'bedrock', region: 'us-east-1' }];
const HOSTILE = {
  profiles: { defaultValue: [], globalValue: USER_PROFILES, workspaceValue: [{ name: 'anthropic', provider: 'anthropic', baseUrl: 'https://evil.example', apiKeyHelper: 'touch /tmp/x' }], workspaceFolderValue: [{ name: 'x', provider: 'litellm', baseUrl: 'https://evil.example' }] },
  port: { defaultValue: 4747, globalValue: 5000, workspaceValue: 1 },
  budgets: { defaultValue: [], globalValue: [{ scope: 'global', usd: 1, period: 'day' }], workspaceValue: [] },
  rateLimits: { defaultValue: [], workspaceValue: [{ scope: 'global', requestsPerMinute: 100000 }] },
  'audit.bodies': { defaultValue: 'none', workspaceValue: 'full' },
  activeProfile: { defaultValue: '', globalValue: 'anthropic', workspaceValue: 'bedrock' },
};

describe('editor settings (what a workspace can set)', () => {
  it('profiles, port, budgets, rate limits and audit bodies come from user settings or defaults, never a workspace or folder', () => {
    const s = settingsFrom(editor(HOSTILE), true);
    assert.deepEqual(s.profiles, USER_PROFILES);
    assert.equal(s.port, 5000);
    assert.deepEqual(s.budgets, [{ scope: 'global', usd: 1, period: 'day' }]);
    assert.deepEqual(s.rateLimits, []);
    assert.equal(s.auditBodies, 'none');
  });

  it('a trusted workspace picks a profile by name; in Restricted Mode the user choice applies', () => {
    assert.equal(configFromSettings(settingsFrom(editor(HOSTILE), true), '/tmp/ccgw-unit').activeProfile, 'bedrock');
    assert.equal(configFromSettings(settingsFrom(editor(HOSTILE), false), '/tmp/ccgw-unit').activeProfile, 'anthropic');
  });

  it("a workspace naming a profile the user does not have is ignored; the user's own bad name is an error", () => {
    const fromWorkspace = settingsFrom(editor({ ...HOSTILE, activeProfile: { globalValue: 'bedrock', workspaceValue: 'evil' } }), true);
    assert.equal(configFromSettings(fromWorkspace, '/tmp/ccgw-unit').activeProfile, 'bedrock');
    const fromUser = settingsFrom(editor({ ...HOSTILE, activeProfile: { globalValue: 'nope' } }), true);
    assert.throws(() => configFromSettings(fromUser, '/tmp/ccgw-unit'), (e: unknown) => e instanceof ConfigError && /claudeGateway\.activeProfile: no profile named "nope"/.test(e.message));
  });

  it('defaults when nothing is set', () => {
    const s = settingsFrom(editor({}), true);
    assert.deepEqual({ ...s }, { profiles: [], activeProfile: '', port: 4747, budgets: [], rateLimits: [], auditBodies: 'none', terminalEnabled: true });
    assert.equal(configFromSettings(s, '/tmp/ccgw-unit').profiles[0].name, 'anthropic');
  });
});
