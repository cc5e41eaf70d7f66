import type { Pool } from 'pg';
import { GENESIS, recordHash, type ChainKey } from './audit-chain';
import { checkName, DEFAULT_SCHEMA, ident } from './sql';

/** What a record shows: changed after it was written, missing, or not written by a gateway. */
export type StoreTamperKind = 'edited' | 'removed' | 'inserted';

/** The first record of one chain that breaks it (or a chain missing as a whole). */
export interface StoreTamperFinding {
  kind: StoreTamperKind;
  chain: string;
  seq?: number;
  message: string;
}

/** A chain's recorded gap (records dropped while the store was away) or a chain that ends without a stop record. */
export interface StoreGapFinding {
  chain: string;
  seq?: number;
  reason: string;
}

export interface StoreVerifyResult {
  intact: boolean;
  chains: number;
  records: number;
  /** Whether records were checked as HMACs (a key was given) or as plain SHA-256. */
  keyed: boolean;
  gaps: StoreGapFinding[];
  /** The first finding of each broken chain, then what the checkpoints found. */
  tamper: StoreTamperFinding[];
}

interface Row {
  seq: string;
  t: Date;
  type: string;
  record: string;
  hash: string;
}

const PAGE = 5000;

/**
 * Walks every chain in the store, in seq order, and names the first record of each that was changed (its text does
 * not match its hash, or its columns do not match its text), removed (a seq is missing, or a chain listed in
 * audit_chains has no records) or inserted (a record no gateway wrote: a hash made without the chain key, a copy of
 * another record, a chain no gateway started). Then every checkpoint (one chain's record of the other chains' heads)
 * must still find the head it saw: so records removed from the end of a chain are noticed once another chain has
 * checkpointed past them. With the chain key, someone who can edit the table cannot recompute the hashes after an
 * edit; without one (plain SHA-256) a rewrite of a chain's whole tail goes unnoticed.
 */
export async function verifyStoreAudit(pool: Pool, options: { schema?: string; key?: ChainKey } = {}): Promise<StoreVerifyResult> {
  const s = ident(checkName(options.schema ?? DEFAULT_SCHEMA, 'store.schema'));
  const key = options.key;
  const result: StoreVerifyResult = { intact: true, chains: 0, records: 0, keyed: key !== undefined, gaps: [], tamper: [] };
  const registered = new Set((await pool.query<{ chain: string }>(`SELECT chain FROM ${s}.audit_chains`)).rows.map((r) => r.chain));
  const present = new Set((await pool.query<{ chain: string }>(`SELECT DISTINCT chain FROM ${s}.audit`)).rows.map((r) => r.chain));
  const chains = [...new Set([...registered, ...present])].sort();
  result.chains = chains.length;
  /** Heads seen by checkpoints: chain -> seq -> [hash, where it was seen]. */
  const seen = new Map<string, Map<number, { hash: string; by: string }>>();
  const lastSeq = new Map<string, number>();
  const hint = key ? '' : ' (verified without the chain key: if the gateways key their chains, give verify the same key)';

  for (const chain of chains) {
    if (!present.has(chain)) {
      result.tamper.push({ kind: 'removed', chain, message: `chain ${chain} was started (it is in audit_chains) but all its records were removed` });
      continue;
    }
    let prev = GENESIS;
    let seq = 0;
    let lastType = '';
    let finding: StoreTamperFinding | undefined = registered.has(chain)
      ? undefined
      : { kind: 'inserted', chain, message: `chain ${chain} was inserted: no gateway started it (it is not in audit_chains)` };
    const byHash = new Map<string, number>();
    for (let after = 0; ; ) {
      const page = await pool.query<Row>(`SELECT seq, t, type, record, hash FROM ${s}.audit WHERE chain = $1 AND seq > $2 ORDER BY seq LIMIT ${PAGE}`, [chain, after]);
      if (!page.rows.length) break;
      for (let i = 0; i < page.rows.length; i++) {
        const row = page.rows[i];
        const rs = Number(row.seq);
        after = rs;
        let rec: Record<string, unknown> | undefined;
        try {
          rec = JSON.parse(row.record);
        } catch {
          rec = undefined;
        }
        const at = `chain ${chain} seq ${rs}`;
        const macOk = recordHash(row.record, key) === row.hash;
        if (finding) {
          // Past the first finding, records whose own hash holds still carry checkpoints of the other chains.
          if (macOk && rec?.type === 'checkpoint') collectHeads(seen, rec.heads, at);
          continue;
        }
        if (macOk && rec && (rec.chain !== chain || rec.seq !== rs)) {
          finding = { kind: 'inserted', chain, seq: rs, message: `${at} was inserted: it is a copy of chain ${String(rec.chain)} seq ${String(rec.seq)}` };
        } else if (rs > seq + 1) {
          const range = rs === seq + 2 ? `seq ${seq + 1} was` : `seq ${seq + 1}-${rs - 1} were`;
          finding = { kind: 'removed', chain, seq: seq + 1, message: `chain ${chain}: record ${range} removed (the chain goes from seq ${seq} to seq ${rs})` };
        } else if (!macOk || !rec) {
          const last = i === page.rows.length - 1 && page.rows.length < PAGE;
          // A record changed in place keeps the hash the gateway wrote; one added by hand carries a hash made without the key.
          const forged = !!key && last && recordHash(row.record, undefined) === row.hash;
          finding = forged
            ? { kind: 'inserted', chain, seq: rs, message: `${at} was inserted: its hash was not made with the chain key, so no gateway wrote it` }
            : { kind: 'edited', chain, seq: rs, message: `${at} was edited: its text does not match its hash${hint}` };
        } else if (rec.prev !== prev) {
          // This record is intact but does not follow the one before: that one (or its hash) was changed.
          finding = { kind: 'edited', chain, seq: seq, message: `chain ${chain} seq ${seq} was edited: seq ${rs} follows a record with another hash` };
        } else if (rec.type !== row.type || Date.parse(String(rec.t)) !== row.t.getTime()) {
          finding = { kind: 'edited', chain, seq: rs, message: `${at} was edited: its type or time column no longer matches its record` };
        } else if (byHash.has(row.hash)) {
          finding = { kind: 'inserted', chain, seq: rs, message: `${at} was inserted: it repeats seq ${byHash.get(row.hash)}` };
        }
        if (finding) continue;
        if (rec!.type === 'gap') result.gaps.push({ chain, seq: rs, reason: String(rec!.reason ?? 'gap') });
        if (rec!.type === 'checkpoint') collectHeads(seen, rec!.heads, at);
        prev = row.hash;
        seq = rs;
        lastType = row.type;
        byHash.set(row.hash, rs);
        if (byHash.size > 4096) byHash.delete(byHash.keys().next().value!);
        result.records++;
      }
    }
    lastSeq.set(chain, seq);
    if (finding) result.tamper.push(finding);
    else if (lastType !== 'stop') result.gaps.push({ chain, seq, reason: `chain ends at seq ${seq} without a stop record (its replica was killed, lost the store at its end, or is still running)` });
  }

  // Checkpoints: every head another chain recorded must still be there, with the same hash.
  for (const [chain, heads] of seen) {
    if (result.tamper.some((t) => t.chain === chain)) continue;
    const seqs = [...heads.keys()];
    const end = lastSeq.get(chain) ?? 0;
    const beyond = seqs.filter((q) => q > end).sort((x, y) => x - y);
    if (beyond.length) {
      const h = heads.get(beyond[beyond.length - 1])!;
      result.tamper.push({ kind: 'removed', chain, seq: end + 1, message: `chain ${chain}: records after seq ${end} were removed (${h.by} saw it reach seq ${beyond[beyond.length - 1]})` });
      continue;
    }
    const r = await pool.query<{ seq: string; hash: string }>(`SELECT seq, hash FROM ${s}.audit WHERE chain = $1 AND seq = ANY($2::bigint[])`, [chain, seqs]);
    for (const row of r.rows) {
      const h = heads.get(Number(row.seq))!;
      if (h.hash !== row.hash) {
        result.tamper.push({ kind: 'edited', chain, seq: Number(row.seq), message: `chain ${chain} seq ${row.seq} is not the record ${h.by} saw: the chain was rewritten from there` });
        break;
      }
    }
  }
  result.intact = result.tamper.length === 0;
  return result;
}

/** Notes the heads a checkpoint record saw (chain -> [seq, hash]). */
function collectHeads(seen: Map<string, Map<number, { hash: string; by: string }>>, heads: unknown, by: string): void {
  if (!heads || typeof heads !== 'object') return;
  for (const [other, head] of Object.entries(heads as Record<string, unknown>)) {
    if (!Array.isArray(head) || typeof head[0] !== 'number' || typeof head[1] !== 'string') continue;
    const m = seen.get(other) ?? new Map<number, { hash: string; by: string }>();
    m.set(head[0], { hash: head[1], by });
    seen.set(other, m);
  }
}
