import type { ConfigOf, ObjectSpec } from '../spec.ts';

/** Auth and TLS for scraping, at scrape level and per target (a target's own block wins). */
export const AUTH_FIELDS = {
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
} as const satisfies ObjectSpec['fields'];

export type AuthOptions = ConfigOf<{ kind: 'object'; fields: typeof AUTH_FIELDS }>;
