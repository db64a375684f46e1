// One schema for every config key: its type, default, env override and doc line.
// Validation, defaults, `check-config` and the table in docs/configuration.md all read this.

export type FieldKind = 'string' | 'duration' | 'bytes' | 'bool' | 'enum' | 'stringList' | 'stringMap' | 'int';

export interface LeafSpec {
  kind: FieldKind;
  default?: unknown;
  values?: readonly string[];
  env?: string;
  doc: string;
  secret?: boolean;
  /** stringMap only: what the keys are, which decides what a valid key is. Default: Prometheus label names. */
  keys?: 'label' | 'attribute' | 'header';
}
export interface ObjectSpec {
  kind: 'object';
  fields: Record<string, Spec>;
  doc?: string;
  /** Left out of the config when not given (auth blocks), instead of filled with defaults. */
  optional?: boolean;
}
export interface ListSpec {
  kind: 'list';
  item: ObjectSpec;
  default: unknown[];
  doc: string;
}
export type Spec = LeafSpec | ObjectSpec | ListSpec;

import { DEFAULT_REQUEST_SPAN_NAMES } from './spanNames.ts';

export const PROFILE_NAMES = ['auto', 'vllm', 'vllm-0.9', 'vllm-v0', 'sglang', 'sglang-0.3', 'tgi'] as const;
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;

const authFields = (): Record<string, Spec> => ({
  bearer_token: { kind: 'string', doc: 'Bearer token sent as `Authorization: Bearer …`.', secret: true },
  bearer_token_file: { kind: 'string', doc: 'File holding the bearer token (read at each scrape, so rotation works).' },
  basic_auth: {
    kind: 'object',
    optional: true,
    doc: 'HTTP basic auth.',
    fields: {
      username: { kind: 'string', doc: 'Basic-auth user.' },
      password: { kind: 'string', doc: 'Basic-auth password.', secret: true },
      password_file: { kind: 'string', doc: 'File holding the basic-auth password.' },
    },
  },
  tls: {
    kind: 'object',
    optional: true,
    doc: 'TLS options for https:// targets.',
    fields: {
      ca_file: { kind: 'string', doc: 'CA bundle (PEM) to verify the server.' },
      cert_file: { kind: 'string', doc: 'Client certificate (PEM) for mTLS.' },
      key_file: { kind: 'string', doc: 'Client key (PEM) for mTLS.' },
      server_name: { kind: 'string', doc: 'SNI / name to verify instead of the URL host.' },
      insecure_skip_verify: { kind: 'bool', default: false, doc: 'Skip certificate verification (testing only).' },
    },
  },
});

export const CONFIG_SCHEMA: ObjectSpec = {
  kind: 'object',
  fields: {
    storage: {
      kind: 'object',
      fields: {
        path: {
          kind: 'string',
          default: './cachelens.db',
          env: 'CACHELENS_STORAGE_PATH',
          doc: 'SQLite file (WAL mode) holding scrapes, deltas and rollups.',
        },
        raw_retention: {
          kind: 'duration',
          default: '48h',
          env: 'CACHELENS_STORAGE_RAW_RETENTION',
          doc: 'How long raw per-scrape rows are kept.',
        },
        rollup_retention: {
          kind: 'duration',
          default: '400d',
          env: 'CACHELENS_STORAGE_ROLLUP_RETENTION',
          doc: 'How long per-minute, hourly and daily rollups (what reports read) are kept.',
        },
        ledger_retention: {
          kind: 'duration',
          default: '30d',
          env: 'CACHELENS_STORAGE_LEDGER_RETENTION',
          doc: 'How long per-request ledger rows and trace tenants are kept; reports on older periods read the hourly/daily ledger rollups.',
        },
        compaction_delay: {
          kind: 'duration',
          default: '10m',
          doc: 'How long after an hour ends it is aggregated for reports; ledger rows and tenants arriving later mark the hour for a redo.',
        },
        retention_check_interval: {
          kind: 'duration',
          default: '1m',
          doc: 'How often expired rows are deleted (in small batches, between scrape rounds).',
        },
        busy_timeout: {
          kind: 'duration',
          default: '200ms',
          doc: 'How long a write waits for a lock held by another writer before the round is retried on the next tick.',
        },
        max_pending_results: {
          kind: 'int',
          default: 20000,
          doc: 'Scrape results held in memory while the DB cannot be written (locked, full disk). Oldest are dropped first; counters stay exact because deltas are computed from stored state.',
        },
      },
    },
    scrape: {
      kind: 'object',
      fields: {
        interval: {
          kind: 'duration',
          default: '5s',
          env: 'CACHELENS_SCRAPE_INTERVAL',
          doc: 'How often each target is scraped (whole seconds, ≥ 1s).',
        },
        timeout: {
          kind: 'duration',
          default: '4s',
          env: 'CACHELENS_SCRAPE_TIMEOUT',
          doc: 'Per-scrape deadline; must be shorter than the interval.',
        },
        max_body_bytes: {
          kind: 'bytes',
          default: '16MiB',
          env: 'CACHELENS_SCRAPE_MAX_BODY_BYTES',
          doc: 'Cap on a decompressed /metrics body; larger bodies fail the scrape with up=0.',
        },
        sample_limit: {
          kind: 'int',
          default: 20000,
          doc: 'Most sample lines of the metrics cachelens reads, per scrape (like Prometheus `sample_limit`); more fails the scrape with up=0 before parsing, so a label explosion cannot stall the daemon or flood the store. A vLLM server exposes a few dozen.',
        },
        profile: {
          kind: 'enum',
          values: PROFILE_NAMES,
          default: 'auto',
          env: 'CACHELENS_SCRAPE_PROFILE',
          doc: 'Metric profile for every target (`auto` detects it per target from the families present).',
        },
        file_sd: {
          kind: 'stringList',
          default: [],
          doc: 'Prometheus `file_sd_configs` files (JSON or YAML); edits are picked up without a restart.',
        },
        file_sd_refresh_interval: {
          kind: 'duration',
          default: '30s',
          doc: 'Re-read period for file_sd files, on top of file-change notifications.',
        },
        ...authFields(),
        targets: {
          kind: 'list',
          default: [{ url: 'http://127.0.0.1:8000/metrics' }],
          doc: 'Static targets. Each entry takes `url`, `labels` and optionally `profile`, `bearer_token`, `bearer_token_file`, `basic_auth`, `tls`, which override the scrape-level ones.',
          item: {
            kind: 'object',
            fields: {
              url: { kind: 'string', doc: 'Full /metrics URL (http or https).' },
              labels: {
                kind: 'stringMap',
                default: {},
                doc: 'Extra labels; `instance` overrides the default `host:port`, `model_name` names the model for servers that do not label it (TGI).',
              },
              profile: { kind: 'enum', values: PROFILE_NAMES, doc: 'Profile override for this target.' },
              match: {
                kind: 'stringMap',
                keys: 'attribute',
                default: {},
                doc: "Resource attributes that mark spans as this target's (span matching rule 1), e.g. `{service.name: vllm-a}`.",
              },
              ...authFields(),
            },
          },
        },
      },
    },
    receivers: {
      kind: 'object',
      doc: 'OTLP trace listeners.',
      fields: {
        grpc: {
          kind: 'object',
          fields: {
            enabled: { kind: 'bool', default: true, doc: 'Serve OTLP/gRPC.' },
            endpoint: {
              kind: 'string',
              default: '127.0.0.1:4317',
              env: 'CACHELENS_RECEIVERS_GRPC_ENDPOINT',
              doc: 'OTLP/gRPC listen address (loopback by default, like the Collector since v0.104; use 0.0.0.0:4317 in containers).',
            },
          },
        },
        http: {
          kind: 'object',
          fields: {
            enabled: { kind: 'bool', default: true, doc: 'Serve OTLP/HTTP.' },
            endpoint: {
              kind: 'string',
              default: '127.0.0.1:4318',
              env: 'CACHELENS_RECEIVERS_HTTP_ENDPOINT',
              doc: 'OTLP/HTTP listen address for `POST /v1/traces` (protobuf and JSON).',
            },
          },
        },
        max_request_bytes: {
          kind: 'bytes',
          default: '20MiB',
          doc: 'Largest request accepted, after decompression; larger ones get 413 / RESOURCE_EXHAUSTED.',
        },
        bearer_token: {
          kind: 'string',
          doc: 'Require `Authorization: Bearer <token>` on both listeners.',
          secret: true,
        },
        bearer_token_file: { kind: 'string', doc: 'File holding the required bearer token (re-read per request).' },
        tls: {
          kind: 'object',
          optional: true,
          doc: 'Serve both listeners over TLS.',
          fields: {
            cert_file: { kind: 'string', doc: 'Server certificate (PEM).' },
            key_file: { kind: 'string', doc: 'Server key (PEM).' },
            client_ca_file: { kind: 'string', doc: 'CA (PEM) client certificates must chain to (mTLS).' },
          },
        },
      },
    },
    exporter: {
      kind: 'object',
      doc: 'Where spans go after enrichment, through @opentelemetry/exporter-trace-otlp-grpc. Unset options fall back to OTEL_EXPORTER_OTLP_TRACES_* / OTEL_EXPORTER_OTLP_*.',
      fields: {
        endpoint: {
          kind: 'string',
          doc: 'Downstream OTLP/gRPC endpoint, e.g. `http://collector:4317`. Default: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, then OTEL_EXPORTER_OTLP_ENDPOINT; with neither, spans are enriched and written to the ledger but not forwarded.',
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
          doc: 'First backoff after a retryable export failure (doubles up to the max, with jitter; RetryInfo wins when sent).',
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
          doc: 'On SIGTERM/SIGINT, how long to keep sending spooled spans after the listeners close; what is left stays in the spool for the next start.',
        },
      },
    },
    spool: {
      kind: 'object',
      doc: 'Durable queue between receivers and exporter (SQLite).',
      fields: {
        path: {
          kind: 'string',
          env: 'CACHELENS_SPOOL_PATH',
          doc: 'Spool file. Default: `cachelens-spool.db` next to `storage.path`.',
        },
        max_bytes: {
          kind: 'bytes',
          default: '1GiB',
          env: 'CACHELENS_SPOOL_MAX_BYTES',
          doc: 'Bound on spooled request bytes; when full, receivers answer 503 + Retry-After / UNAVAILABLE + RetryInfo.',
        },
        fsync: {
          kind: 'bool',
          default: true,
          doc: 'fsync each commit (synchronous=FULL), so acknowledged spans survive an OS crash too; false survives a process crash only.',
        },
        high_water_percent: {
          kind: 'int',
          default: 90,
          doc: '`/readyz` reports not ready while the spool holds more than this percent of `spool.max_bytes` (a load balancer sends new traffic elsewhere before refusals start).',
        },
      },
    },
    enrich: {
      kind: 'object',
      doc: 'Fleet context added to request spans.',
      fields: {
        max_wait: {
          kind: 'duration',
          doc: 'How long a request span waits in the spool for the scrape that closes its window. Default: 2 × scrape.interval.',
        },
        lookback: {
          kind: 'duration',
          doc: 'How far back scrape timelines and gauge lookups reach in memory; older windows are read from the store. Default: 6h, or 4 × scrape.interval if longer.',
        },
        facts_cache_bytes: {
          kind: 'bytes',
          default: '64MiB',
          doc: 'Memory for facts of spooled requests (about 1 KB a request span), so a request is not read and decoded again; past it, it is.',
        },
        as: {
          kind: 'enum',
          values: ['events', 'attributes', 'both'],
          default: 'events',
          doc: 'Span events `cachelens.cache` / `cachelens.scheduler`, the same keys as span attributes, or both.',
        },
        span_names: {
          kind: 'stringList',
          default: [...DEFAULT_REQUEST_SPAN_NAMES],
          doc: 'Names of request spans (exact, or `/regex/`). Default: vLLM `llm_request`, SGLang `Req <rid>` roots, TGI handler spans.',
        },
      },
    },
    ledger: {
      kind: 'object',
      fields: {
        tenant_attributes: {
          kind: 'stringList',
          default: ['tenant.id', 'enduser.id'],
          doc: "Attribute keys recorded as the request's tenant, from the span, its resource or any span of the same trace.",
        },
      },
    },
    telemetry: {
      kind: 'object',
      doc: "cachelens's own metrics and health endpoints.",
      fields: {
        enabled: { kind: 'bool', default: true, doc: 'Serve `/metrics`, `/healthz` and `/readyz`.' },
        endpoint: {
          kind: 'string',
          default: '127.0.0.1:9464',
          env: 'CACHELENS_TELEMETRY_ENDPOINT',
          doc: 'host:port of the self-telemetry server (loopback by default; `0.0.0.0:9464` for Prometheus in another container).',
        },
      },
    },
    log: {
      kind: 'object',
      fields: {
        level: {
          kind: 'enum',
          values: LOG_LEVELS,
          default: 'info',
          env: 'CACHELENS_LOG_LEVEL',
          doc: 'Log level of the JSON logs on stderr.',
        },
      },
    },
  },
};
