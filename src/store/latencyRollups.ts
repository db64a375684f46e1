import type { Database } from 'better-sqlite3';
import { DAY_MS, floorTo, ledgerRowsSql, type Level, TRACE_REACH_MS } from './rollups.ts';
import {
  addToSketch,
  decodeSketch,
  encodeSketch,
  mergeSketch,
  newSketch,
  type Sketch,
  type StoredSketch,
} from './sketch.ts';

/** The three ways the latency view splits requests; each request is in one bucket of each family. */
export const LATENCY_FAMILIES = {
  /** The request's cached share of its prompt, measured or estimated. */
  cache_hit: ['0-0.1', '0.1-0.5', '0.5-0.9', '0.9-1'],
  /** The matched instance's KV-cache usage at the start of the request's window. */
  kv_usage: ['<0.5', '0.5-0.9', '>=0.9'],
  /** Requests waiting on the matched instance at the start of the request's window. */
  waiting: ['0', '1-4', '>=5'],
} as const;
export type LatencyFamily = keyof typeof LATENCY_FAMILIES;
export const FAMILY_NAMES = Object.keys(LATENCY_FAMILIES) as LatencyFamily[];
/** Where the input a family needs is missing (no prompt count, no scrape before the span). */
export const UNKNOWN_BUCKET = 'unknown';

export function cacheHitBucket(share: number | null): string {
  if (share === null) return UNKNOWN_BUCKET;
  return share < 0.1 ? '0-0.1' : share < 0.5 ? '0.1-0.5' : share < 0.9 ? '0.5-0.9' : '0.9-1';
}
export function kvUsageBucket(usage: number | null): string {
  if (usage === null) return UNKNOWN_BUCKET;
  return usage < 0.5 ? '<0.5' : usage < 0.9 ? '0.5-0.9' : '>=0.9';
}
export function waitingBucket(waiting: number | null): string {
  if (waiting === null) return UNKNOWN_BUCKET;
  return waiting < 1 ? '0' : waiting < 5 ? '1-4' : '>=5';
}

export const LATENCY_SKETCHES = ['ttft', 'queue', 'prefill', 'e2e', 'prefill_per_1k'] as const;
export type LatencySketch = (typeof LATENCY_SKETCHES)[number];

/** What the ledger says about the latency of one (time bucket, target, model, tenant, family, bucket). */
export interface LatencyFact {
  bucketMs: number;
  targetId: number;
  model: string;
  tenant: string;
  family: LatencyFamily;
  bucket: string;
  requests: number;
  /** Requests with a prompt token count, and their tokens: the mean prompt length. */
  promptRequests: number;
  promptTokens: number;
  shareMeasured: number;
  shareEstimated: number;
  sketches: Record<LatencySketch, Sketch>;
}

const newSketches = (): Record<LatencySketch, Sketch> =>
  Object.fromEntries(LATENCY_SKETCHES.map((k) => [k, newSketch()])) as Record<LatencySketch, Sketch>;

export const latencyKey = (f: Pick<LatencyFact, 'bucketMs' | 'targetId' | 'model' | 'tenant' | 'family' | 'bucket'>) =>
  `${f.bucketMs}\u0000${f.targetId}\u0000${f.model}\u0000${f.tenant}\u0000${f.family}\u0000${f.bucket}`;

export function mergeLatencyFact(into: LatencyFact, from: LatencyFact): void {
  into.requests += from.requests;
  into.promptRequests += from.promptRequests;
  into.promptTokens += from.promptTokens;
  into.shareMeasured += from.shareMeasured;
  into.shareEstimated += from.shareEstimated;
  for (const k of LATENCY_SKETCHES) mergeSketch(into.sketches[k], from.sketches[k]);
}

/** Tenants folded together: the per-instance rollup rows (tenant '*'). */
export const ANY_TENANT = '*';

export type LatencyKey = Pick<LatencyFact, 'bucketMs' | 'targetId' | 'model' | 'tenant' | 'family' | 'bucket'>;

export function emptyLatencyFact(k: LatencyKey): LatencyFact {
  const { bucketMs, targetId, model, tenant, family, bucket } = k;
  return {
    bucketMs,
    targetId,
    model,
    tenant,
    family,
    bucket,
    requests: 0,
    promptRequests: 0,
    promptTokens: 0,
    shareMeasured: 0,
    shareEstimated: 0,
    sketches: newSketches(),
  };
}

/** Adds `f` to the fact of its key in `into` (a copy, so `f` may be reused). */
export function addLatencyFact(into: Map<string, LatencyFact>, f: LatencyFact): void {
  const key = latencyKey(f);
  let have = into.get(key);
  if (!have) into.set(key, (have = emptyLatencyFact(f)));
  mergeLatencyFact(have, f);
}

type RawLatencyRow = [
  bucket: number,
  targetId: number,
  model: string,
  tenant: string,
  prompt: number | null,
  measured: number | null,
  estimate: number | null,
  ttft: number | null,
  queue: number | null,
  prefill: number | null,
  e2e: number | null,
  kv: number | null,
  waiting: number | null,
];

const finite = (v: number | null): v is number => v !== null && Number.isFinite(v) && v >= 0;

/**
 * Latency facts from raw ledger rows whose span started in [fromMs, toMs). A request's cached share is
 * its measured count (its span's, or its part of a count on another span of its trace) over its prompt,
 * else the enricher's estimate over its prompt; unknown without a prompt count.
 */
export function latencyFromRaw(
  db: Database,
  fromMs: number,
  toMs: number,
  bucketSizeMs: number,
  tenantKeys: readonly string[],
  perTarget = true,
  /** One time bucket for the whole period (a view not by day or hour). */
  foldTime = false,
): LatencyFact[] {
  const { sql: ledgerRows, params } = ledgerRowsSql(
    tenantKeys,
    perTarget,
    `, l.prompt_tokens AS prompt_raw, l.latency_ttft_s AS ttft, l.latency_queue_s AS queue,
        l.latency_prefill_s AS prefill, l.latency_e2e_s AS e2e, l.kv_usage_start AS kv, l.waiting_start AS waiting`,
  );
  const rows = db
    .prepare(
      `${ledgerRows} SELECT bucket, target_id, model, tenant, prompt_raw, measured, estimate, ttft, queue, prefill,
        e2e, kv, waiting FROM rows`,
    )
    .raw()
    .iterate({
      size: bucketSizeMs,
      from: fromMs,
      to: toMs,
      reach: TRACE_REACH_MS,
      ...params,
    }) as Iterable<RawLatencyRow>;
  const out = new Map<string, LatencyFact>();
  for (let [
    bucketMs,
    targetId,
    model,
    tenant,
    prompt,
    measured,
    estimate,
    ttft,
    queue,
    prefill,
    e2e,
    kv,
    waiting,
  ] of rows) {
    if (foldTime) bucketMs = 0;
    const hasPrompt = prompt !== null && prompt > 0;
    const cached = measured ?? estimate;
    const share = hasPrompt && cached !== null ? Math.min(1, Math.max(0, cached / prompt)) : null;
    const uncached = hasPrompt && cached !== null ? prompt - Math.min(prompt, cached) : null;
    const perRequest =
      prefill !== null && finite(prefill) && uncached !== null && uncached > 0 ? (prefill * 1000) / uncached : null;
    const buckets: Array<[LatencyFamily, string]> = [
      ['cache_hit', cacheHitBucket(share)],
      ['kv_usage', kvUsageBucket(kv)],
      ['waiting', waitingBucket(waiting)],
    ];
    for (const [family, bucket] of buckets) {
      const key = `${bucketMs}\u0000${targetId}\u0000${model}\u0000${tenant}\u0000${family}\u0000${bucket}`;
      let f = out.get(key);
      if (!f) out.set(key, (f = emptyLatencyFact({ bucketMs, targetId, model, tenant, family, bucket })));
      f.requests++;
      if (prompt !== null) {
        f.promptRequests++;
        f.promptTokens += prompt;
      }
      if (share !== null) {
        if (measured !== null) f.shareMeasured++;
        else f.shareEstimated++;
      }
      if (finite(ttft)) addToSketch(f.sketches.ttft, ttft);
      if (finite(queue)) addToSketch(f.sketches.queue, queue);
      if (finite(prefill)) addToSketch(f.sketches.prefill, prefill);
      if (finite(e2e)) addToSketch(f.sketches.e2e, e2e);
      if (perRequest !== null) addToSketch(f.sketches.prefill_per_1k, perRequest);
    }
  }
  return [...out.values()];
}

const LATENCY_COLS =
  'bucket_ms, target_id, model, tenant, family, bucket, requests, prompt_requests, prompt_tokens, share_measured, ' +
  'share_estimated, ttft_sketch, queue_sketch, prefill_sketch, e2e_sketch, prefill_per_1k_sketch';

const LATENCY_PLACEHOLDERS = Array(1 + LATENCY_COLS.split(',').length)
  .fill('?')
  .join(', ');

/** Hours and days in latency_rollup; weeks (Monday 00:00 UTC) in latency_week. */
export type LatencyLevel = Level | 'week';
export const WEEK_MS = 7 * DAY_MS;
/** 1970-01-01 was a Thursday: weeks counted from the epoch start on Thursdays, so shift by 4 days. */
const MONDAY_SHIFT_MS = 4 * DAY_MS;
export const floorToWeek = (ms: number) => floorTo(ms - MONDAY_SHIFT_MS, WEEK_MS) + MONDAY_SHIFT_MS;
const tableOf = (level: string) => (level.startsWith('week') ? 'latency_week' : 'latency_rollup');

/** The stored level a read needs: per instance, per tenant, or neither (the smallest). */
export function latencyLevel(level: LatencyLevel, perTarget: boolean, foldTenants: boolean): string {
  return perTarget ? level : foldTenants ? `${level}_model` : `${level}_all`;
}

export interface RollupRead {
  /** Facts are re-bucketed to this size. */
  bucketMs: number;
  /** Per instance (default), else per tenant with instances folded. */
  perTarget?: boolean;
  /** Fold tenants as rows are read (a view not by tenant): a month of hours per tenant would not fit memory. */
  foldTenants?: boolean;
  /**
   * One time bucket for the whole period (a view not by day or hour): 30 days of per-tenant rows merge as
   * they are read instead of into 73,000 facts of their own (4 s of allocation and GC).
   */
  foldTime?: boolean;
  /** Facts to add to, keyed by latencyKey: several segments decode into one set of sketches, not one each. */
  into?: Map<string, LatencyFact>;
}

/** Facts from compacted rows of `level` with bucket in [fromMs, toMs). */
export function latencyFromRollup(
  db: Database,
  level: LatencyLevel,
  fromMs: number,
  toMs: number,
  r: RollupRead,
): LatencyFact[] {
  const out = r.into ?? new Map<string, LatencyFact>();
  const rows = db
    .prepare(`SELECT ${LATENCY_COLS} FROM ${tableOf(level)} WHERE level = ? AND bucket_ms >= ? AND bucket_ms < ?`)
    .raw()
    .iterate(latencyLevel(level, r.perTarget ?? true, r.foldTenants ?? false), fromMs, toMs) as Iterable<unknown[]>;
  for (const row of rows) {
    // Sketches decode straight into the fact they merge into: no sketch per row.
    const k = keyOfRow(row);
    k.bucketMs = r.foldTime ? 0 : floorTo(k.bucketMs, r.bucketMs);
    if (r.foldTenants) k.tenant = ANY_TENANT;
    const key = latencyKey(k);
    let f = out.get(key);
    if (!f) out.set(key, (f = emptyLatencyFact(k)));
    addRowToFact(f, row);
  }
  return [...out.values()];
}

function keyOfRow(row: unknown[]): LatencyKey {
  const [bucketMs, targetId, model, tenant, family, bucket] = row as [
    number,
    number,
    string,
    string,
    LatencyFamily,
    string,
  ];
  return { bucketMs, targetId, model, tenant, family, bucket };
}

/** Adds a stored row (LATENCY_COLS) to `f`, whatever the row's key. */
function addRowToFact(f: LatencyFact, row: unknown[]): void {
  f.requests += row[6] as number;
  f.promptRequests += row[7] as number;
  f.promptTokens += row[8] as number;
  f.shareMeasured += row[9] as number;
  f.shareEstimated += row[10] as number;
  LATENCY_SKETCHES.forEach((k, i) => decodeSketch(row[11 + i] as StoredSketch, f.sketches[k]));
}

export function rowToFact(row: unknown[]): LatencyFact {
  const f = emptyLatencyFact(keyOfRow(row));
  addRowToFact(f, row);
  return f;
}

export function factToRow(f: LatencyFact): unknown[] {
  return [
    f.bucketMs,
    f.targetId,
    f.model,
    f.tenant,
    f.family,
    f.bucket,
    f.requests,
    f.promptRequests,
    f.promptTokens,
    f.shareMeasured,
    f.shareEstimated,
    ...LATENCY_SKETCHES.map((k) => encodeSketch(f.sketches[k])),
  ];
}

export function writeLatencyRollup(
  db: Database,
  level: `${LatencyLevel}` | `${LatencyLevel}_all` | `${LatencyLevel}_model`,
  facts: readonly LatencyFact[],
): void {
  const insert = db.prepare(
    `INSERT OR REPLACE INTO ${tableOf(level)} (level, ${LATENCY_COLS}) VALUES (${LATENCY_PLACEHOLDERS})`,
  );
  for (const f of facts) insert.run(level, ...factToRow(f));
}

/** The same facts with a key part folded: tenants (`{ tenant: ANY_TENANT }`) or instances (`{ targetId: 0 }`). */
export function foldLatency(facts: readonly LatencyFact[], fold: Partial<LatencyKey>): LatencyFact[] {
  const out = new Map<string, LatencyFact>();
  for (const f of facts) addLatencyFact(out, { ...f, ...fold });
  return [...out.values()];
}

/** Weeks whose rows are built (latency_week_done). */
export function latencyWeeksDone(db: Database): Set<number> {
  return new Set(db.prepare('SELECT bucket_ms FROM latency_week_done').pluck().all() as number[]);
}

/** Hours compacted before the latency rollups existed and not yet built: read raw until then. */
export function latencyBackfillHours(db: Database, schema = 'main'): number[] {
  return db.prepare(`SELECT bucket_ms FROM ${schema}.latency_backfill ORDER BY bucket_ms`).pluck().all() as number[];
}
