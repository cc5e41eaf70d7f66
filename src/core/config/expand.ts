import * as os from 'node:os';
import * as path from 'node:path';

const ENV_REF = /\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}/g;

/** Thrown when a `${env:NAME}` reference cannot be resolved at the moment a value is used. */
export class MissingEnvError extends Error {
  constructor(
    readonly jsonPath: string,
    readonly variable: string,
    readonly usedBy: string,
  ) {
    super(`${jsonPath}: environment variable ${variable} is not set (needed by ${usedBy})`);
    this.name = 'MissingEnvError';
  }
}

/** Expands every `${env:NAME}` in a config string; throws MissingEnvError naming the path when one is unset. */
export function expandEnv(value: string, jsonPath: string, usedBy: string, env: NodeJS.ProcessEnv = process.env): string {
  if (!value.includes('${')) return value;
  return value.replace(ENV_REF, (_m, name: string) => {
    const v = env[name];
    if (v === undefined || v === '') throw new MissingEnvError(jsonPath, name, usedBy);
    return v;
  });
}

/** The environment variable a value is exactly made of (`${env:NAME}`), if it is. */
export function envReferenceOf(value: string | undefined): string | undefined {
  const m = value ? /^\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}$/.exec(value) : null;
  return m ? m[1] : undefined;
}

/** Expands a leading `~` to the home directory and makes the path absolute against `base`. */
export function resolvePath(p: string, base = process.cwd(), home = os.homedir()): string {
  if (p === '~') return home;
  if (p.startsWith('~/')) return path.join(home, p.slice(2));
  return path.resolve(base, p);
}
