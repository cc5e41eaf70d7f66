import * as vscode from 'vscode';
import { PROVIDERS, profileSchema, type ProfileConfig, type ProviderName } from '../core/config/schema';
import { ConfigError, parseConfig } from '../core/config/validate';
import { takesSecret } from '../core/readiness';
import type { GatewayController } from './controller';
import type { ProfileSecrets } from './secrets';
import { SECTION } from './settings';

/** Where Add Profile writes: user settings (`workspace` is refused: a workspace cannot define profiles). */
export type ProfileTarget = 'user' | 'workspace';

export interface AddProfileOptions {
  target?: ProfileTarget;
  secret?: string;
}

const PROVIDER_LABELS: Record<ProviderName, string> = {
  anthropic: 'Anthropic API (or an Anthropic-compatible endpoint)',
  bedrock: 'Amazon Bedrock',
  vertex: 'Google Vertex AI',
  litellm: "A team's LiteLLM proxy",
};

interface Field {
  key: 'region' | 'projectId' | 'baseUrl' | 'awsProfile';
  prompt: string;
  placeholder: string;
  optional?: boolean;
  validate?: (v: string) => string | undefined;
}

const url = (v: string) => {
  try {
    const u = new URL(v);
    return u.protocol === 'http:' || u.protocol === 'https:' ? undefined : 'Use an http:// or https:// URL';
  } catch {
    return 'Enter a URL such as https://litellm.example.com';
  }
};

const FIELDS: Record<ProviderName, Field[]> = {
  anthropic: [{ key: 'baseUrl', prompt: 'Base URL (leave empty for https://api.anthropic.com)', placeholder: 'https://api.anthropic.com', optional: true, validate: url }],
  litellm: [{ key: 'baseUrl', prompt: "The LiteLLM proxy's URL", placeholder: 'https://litellm.example.com', validate: url }],
  bedrock: [
    { key: 'region', prompt: 'AWS region', placeholder: 'us-east-1', validate: (v) => (/^[a-z]{2}(-[a-z]+)+-\d$/.test(v) ? undefined : 'An AWS region such as us-east-1') },
    { key: 'awsProfile', prompt: 'AWS profile from ~/.aws/config (empty: the default credential chain, or a Bedrock API key next)', placeholder: 'default', optional: true },
  ],
  vertex: [
    { key: 'projectId', prompt: 'Google Cloud project id', placeholder: 'my-project', validate: (v) => (/^[a-z][a-z0-9-]{4,29}$/.test(v) ? undefined : 'A project id: 6-30 lowercase letters, digits or hyphens') },
    { key: 'region', prompt: 'Vertex AI region', placeholder: 'us-east5 (or global)', validate: (v) => (/^[a-z0-9-]+$/.test(v) ? undefined : 'A region such as us-east5, global, us or eu') },
  ],
};

async function ask(step: number, total: number, f: Field): Promise<string | undefined | null> {
  const v = await vscode.window.showInputBox({
    title: `Add Profile (${step}/${total})`,
    prompt: f.prompt,
    placeHolder: f.placeholder,
    ignoreFocusOut: true,
    validateInput: (s) => (!s.trim() ? (f.optional ? undefined : 'Required') : f.validate?.(s.trim())),
  });
  if (v === undefined) return null;
  return v.trim() || undefined;
}

/** Add Profile: a guided multi-step input, validated as you type, written to user settings. */
export async function addProfile(controller: GatewayController, secrets: ProfileSecrets, given?: ProfileConfig, opts: AddProfileOptions = {}): Promise<string | undefined> {
  let profile = given;
  let secret = opts.secret;
  const target = opts.target;
  if (!profile) {
    const provider = await vscode.window.showQuickPick(
      PROVIDERS.map((p) => ({ label: p, description: PROVIDER_LABELS[p] })),
      { title: 'Add Profile (1/4): provider', ignoreFocusOut: true },
    );
    if (!provider) return undefined;
    const p = provider.label as ProviderName;
    const taken = new Set(controller.profiles.map((x) => x.name));
    const name = await vscode.window.showInputBox({
      title: 'Add Profile (2/4): name',
      value: taken.has(p) ? `${p}-2` : p,
      ignoreFocusOut: true,
      validateInput: (v) => (taken.has(v) ? `A profile named "${v}" exists` : profileSchema.shape.name.safeParse(v).success ? undefined : '1-64 letters, digits, ".", "_" or "-"'),
    });
    if (!name) return undefined;
    const draft: Record<string, string> = { name, provider: p };
    const fields = FIELDS[p];
    for (let i = 0; i < fields.length; i++) {
      const v = await ask(3, 4, fields[i]);
      if (v === null) return undefined;
      if (v !== undefined) draft[fields[i].key] = v;
    }
    profile = draft as unknown as ProfileConfig;
  }
  const parsed = profileSchema.safeParse(profile);
  if (!parsed.success) throw new Error(`Invalid profile: ${parsed.error.issues.map((i) => `${i.path.join('.')} ${i.message}`).join('; ')}`);
  try {
    // The same checks the gateway makes on settings (required fields per provider, URLs, key sources).
    parseConfig({ profiles: [parsed.data] });
  } catch (err) {
    if (err instanceof ConfigError) throw new Error(`Invalid profile: ${err.problems.map((p) => p.replace(/^profiles\[0\]\.?/, '')).join('; ')}`);
    throw err;
  }
  if (controller.profiles.some((p) => p.name === parsed.data.name)) throw new Error(`A profile named "${parsed.data.name}" already exists`);
  const asRuntimeProfile = { mode: 'native' as const, credentials: 'gateway' as const, ...parsed.data, jsonPath: '' };
  if (secret === undefined && !given && takesSecret(asRuntimeProfile)) {
    const v = await vscode.window.showInputBox({
      title: 'Add Profile (4/4): secret',
      prompt: parsed.data.provider === 'bedrock' ? 'Bedrock API key (empty: use AWS credentials)' : 'API key (stored in the editor secret storage, never in settings; empty: set it later)',
      password: true,
      ignoreFocusOut: true,
    });
    if (v === undefined) return undefined;
    secret = v.trim() || undefined;
  }
  // Profiles live in user (or remote) settings only: a workspace may pick one by name, never define one.
  if (target === 'workspace') throw new Error('Profiles are kept in user settings: a workspace can only choose one by name (claudeGateway.activeProfile).');
  const config = vscode.workspace.getConfiguration(SECTION);
  const inspected = config.inspect<unknown[]>('profiles');
  const existing = inspected?.globalValue ?? inspected?.defaultValue ?? [];
  if (secret) await secrets.set(asRuntimeProfile, secret);
  await config.update('profiles', [...existing, parsed.data], vscode.ConfigurationTarget.Global);
  void vscode.window.setStatusBarMessage(`Claude Gateway: profile ${parsed.data.name} added`, 3000);
  return parsed.data.name;
}
