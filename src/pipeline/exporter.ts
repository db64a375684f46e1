import { credentials, Metadata, type ChannelCredentials } from '@grpc/grpc-js';
import type { ExportResult } from '@opentelemetry/core';
import { OTLPExporterBase } from '@opentelemetry/otlp-exporter-base';
import { convertLegacyOtlpGrpcOptions, createOtlpGrpcExportDelegate } from '@opentelemetry/otlp-grpc-exporter-base';
import {
  ProtobufTraceSerializer,
  type IExporterMetricsHelper,
  type ISerializer,
} from '@opentelemetry/otlp-transformer';
import { readFileSync } from 'node:fs';
import type { ExporterConfig } from '../config/config.ts';

/** The endpoint spans go to: config, else the standard OTLP environment variables. */
export function resolveEndpoint(cfg: ExporterConfig, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const pick = (v: string | undefined): string | undefined => (v?.trim() ? v.trim() : undefined);
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
 * One downstream ExportTraceServiceRequest, already encoded: the spooled requests' bytes as
 * received, with cachelens' fields spliced into the request spans. Concatenated encoded requests
 * are one request (protobuf merges repeated fields), so several spool rows make one send.
 * The exporter empties `chunks` once it has joined them, before export() returns.
 */
export interface EncodedBatch {
  chunks: Uint8Array[];
  bytes: number;
  spans: number;
}

/** The SpanExporter shape (export + shutdown) over encoded batches. */
export interface BatchExporter {
  export(batch: EncodedBatch, done: (result: ExportResult) => void): void;
  shutdown(): Promise<void>;
}

const batchSerializer: ISerializer<EncodedBatch, unknown> = {
  serializeRequest: (b) => {
    const request = b.chunks.length === 1 ? b.chunks[0]! : Buffer.concat(b.chunks, b.bytes);
    // The transport holds the joined request until downstream answers, and the callbacks hold the batch: without
    // this, the pieces (spool rows and spliced events) live as long, are promoted and wait for a full collection
    // (overload peak 276-285 -> 260-266 MB).
    b.chunks = [];
    return request;
  },
  deserializeResponse: (data) => ProtobufTraceSerializer.deserializeResponse(data),
};

const batchMetrics: IExporterMetricsHelper<EncodedBatch> = { name: 'span', countItems: (b) => b.spans };

/**
 * The downstream exporter: OTLPTraceExporter's own parts from @opentelemetry/exporter-trace-otlp-grpc
 * (the gRPC export delegate with its transport, retries, compression, timeout and
 * OTEL_EXPORTER_OTLP_TRACES_* handling), with a serializer that sends encoded bytes instead of
 * re-encoding ReadableSpans; see docs/architecture.md, "Forwarding", for the measurements behind that. Only
 * options set in cachelens config are passed, so anything left out falls back to the environment.
 */
export function createDownstreamExporter(cfg: ExporterConfig, endpoint: string): BatchExporter {
  const metadata = new Metadata();
  for (const [k, v] of Object.entries(cfg.headers)) metadata.set(k, v);
  const options = convertLegacyOtlpGrpcOptions(
    {
      url: endpoint,
      credentials: channelCredentials(cfg),
      metadata: Object.keys(cfg.headers).length ? metadata : undefined,
      compression: cfg.compression as never,
      timeoutMillis: cfg.timeout,
      // cachelens bounds concurrency itself; the exporter's own cap would just fail sends.
      concurrencyLimit: 1000,
    },
    'TRACES',
  );
  return new OTLPExporterBase(
    createOtlpGrpcExportDelegate(
      options,
      batchSerializer,
      'otlp_grpc_span_exporter',
      batchMetrics,
      undefined,
      'TraceExportService',
      '/opentelemetry.proto.collector.trace.v1.TraceService/Export',
    ),
  );
}
