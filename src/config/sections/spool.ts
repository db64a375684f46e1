import type { ConfigOf, ObjectSpec } from '../spec.ts';
import { dirname, join } from 'node:path';

export const spoolSpec = {
  kind: 'object',
  doc: 'Durable queue between receivers and exporter (SQLite).',
  fields: {
    path: {
      kind: 'string',
      derived: true,
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
      doc:
        'fsync each commit (synchronous=FULL), so acknowledged spans survive an OS crash too; false survives a ' +
        'process crash only.',
    },
    high_water_percent: {
      kind: 'int',
      default: 90,
      doc:
        '`/readyz` reports not ready while the spool holds more than this percent of `spool.max_bytes` (a load ' +
        'balancer sends new traffic elsewhere before refusals start).',
    },
  },
} as const satisfies ObjectSpec;

/** path is resolved: the configured one, or cachelens-spool.db next to storage.path. */
export type SpoolConfig = ConfigOf<typeof spoolSpec>;

export function defaultSpoolPath(storagePath: string): string {
  return storagePath === ':memory:' ? ':memory:' : join(dirname(storagePath), 'cachelens-spool.db');
}

/** The spool file's default depends on where the store is. */
export function resolveSpool(spool: SpoolConfig, storagePath: string): void {
  if (!spool.path) spool.path = defaultSpoolPath(storagePath);
}
