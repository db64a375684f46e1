import type { ConfigOf, ObjectSpec } from '../spec.ts';

export const storageSpec = {
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
      doc:
        'How long per-request ledger rows and trace tenants are kept; reports on older periods read the hourly/daily ' +
        'ledger rollups.',
    },
    compaction_delay: {
      kind: 'duration',
      default: '10m',
      doc:
        'How long after an hour ends it is aggregated for reports; ledger rows and tenants arriving later mark the ' +
        'hour for a redo.',
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
      doc:
        'Scrape results held in memory while the DB cannot be written (locked, full disk). Oldest are dropped first; ' +
        'counters stay exact because deltas are computed from stored state.',
    },
  },
} as const satisfies ObjectSpec;

export type StorageConfig = ConfigOf<typeof storageSpec>;
