import type { Enricher } from '../correlate/enricher.ts';
import type { RequestFacts } from '../correlate/requestFacts.ts';
import type { OtlpTraceRequest } from '../otlp/schema.ts';
import type { LedgerStore } from '../store/ledgerStore.ts';
import type { Logger } from '../telemetry/logger.ts';
import { Batcher, type Take } from './batcher.ts';
import { EnrichStage, type EnrichedRow } from './enrichStage.ts';
import type { BatchExporter } from './exporter.ts';
import { emptyLedgerBatch, type LedgerBatch, LedgerWriter } from './ledgerWriter.ts';
import type { PipelineMetrics } from './metrics.ts';
import { Sender } from './sender.ts';
import type { Spool, SpoolRow } from './spool.ts';

export interface ExportQueueOptions {
  /** Spans per downstream request; small spool rows are merged up to this. */
  maxBatchSpans: number;
  maxInFlight: number;
  retryInitialMs: number;
  retryMaxMs: number;
  /** Bytes of request facts kept in memory, so a spooled request is not read and decoded again. */
  factsCacheBytes: number;
}

/** Called per row with the time from acknowledgement (or the scrape round that woke it) to a milestone. */
export type RowLatency = (rowLatencyMs: number, spans: number, waited: boolean) => void;

/**
 * The processor + exporter stage over the durable spool (the Collector's persistent sending queue):
 * the batcher reads ready rows, the enrich stage splices each, the sender exports, the ledger writer
 * records, and a row leaves the spool only once downstream acknowledged it. This class only runs
 * the loop and decides what each outcome does to the rows.
 */
export class ExportQueue {
  private readonly batcher: Batcher;
  private readonly enrich: EnrichStage;
  private readonly ledgerWriter: LedgerWriter;
  private readonly sender?: Sender;
  private timer?: NodeJS.Timeout;
  private pumpQueued = false;
  private closed = false;
  private idleWaiters: Array<() => void> = [];
  /** Each sent row, timed to downstream's acknowledgement. */
  onSent?: RowLatency;
  /** Each sent row, timed to the moment its request is handed to the exporter's transport. */
  onHandedOff?: RowLatency;

  constructor(
    private readonly spool: Spool,
    enricher: Enricher,
    ledger: LedgerStore,
    exporter: BatchExporter | undefined,
    opts: ExportQueueOptions,
    private readonly log: Logger,
    private readonly metrics?: PipelineMetrics,
  ) {
    this.batcher = new Batcher(spool, opts.maxBatchSpans);
    this.enrich = new EnrichStage(enricher, opts.factsCacheBytes, metrics);
    this.ledgerWriter = new LedgerWriter(ledger, log);
    if (exporter) this.sender = new Sender(exporter, opts, log, metrics);
  }

  /** What to keep of a request the receivers just decoded, so the spooled request need not be decoded again. */
  factsOf(req: OtlpTraceRequest, spans: number): RequestFacts | undefined {
    return this.enrich.factsOf(req, spans);
  }

  /** The request is durable as row `id`. */
  admitted(id: number, facts: RequestFacts | undefined): void {
    this.enrich.admitted(id, facts);
    this.kick();
  }

  kick(): void {
    if (this.pumpQueued || this.closed) return;
    this.pumpQueued = true;
    setImmediate(() => {
      this.pumpQueued = false;
      this.pump();
    });
  }

  start(): void {
    this.kick();
  }

  /** A scrape round was written: rows waiting for a closing scrape may be ready now, not at their retry time. */
  scrapesWritten(): void {
    // A scrape round that lands after shutdown (a late callback) has nothing to wake: the spool is closed.
    if (this.closed) {
      this.log.debug('scrape round after the export stage stopped; ignored');
      return;
    }
    const ids = this.enrich.wake(Date.now());
    if (ids.length) this.spool.postpone(ids, 0, false);
    this.kick();
  }

  private schedule(atMs: number): void {
    clearTimeout(this.timer);
    if (this.closed) return;
    this.timer = setTimeout(() => this.pump(), Math.max(0, atMs - Date.now()));
  }

  private pump(): void {
    if (this.closed) return;
    const now = Date.now();
    const pausedUntil = this.sender?.pausedUntil ?? 0;
    if (now < pausedUntil) {
      this.schedule(pausedUntil);
      return;
    }
    this.enrich.refresh(now);
    while (this.sender?.hasRoom ?? true) {
      const ledger = emptyLedgerBatch();
      const batch = this.batcher.next(now, (row) => this.take(row, now, ledger));
      if (!batch) break;
      if (batch.rows.length) this.send(batch.rows, batch.items, batch.spans, ledger);
    }
    if (!this.sender?.inFlight) {
      const next = this.spool.ready(Number.MAX_SAFE_INTEGER, 1)[0];
      if (next) this.schedule(Math.max(next.not_before_ms, now + 5));
      else this.notifyIdle();
    }
  }

  private take(row: SpoolRow, now: number, ledger: LedgerBatch): Take<EnrichedRow> {
    const body = this.spool.body(row.id);
    if (!body) return this.dropDamaged(row, new Error('the row has no body'));
    try {
      const e = this.enrich.enrich(row, body, now, ledger);
      return e.ready ? { item: e.row } : { waitUntilMs: e.retryAtMs };
    } catch (err) {
      return this.dropDamaged(row, err as Error);
    }
  }

  /** Only reachable if the spool file was damaged: the receiver validated every row before acking. */
  private dropDamaged(row: SpoolRow, err: Error): { gone: true } {
    this.log.error({ spool_id: row.id, err: err.message }, 'dropping an undecodable spool row');
    this.drop([row]);
    return { gone: true };
  }

  private drop(rows: readonly SpoolRow[]): void {
    const ids = rows.map((r) => r.id);
    this.forget(ids);
    this.spool.delete(ids);
    for (const r of rows) this.metrics?.dropped.inc(r.spans);
  }

  private forget(ids: readonly number[]): void {
    this.batcher.forget(ids);
    this.enrich.forget(ids);
  }

  private send(rows: SpoolRow[], items: EnrichedRow[], spans: number, ledger: LedgerBatch): void {
    if (!this.sender) {
      // No downstream configured: enrichment and the ledger are the whole job.
      this.finish(rows, ledger);
      return;
    }
    const chunks = items.length === 1 ? items[0]!.chunks : items.flatMap((i) => i.chunks);
    const bytes = items.reduce((n, i) => n + i.bytes, 0);
    this.ledgerWriter.queue(ledger);
    if (this.onHandedOff) this.report(this.onHandedOff, rows);
    this.sender.send({ chunks, bytes, spans }, (outcome) => {
      if (outcome.kind === 'sent') this.finish(rows, ledger);
      else {
        const ids = rows.map((r) => r.id);
        this.batcher.settled(ids);
        if (outcome.kind === 'retry') this.spool.postpone(ids, 0, true);
        else this.rejected(rows, outcome.reason);
      }
      this.kick();
    });
  }

  /** Downstream refused for good: split the request until what fails fails alone, and drop only that. */
  private rejected(rows: SpoolRow[], reason: string): void {
    const spans = rows.reduce((n, r) => n + r.spans, 0);
    let verdict: ReturnType<Batcher['refused']>;
    try {
      verdict = this.batcher.refused(rows);
    } catch (err) {
      this.log.error(
        { err: (err as Error).message, spool_id: rows[0]!.id },
        'cannot split a refused request; dropping it whole',
      );
      verdict = { drop: rows[0]! };
    }
    if (rows.length > 1) {
      this.log.warn(
        { reason, requests: rows.length, spans },
        'downstream refused a merged request; sending its requests one by one',
      );
      return;
    }
    // The refused row is gone either way: replaced by its halves, or dropped.
    this.forget([rows[0]!.id]);
    if (!verdict.drop) return;
    this.drop([verdict.drop]);
    this.log.error({ reason, spans, peer: verdict.drop.peer }, 'downstream refused spans permanently, alone; dropped');
  }

  private finish(rows: SpoolRow[], ledger: LedgerBatch): void {
    const ids = rows.map((r) => r.id);
    if (!this.ledgerWriter.write(ledger)) {
      this.batcher.settled(ids);
      this.spool.postpone(ids, Date.now() + 5000, true);
      if (!this.sender) this.kick();
      return;
    }
    if (this.onSent) this.report(this.onSent, rows);
    this.spool.delete(ids);
    this.forget(ids);
    if (!this.sender) this.kick();
  }

  private report(to: RowLatency, rows: SpoolRow[]): void {
    const now = Date.now();
    for (const r of rows) {
      const woken = this.enrich.wokenAt(r.id);
      to(now - Math.max(r.received_ms, woken ?? 0), r.spans, woken !== undefined);
    }
  }

  private notifyIdle(): void {
    const w = this.idleWaiters;
    this.idleWaiters = [];
    for (const f of w) f();
  }

  /** Resolves when nothing is ready to send and nothing is in flight (tests, shutdown). */
  whenIdle(): Promise<void> {
    if (!this.sender?.inFlight && !this.spool.ready(Date.now(), 1).length) return Promise.resolve();
    return new Promise((resolve) => {
      this.idleWaiters.push(resolve);
      this.kick();
    });
  }

  /**
   * Sends what is ready until idle or the deadline, then stops and waits (within the same deadline)
   * for requests in flight. Rows still waiting for a window, or unsent, stay in the spool.
   */
  async shutdown(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.whenIdle(), new Promise<void>((r) => (timer = setTimeout(r, timeoutMs)))]);
    clearTimeout(timer);
    this.closed = true;
    clearTimeout(this.timer);
    await this.sender?.shutdown(deadline);
    this.notifyIdle();
  }
}
