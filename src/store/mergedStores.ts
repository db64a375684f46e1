import { realpathSync } from 'node:fs';
import type { Database } from 'better-sqlite3';
import { type CompactionState, readCompactionState } from './compaction.ts';
import { openDatabase } from './openDatabase.ts';
import {
  latencyBackfillHours,
  latencyLevel,
  mergeLatencyFact,
  rowToFact,
  writeLatencyRollup,
} from './latencyRollups.ts';
import { latencySegments, planSegments } from './reportQueries.ts';
import { TRACE_REACH_MS } from './rollups.ts';

export interface MergeQuery {
  fromMs: number;
  toMs: number;
  bucketMs: number;
  /** Copy the request ledger too (tenant rows, the HTML tenant chart). */
  ledger: boolean;
  /** The ledger per instance; else only the rollups with instances folded together are copied. */
  ledgerPerTarget: boolean;
  /** The latency view: latency rollups, and raw ledger rows where the plan reads raw. */
  latency?: boolean;
  /** The latency view by tenant (with latency and ledgerPerTarget: read raw throughout). */
  tenants?: boolean;
}

/** The same file named twice (or by two paths) is one store. */
export function distinctStores(paths: readonly string[]): string[] {
  const seen = new Set<string>();
  const out: string[] = [];
  for (const p of paths) {
    let real = p;
    try {
      real = realpathSync(p);
    } catch {
      // A missing file is reported by whoever opens it.
    }
    if (seen.has(real)) continue;
    seen.add(real);
    out.push(p);
  }
  return out;
}

/**
 * Merges several stores (sidecars, pools, an HA pair) into one in-memory store holding what a report
 * of [fromMs, toMs) reads, so the report runs unchanged over it and counts nothing twice:
 * - a server is known by its URL (a Prometheus-read server by its labels), in every store;
 * - fleet figures of one server in one minute or compacted bucket come from one store only, the first
 *   that holds them, so an HA pair's two copies of the same counters count once, and a bucket one store
 *   missed (it was down) comes from the other;
 * - raw ledger rows are one row per (start, trace_id, span_id) whichever stores hold it; compacted
 *   ledger hours are summed, since the load-balancing exporter sends each trace to one store.
 * Only the rows the report's plan needs are copied: whole compacted hours and days where every store
 * has them, minutes and raw ledger rows for the rest.
 */
export function mergeStores(paths: readonly string[], q: MergeQuery): Database {
  const merged = openDatabase(':memory:');
  const states: CompactionState[] = [];
  const stores = distinctStores(paths);
  stores.forEach((path, i) => {
    merged.prepare('ATTACH DATABASE ? AS ?').run(path, `s${i}`);
    states.push(readCompactionState(merged, `s${i}`));
  });
  writeMergedState(merged, states);
  if (q.latency) {
    const backfill = merged.prepare('INSERT OR IGNORE INTO latency_backfill (bucket_ms) VALUES (?)');
    stores.forEach((_, i) => {
      for (const h of latencyBackfillHours(merged, `s${i}`)) backfill.run(h);
    });
  }
  const segments = q.latency ? latencySegments(merged, { ...q, tenants: q.tenants ?? false }) : planSegments(merged, q);
  const copy = merged.transaction(() => {
    for (let i = 0; i < stores.length; i++) copyStore(merged, `s${i}`, q, segments);
  });
  copy();
  for (let i = 0; i < stores.length; i++) merged.prepare('DETACH DATABASE ?').run(`s${i}`);
  return merged;
}

/** Compacted only as far as every store is, and dirty where any store is. */
function writeMergedState(db: Database, states: readonly CompactionState[]): void {
  for (const level of ['hour', 'day'] as const) {
    const key = level === 'hour' ? 'hourDoneMs' : 'dayDoneMs';
    const done = states.map((s) => s[key]);
    if (!done.length || done.some((d) => d === undefined)) continue;
    db.prepare('INSERT INTO compaction (level, done_until_ms) VALUES (?, ?)').run(
      level,
      Math.min(...(done as number[])),
    );
  }
  const dirty = db.prepare('INSERT OR IGNORE INTO compaction_dirty (bucket_ms) VALUES (?)');
  for (const s of states) for (const h of s.dirtyHours) dirty.run(h);
}

/**
 * Latency rollup rows of one store, merged into what other stores gave for the same key: sketches merge in
 * code (the load-balancing exporter sends each trace to one store, so the stores' requests add up).
 */
function copyLatencyRollup(db: Database, s: string, level: string, seg: { fromMs: number; toMs: number }): void {
  const read = db
    .prepare(
      `SELECT l.bucket_ms, coalesce(t.to_id, 0), l.model, l.tenant, l.family, l.bucket, l.requests, l.prompt_requests,
         l.prompt_tokens, l.share_measured, l.share_estimated, l.ttft_sketch, l.queue_sketch, l.prefill_sketch,
         l.e2e_sketch, l.prefill_per_1k_sketch
       FROM ${s}.latency_rollup l LEFT JOIN target_map t ON t.from_id = l.target_id
       WHERE l.level = ? AND l.bucket_ms >= ? AND l.bucket_ms < ?`,
    )
    .raw();
  const have = db
    .prepare(
      `SELECT bucket_ms, target_id, model, tenant, family, bucket, requests, prompt_requests, prompt_tokens,
         share_measured, share_estimated, ttft_sketch, queue_sketch, prefill_sketch, e2e_sketch, prefill_per_1k_sketch
       FROM main.latency_rollup WHERE level = ? AND bucket_ms = ? AND target_id = ? AND model = ? AND tenant = ?
         AND family = ? AND bucket = ?`,
    )
    .raw();
  const facts = [];
  for (const row of read.all(level, seg.fromMs, seg.toMs) as unknown[][]) {
    const f = rowToFact(row);
    const prev = have.get(level, f.bucketMs, f.targetId, f.model, f.tenant, f.family, f.bucket) as
      | unknown[]
      | undefined;
    if (prev) mergeLatencyFact(f, rowToFact(prev));
    facts.push(f);
  }
  writeLatencyRollup(db, level as Parameters<typeof writeLatencyRollup>[1], facts);
}

function copyStore(db: Database, s: string, q: MergeQuery, segments: ReturnType<typeof planSegments>): void {
  db.exec(`
    INSERT INTO main.targets (url, instance, labels_json, profile, first_seen_ms, last_seen_ms)
      SELECT url, instance, labels_json, profile, first_seen_ms, last_seen_ms FROM ${s}.targets WHERE true
      ON CONFLICT (url) DO UPDATE SET first_seen_ms = min(first_seen_ms, excluded.first_seen_ms),
        last_seen_ms = max(last_seen_ms, excluded.last_seen_ms);
    INSERT OR IGNORE INTO main.series (target_id, model, engine, signal, kind, unit)
      SELECT mt.id, ss.model, ss.engine, ss.signal, ss.kind, ss.unit
      FROM ${s}.series ss JOIN ${s}.targets st ON st.id = ss.target_id JOIN main.targets mt ON mt.url = st.url;
    CREATE TEMP TABLE IF NOT EXISTS series_map (from_id INTEGER PRIMARY KEY, to_id INTEGER NOT NULL);
    DELETE FROM series_map;
    INSERT INTO series_map SELECT ss.id, ms.id
      FROM ${s}.series ss JOIN ${s}.targets st ON st.id = ss.target_id JOIN main.targets mt ON mt.url = st.url
      JOIN main.series ms ON ms.target_id = mt.id AND ms.model = ss.model AND ms.engine = ss.engine
        AND ms.signal = ss.signal;
    CREATE TEMP TABLE IF NOT EXISTS target_map (from_id INTEGER PRIMARY KEY, to_id INTEGER NOT NULL);
    DELETE FROM target_map;
    INSERT INTO target_map SELECT st.id, mt.id FROM ${s}.targets st JOIN main.targets mt ON mt.url = st.url;
  `);
  const minutes = db.prepare(
    `INSERT OR IGNORE INTO main.rollup_minute
       (series_id, minute_ms, delta_sum, resets, gauge_min, gauge_max, gauge_sum, gauge_count, gauge_last)
     SELECT m.to_id, r.minute_ms, r.delta_sum, r.resets, r.gauge_min, r.gauge_max, r.gauge_sum, r.gauge_count,
       r.gauge_last
     FROM ${s}.rollup_minute r JOIN series_map m ON m.from_id = r.series_id
     WHERE r.minute_ms >= ? AND r.minute_ms < ?`,
  );
  const fleet = db.prepare(
    `INSERT OR IGNORE INTO main.fleet_rollup
     SELECT f.level, f.bucket_ms, coalesce(t.to_id, f.target_id), f.model, f.minutes, f.requests, f.prompt_tokens,
       f.prompt_tokens_cached, f.prefix_cache_hits, f.prefix_cache_queries, f.generation_tokens, f.preemptions,
       f.resets, f.kv_sum, f.kv_count, f.kv_sketch, f.queue_sum, f.queue_count, f.queue_sketch,
       f.prompt_tokens_local_cache_hit, f.prompt_tokens_external_transfer, f.prompt_tokens_local_compute,
       f.external_prefix_cache_queries, f.external_prefix_cache_hits
     FROM ${s}.fleet_rollup f LEFT JOIN target_map t ON t.from_id = f.target_id
     WHERE f.level = ? AND f.bucket_ms >= ? AND f.bucket_ms < ?`,
  );
  const ledgerRollup = db.prepare(
    `INSERT INTO main.ledger_rollup
     SELECT l.level, l.bucket_ms, coalesce(t.to_id, 0), l.model, l.tenant, l.requests, l.prompt_tokens,
       l.completion_tokens, l.cached_measured, l.requests_measured, l.cached_allocated, l.requests_allocated
     FROM ${s}.ledger_rollup l LEFT JOIN target_map t ON t.from_id = l.target_id
     WHERE l.level = ? AND l.bucket_ms >= ? AND l.bucket_ms < ? AND true
     ON CONFLICT (level, bucket_ms, target_id, model, tenant) DO UPDATE SET
       requests = requests + excluded.requests, prompt_tokens = prompt_tokens + excluded.prompt_tokens,
       completion_tokens = completion_tokens + excluded.completion_tokens,
       cached_measured = cached_measured + excluded.cached_measured,
       requests_measured = requests_measured + excluded.requests_measured,
       cached_allocated = cached_allocated + excluded.cached_allocated,
       requests_allocated = requests_allocated + excluded.requests_allocated`,
  );
  const ledgerRows = db.prepare(
    `INSERT OR IGNORE INTO main.request_ledger
     SELECT l.start_ms, l.trace_id, l.span_id, l.end_ms, l.span_name, l.service_name,
       CASE WHEN l.target_id IS NULL OR l.target_id = 0 THEN l.target_id ELSE t.to_id END,
       l.instance, l.model, l.match, l.prompt_tokens, l.completion_tokens, l.cached_tokens,
       l.cached_tokens_estimate, l.window_complete, l.latency_ttft_s, l.latency_e2e_s, l.latency_queue_s,
       l.latency_prefill_s, l.latency_decode_s, l.latency_inference_s, l.tenant_json, l.kv_usage_start,
       l.waiting_start
     FROM ${s}.request_ledger l LEFT JOIN target_map t ON t.from_id = l.target_id
     WHERE l.start_ms >= ? AND l.start_ms < ?`,
  );
  const rawLedger = q.ledger || q.latency;
  for (const seg of segments) {
    if (seg.source === 'raw') {
      if (!q.latency) minutes.run(seg.fromMs, seg.toMs);
      if (rawLedger) ledgerRows.run(seg.fromMs - TRACE_REACH_MS, seg.toMs + TRACE_REACH_MS);
    } else if (q.latency)
      copyLatencyRollup(db, s, latencyLevel(seg.source, q.ledgerPerTarget, !(q.tenants ?? false)), seg);
    else {
      fleet.run(seg.source, seg.fromMs, seg.toMs);
      if (q.ledger) ledgerRollup.run(q.ledgerPerTarget ? seg.source : `${seg.source}_all`, seg.fromMs, seg.toMs);
    }
  }
  // Trace-level facts of the copied rows only, looked up by trace id (the store may hold millions).
  if (rawLedger && segments.some((seg) => seg.source === 'raw'))
    db.exec(`
      INSERT OR IGNORE INTO main.trace_usage SELECT u.* FROM (SELECT DISTINCT trace_id FROM main.request_ledger) l
        CROSS JOIN ${s}.trace_usage u WHERE u.trace_id = l.trace_id;
      INSERT OR IGNORE INTO main.trace_tenants SELECT t.* FROM (SELECT DISTINCT trace_id FROM main.request_ledger) l
        CROSS JOIN ${s}.trace_tenants t WHERE t.trace_id = l.trace_id;
    `);
  if (q.latency) return;
  // The note on prefix counters in blocks looks at the whole period, compacted or not. CROSS JOIN keeps
  // SQLite starting from those few series, not from every minute row of the store.
  db.prepare(
    `INSERT OR IGNORE INTO main.rollup_minute (series_id, minute_ms, delta_sum, resets)
     SELECT m.to_id, r.minute_ms, r.delta_sum, r.resets
     FROM main.series ms CROSS JOIN series_map m CROSS JOIN ${s}.rollup_minute r
     WHERE m.to_id = ms.id AND r.series_id = m.from_id AND r.minute_ms >= ? AND r.minute_ms < ?
       AND (ms.signal LIKE '%\\_blocks' ESCAPE '\\' OR ms.unit = 'blocks')`,
  ).run(q.fromMs, q.toMs);
}
