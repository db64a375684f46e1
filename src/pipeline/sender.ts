import type { ExportResult } from '@opentelemetry/core';
import type { Logger } from '../telemetry/logger.ts';
import type { BatchExporter, EncodedBatch } from './exporter.ts';
import type { PipelineMetrics } from './metrics.ts';
import { Backoff, classifyExportError } from './retry.ts';

export interface SenderOptions {
  maxInFlight: number;
  retryInitialMs: number;
  retryMaxMs: number;
}

/** What became of one send: acknowledged, to be retried after a pause, or refused for good. */
export type SendOutcome =
  | { kind: 'sent' }
  | { kind: 'retry'; delayMs: number; reason: string }
  | { kind: 'rejected'; reason: string };

/**
 * The Collector's retry-sender over one exporter: bounds the requests in flight, and after a
 * retryable failure pauses every send with exponential backoff (or the server's RetryInfo), since
 * the next request would meet the same outage. It never drops anything: the caller keeps the rows.
 */
export class Sender {
  private inFlightRequests = 0;
  private paused = 0;
  private readonly backoff: Backoff;

  constructor(
    private readonly exporter: BatchExporter,
    private readonly opts: SenderOptions,
    private readonly log: Logger,
    private readonly metrics?: PipelineMetrics,
    random?: () => number,
  ) {
    this.backoff = new Backoff(opts.retryInitialMs, opts.retryMaxMs, random);
  }

  get inFlight(): number {
    return this.inFlightRequests;
  }

  /** No send before this time (epoch ms): a retryable failure paused sending. */
  get pausedUntil(): number {
    return this.paused;
  }

  get hasRoom(): boolean {
    return this.inFlightRequests < this.opts.maxInFlight;
  }

  send(batch: EncodedBatch, done: (outcome: SendOutcome) => void): void {
    this.inFlightRequests++;
    this.exporter.export(batch, (result: ExportResult) => {
      this.inFlightRequests--;
      done(this.settle(batch.spans, result));
    });
  }

  private settle(spans: number, result: ExportResult): SendOutcome {
    if (result.code === 0) {
      this.backoff.reset();
      this.metrics?.sent.inc(spans);
      return { kind: 'sent' };
    }
    const verdict = classifyExportError(result.error);
    if (!verdict.retryable) return { kind: 'rejected', reason: verdict.reason };
    const delayMs = this.backoff.next(verdict.retryAfterMs);
    this.paused = Math.max(this.paused, Date.now() + delayMs);
    this.metrics?.sendFailed.inc(spans);
    const failures = this.backoff.consecutiveFailures;
    // The first failure of an outage and every 20th after it: enough to see, not a log per request.
    if (failures === 1 || failures % 20 === 0)
      this.log.warn(
        { reason: verdict.reason, spans, retry_in_ms: Math.round(delayMs), failures },
        'downstream export failed; spans stay in the spool and will be retried',
      );
    return { kind: 'retry', delayMs, reason: verdict.reason };
  }

  /**
   * Waits up to the deadline for requests in flight, then shuts the exporter down, also within the
   * deadline: the exporter's own shutdown waits for every pending export, up to its timeout (10 s), which
   * could hold a SIGTERM past any grace period. What is not acknowledged by then stays in the spool.
   */
  async shutdown(deadlineMs: number): Promise<void> {
    while (this.inFlightRequests > 0 && Date.now() < deadlineMs) await new Promise((r) => setTimeout(r, 20));
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.exporter.shutdown().catch(() => undefined),
      new Promise<void>((r) => {
        timer = setTimeout(r, Math.max(100, deadlineMs - Date.now()));
      }),
    ]);
    clearTimeout(timer);
  }
}
