import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { MATCH_RULES } from '../correlate/match.ts';
import { REFUSAL_REASONS } from './receivers/refusal.ts';

const TRANSPORTS = ['grpc', 'http'] as const;

/** Self-metrics of the trace pipeline, named after the Collector's receiver/exporter metrics. */
export class PipelineMetrics {
  readonly accepted: Counter<'transport'>;
  /** Counted in requests: a refused body may not decode, so its spans cannot be counted. */
  readonly refused: Counter<'transport' | 'reason'>;
  readonly rejected: Counter<'transport'>;
  readonly sent: Counter;
  readonly sendFailed: Counter;
  readonly dropped: Counter;
  readonly enriched: Counter<'match'>;
  readonly enrichWait: Histogram;
  readonly incomplete: Counter;
  readonly ttft: Histogram<'model' | 'cache_hit_bucket'>;

  constructor(readonly registry: Registry = new Registry()) {
    const r = [registry];
    this.accepted = new Counter({
      name: 'cachelens_receiver_accepted_spans_total',
      help: 'Spans written to the spool and acknowledged.',
      labelNames: ['transport'],
      registers: r,
    });
    this.refused = new Counter({
      name: 'cachelens_receiver_refused_requests_total',
      help: 'Requests refused before acknowledgement (spool full, too large, malformed, unauthenticated, wrong route).',
      labelNames: ['transport', 'reason'],
      registers: r,
    });
    this.rejected = new Counter({
      name: 'cachelens_receiver_rejected_spans_total',
      help: 'Spans left out of an accepted request (partial success: invalid ids).',
      labelNames: ['transport'],
      registers: r,
    });
    this.sent = new Counter({
      name: 'cachelens_exporter_sent_spans_total',
      help: 'Spans downstream acknowledged.',
      registers: r,
    });
    this.sendFailed = new Counter({
      name: 'cachelens_exporter_send_failed_spans_total',
      help: 'Spans in export attempts that failed and will be retried.',
      registers: r,
    });
    this.dropped = new Counter({
      name: 'cachelens_exporter_dropped_spans_total',
      help: 'Spans downstream rejected permanently (non-retryable status).',
      registers: r,
    });
    this.enriched = new Counter({
      name: 'cachelens_spans_enriched_total',
      help:
        'Request spans given fleet context, by how they were matched to an instance ' +
        '(config, resource, peer, fleet).',
      labelNames: ['match'],
      registers: r,
    });
    this.enrichWait = new Histogram({
      name: 'cachelens_enrich_wait_seconds',
      help:
        'Time from acknowledgement to enrichment of a request batch: mostly the wait for the scrape that closes its ' +
        'window.',
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers: r,
    });
    // Every known label value starts at 0, so rate() sees the first increment (Prometheus
    // instrumentation practice) and a dashboard panel has a series before anything happens.
    for (const transport of TRANSPORTS) {
      this.accepted.inc({ transport }, 0);
      this.rejected.inc({ transport }, 0);
      for (const reason of REFUSAL_REASONS) this.refused.inc({ transport, reason }, 0);
    }
    for (const match of MATCH_RULES) this.enriched.inc({ match }, 0);
    this.incomplete = new Counter({
      name: 'cachelens_enrich_incomplete_windows_total',
      help: 'Request spans enriched after enrich.max_wait without a closing scrape.',
      registers: r,
    });
    // No tenant label (cardinality, privacy): per-tenant latency is the report's job (--view latency).
    this.ttft = new Histogram({
      name: 'cachelens_request_ttft_seconds',
      help:
        "Time to first token of enriched request spans (the span's gen_ai.latency.time_to_first_token), by model " +
        'and by the share of the prompt that was cached (measured, else estimated from the window; unknown ' +
        'without a prompt count).',
      labelNames: ['model', 'cache_hit_bucket'],
      // vLLM's own TTFT histogram boundaries, up to 80 s
      buckets: [0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80],
      registers: r,
    });
  }
}

/** Request bytes the receivers are reading, decoding and spooling, against receivers.max_inflight_bytes. */
export function registerIntakeMetrics(registry: Registry, intake: { inFlightBytes: number }): void {
  new Gauge({
    name: 'cachelens_receiver_inflight_bytes',
    help:
      'Request bytes being read, decoded and spooled by the receivers; past receivers.max_inflight_bytes new ' +
      'requests are refused, retryably.',
    registers: [registry],
    collect() {
      this.set(intake.inFlightBytes);
    },
  });
}

/** The spool's depth, read at scrape time; absent while the spool is closed. */
export function registerSpoolMetrics(
  registry: Registry,
  spool: () => { spans: number; bytes: number } | undefined,
): void {
  new Gauge({
    name: 'cachelens_spool_spans',
    help: 'Spans acknowledged and waiting in the spool for enrichment or export.',
    registers: [registry],
    collect() {
      const s = spool();
      if (s) this.set(s.spans);
    },
  });
  new Gauge({
    name: 'cachelens_spool_bytes',
    help: 'Bytes of OTLP requests in the spool (what spool.max_bytes bounds).',
    registers: [registry],
    collect() {
      const s = spool();
      if (s) this.set(s.bytes);
    },
  });
}
