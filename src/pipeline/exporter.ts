import { credentials, Metadata, type ChannelCredentials } from '@grpc/grpc-js';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-grpc';
import type { SpanExporter } from '@opentelemetry/sdk-trace-base';
import { readFileSync } from 'node:fs';

export interface ExporterConfig {
  endpoint?: string;
  insecure?: boolean;
  headers: Record<string, string>;
  compression?: 'gzip' | 'none';
  timeout?: number;
  tls?: { ca_file?: string; cert_file?: string; key_file?: string };
}

/** The endpoint spans go to: config, else the standard OTLP environment variables. */
export function resolveEndpoint(cfg: ExporterConfig, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const pick = (v: string | undefined): string | undefined => (v && v.trim() ? v.trim() : undefined);
  return pick(cfg.endpoint) ?? pick(env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) ?? pick(env.OTEL_EXPORTER_OTLP_ENDPOINT);
}

function channelCredentials(cfg: ExporterConfig): ChannelCredentials | undefined {
  if (cfg.insecure === true) return credentials.createInsecure();
  const t = cfg.tls;
  if (!t || (!t.ca_file && !t.cert_file)) return cfg.insecure === false ? credentials.createSsl() : undefined;
  const read = (f?: string): Buffer | null => (f ? readFileSync(f) : null);
  return credentials.createSsl(read(t.ca_file), read(t.key_file), read(t.cert_file));
}

/**
 * The downstream exporter. Only options set in cachelens config are passed, so anything left out
 * falls back to OTEL_EXPORTER_OTLP_TRACES_* / OTEL_EXPORTER_OTLP_* inside the exporter itself.
 */
export function createDownstreamExporter(cfg: ExporterConfig, endpoint: string): SpanExporter {
  const metadata = new Metadata();
  for (const [k, v] of Object.entries(cfg.headers)) metadata.set(k, v);
  return new OTLPTraceExporter({
    url: endpoint,
    credentials: channelCredentials(cfg),
    metadata: Object.keys(cfg.headers).length ? metadata : undefined,
    compression: cfg.compression as never,
    timeoutMillis: cfg.timeout,
    // cachelens bounds concurrency itself; the exporter's own cap would just fail sends.
    concurrencyLimit: 1000,
  });
}
