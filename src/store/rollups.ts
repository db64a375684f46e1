import type { Database } from 'better-sqlite3';
import {
  addToSketch,
  decodeSketch,
  encodeSketch,
  mergeSketch,
  newSketch,
  type Sketch,
  type StoredSketch,
} from './sketch.ts';

export const MINUTE_MS = 60_000;
export const HOUR_MS = 3_600_000;
export const DAY_MS = 86_400_000;
export type Level = 'hour' | 'day';

export const floorTo = (ms: number, size: number) => Math.floor(ms / size) * size;

/** Counter signals a fact sums; null where the server never exposed the signal in the bucket. */
export const FACT_COUNTERS = [
  'requests',
  'prompt_tokens',
  'prompt_tokens_cached',
  'prefix_cache_hits',
  'prefix_cache_queries',
  'generation_tokens',
  'preemptions',
  'prompt_tokens_local_cache_hit',
  'prompt_tokens_external_transfer',
  'prompt_tokens_local_compute',
  'external_prefix_cache_queries',
  'external_prefix_cache_hits',
] as const;
export type FactCounter = (typeof FACT_COUNTERS)[number];
const SIGNAL_TO_COUNTER: Record<string, FactCounter> = {
  requests_finished: 'requests',
  prompt_tokens: 'prompt_tokens',
  prompt_tokens_cached: 'prompt_tokens_cached',
  prefix_cache_hits: 'prefix_cache_hits',
  prefix_cache_queries: 'prefix_cache_queries',
  generation_tokens: 'generation_tokens',
  preemptions: 'preemptions',
  prompt_tokens_local_cache_hit: 'prompt_tokens_local_cache_hit',
  prompt_tokens_external_transfer: 'prompt_tokens_external_transfer',
  prompt_tokens_local_compute: 'prompt_tokens_local_compute',
  external_prefix_cache_queries: 'external_prefix_cache_queries',
  external_prefix_cache_hits: 'external_prefix_cache_hits',
};
const GAUGE_SIGNALS = { kv_cache_usage: 'kv', requests_waiting: 'queue' } as const;

/** What one (bucket, target, model) did, from the exact scrape deltas and the gauges' 1-minute means. */
export interface FleetFact {
  bucketMs: number;
  targetId: number;
  model: string;
  minutes: number;
  counters: Record<FactCounter, number | null>;
  resets: number;
  kv: GaugeAgg;
  queue: GaugeAgg;
}

export interface GaugeAgg {
  sum: number;
  count: number;
  sketch: Sketch;
}

/** What the request ledger says about one (bucket, target, model, tenant). */
export interface LedgerFact {
  bucketMs: number;
  targetId: number;
  model: string;
  tenant: string;
  requests: number;
  promptTokens: number;
  completionTokens: number;
  cachedMeasured: number;
  requestsMeasured: number;
  cachedAllocated: number;
  requestsAllocated: number;
}

const emptyGauge = (): GaugeAgg => ({ sum: 0, count: 0, sketch: newSketch() });

function newFleetFact(bucketMs: number, targetId: number, model: string): FleetFact {
  const counters = Object.fromEntries(FACT_COUNTERS.map((c) => [c, null])) as Record<FactCounter, number | null>;
  return { bucketMs, targetId, model, minutes: 0, counters, resets: 0, kv: emptyGauge(), queue: emptyGauge() };
}

/**
 * A server's cached prompt tokens: prompt_tokens_cached where exposed, else prefix-cache hits in tokens plus a
 * KV connector's hits (before vLLM 0.16 prefix hits are the GPU's own; connector hits exist since 0.11). One
 * rule for the reports and the per-request estimate on spans.
 */
export function cachedTokensOf(
  cached: number | null | undefined,
  prefixHits: number | null | undefined,
  externalHits: number | null | undefined,
): number | null {
  return cached ?? (prefixHits === null || prefixHits === undefined ? null : prefixHits + (externalHits ?? 0));
}

/** Sums where null means "not exposed": null + null stays null, null + x is x. */
export const addNullable = (a: number | null, b: number | null) => (b === null ? a : (a ?? 0) + b);

export function mergeFleetFact(into: FleetFact, from: FleetFact): void {
  into.minutes += from.minutes;
  for (const c of FACT_COUNTERS) into.counters[c] = addNullable(into.counters[c], from.counters[c]);
  into.resets += from.resets;
  for (const g of ['kv', 'queue'] as const) {
    into[g].sum += from[g].sum;
    into[g].count += from[g].count;
    mergeSketch(into[g].sketch, from[g].sketch);
  }
}

export function mergeLedgerFact(into: LedgerFact, from: LedgerFact): void {
  into.requests += from.requests;
  into.promptTokens += from.promptTokens;
  into.completionTokens += from.completionTokens;
  into.cachedMeasured += from.cachedMeasured;
  into.requestsMeasured += from.requestsMeasured;
  into.cachedAllocated += from.cachedAllocated;
  into.requestsAllocated += from.requestsAllocated;
}

/**
 * Fleet facts straight from the per-minute rollups in [fromMs, toMs), bucketed by `bucketMs`. Only
 * engine '' rows: the per-model combination over data-parallel ranks, so nothing counts twice.
 */
export function fleetFromMinutes(db: Database, fromMs: number, toMs: number, bucketSizeMs: number): FleetFact[] {
  const facts = new Map<string, FleetFact>();
  const minutes = new Map<string, Set<number>>();
  const rows = db
    .prepare(
      `SELECT s.target_id AS t, s.model AS m, s.signal AS sig, r.minute_ms AS ms, r.delta_sum AS d, r.resets AS rs,
        r.gauge_sum AS gs, r.gauge_count AS gc
       FROM series s JOIN rollup_minute r ON r.series_id = s.id
       WHERE s.engine = '' AND s.unit <> 'blocks' AND r.minute_ms >= ? AND r.minute_ms < ?`,
    )
    .raw()
    .iterate(fromMs, toMs) as Iterable<
    [number, string, string, number, number | null, number | null, number | null, number | null]
  >;
  for (const [t, m, sig, ms, d, rs, gs, gc] of rows) {
    const bucket = floorTo(ms, bucketSizeMs);
    const key = `${bucket}\u0000${t}\u0000${m}`;
    let f = facts.get(key);
    if (!f) {
      facts.set(key, (f = newFleetFact(bucket, t, m)));
      minutes.set(key, new Set());
    }
    minutes.get(key)!.add(ms);
    const counter = SIGNAL_TO_COUNTER[sig];
    if (counter && d !== null) {
      f.counters[counter] = (f.counters[counter] ?? 0) + d;
      if (counter === 'prompt_tokens') f.resets += rs ?? 0;
    }
    const gauge = GAUGE_SIGNALS[sig as keyof typeof GAUGE_SIGNALS];
    if (gauge && gs !== null && gc) {
      const mean = gs / gc;
      f[gauge].sum += mean;
      f[gauge].count += 1;
      addToSketch(f[gauge].sketch, mean);
    }
  }
  for (const [key, f] of facts) f.minutes = minutes.get(key)!.size;
  return [...facts.values()];
}

const FLEET_COLS = `bucket_ms, target_id, model, minutes, ${FACT_COUNTERS.join(', ')}, resets, kv_sum, kv_count,
kv_sketch, queue_sum, queue_count, queue_sketch`;

/** Fleet facts from compacted rows of `level` with bucket in [fromMs, toMs), re-bucketed to `bucketSizeMs`. */
export function fleetFromRollup(
  db: Database,
  level: Level,
  fromMs: number,
  toMs: number,
  bucketSizeMs: number,
): FleetFact[] {
  const facts = new Map<string, FleetFact>();
  const rows = db
    .prepare(`SELECT ${FLEET_COLS} FROM fleet_rollup WHERE level = ? AND bucket_ms >= ? AND bucket_ms < ?`)
    .raw()
    .iterate(level, fromMs, toMs) as Iterable<unknown[]>;
  for (const row of rows) {
    const f = rowToFleetFact(row);
    f.bucketMs = floorTo(f.bucketMs, bucketSizeMs);
    const key = `${f.bucketMs}\u0000${f.targetId}\u0000${f.model}`;
    const have = facts.get(key);
    if (have) mergeFleetFact(have, f);
    else facts.set(key, f);
  }
  return [...facts.values()];
}

function rowToFleetFact(row: unknown[]): FleetFact {
  const [bucketMs, targetId, model, minutes] = row as [number, number, string, number];
  const f = newFleetFact(bucketMs, targetId, model);
  f.minutes = minutes;
  FACT_COUNTERS.forEach((c, i) => (f.counters[c] = row[4 + i] as number | null));
  let i = 4 + FACT_COUNTERS.length;
  f.resets = row[i++] as number;
  for (const g of ['kv', 'queue'] as const) {
    f[g].sum = (row[i++] as number | null) ?? 0;
    f[g].count = (row[i++] as number | null) ?? 0;
    decodeSketch(row[i++] as StoredSketch, f[g].sketch);
  }
  return f;
}

export function writeFleetRollup(db: Database, level: Level, facts: readonly FleetFact[]): void {
  const insert = db.prepare(
    `INSERT OR REPLACE INTO fleet_rollup (level, ${FLEET_COLS}) VALUES (${Array(4 + FACT_COUNTERS.length + 8)
      .fill('?')
      .join(', ')})`,
  );
  for (const f of facts) {
    insert.run(
      level,
      f.bucketMs,
      f.targetId,
      f.model,
      f.minutes,
      ...FACT_COUNTERS.map((c) => f.counters[c]),
      f.resets,
      f.kv.count ? f.kv.sum : null,
      f.kv.count,
      encodeSketch(f.kv.sketch),
      f.queue.count ? f.queue.sum : null,
      f.queue.count,
      encodeSketch(f.queue.sketch),
    );
  }
}

/**
 * The tenant of a ledger row: for each configured key in order, the span's or resource's own value,
 * else one seen on any span of the trace (a gateway span); '' when none is known.
 */
function tenantExpr(keys: readonly string[]): { sql: string; params: Record<string, string> } {
  if (!keys.length) return { sql: "''", params: {} };
  const parts: string[] = [];
  const params: Record<string, string> = {};
  keys.forEach((k, i) => {
    parts.push(
      `CAST(json_extract(l.tenant_json, @path${i}) AS TEXT)`,
      `(SELECT t.value FROM trace_tenants t WHERE t.trace_id = l.trace_id AND t.key = @key${i})`,
    );
    params[`path${i}`] = `$."${k.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
    params[`key${i}`] = k;
  });
  return { sql: `coalesce(${parts.join(', ')}, '')`, params };
}

/**
 * How far apart in time a trace's request spans may start and still share a count carried by another
 * span of the trace. The ledger is keyed by time, not trace, so the split reads this much on each side.
 */
export const TRACE_REACH_MS = HOUR_MS;

/**
 * A WITH clause naming `rows`: the ledger's request rows whose span started in [@from, @to), with their
 * @size bucket, target (0 when folded), model, tenant, prompt and completion (0 when unknown), the
 * measured cached count (the span's own, else its share of a count on another span of its trace) and
 * the enricher's estimate. `extra` adds columns of `l` (the ledger row).
 */
export function ledgerRowsSql(
  tenantKeys: readonly string[],
  perTarget: boolean,
  extra = '',
): { sql: string; params: Record<string, string> } {
  const tenant = tenantExpr(tenantKeys);
  const sql = `
    WITH shares AS (
      SELECT x.trace_id, sum(coalesce(x.prompt_tokens, 0)) AS prompt, count(*) AS n
      FROM request_ledger x JOIN trace_usage tu ON tu.trace_id = x.trace_id
      WHERE x.start_ms >= @from - @reach AND x.start_ms < @to + @reach AND x.cached_tokens IS NULL
      GROUP BY x.trace_id
    ), rows AS (
      SELECT CAST(l.start_ms / @size AS INTEGER) * @size AS bucket,
      ${perTarget ? 'coalesce(l.target_id, 0)' : '0'} AS target_id, coalesce(l.model, '') AS model,
        ${tenant.sql} AS tenant, coalesce(l.prompt_tokens, 0) AS prompt, coalesce(l.completion_tokens, 0) AS completion,
        coalesce(l.cached_tokens,
          tu.cached_tokens
            * CASE WHEN s.prompt > 0 THEN coalesce(l.prompt_tokens, 0) * 1.0 / s.prompt ELSE 1.0 / s.n END
        ) AS measured,
        l.cached_tokens_estimate AS estimate${extra}
      FROM request_ledger l LEFT JOIN trace_usage tu ON tu.trace_id = l.trace_id LEFT JOIN shares s
      ON s.trace_id = l.trace_id
      WHERE l.start_ms >= @from AND l.start_ms < @to
    )`;
  return { sql, params: tenant.params };
}

/**
 * Ledger facts from raw request rows whose span started in [fromMs, toMs). A request's cached count is
 * measured when its span (or, failing that, another span of its trace: split over the trace's request
 * spans within TRACE_REACH_MS by prompt tokens) carried one; else allocated, from the window estimate
 * the enricher stored.
 */
export function ledgerFromRaw(
  db: Database,
  fromMs: number,
  toMs: number,
  bucketSizeMs: number,
  tenantKeys: readonly string[],
  perTarget = true,
): LedgerFact[] {
  const { sql: rowsSql, params } = ledgerRowsSql(tenantKeys, perTarget);
  const sql = `${rowsSql}
    SELECT bucket, target_id, model, tenant, count(*), sum(prompt), sum(completion),
      coalesce(sum(measured), 0), count(measured), coalesce(sum(CASE WHEN measured IS NULL THEN estimate END), 0),
      count(CASE WHEN measured IS NULL THEN estimate END)
    FROM rows GROUP BY bucket, target_id, model, tenant`;
  const rows = db
    .prepare(sql)
    .raw()
    .all({ size: bucketSizeMs, from: fromMs, to: toMs, reach: TRACE_REACH_MS, ...params }) as Array<
    [number, number, string, string, number, number, number, number, number, number, number]
  >;
  return rows.map(
    ([
      bucketMs,
      targetId,
      model,
      tenantName,
      requests,
      promptTokens,
      completionTokens,
      cachedMeasured,
      requestsMeasured,
      cachedAllocated,
      requestsAllocated,
    ]) => ({
      bucketMs,
      targetId,
      model,
      tenant: tenantName,
      requests,
      promptTokens,
      completionTokens,
      cachedMeasured,
      requestsMeasured,
      cachedAllocated,
      requestsAllocated,
    }),
  );
}

const LEDGER_COLS =
  'bucket_ms, target_id, model, tenant, requests, prompt_tokens, completion_tokens, cached_measured, ' +
  'requests_measured, cached_allocated, requests_allocated';

/** `perTarget` false folds instances together (target 0): far fewer rows when no instance is asked for. */
export function ledgerFromRollup(
  db: Database,
  level: Level,
  fromMs: number,
  toMs: number,
  bucketSizeMs: number,
  perTarget = true,
): LedgerFact[] {
  const rows = db
    .prepare(
      `SELECT CAST(bucket_ms / @size AS INTEGER) * @size, target_id, model, tenant, sum(requests), sum(prompt_tokens),
        sum(completion_tokens), sum(cached_measured),
         sum(requests_measured), sum(cached_allocated), sum(requests_allocated)
       FROM ledger_rollup WHERE level = @level AND bucket_ms >= @from AND bucket_ms < @to GROUP BY 1, 2, 3, 4`,
    )
    .raw()
    .all({ size: bucketSizeMs, level: perTarget ? level : `${level}_all`, from: fromMs, to: toMs }) as Array<
    [number, number, string, string, number, number, number, number, number, number, number]
  >;
  return rows.map(
    ([
      bucketMs,
      targetId,
      model,
      tenant,
      requests,
      promptTokens,
      completionTokens,
      cachedMeasured,
      requestsMeasured,
      cachedAllocated,
      requestsAllocated,
    ]) => ({
      bucketMs,
      targetId,
      model,
      tenant,
      requests,
      promptTokens,
      completionTokens,
      cachedMeasured,
      requestsMeasured,
      cachedAllocated,
      requestsAllocated,
    }),
  );
}

export function writeLedgerRollup(
  db: Database,
  level: Level | 'hour_all' | 'day_all',
  facts: readonly LedgerFact[],
): void {
  const insert = db.prepare(
    `INSERT OR REPLACE INTO ledger_rollup (level, ${LEDGER_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  for (const f of facts) {
    insert.run(
      level,
      f.bucketMs,
      f.targetId,
      f.model,
      f.tenant,
      f.requests,
      f.promptTokens,
      f.completionTokens,
      f.cachedMeasured,
      f.requestsMeasured,
      f.cachedAllocated,
      f.requestsAllocated,
    );
  }
}
