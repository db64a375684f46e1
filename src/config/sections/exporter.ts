import type { ConfigOf, ObjectSpec } from '../spec.ts';

export const exporterSpec = {
  kind: 'object',
  doc:
    'Where spans go after enrichment, through @opentelemetry/exporter-trace-otlp-grpc. Unset options fall back to ' +
    'OTEL_EXPORTER_OTLP_TRACES_* / OTEL_EXPORTER_OTLP_*.',
  fields: {
    endpoint: {
      kind: 'string',
      doc:
        'Downstream OTLP/gRPC endpoint, e.g. `http://collector:4317`. Default: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, ' +
        'then OTEL_EXPORTER_OTLP_ENDPOINT; with neither, spans are enriched and written to the ledger but not ' +
        'forwarded.',
    },
    insecure: {
      kind: 'bool',
      doc: 'Plain-text gRPC (no TLS). Default: from the URL scheme / OTEL_EXPORTER_OTLP_TRACES_INSECURE.',
    },
    headers: {
      kind: 'stringMap',
      keys: 'header',
      default: {},
      doc: 'gRPC metadata sent with every export (e.g. an API key).',
      secret: true,
    },
    compression: {
      kind: 'enum',
      values: ['gzip', 'none'],
      doc: 'Export compression. Default: OTEL_EXPORTER_OTLP_TRACES_COMPRESSION, else none.',
    },
    timeout: {
      kind: 'duration',
      doc: 'Per-export deadline. Default: OTEL_EXPORTER_OTLP_TRACES_TIMEOUT, else 10s.',
    },
    tls: {
      kind: 'object',
      optional: true,
      doc: 'TLS to the downstream endpoint.',
      fields: {
        ca_file: { kind: 'string', doc: 'CA bundle (PEM) to verify downstream.' },
        cert_file: { kind: 'string', doc: 'Client certificate (PEM) for mTLS.' },
        key_file: { kind: 'string', doc: 'Client key (PEM) for mTLS.' },
      },
    },
    retry_initial_interval: {
      kind: 'duration',
      default: '1s',
      doc:
        'First backoff after a retryable export failure (doubles up to the max, with jitter; RetryInfo wins when ' +
        'sent).',
    },
    retry_max_interval: {
      kind: 'duration',
      default: '30s',
      doc: 'Longest backoff. Retryable failures are retried until they succeed; the spool bound is the limit.',
    },
    max_batch_spans: {
      kind: 'int',
      default: 2048,
      doc: 'Spans per downstream request; small received requests are merged up to this.',
    },
    max_in_flight: { kind: 'int', default: 4, doc: 'Concurrent downstream requests.' },
    shutdown_timeout: {
      kind: 'duration',
      default: '5s',
      env: 'CACHELENS_EXPORTER_SHUTDOWN_TIMEOUT',
      doc:
        'On SIGTERM/SIGINT, how long to keep sending spooled spans after the listeners close; what is left stays in ' +
        'the spool for the next start.',
    },
  },
} as const satisfies ObjectSpec;

/** The exporter's slice; options left unset fall back to the OTEL_EXPORTER_OTLP_* environment. */
export type ExporterConfig = ConfigOf<typeof exporterSpec>;

export function checkExporter(e: ExporterConfig): string[] {
  const problems: string[] = [];
  if (e.max_batch_spans < 1) problems.push('exporter.max_batch_spans: must be at least 1');
  if (e.max_in_flight < 1) problems.push('exporter.max_in_flight: must be at least 1');
  if (e.endpoint) {
    try {
      new URL(e.endpoint.includes('://') ? e.endpoint : `http://${e.endpoint}`);
    } catch {
      problems.push(`exporter.endpoint: ${JSON.stringify(e.endpoint)} is not an endpoint like http://collector:4317`);
    }
  }
  return problems;
}
