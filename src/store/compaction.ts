import type { Database } from 'better-sqlite3';
import type { Logger } from '../telemetry/logger.ts';
import {
  DAY_MS,
  HOUR_MS,
  floorTo,
  fleetFromMinutes,
  fleetFromRollup,
  ledgerFromRaw,
  mergeLedgerFact,
  writeFleetRollup,
  writeLedgerRollup,
  type LedgerFact,
  type Level,
} from './rollups.ts';
import {
  floorToWeek,
  ANY_TENANT,
  foldLatency,
  type LatencyFact,
  latencyBackfillHours,
  latencyFromRaw,
  latencyFromRollup,
  latencyWeeksDone,
  WEEK_MS,
  writeLatencyRollup,
} from './latencyRollups.ts';

/** The same facts with instances folded together (target 0). */
function foldTargets(facts: readonly LedgerFact[]): LedgerFact[] {
  const out = new Map<string, LedgerFact>();
  for (const f of facts) {
    const key = `${f.bucketMs}\u0000${f.model}\u0000${f.tenant}`;
    const have = out.get(key);
    if (have) mergeLedgerFact(have, f);
    else out.set(key, { ...f, targetId: 0 });
  }
  return [...out.values()];
}

const yieldToEventLoop = () => new Promise<void>((r) => setImmediate(r));

export interface CompactionState {
  /** Every hour before this is in fleet_rollup / ledger_rollup ('hour'); undefined before the first run. */
  hourDoneMs: number | undefined;
  dayDoneMs: number | undefined;
  /** Hours before hourDoneMs that must be read raw until they are compacted again. */
  dirtyHours: number[];
}

/** `schema`: an attached store's alias (several stores merged for one report), else the main one. */
export function readCompactionState(db: Database, schema = 'main'): CompactionState {
  const get = (level: Level) =>
    (db.prepare(`SELECT done_until_ms FROM ${schema}.compaction WHERE level = ?`).pluck().get(level) as
      | number
      | undefined) ?? undefined;
  return {
    hourDoneMs: get('hour'),
    dayDoneMs: get('day'),
    dirtyHours: db
      .prepare(`SELECT bucket_ms FROM ${schema}.compaction_dirty ORDER BY bucket_ms`)
      .pluck()
      .all() as number[],
  };
}

export interface CompactorOptions {
  tenantKeys: readonly string[];
  /** How long after an hour ends its rows may still arrive (late scrapes, spans waiting on a window). */
  graceMs: number;
  log: Logger;
}

/**
 * Aggregates closed hours into fleet_rollup / ledger_rollup and closed days from their hours, one
 * hour per transaction with event-loop yields between, so scrapes and the trace pipeline go on.
 */
export class Compactor {
  private running = false;
  private stopped = false;

  /** Ends a pass at the next hour boundary (shutdown); what is done stays done. */
  stop(): void {
    this.stopped = true;
  }

  constructor(
    private readonly db: Database,
    private readonly opts: CompactorOptions,
  ) {}

  async runOnce(nowMs = Date.now()): Promise<{ hours: number; days: number } | undefined> {
    if (this.running) return undefined;
    this.running = true;
    try {
      return await this.compact(nowMs);
    } catch (err) {
      this.opts.log.error(
        { err: (err as Error).message, code: (err as { code?: string }).code },
        'compaction failed; will retry',
      );
      return undefined;
    } finally {
      this.running = false;
    }
  }

  private async compact(nowMs: number): Promise<{ hours: number; days: number }> {
    const db = this.db;
    const state = readCompactionState(db);
    const limit = floorTo(nowMs - this.opts.graceMs, HOUR_MS);
    const start = state.hourDoneMs ?? (await this.firstDataHour());
    let hours = 0;
    let days = 0;
    if (start === undefined) return { hours, days };
    const redoDays = new Set<number>();

    for (const h of state.dirtyHours) {
      db.transaction(() => {
        this.compactHour(h);
        db.prepare('DELETE FROM compaction_dirty WHERE bucket_ms = ?').run(h);
      })();
      redoDays.add(floorTo(h, DAY_MS));
      hours++;
      await yieldToEventLoop();
    }
    let done = start;
    for (let h = start; h < limit && !this.stopped; h += HOUR_MS) {
      db.transaction(() => {
        this.compactHour(h);
        this.setDone('hour', h + HOUR_MS);
      })();
      done = h + HOUR_MS;
      hours++;
      await yieldToEventLoop();
    }
    if (state.hourDoneMs === undefined && done === start) this.setDone('hour', start);

    // Hours compacted before the latency rollups existed: their latency rows, once, from the ledger kept.
    const latencyDays = new Set<number>();
    for (const h of latencyBackfillHours(db)) {
      if (this.stopped) break;
      db.transaction(() => {
        this.compactLatencyHour(h);
        db.prepare('DELETE FROM latency_backfill WHERE bucket_ms = ?').run(h);
      })();
      latencyDays.add(floorTo(h, DAY_MS));
      await yieldToEventLoop();
    }
    const dayDone = state.dayDoneMs ?? floorTo(start, DAY_MS);
    for (const d of redoDays) if (d < dayDone) this.compactDayTx(d);
    for (const d of latencyDays)
      if (d < dayDone && !redoDays.has(d)) this.db.transaction(() => this.compactLatencyDay(d))();
    let d = dayDone;
    for (; d + DAY_MS <= done && !this.stopped; d += DAY_MS) {
      this.compactDayTx(d);
      days++;
      await yieldToEventLoop();
    }
    if (state.dayDoneMs === undefined || d !== dayDone) this.setDone('day', d);
    const weeks = await this.compactLatencyWeeks(d, [...redoDays, ...latencyDays]);
    if (hours || weeks) this.opts.log.debug({ hours, days, weeks }, 'compaction pass');
    return { hours, days };
  }

  /**
   * Earliest hour with any minute rollup or ledger row; one index probe per series, not a table scan, with
   * a yield every 500 (20,000 probes at once held the event loop for 95 ms).
   */
  private async firstDataHour(): Promise<number | undefined> {
    let min = Infinity;
    const perSeries = this.db.prepare('SELECT min(minute_ms) FROM rollup_minute WHERE series_id = ?').pluck();
    const ids = this.db.prepare('SELECT id FROM series').pluck().all() as number[];
    for (let i = 0; i < ids.length; i++) {
      const v = perSeries.get(ids[i]) as number | null;
      if (v !== null && v < min) min = v;
      if (i % 500 === 499) await yieldToEventLoop();
    }
    const ledger = this.db.prepare('SELECT min(start_ms) FROM request_ledger').pluck().get() as number | null;
    if (ledger !== null && ledger < min) min = ledger;
    return Number.isFinite(min) ? floorTo(min, HOUR_MS) : undefined;
  }

  private compactHour(h: number): void {
    this.db.prepare("DELETE FROM fleet_rollup WHERE level = 'hour' AND bucket_ms = ?").run(h);
    this.db.prepare("DELETE FROM ledger_rollup WHERE level IN ('hour', 'hour_all') AND bucket_ms = ?").run(h);
    writeFleetRollup(this.db, 'hour', fleetFromMinutes(this.db, h, h + HOUR_MS, HOUR_MS));
    const perTarget = ledgerFromRaw(this.db, h, h + HOUR_MS, HOUR_MS, this.opts.tenantKeys);
    writeLedgerRollup(this.db, 'hour', perTarget);
    writeLedgerRollup(this.db, 'hour_all', foldTargets(perTarget));
    this.compactLatencyHour(h);
  }

  private compactLatencyHour(h: number): void {
    this.db
      .prepare("DELETE FROM latency_rollup WHERE level IN ('hour', 'hour_all', 'hour_model') AND bucket_ms = ?")
      .run(h);
    const latency = latencyFromRaw(this.db, h, h + HOUR_MS, HOUR_MS, this.opts.tenantKeys);
    writeLatencyRollup(this.db, 'hour', foldLatency(latency, { tenant: ANY_TENANT }));
    const perTenant = foldLatency(latency, { targetId: 0 });
    writeLatencyRollup(this.db, 'hour_all', perTenant);
    writeLatencyRollup(this.db, 'hour_model', foldLatency(perTenant, { tenant: ANY_TENANT }));
  }

  /** Sketches merge in code, not SQL: a day's latency rows from its hours'. */
  private compactLatencyDay(d: number): void {
    this.db
      .prepare("DELETE FROM latency_rollup WHERE level IN ('day', 'day_all', 'day_model') AND bucket_ms = ?")
      .run(d);
    const read = (perTarget: boolean, foldTenants: boolean) =>
      latencyFromRollup(this.db, 'hour', d, d + DAY_MS, { bucketMs: DAY_MS, perTarget, foldTenants });
    writeLatencyRollup(this.db, 'day', read(true, false));
    writeLatencyRollup(this.db, 'day_all', read(false, false));
    writeLatencyRollup(this.db, 'day_model', read(false, true));
  }

  /**
   * Builds each week whose seven days are compacted and not yet in a week row, from the days' latency rows;
   * a redone day first takes its week out. Weeks with latency backfill pending wait for it.
   */
  private async compactLatencyWeeks(dayDone: number, redoneDays: readonly number[]): Promise<number> {
    const db = this.db;
    const undo = db.prepare('DELETE FROM latency_week_done WHERE bucket_ms = ?');
    for (const day of redoneDays) undo.run(floorToWeek(day));
    const first = db.prepare("SELECT min(bucket_ms) FROM latency_rollup WHERE level = 'day_model'").pluck().get() as
      | number
      | null;
    if (first === null) return 0;
    const done = latencyWeeksDone(db);
    const pending = new Set(latencyBackfillHours(db).map(floorToWeek));
    let weeks = 0;
    for (let w = floorToWeek(first); w + WEEK_MS <= dayDone && !this.stopped; w += WEEK_MS) {
      if (done.has(w) || pending.has(w)) continue;
      db.transaction(() => {
        db.prepare('DELETE FROM latency_week WHERE bucket_ms = ?').run(w);
        const at = (facts: LatencyFact[]) => facts.map((f) => ({ ...f, bucketMs: w }));
        const read = (perTarget: boolean, foldTenants: boolean) =>
          at(
            latencyFromRollup(db, 'day', w, w + WEEK_MS, { bucketMs: WEEK_MS, perTarget, foldTenants, foldTime: true }),
          );
        writeLatencyRollup(db, 'week', read(true, false));
        writeLatencyRollup(db, 'week_all', read(false, false));
        writeLatencyRollup(db, 'week_model', read(false, true));
        db.prepare('INSERT INTO latency_week_done (bucket_ms) VALUES (?)').run(w);
      })();
      weeks++;
      await yieldToEventLoop();
    }
    return weeks;
  }

  private compactDayTx(d: number): void {
    this.db.transaction(() => {
      this.db.prepare("DELETE FROM fleet_rollup WHERE level = 'day' AND bucket_ms = ?").run(d);
      this.db.prepare("DELETE FROM ledger_rollup WHERE level IN ('day', 'day_all') AND bucket_ms = ?").run(d);
      writeFleetRollup(this.db, 'day', fleetFromRollup(this.db, 'hour', d, d + DAY_MS, DAY_MS));
      const insertDay = this.db.prepare(
        `INSERT INTO ledger_rollup (level, bucket_ms, target_id, model, tenant, requests, prompt_tokens,
          completion_tokens, cached_measured, requests_measured, cached_allocated, requests_allocated)
           SELECT @day, @from, target_id, model, tenant, sum(requests), sum(prompt_tokens), sum(completion_tokens),
           sum(cached_measured), sum(requests_measured), sum(cached_allocated), sum(requests_allocated)
           FROM ledger_rollup WHERE level = @hour AND bucket_ms >= @from AND bucket_ms < @to GROUP BY target_id,
           model, tenant`,
      );
      insertDay.run({ day: 'day', hour: 'hour', from: d, to: d + DAY_MS });
      insertDay.run({ day: 'day_all', hour: 'hour_all', from: d, to: d + DAY_MS });
      this.compactLatencyDay(d);
    })();
  }

  private setDone(level: Level, ms: number): void {
    this.db
      .prepare(
        'INSERT INTO compaction (level, done_until_ms) VALUES (?, ?) ON CONFLICT(level) DO UPDATE SET done_until_ms ' +
          '= excluded.done_until_ms',
      )
      .run(level, ms);
  }
}
