import * as fs from 'node:fs';
import * as path from 'node:path';
import { SERVICE_NAME } from './gateway/routes/public';

/**
 * What the serving editor window leaves for the others on the machine (a 0600 file in the extension's
 * global storage): where the gateway listens, which instance it is, and the admin key its clients use for
 * `/events` and `/control`.
 */
export interface ControlFile {
  port: number;
  instanceId: string;
  adminKey: string;
  pid: number;
}

/** What `/health` says on a port: our gateway (with its instance id), something else, or nothing. */
export type Probe = { kind: 'gateway'; instanceId: string; version: string } | { kind: 'foreign' } | { kind: 'none' };

export function controlFilePath(dir: string, port: number): string {
  return path.join(dir, `gateway-${port}.json`);
}

export function writeControlFile(dir: string, c: ControlFile): void {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const file = controlFilePath(dir, c.port);
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(c), { mode: 0o600 });
  fs.renameSync(tmp, file);
}

export function readControlFile(dir: string, port: number): ControlFile | undefined {
  try {
    const c = JSON.parse(fs.readFileSync(controlFilePath(dir, port), 'utf8')) as ControlFile;
    return typeof c.adminKey === 'string' && typeof c.instanceId === 'string' ? c : undefined;
  } catch {
    return undefined;
  }
}

/** Removes the control file if it is still the one this instance wrote. */
export function removeControlFile(dir: string, port: number, instanceId: string): void {
  if (readControlFile(dir, port)?.instanceId !== instanceId) return;
  try {
    fs.unlinkSync(controlFilePath(dir, port));
  } catch {
    // Already gone.
  }
}

/** Asks `/health` on a loopback port who is there. */
export async function probeGateway(port: number, timeoutMs = 1500): Promise<Probe> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/health`, { signal: AbortSignal.timeout(timeoutMs) });
    const body = (await res.json().catch(() => ({}))) as { service?: string; instanceId?: string; version?: string };
    if (body.service === SERVICE_NAME && typeof body.instanceId === 'string') return { kind: 'gateway', instanceId: body.instanceId, version: String(body.version ?? '') };
    return { kind: 'foreign' };
  } catch {
    return { kind: 'none' };
  }
}

/** One authenticated call to a gateway's `/control` routes; throws with the gateway's message on failure. */
export async function controlRequest<T = unknown>(url: string, adminKey: string, method: string, route: string, body?: unknown): Promise<T | undefined> {
  const res = await fetch(`${url}${route}`, {
    method,
    headers: { authorization: `Bearer ${adminKey}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(5000),
  });
  if (res.status === 204) return undefined;
  const text = await res.text();
  if (res.status >= 400) {
    let message = text;
    try {
      message = (JSON.parse(text) as { error?: { message?: string } }).error?.message ?? text;
    } catch {
      // Not JSON: keep the text.
    }
    throw new Error(`${method} ${route}: ${res.status} ${message}`);
  }
  return text ? (JSON.parse(text) as T) : undefined;
}
