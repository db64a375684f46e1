import type { Database } from 'better-sqlite3';
import type { Config, SpanMatching } from '../config/config.ts';

/** The sections the trace pipeline reads: its receivers, spool, enrichment, ledger and exporter. */
export type PipelineConfig = Pick<Config, 'receivers' | 'spool' | 'enrich' | 'ledger' | 'exporter'>;
import { Enricher } from '../correlate/enricher.ts';
import { compileSpanSelector } from '../correlate/requestSpans.ts';
import { FleetQueries } from '../store/fleetQueries.ts';
import { LedgerStore } from '../store/ledgerStore.ts';
import type { Logger } from '../telemetry/logger.ts';
import { PipelineMetrics, registerIntakeMetrics } from './metrics.ts';
import { createDownstreamExporter, resolveEndpoint } from './exporter.ts';
import { ExportQueue } from './exportQueue.ts';
import { GrpcReceiver } from './receivers/grpcReceiver.ts';
import { HttpReceiver } from './receivers/httpReceiver.ts';
import { Intake } from './receivers/intake.ts';
import { Refusal } from './receivers/refusal.ts';
import { Spool, SpoolFullError } from './spool.ts';

/** receivers → spool → enrich → exporter, built from config; started after the scrape store. */
export class TracePipeline {
  readonly spool: Spool;
  readonly queue: ExportQueue;
  private closed = false;
  readonly metrics: PipelineMetrics;
  readonly endpoint: string | undefined;
  grpc?: GrpcReceiver;
  http?: HttpReceiver;
  /** True between a successful start and the beginning of shutdown: what /readyz reports. */
  listening = false;
  readonly intake: Intake;

  constructor(
    private readonly config: PipelineConfig,
    /** Static targets' `match` blocks and the label → attribute map of the resource rule. */
    matching: SpanMatching,
    db: Database,
    private readonly log: Logger,
    metrics?: PipelineMetrics,
  ) {
    this.metrics = metrics ?? new PipelineMetrics();
    const { spool, exporter, enrich, ledger } = config;
    this.spool = new Spool(spool.path, {
      maxBytes: spool.max_bytes,
      fsync: spool.fsync,
    });
    const enricher = new Enricher(new FleetQueries(db), {
      maxWaitMs: enrich.max_wait,
      as: enrich.as,
      detail: enrich.detail,
      selector: compileSpanSelector(enrich.span_names),
      tenantKeys: ledger.tenant_attributes,
      lookbackMs: enrich.lookback,
      targetMatch: () => matching.byUrl,
      labelAttributes: matching.labelAttributes,
    });
    this.endpoint = resolveEndpoint(exporter);
    const downstream = this.endpoint ? createDownstreamExporter(exporter, this.endpoint) : undefined;
    this.queue = new ExportQueue(
      this.spool,
      enricher,
      new LedgerStore(db),
      downstream,
      {
        maxBatchSpans: exporter.max_batch_spans,
        maxInFlight: exporter.max_in_flight,
        retryInitialMs: exporter.retry_initial_interval,
        retryMaxMs: exporter.retry_max_interval,
        factsCacheBytes: enrich.facts_cache_bytes,
      },
      log,
      this.metrics,
    );
    // The receivers' next consumer: the durable spool, then the export stage, which keeps the
    // decoded request's facts so the spooled bytes need not be decoded again.
    const durable = this.spool;
    const queue = this.queue;
    this.intake = new Intake(
      {
        async consume(bytes, spans, peer, req) {
          // Taken before the group commit's wait: the decoded request need not live past this turn.
          const facts = queue.factsOf(req, spans);
          let id: number;
          try {
            id = await durable.append(bytes, spans, peer, 0);
          } catch (err) {
            if (err instanceof SpoolFullError) throw new Refusal('unavailable', err.message, err.retryAfterMs);
            throw err;
          }
          queue.admitted(id, facts);
        },
      },
      this.metrics,
      log,
      config.receivers.max_inflight_bytes,
    );
    registerIntakeMetrics(this.metrics.registry, this.intake);
  }

  async start(): Promise<{ grpc?: string; http?: string }> {
    const r = this.config.receivers;
    const common = {
      maxRequestBytes: r.max_request_bytes,
      tls: r.tls,
      auth: { bearer_token: r.bearer_token, bearer_token_file: r.bearer_token_file },
    };
    const out: { grpc?: string; http?: string } = {};
    if (!this.endpoint)
      this.log.warn(
        'no exporter.endpoint and no OTEL_EXPORTER_OTLP_TRACES_ENDPOINT / OTEL_EXPORTER_OTLP_ENDPOINT: spans are ' +
          'enriched and written to the request ledger but not forwarded',
      );
    const pending = this.spool.counts();
    if (pending.rows) this.log.info({ rows: pending.rows, spans: pending.spans }, 'resuming export of spooled spans');
    this.queue.start();
    if (r.grpc.enabled) {
      this.grpc = new GrpcReceiver({ endpoint: r.grpc.endpoint, ...common }, this.intake, this.metrics, this.log);
      out.grpc = await this.grpc.start();
    }
    if (r.http.enabled) {
      this.http = new HttpReceiver({ endpoint: r.http.endpoint, ...common }, this.intake, this.metrics, this.log);
      out.http = await this.http.start();
    }
    this.listening = true;
    return out;
  }

  /** Stops the receivers: no new spans. */
  async stopIntake(): Promise<void> {
    this.listening = false;
    await Promise.all([this.grpc?.shutdown(), this.http?.shutdown()]);
  }

  /**
   * Receivers first (no new spans), then send what is ready within the deadline; the rest stays in the spool for the
   * next start.
   */
  async shutdown(): Promise<void> {
    if (this.closed) return;
    await this.stopIntake();
    await this.queue.shutdown(this.config.exporter.shutdown_timeout);
    this.closed = true;
    this.spool.close();
  }
}
