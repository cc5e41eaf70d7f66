const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Parses "90s", "30m", "1h", "7d" or plain milliseconds; throws a message naming the option otherwise. */
export function parseDuration(value: string, option: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(value.trim());
  if (!m) throw new Error(`${option}: expected a duration like 30m, 1h or 7d, got "${value}"`);
  const ms = Number(m[1]) * UNITS[m[2] ?? 'ms'];
  if (ms <= 0) throw new Error(`${option}: must be longer than zero`);
  return ms;
}
