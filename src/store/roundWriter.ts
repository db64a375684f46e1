import type { ScrapeResult } from '../scrape/scrapeTarget.ts';
import type { Logger } from '../telemetry/logger.ts';
import type { RoundSummary, ScrapeStore } from './scrapeStore.ts';

function describeDbError(err: unknown): string {
  const code = (err as { code?: string }).code ?? '';
  if (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED')) return 'database is locked by another writer';
  if (code === 'SQLITE_FULL' || code === 'SQLITE_IOERR_WRITE' || /disk|full/i.test((err as Error).message))
    return 'disk full or not writable';
  if (code === 'SQLITE_READONLY') return 'database is read-only';
  return (err as Error).message;
}

/**
 * Hands scrape rounds to the store. A round that cannot be written stays queued and is retried with the
 * next one; past `maxPending` the oldest results are dropped (counted). Counter deltas stay exact
 * either way, because they are computed against the last committed state.
 */
export class RoundWriter {
  private pending: ScrapeResult[] = [];
  droppedResults = 0;
  failedWrites = 0;
  /** Intervals where the by-source split of cached tokens did not add up (RoundSummary). */
  cachedDisagreements = 0;
  lastError?: string;

  constructor(
    private readonly store: ScrapeStore,
    private readonly log: Logger,
    private readonly path: string,
    private readonly maxPending: number,
  ) {}

  get pendingResults(): number {
    return this.pending.length;
  }

  write(results: ScrapeResult[]): RoundSummary | undefined {
    this.pending.push(...results);
    if (this.pending.length > this.maxPending) {
      const drop = this.pending.length - this.maxPending;
      this.pending.splice(0, drop);
      this.droppedResults += drop;
      this.log.error(
        { db: this.path, dropped: drop, droppedTotal: this.droppedResults },
        'dropped the oldest unwritten scrape results (counters stay exact; gauges for those scrapes are lost)',
      );
    }
    if (this.pending.length === 0) return undefined;
    try {
      const summary = this.store.writeRound(this.pending);
      this.cachedDisagreements += summary.cachedDisagreements;
      if (this.lastError)
        this.log.info(
          { db: this.path, results: this.pending.length },
          'database writable again; queued rounds written',
        );
      this.pending = [];
      this.lastError = undefined;
      return summary;
    } catch (err) {
      this.failedWrites++;
      const why = describeDbError(err);
      if (why !== this.lastError)
        this.log.error(
          {
            db: this.path,
            err: (err as Error).message,
            code: (err as { code?: string }).code,
            pending: this.pending.length,
          },
          `cannot write scrape round: ${why}; keeping it and retrying`,
        );
      this.lastError = why;
      return undefined;
    }
  }
}
