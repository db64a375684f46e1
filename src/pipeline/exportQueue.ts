import type { ExportResult } from '@opentelemetry/core';
import type { Enricher } from '../correlate/enricher.ts';
import type { LedgerStore } from '../store/ledgerStore.ts';
import type { Logger } from '../telemetry/logger.ts';
import type { PipelineMetrics } from './metrics.ts';
import { ExtraEncoder } from './encodeExtras.ts';
import { FactsCache } from './factsCache.ts';
import { emptyLedgerBatch, type LedgerBatch, LedgerWriter } from './ledgerWriter.ts';
import type { BatchExporter, EncodedBatch } from './exporter.ts';
import { decodeProtobuf } from '../otlp/decode.ts';
import type { OtlpTraceRequest } from '../otlp/schema.ts';
import { joined, removeSpans, spliceSpans } from '../otlp/splice.ts';
import { Backoff, classifyExportError } from './retry.ts';
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

/**
 * The processor + exporter stage over the durable spool (the Collector's persistent sending queue):
 * read ready rows, enrich, export, delete only what downstream acknowledged. Retryable failures
 * pause sending with backoff (or the server's RetryInfo); permanent rejects are dropped and counted.
 */
export class ExportQueue {
  private readonly inFlight = new Set<number>();
  /** Rows to send alone: part of a merged request downstream refused for good. */
  private readonly solo = new Set<number>();
  private inFlightRequests = 0;
  private readonly facts: FactsCache;
  private readonly ledgerWriter: LedgerWriter;
  private readonly encoder = new ExtraEncoder();
  /** Rows postponed until a closing scrape exists, and when a scrape round last woke them. */
  private readonly waitingForWindow = new Set<number>();
  private readonly wokenAtMs = new Map<number, number>();
  private pausedUntil = 0;
  private readonly backoff: Backoff;
  private timer?: NodeJS.Timeout;
  private pumpQueued = false;
  private closed = false;
  private idleWaiters: Array<() => void> = [];
  /**
   * Called for each sent row with the time from acknowledgement (or, for a row that waited for its
   * window's closing scrape, from the scrape round that woke it) to downstream's acknowledgement.
   */
  onSent?: (rowLatencyMs: number, spans: number, waited: boolean) => void;
  /** The same, up to the moment the row's request is handed to the exporter's transport. */
  onHandedOff?: (rowLatencyMs: number, spans: number, waited: boolean) => void;

  constructor(
    private readonly spool: Spool,
    private readonly enricher: Enricher,
    ledger: LedgerStore,
    private readonly exporter: BatchExporter | undefined,
    private readonly opts: ExportQueueOptions,
    private readonly log: Logger,
    private readonly metrics?: PipelineMetrics,
  ) {
    this.backoff = new Backoff(opts.retryInitialMs, opts.retryMaxMs);
    this.facts = new FactsCache(opts.factsCacheBytes);
    this.ledgerWriter = new LedgerWriter(ledger, log);
  }

  /** The receivers hand over what they just decoded, so the spooled request need not be decoded again. */
  admitted(id: number, req: OtlpTraceRequest): void {
    this.facts.remember(id, this.enricher.facts(req));
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
    if (this.waitingForWindow.size) {
      const ids = [...this.waitingForWindow];
      this.waitingForWindow.clear();
      this.spool.postpone(ids, 0, false);
      const now = Date.now();
      for (const id of ids) this.wokenAtMs.set(id, now);
    }
    this.kick();
  }

  /** Only reachable if the spool file was damaged: the receiver validated every row before acking. */
  private dropDamaged(row: SpoolRow, err: Error): void {
    this.log.error({ spool_id: row.id, err: err.message }, 'dropping an undecodable spool row');
    this.forget([row.id]);
    this.spool.delete([row.id]);
    this.metrics?.dropped.inc(row.spans);
  }

  private forget(ids: readonly number[]): void {
    for (const id of ids) {
      this.solo.delete(id);
      this.wokenAtMs.delete(id);
      this.waitingForWindow.delete(id);
      this.facts.forget(id);
    }
  }

  private schedule(atMs: number): void {
    clearTimeout(this.timer);
    if (this.closed) return;
    this.timer = setTimeout(() => this.pump(), Math.max(0, atMs - Date.now()));
  }

  private pump(): void {
    if (this.closed) return;
    const now = Date.now();
    if (now < this.pausedUntil) {
      this.schedule(this.pausedUntil);
      return;
    }
    this.enricher.refresh(now);
    while (this.inFlightRequests < this.opts.maxInFlight) {
      const rows = this.spool.ready(now, 64 + this.inFlight.size).filter((r) => !this.inFlight.has(r.id));
      if (!rows.length) break;
      const group: SpoolRow[] = [];
      const chunks: Uint8Array[] = [];
      let bytes = 0;
      let spanCount = 0;
      // One transaction each for the group's ledger rows and for the rows that must wait: a commit per
      // spool row cost more than the rows themselves.
      const ledger = emptyLedgerBatch();
      const waiting: Array<[number, number]> = [];
      let dropped = 0;
      for (const row of rows) {
        // A row downstream refused as part of a merged request goes alone, so one client's bad span
        // cannot take another client's spans with it.
        const alone = this.solo.has(row.id);
        if (group.length && (alone || this.solo.has(group[0]!.id))) break;
        if (group.length && spanCount + row.spans > this.opts.maxBatchSpans) break;
        const body = this.spool.body(row.id);
        if (!body) {
          this.dropDamaged(row, new Error('the row has no body'));
          dropped++;
          continue;
        }
        let prepared: ReturnType<Enricher['prepare']>;
        let spliced: ReturnType<typeof spliceSpans>;
        try {
          const facts = this.facts.get(row.id, () => this.enricher.facts(decodeProtobuf(body)));
          prepared = this.enricher.prepare(facts, row.peer, row.received_ms, now);
          if (!prepared.ready) {
            waiting.push([row.id, prepared.retryAtMs]);
            this.waitingForWindow.add(row.id);
            continue;
          }
          spliced = spliceSpans(body, this.encoder.encodeAll(facts.spanCount, prepared.extras), facts.spanCount);
        } catch (err) {
          this.dropDamaged(row, err as Error);
          dropped++;
          continue;
        }
        for (const r of prepared.ledger) ledger.rows.push(r);
        for (const t of prepared.tenants) ledger.tenants.push(t);
        for (const u of prepared.traceUsage) ledger.traceUsage.push(u);
        for (const [match, n] of prepared.byMatch) this.metrics?.enriched.inc({ match }, n);
        if (prepared.requestSpans) this.metrics?.enrichWait.observe(Math.max(0, now - row.received_ms) / 1000);
        if (prepared.incomplete) this.metrics?.incomplete.inc(prepared.incomplete);
        chunks.push(...spliced.chunks);
        bytes += spliced.len;
        group.push(row);
        spanCount += row.spans;
      }
      this.spool.postponeEach(waiting, false);
      if (!group.length) {
        // A pass that sent, postponed and dropped nothing would see the same rows again: stop.
        if (!waiting.length && !dropped) break;
        continue;
      }
      for (const r of group) this.inFlight.add(r.id);
      this.send(group, { chunks, bytes, spans: spanCount }, ledger);
    }
    if (!this.inFlightRequests) {
      const next = this.spool.ready(Number.MAX_SAFE_INTEGER, 1)[0];
      if (next) this.schedule(Math.max(next.not_before_ms, now + 5));
      else this.notifyIdle();
    }
  }

  private send(group: SpoolRow[], batch: EncodedBatch, ledger: LedgerBatch): void {
    const ids = group.map((r) => r.id);
    const spanCount = batch.spans;
    if (!this.exporter) {
      // No downstream configured: enrichment and the ledger are the whole job.
      this.finish(group, ids, ledger);
      return;
    }
    this.inFlightRequests++;
    this.ledgerWriter.queue(ledger);
    if (this.onHandedOff) this.report(this.onHandedOff, group);
    this.exporter.export(batch, (result: ExportResult) => {
      this.inFlightRequests--;
      if (result.code === 0) {
        this.backoff.reset();
        this.metrics?.sent.inc(spanCount);
        this.finish(group, ids, ledger);
      } else {
        const verdict = classifyExportError(result.error);
        for (const id of ids) this.inFlight.delete(id);
        if (verdict.retryable) {
          const delay = this.backoff.next(verdict.retryAfterMs);
          this.pausedUntil = Math.max(this.pausedUntil, Date.now() + delay);
          this.spool.postpone(ids, 0, true);
          this.metrics?.sendFailed.inc(spanCount);
          if (this.backoff.consecutiveFailures === 1 || this.backoff.consecutiveFailures % 20 === 0) {
            this.log.warn(
              {
                reason: verdict.reason,
                spans: spanCount,
                retry_in_ms: Math.round(delay),
                failures: this.backoff.consecutiveFailures,
              },
              'downstream export failed; spans stay in the spool and will be retried',
            );
          }
        } else this.rejected(group, verdict.reason);
      }
      this.kick();
    });
  }

  /**
   * Downstream refused a request for good (the Collector refuses a whole request for one bad span).
   * A merged request is split back into its spool rows, a lone row into halves, until what fails
   * fails alone: only that is dropped, counted and logged with the client's address.
   */
  private rejected(group: SpoolRow[], reason: string): void {
    if (group.length > 1) {
      for (const r of group) this.solo.add(r.id);
      this.log.warn(
        { reason, requests: group.length, spans: group.reduce((n, r) => n + r.spans, 0) },
        'downstream refused a merged request; sending its requests one by one',
      );
      return;
    }
    const row = group[0]!;
    this.solo.delete(row.id);
    const body = row.spans > 1 ? this.spool.body(row.id) : undefined;
    if (body) {
      const mid = Math.floor(row.spans / 2);
      const half = (from: number, to: number) => {
        const drop = new Set<number>();
        for (let i = 0; i < row.spans; i++) if (i < from || i >= to) drop.add(i);
        return { body: joined(removeSpans(body, drop)), spans: to - from };
      };
      try {
        this.forget([row.id]);
        for (const id of this.spool.split(row, [half(0, mid), half(mid, row.spans)])) this.solo.add(id);
        return;
      } catch (err) {
        this.log.error(
          { err: (err as Error).message, spool_id: row.id },
          'cannot split a refused request; dropping it whole',
        );
      }
    }
    this.forget([row.id]);
    this.spool.delete([row.id]);
    this.metrics?.dropped.inc(row.spans);
    this.log.error(
      { reason, spans: row.spans, peer: row.peer },
      'downstream refused spans permanently, alone; dropped',
    );
  }

  private finish(group: SpoolRow[], ids: number[], ledger: LedgerBatch): void {
    if (!this.ledgerWriter.write(ledger)) {
      for (const id of ids) this.inFlight.delete(id);
      this.spool.postpone(ids, Date.now() + 5000, true);
      if (!this.exporter) this.kick();
      return;
    }
    if (this.onSent) this.report(this.onSent, group);
    this.spool.delete(ids);
    this.forget(ids);
    for (const id of ids) this.inFlight.delete(id);
    if (!this.exporter) this.kick();
  }

  private report(to: NonNullable<ExportQueue['onSent']>, group: SpoolRow[]): void {
    const now = Date.now();
    for (const r of group) {
      const woken = this.wokenAtMs.get(r.id);
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
    if (!this.inFlightRequests && !this.spool.ready(Date.now(), 1).length) return Promise.resolve();
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
    while (this.inFlightRequests > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    await this.exporter?.shutdown().catch(() => undefined);
    this.notifyIdle();
  }
}
