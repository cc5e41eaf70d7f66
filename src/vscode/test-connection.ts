import * as vscode from 'vscode';
import type { Profile } from '../core/config/validate';
import type { GatewayController } from './controller';

/** What Test Connection found. */
export interface ConnectionResult {
  ok: boolean;
  profile: string;
  latencyMs: number;
  status: number;
  model?: string;
  message: string;
}

const DEFAULT_TEST_MODEL = 'claude-haiku-4-5';

/** The fix to suggest for an error the gateway or the provider returned. */
function fixFor(status: number, code: string | null, p: Profile): string {
  if (code === 'CCGW_PROFILE_CONFIG' || status === 401) return `Check the profile's credentials (Claude Gateway: Set Provider Secret for "${p.name}").`;
  if (code === 'CCGW_UPSTREAM_UNREACHABLE') return `Check ${p.baseUrl ?? p.endpoint ?? 'the network'}: the gateway could not connect.`;
  if (code === 'CCGW_CREDENTIALS_FAILED') return p.provider === 'bedrock' ? 'Refresh the AWS credentials (aws sso login) or set a Bedrock API key.' : 'Run `gcloud auth application-default login` or set keyFile.';
  if (status === 403) return 'The provider refused the credentials for this model or project: check access and model enablement.';
  if (status === 404) return 'The model is not available there: set models.default or models.map in the profile.';
  if (status === 429) return 'A budget or rate limit is reached (see Show Usage), or the provider throttled the request.';
  return 'See the gateway log (Output: Claude Code Gateway).';
}

/**
 * Sends a minimal Messages request through the gateway to a profile (`/profiles/<name>/v1/messages`, so
 * the window's own pin is untouched) and reports latency and the model reached, or the error and its fix.
 */
export async function testConnection(controller: GatewayController, name?: string): Promise<ConnectionResult | undefined> {
  let profileName = name;
  if (!profileName) {
    const pick = await vscode.window.showQuickPick(
      controller.profiles.map((p) => ({ label: p.name, description: p.provider, picked: p.name === controller.profile.name })),
      { title: 'Claude Gateway: Test Connection' },
    );
    profileName = pick?.label;
  }
  const p = controller.profiles.find((x) => x.name === profileName);
  if (!p) return undefined;
  const model = p.models?.haiku ?? p.models?.default ?? DEFAULT_TEST_MODEL;
  const started = performance.now();
  let result: ConnectionResult;
  try {
    const res = await fetch(`${controller.url}/profiles/${encodeURIComponent(p.name)}/v1/messages`, {
      method: 'POST',
      headers: { authorization: `Bearer ${controller.key}`, 'content-type': 'application/json', 'anthropic-version': '2023-06-01' },
      body: JSON.stringify({ model, max_tokens: 1, messages: [{ role: 'user', content: 'ping' }] }),
      signal: AbortSignal.timeout(30_000),
    });
    const latencyMs = Math.round(performance.now() - started);
    const body = (await res.json().catch(() => ({}))) as { model?: string; error?: { message?: string } };
    if (res.ok) result = { ok: true, profile: p.name, latencyMs, status: res.status, model: body.model ?? model, message: `reached ${body.model ?? model} in ${latencyMs} ms` };
    else {
      const why = body.error?.message ?? `HTTP ${res.status}`;
      result = { ok: false, profile: p.name, latencyMs, status: res.status, message: `${why} ${fixFor(res.status, res.headers.get('x-gateway-error'), p)}` };
    }
  } catch (err) {
    result = { ok: false, profile: p.name, latencyMs: Math.round(performance.now() - started), status: 0, message: `The gateway did not answer: ${(err as Error).message}. Run Claude Gateway: Restart Gateway.` };
  }
  if (!name) {
    if (result.ok) void vscode.window.showInformationMessage(`Claude Gateway: ${p.name} ${result.message}.`);
    else void vscode.window.showErrorMessage(`Claude Gateway: ${p.name} failed (${result.status || 'no answer'}): ${result.message}`);
  }
  return result;
}
