import type { Database } from 'better-sqlite3';
import type { Logger } from '../telemetry/logger.ts';

const SERIES_PER_BATCH = 200;
const SCRAPES_PER_BATCH = 5000;
const yieldToEventLoop = () => new Promise<void>((r) => setImmediate(r));

export interface RetentionResult {
  rawDeleted: number;
  rollupDeleted: number;
  scrapesDeleted: number;
  ledgerDeleted: number;
}

/**
 * Deletes raw rows past `raw_retention` and rollups past `rollup_retention`, in small transactions with
 * event-loop yields between them, so scrapes and their writes go on while it runs.
 */
export class Retention {
  private running = false;

  constructor(
    private readonly db: Database,
    private readonly rawRetentionMs: number,
    private readonly rollupRetentionMs: number,
    private readonly log: Logger,
    private readonly ledgerRetentionMs = Infinity,
  ) {}

  async runOnce(nowMs = Date.now()): Promise<RetentionResult | undefined> {
    if (this.running) return undefined;
    this.running = true;
    const res: RetentionResult = { rawDeleted: 0, rollupDeleted: 0, scrapesDeleted: 0, ledgerDeleted: 0 };
    try {
      const rawCutoff = nowMs - this.rawRetentionMs;
      const rollupCutoff = nowMs - this.rollupRetentionMs;
      const ids = this.db.prepare('SELECT id FROM series ORDER BY id').pluck().all() as number[];
      const delDeltas = this.db.prepare('DELETE FROM counter_deltas WHERE series_id = ? AND ts_ms < ?');
      const delGauges = this.db.prepare('DELETE FROM gauge_samples WHERE series_id = ? AND ts_ms < ?');
      const delRollups = this.db.prepare('DELETE FROM rollup_minute WHERE series_id = ? AND minute_ms < ?');
      for (let i = 0; i < ids.length; i += SERIES_PER_BATCH) {
        const batch = ids.slice(i, i + SERIES_PER_BATCH);
        this.db.transaction(() => {
          for (const id of batch) {
            res.rawDeleted += delDeltas.run(id, rawCutoff).changes + delGauges.run(id, rawCutoff).changes;
            res.rollupDeleted += delRollups.run(id, rollupCutoff).changes;
          }
        })();
        await yieldToEventLoop();
      }
      const delScrapes = this.db.prepare(
        'DELETE FROM scrapes WHERE id IN (SELECT id FROM scrapes WHERE ts_ms < ? LIMIT ?)',
      );
      for (;;) {
        const n = delScrapes.run(rawCutoff, SCRAPES_PER_BATCH).changes;
        res.scrapesDeleted += n;
        if (n < SCRAPES_PER_BATCH) break;
        await yieldToEventLoop();
      }
      // A week some of whose days are gone is read as its remaining days.
      this.db.prepare('DELETE FROM latency_week_done WHERE bucket_ms < ?').run(rollupCutoff);
      for (const table of ['fleet_rollup', 'ledger_rollup', 'latency_rollup', 'latency_week']) {
        const buckets = this.db
          .prepare(`SELECT DISTINCT level, bucket_ms FROM ${table} WHERE bucket_ms < ?`)
          .raw()
          .all(rollupCutoff) as Array<[string, number]>;
        const del = this.db.prepare(`DELETE FROM ${table} WHERE level = ? AND bucket_ms = ?`);
        for (const [level, bucket] of buckets) {
          res.rollupDeleted += del.run(level, bucket).changes;
          await yieldToEventLoop();
        }
      }
      // Ledger rows go only once the compactor has them in the hourly rollups reports read instead.
      const hourDone =
        (this.db.prepare("SELECT done_until_ms FROM compaction WHERE level = 'hour'").pluck().get() as
          | number
          | undefined) ?? -Infinity;
      // … and, for hours compacted before the latency rollups existed, once those are built too.
      const backfill =
        (this.db.prepare('SELECT min(bucket_ms) FROM latency_backfill').pluck().get() as number | null) ?? Infinity;
      const ledgerCutoff = Math.min(nowMs - this.ledgerRetentionMs, hourDone, backfill);
      if (Number.isFinite(ledgerCutoff)) {
        for (const sql of [
          // keyed by (start_ms, trace_id, span_id), WITHOUT ROWID: the oldest rows are the key's first
          'DELETE FROM request_ledger WHERE (start_ms, trace_id, span_id) IN (SELECT start_ms, trace_id, span_id ' +
            'FROM request_ledger WHERE start_ms < ? ORDER BY start_ms LIMIT ?)',
          'DELETE FROM trace_tenants WHERE rowid IN (SELECT rowid FROM trace_tenants WHERE seen_ms < ? LIMIT ?)',
          'DELETE FROM trace_usage WHERE rowid IN (SELECT rowid FROM trace_usage WHERE seen_ms < ? LIMIT ?)',
        ]) {
          const del = this.db.prepare(sql);
          for (;;) {
            const n = del.run(ledgerCutoff, SCRAPES_PER_BATCH).changes;
            res.ledgerDeleted += n;
            if (n < SCRAPES_PER_BATCH) break;
            await yieldToEventLoop();
          }
        }
      }
      if (res.rawDeleted + res.rollupDeleted + res.scrapesDeleted + res.ledgerDeleted > 0)
        this.log.debug(res, 'retention pass');
      return res;
    } catch (err) {
      this.log.error(
        { err: (err as Error).message, code: (err as { code?: string }).code },
        'retention pass failed; will retry',
      );
      return undefined;
    } finally {
      this.running = false;
    }
  }
}
