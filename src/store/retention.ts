import type { Database } from 'better-sqlite3';
import type { Logger } from '../telemetry/logger.ts';

const SERIES_PER_BATCH = 200;
const SCRAPES_PER_BATCH = 5000;
const yieldToEventLoop = () => new Promise<void>((r) => setImmediate(r));

export interface RetentionResult {
  rawDeleted: number;
  rollupDeleted: number;
  scrapesDeleted: number;
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
  ) {}

  async runOnce(nowMs = Date.now()): Promise<RetentionResult | undefined> {
    if (this.running) return undefined;
    this.running = true;
    const res: RetentionResult = { rawDeleted: 0, rollupDeleted: 0, scrapesDeleted: 0 };
    try {
      const rawCutoff = nowMs - this.rawRetentionMs;
      const rollupCutoff = nowMs - this.rollupRetentionMs;
      const ids = (this.db.prepare('SELECT id FROM series ORDER BY id').pluck().all() as number[]);
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
      const delScrapes = this.db.prepare('DELETE FROM scrapes WHERE id IN (SELECT id FROM scrapes WHERE ts_ms < ? LIMIT ?)');
      for (;;) {
        const n = delScrapes.run(rawCutoff, SCRAPES_PER_BATCH).changes;
        res.scrapesDeleted += n;
        if (n < SCRAPES_PER_BATCH) break;
        await yieldToEventLoop();
      }
      if (res.rawDeleted + res.rollupDeleted + res.scrapesDeleted > 0) this.log.debug(res, 'retention pass');
      return res;
    } catch (err) {
      this.log.error({ err: (err as Error).message, code: (err as { code?: string }).code }, 'retention pass failed; will retry');
      return undefined;
    } finally {
      this.running = false;
    }
  }
}
