import type { ConfigOf, ObjectSpec } from '../spec.ts';
import { basename, dirname, extname, join } from 'node:path';

export const spoolSpec = {
  kind: 'object',
  doc: 'Durable queue between receivers and exporter (SQLite).',
  fields: {
    path: {
      kind: 'string',
      derived: true,
      env: 'CACHELENS_SPOOL_PATH',
      doc: 'Spool file. Default: `<store>-spool.db` next to `storage.path` (`cachelens-spool.db` for `cachelens.db`).',
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

/** path is resolved: the configured one, or `<store>-spool.db` next to storage.path. */
export type SpoolConfig = ConfigOf<typeof spoolSpec>;

/**
 * `<store>-spool.db` next to the store (`cachelens.db` → `cachelens-spool.db`): two daemons whose stores
 * share a folder never share a spool, where each would take and enrich the other's spans.
 */
export function defaultSpoolPath(storagePath: string): string {
  if (storagePath === ':memory:') return ':memory:';
  return join(dirname(storagePath), `${basename(storagePath, extname(storagePath))}-spool.db`);
}

/** The spool file's default depends on where the store is. */
export function resolveSpool(spool: SpoolConfig, storagePath: string): void {
  if (!spool.path) spool.path = defaultSpoolPath(storagePath);
}
