import type { Database } from 'better-sqlite3';
import { readCompactionState } from './compaction.ts';
import {
  type LatencyFact,
  floorToWeek,
  latencyBackfillHours,
  latencyFromRaw,
  latencyFromRollup,
  latencyKey,
  latencyWeeksDone,
  mergeLatencyFact,
  WEEK_MS,
} from './latencyRollups.ts';
import {
  DAY_MS,
  HOUR_MS,
  fleetFromMinutes,
  fleetFromRollup,
  ledgerFromRaw,
  ledgerFromRollup,
  mergeFleetFact,
  mergeLedgerFact,
  type FleetFact,
  type LedgerFact,
} from './rollups.ts';

export interface FactQuery {
  fromMs: number;
  toMs: number;
  /**
   * MINUTE_MS, HOUR_MS or DAY_MS: the finest time bucket the report needs (minutes read only the per-minute rollups).
   */
  bucketMs: number;
  tenantKeys: readonly string[];
  ledger: boolean;
  /** Keep ledger facts per instance (--by instance, GPU-hour prices); else instances fold together. */
  ledgerPerTarget: boolean;
}

export interface Segment {
  source: 'raw' | 'hour' | 'day';
  fromMs: number;
  toMs: number;
}

/**
 * Splits [fromMs, toMs) into the cheapest sources that give exact answers: whole compacted days when
 * the report buckets by day, whole compacted hours, and raw minutes/ledger rows for the edges, the
 * not-yet-compacted tail and hours with late ledger rows.
 */
export function planSegments(
  db: Database,
  q: Pick<FactQuery, 'fromMs' | 'toMs' | 'bucketMs'>,
  /** More hours to read raw (the latency view: hours compacted before it existed). */
  rawHours: readonly number[] = [],
): Segment[] {
  const state = readCompactionState(db);
  const hourDone = state.hourDoneMs ?? -Infinity;
  const dayDone = state.dayDoneMs ?? -Infinity;
  const dirtyHours = [...state.dirtyHours, ...rawHours];
  const dirty = new Set(dirtyHours);
  const dirtyDays = new Set(dirtyHours.map((h) => Math.floor(h / DAY_MS) * DAY_MS));
  const out: Segment[] = [];
  const push = (source: Segment['source'], fromMs: number, toMs: number) => {
    const last = out[out.length - 1];
    if (last && last.source === source && last.toMs === fromMs) last.toMs = toMs;
    else out.push({ source, fromMs, toMs });
  };
  let t = q.fromMs;
  while (t < q.toMs) {
    if (
      q.bucketMs === DAY_MS &&
      t % DAY_MS === 0 &&
      t + DAY_MS <= q.toMs &&
      t + DAY_MS <= dayDone &&
      !dirtyDays.has(t)
    ) {
      push('day', t, t + DAY_MS);
      t += DAY_MS;
    } else if (
      q.bucketMs >= HOUR_MS &&
      t % HOUR_MS === 0 &&
      t + HOUR_MS <= q.toMs &&
      t + HOUR_MS <= hourDone &&
      !dirty.has(t)
    ) {
      push('hour', t, t + HOUR_MS);
      t += HOUR_MS;
    } else {
      const next = t >= hourDone ? q.toMs : Math.min(q.toMs, (Math.floor(t / HOUR_MS) + 1) * HOUR_MS);
      push('raw', t, next);
      t = next;
    }
  }
  return out;
}

/** Fleet and ledger facts for the period, bucketed by `bucketMs`, from whichever tables hold them. */
export function loadFacts(
  db: Database,
  q: FactQuery,
): { fleet: FleetFact[]; ledger: LedgerFact[]; segments: Segment[] } {
  const segments = planSegments(db, q);
  const fleet = new Map<string, FleetFact>();
  const ledger = new Map<string, LedgerFact>();
  for (const s of segments) {
    const f =
      s.source === 'raw'
        ? fleetFromMinutes(db, s.fromMs, s.toMs, q.bucketMs)
        : fleetFromRollup(db, s.source, s.fromMs, s.toMs, q.bucketMs);
    for (const x of f) {
      const key = `${x.bucketMs}\u0000${x.targetId}\u0000${x.model}`;
      const have = fleet.get(key);
      if (have) mergeFleetFact(have, x);
      else fleet.set(key, x);
    }
    if (!q.ledger) continue;
    const l =
      s.source === 'raw'
        ? ledgerFromRaw(db, s.fromMs, s.toMs, q.bucketMs, q.tenantKeys, q.ledgerPerTarget)
        : ledgerFromRollup(db, s.source, s.fromMs, s.toMs, q.bucketMs, q.ledgerPerTarget);
    for (const x of l) {
      const key = `${x.bucketMs}\u0000${x.targetId}\u0000${x.model}\u0000${x.tenant}`;
      const have = ledger.get(key);
      if (have) mergeLedgerFact(have, x);
      else ledger.set(key, x);
    }
  }
  return { fleet: [...fleet.values()], ledger: [...ledger.values()], segments };
}

/**
 * Where the latency view reads: the rollups keep instances (tenants folded) or tenants (instances
 * folded), so a view by instance and tenant at once reads the ledger rows.
 */
export function latencySegments(
  db: Database,
  q: Pick<FactQuery, 'fromMs' | 'toMs' | 'bucketMs' | 'ledgerPerTarget'> & { tenants: boolean },
): Segment[] {
  if (q.ledgerPerTarget && q.tenants) return [{ source: 'raw', fromMs: q.fromMs, toMs: q.toMs }];
  return planSegments(db, q, latencyBackfillHours(db));
}

export type LatencySegment = Omit<Segment, 'source'> & { source: Segment['source'] | 'week' };

/** Built weeks that lie whole inside the day segments read as weeks: a fifth of the rows. */
function withWeeks(db: Database, segments: readonly Segment[]): LatencySegment[] {
  const done = latencyWeeksDone(db);
  if (!done.size) return [...segments];
  const out: LatencySegment[] = [];
  for (const s of segments) {
    if (s.source !== 'day') {
      out.push(s);
      continue;
    }
    let t = s.fromMs;
    const firstWeek = floorToWeek(t) < t ? floorToWeek(t) + WEEK_MS : t;
    for (let w = firstWeek; w + WEEK_MS <= s.toMs; w += WEEK_MS) {
      if (!done.has(w)) continue;
      if (t < w) out.push({ source: 'day', fromMs: t, toMs: w });
      out.push({ source: 'week', fromMs: w, toMs: w + WEEK_MS });
      t = w + WEEK_MS;
    }
    if (t < s.toMs) out.push({ source: 'day', fromMs: t, toMs: s.toMs });
  }
  return out;
}

/**
 * Latency facts for the period (the latency view), bucketed by `bucketMs` (one bucket with `foldTime`),
 * from whichever tables hold them; with `foldTime`, whole built weeks come from the weekly rows.
 */
export function loadLatencyFacts(
  db: Database,
  q: Omit<FactQuery, 'ledger'> & { tenants: boolean; foldTime?: boolean },
): { latency: LatencyFact[]; segments: LatencySegment[] } {
  const days = latencySegments(db, q);
  const segments = q.foldTime ? withWeeks(db, days) : days;
  const out = new Map<string, LatencyFact>();
  for (const s of segments) {
    // Not by tenant: no tenant lookups on raw rows, and tenants folded as rollup rows are read.
    if (s.source !== 'raw') {
      latencyFromRollup(db, s.source, s.fromMs, s.toMs, {
        bucketMs: q.bucketMs,
        perTarget: q.ledgerPerTarget,
        foldTenants: !q.tenants,
        foldTime: q.foldTime,
        into: out,
      });
      continue;
    }
    const tenantKeys = q.tenants ? q.tenantKeys : [];
    for (const f of latencyFromRaw(db, s.fromMs, s.toMs, q.bucketMs, tenantKeys, q.ledgerPerTarget, q.foldTime)) {
      const have = out.get(latencyKey(f));
      if (have) mergeLatencyFact(have, f);
      else out.set(latencyKey(f), f);
    }
  }
  return { latency: [...out.values()], segments };
}

export interface TargetInfo {
  id: number;
  instance: string;
  url: string;
}

export function targetInfo(db: Database): Map<number, TargetInfo> {
  const rows = db.prepare('SELECT id, instance, url FROM targets').all() as TargetInfo[];
  return new Map(rows.map((r) => [r.id, r]));
}

/**
 * Models whose prefix-cache counters came in blocks with no block size to turn them into tokens, in
 * [fromMs, toMs): the report leaves their hits out of token figures and says so.
 */
export function modelsWithHitsInBlocks(db: Database, fromMs: number, toMs: number): string[] {
  return db
    .prepare(
      `SELECT DISTINCT s.model FROM series s
       WHERE (s.signal IN ('prefix_cache_hits_blocks', 'prefix_cache_queries_blocks') OR s.unit = 'blocks')
         AND EXISTS (SELECT 1 FROM rollup_minute r WHERE r.series_id = s.id AND r.minute_ms >= ? AND r.minute_ms < ?)
       ORDER BY s.model`,
    )
    .pluck()
    .all(fromMs, toMs) as string[];
}
