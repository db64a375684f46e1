import type { ConfigOf, ObjectSpec } from '../spec.ts';

export const telemetrySpec = {
  kind: 'object',
  doc: "cachelens's own metrics and health endpoints.",
  fields: {
    enabled: { kind: 'bool', default: true, doc: 'Serve `/metrics`, `/healthz` and `/readyz`.' },
    endpoint: {
      kind: 'string',
      default: '127.0.0.1:9464',
      env: 'CACHELENS_TELEMETRY_ENDPOINT',
      doc:
        'host:port of the self-telemetry server (loopback by default; `0.0.0.0:9464` for Prometheus in another ' +
        'container).',
    },
  },
} as const satisfies ObjectSpec;

export type TelemetryConfig = ConfigOf<typeof telemetrySpec>;
