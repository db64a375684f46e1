import type { ConfigOf, ObjectSpec } from '../spec.ts';

export const receiversSpec = {
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
          doc:
            'OTLP/gRPC listen address (loopback by default, like the Collector since v0.104; use 0.0.0.0:4317 in ' +
            'containers).',
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
    max_inflight_bytes: {
      kind: 'bytes',
      default: '16MiB',
      doc:
        'Request bytes being read, decoded and spooled at once, over both listeners. Past it, a request is ' +
        'refused before it is buffered (503 with Retry-After / UNAVAILABLE with RetryInfo) and the client retries: ' +
        'memory stays bounded under any load, the backlog stays in the spool on disk.',
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
} as const satisfies ObjectSpec;

export type ReceiversConfig = ConfigOf<typeof receiversSpec>;

export function checkReceivers(r: ReceiversConfig): string[] {
  return r.max_request_bytes < 1024 ? ['receivers.max_request_bytes: must be at least 1KiB'] : [];
}
