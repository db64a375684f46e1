// One schema for every config key: its type, default, env override and doc line, a section per file
// in sections/. Validation, defaults, the Config type, `check-config` and the table in
// docs/configuration.md all read it.
import { enrichSpec } from './sections/enrich.ts';
import { exporterSpec } from './sections/exporter.ts';
import { ledgerSpec } from './sections/ledger.ts';
import { logSpec } from './sections/log.ts';
import { receiversSpec } from './sections/receivers.ts';
import { scrapeSpec } from './sections/scrape.ts';
import { spoolSpec } from './sections/spool.ts';
import { storageSpec } from './sections/storage.ts';
import { telemetrySpec } from './sections/telemetry.ts';
import type { ConfigOf, ObjectSpec } from './spec.ts';

export type { FieldKind, LeafSpec, ListSpec, ObjectSpec, Spec } from './spec.ts';
export { LOG_LEVELS } from './sections/log.ts';
export { PROFILE_NAMES } from './sections/scrape.ts';

export const CONFIG_SCHEMA = {
  kind: 'object',
  fields: {
    storage: storageSpec,
    scrape: scrapeSpec,
    receivers: receiversSpec,
    exporter: exporterSpec,
    spool: spoolSpec,
    enrich: enrichSpec,
    ledger: ledgerSpec,
    telemetry: telemetrySpec,
    log: logSpec,
  },
} as const satisfies ObjectSpec;

/** The validated config; durations in ms, sizes in bytes. Each part is given only its own section. */
export type Config = ConfigOf<typeof CONFIG_SCHEMA>;
