import type { LedgerRow, LedgerStore, TenantRow, TraceUsageRow } from '../store/ledgerStore.ts';
import type { Logger } from '../telemetry/logger.ts';

/** A group's ledger rows: written after its request is on the wire, and before its spool rows go. */
export interface LedgerBatch {
  rows: LedgerRow[];
  tenants: TenantRow[];
  traceUsage: TraceUsageRow[];
  written: boolean;
}

export const emptyLedgerBatch = (): LedgerBatch => ({ rows: [], tenants: [], traceUsage: [], written: false });

/**
 * Writes the request ledger for the export stage. Rows are queued when a request is handed to the
 * exporter and written on the next turn of the event loop: a scrape round releases every span that
 * waited for it at once, and the burst reaches downstream sooner with the ledger after it. A batch
 * is written once; a failed write is reported (false) so its spool rows stay and are sent again.
 */
export class LedgerWriter {
  private unwritten: LedgerBatch[] = [];
  private flushQueued = false;

  constructor(
    private readonly ledger: LedgerStore,
    private readonly log: Logger,
  ) {}

  queue(batch: LedgerBatch): void {
    this.unwritten.push(batch);
    if (this.flushQueued) return;
    this.flushQueued = true;
    setImmediate(() => {
      this.flushQueued = false;
      const batches = this.unwritten;
      this.unwritten = [];
      for (const b of batches) this.write(b);
    });
  }

  /** False if the write failed; the rows then stay in the spool and are sent (and written) again. */
  write(batch: LedgerBatch): boolean {
    if (batch.written) return true;
    try {
      this.ledger.write(batch.rows, batch.tenants, batch.traceUsage);
      batch.written = true;
      return true;
    } catch (err) {
      const e = err as Error & { code?: string };
      this.log.error(
        { err: e.message, code: e.code, rows: batch.rows.length },
        'request ledger write failed; the spans stay in the spool and are sent again',
      );
      return false;
    }
  }
}
