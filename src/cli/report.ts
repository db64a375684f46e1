import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { Database } from 'better-sqlite3';
import { distinctStores, type MergeQuery, mergeStores } from '../store/mergedStores.ts';
import { openDatabase } from '../store/openDatabase.ts';
import { listMigrations } from '../store/migrate.ts';
import { loadFacts, loadLatencyFacts, modelsWithHitsInBlocks, targetInfo } from '../store/reportQueries.ts';
import { DAY_MS, HOUR_MS, MINUTE_MS } from '../store/rollups.ts';
import { buildReport, DIMENSIONS, type Dimension, type Report } from '../report/build.ts';
import { formatCsv } from '../report/formatCsv.ts';
import { formatHtml } from '../report/formatHtml.ts';
import { formatText } from '../report/formatText.ts';
import { formatLatencyCsv, formatLatencyHtml, formatLatencyText } from '../report/formatLatency.ts';
import { buildLatencyReport, type LatencyReport } from '../report/latency.ts';
import { parsePeriod } from '../report/period.ts';
import { loadPrices } from '../report/prices.ts';
import { UserError } from '../config/userError.ts';

export const REPORT_FORMATS = ['table', 'csv', 'json', 'html'] as const;
export const REPORT_VIEWS = ['cost', 'latency'] as const;
export type ReportFormat = (typeof REPORT_FORMATS)[number];

/** A mistake in how the report was asked for: one line with the fix, never a stack trace. */
export class ReportError extends UserError {
  constructor(message: string) {
    super(message, 'report');
  }
}

export interface ReportOptions {
  /** One store, or several (repeated --db, or a glob such as 'stores/*.db') reported as one. */
  db: string | readonly string[];
  since?: string;
  until?: string;
  by?: string;
  format?: string;
  prices?: string;
  /** cost (the default): the FinOps report; latency: what the cache buys in latency. */
  view?: string;
  tenantKeys: readonly string[];
  nowMs?: number;
}

export function parseBy(text: string | undefined): Dimension[] {
  if (text === undefined || text.trim() === '') return [];
  const dims = text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  for (const d of dims)
    if (!(DIMENSIONS as readonly string[]).includes(d))
      throw new ReportError(
        `--by ${d}: unknown; use one or more of ${DIMENSIONS.join(', ')}, comma-separated (--by model,day)`,
      );
  if (new Set(dims).size !== dims.length)
    throw new ReportError(`--by ${text}: a dimension is listed twice; list each once`);
  if (dims.includes('day') && dims.includes('hour'))
    throw new ReportError('--by day,hour: pick one of day or hour (an hour already names its day)');
  return dims as Dimension[];
}

function parseFormat(text: string | undefined): ReportFormat {
  const f = text ?? 'table';
  if (!(REPORT_FORMATS as readonly string[]).includes(f))
    throw new ReportError(`--format ${f}: use one of ${REPORT_FORMATS.join(', ')}`);
  return f as ReportFormat;
}

function openForReading(path: string): Database {
  if (path !== ':memory:' && !existsSync(path))
    throw new ReportError(`no database at ${path}; pass --db FILE, or set storage.path in the config the daemon uses`);
  // Read-only: a WAL reader sees the last commit and never blocks the daemon's writer.
  const db = openDatabase(path, { readonly: true });
  const version = db.pragma('user_version', { simple: true }) as number;
  const want = listMigrations().length;
  if (version < want) {
    db.close();
    throw new ReportError(
      `${path} is at schema version ${version}, reports need ${want}; ` +
        `run \`cachelens migrate --db ${path}\` (or start the daemon once)`,
    );
  }
  return db;
}

/**
 * The time bucket facts are read in: minutes for a period of up to 6 hours (so a short period's
 * charts draw lines, not one point off the left edge), hours up to 3 days or for --by hour, days
 * otherwise (fewer rows to read).
 */
export function chooseBucket(by: readonly Dimension[], fromMs: number, toMs: number): number {
  if (toMs - fromMs <= 6 * HOUR_MS) return MINUTE_MS;
  return by.includes('hour') || toMs - fromMs <= 3 * DAY_MS ? HOUR_MS : DAY_MS;
}

/** `--db` values: paths, or globs of file names (`stores/*.db`), expanded in order, each file once. */
export function expandStores(patterns: readonly string[]): string[] {
  const out: string[] = [];
  for (const p of patterns) {
    if (!/[*?[]/.test(basename(p))) {
      out.push(p);
      continue;
    }
    const dir = dirname(p);
    const re = new RegExp(
      `^${basename(p)
        .replace(/[.+^${}()|\\]/g, '\\$&')
        .replace(/\*/g, '.*')
        .replace(/\?/g, '.')}$`,
    );
    let names: string[] = [];
    try {
      names = readdirSync(dir).filter((n) => re.test(n) && !/-(wal|shm|journal)$/.test(n));
    } catch {
      // An unreadable folder matches nothing; said below.
    }
    if (!names.length) throw new ReportError(`--db ${p}: no file matches`);
    for (const n of names.sort()) out.push(join(dir, n));
  }
  return distinctStores(out);
}

function parseView(text: string | undefined): (typeof REPORT_VIEWS)[number] {
  const v = text ?? 'cost';
  if (!(REPORT_VIEWS as readonly string[]).includes(v))
    throw new ReportError(`--view ${v}: use one of ${REPORT_VIEWS.join(', ')}`);
  return v as (typeof REPORT_VIEWS)[number];
}

/** Opens the one store, or merges several into one in-memory store holding what the plan reads. */
function openStores(paths: readonly string[], q: MergeQuery): Database {
  if (paths.length === 1) return openForReading(paths[0]!);
  for (const p of paths) openForReading(p).close();
  return mergeStores(paths, q);
}

export function makeLatencyReport(opts: ReportOptions): LatencyReport {
  const nowMs = opts.nowMs ?? Date.now();
  const by = parseBy(opts.by);
  if (opts.prices) throw new ReportError('--prices: the latency view has no prices; leave it out, or use --view cost');
  const { fromMs, toMs } = parsePeriod(opts.since, opts.until, nowMs);
  const paths = typeof opts.db === 'string' ? [opts.db] : expandStores(opts.db);
  // The view has no time series of its own: facts are read per day (whole days from the daily rollups), per
  // hour only for --by hour.
  const bucketMs = by.includes('hour') ? HOUR_MS : DAY_MS;
  const ledgerPerTarget = by.includes('instance');
  const tenants = by.includes('tenant');
  const db = openStores(paths, { fromMs, toMs, bucketMs, ledger: false, ledgerPerTarget, latency: true, tenants });
  try {
    const facts = db
      .transaction(() =>
        loadLatencyFacts(db, {
          fromMs,
          toMs,
          bucketMs,
          tenantKeys: opts.tenantKeys,
          ledgerPerTarget,
          tenants,
          foldTime: !by.includes('day') && !by.includes('hour'),
        }),
      )
      .deferred();
    return buildLatencyReport({
      db: paths.join(', '),
      fromMs,
      toMs,
      by,
      facts: facts.latency,
      targets: targetInfo(db),
      nowMs,
    });
  } finally {
    db.close();
  }
}

export function renderLatencyReport(report: LatencyReport, format: string | undefined): string {
  switch (parseFormat(format)) {
    case 'csv':
      return formatLatencyCsv(report);
    case 'json':
      return `${JSON.stringify(report, null, 2)}\n`;
    case 'html':
      return formatLatencyHtml(report);
    default:
      return formatLatencyText(report);
  }
}

export function makeReport(opts: ReportOptions): Report {
  const nowMs = opts.nowMs ?? Date.now();
  const by = parseBy(opts.by);
  const { fromMs, toMs } = parsePeriod(opts.since, opts.until, nowMs);
  const prices = opts.prices ? loadPrices(opts.prices) : null;
  const paths = typeof opts.db === 'string' ? [opts.db] : expandStores(opts.db);
  const bucketMs = chooseBucket(by, fromMs, toMs);
  // The ledger only where tenant rows or the tenant chart need it, and per instance only where asked.
  const ledger = by.includes('tenant') || opts.format === 'html';
  const ledgerPerTarget = by.includes('instance') || (prices?.instances.length ?? 0) > 0;
  const db = openStores(paths, { fromMs, toMs, bucketMs, ledger, ledgerPerTarget });
  try {
    const read = db.transaction(() => ({
      ...loadFacts(db, { fromMs, toMs, bucketMs, tenantKeys: opts.tenantKeys, ledger, ledgerPerTarget }),
      hitsInBlocks: modelsWithHitsInBlocks(db, fromMs, toMs),
    }));
    const facts = read.deferred();
    return buildReport({
      db: paths.join(', '),
      fromMs,
      toMs,
      by,
      bucketMs,
      fleet: facts.fleet,
      ledger: facts.ledger,
      hitsInBlocks: facts.hitsInBlocks,
      targets: targetInfo(db),
      prices,
      nowMs,
    });
  } finally {
    db.close();
  }
}

export function renderReport(report: Report, format: string | undefined): string {
  switch (parseFormat(format)) {
    case 'csv':
      return formatCsv(report);
    case 'json':
      return JSON.stringify(report, null, 2) + '\n';
    case 'html':
      return formatHtml(report);
    default:
      return formatText(report);
  }
}

export function runReport(opts: ReportOptions & { out?: string }, io: { out: NodeJS.WritableStream }): number {
  parseFormat(opts.format);
  const text =
    parseView(opts.view) === 'latency'
      ? renderLatencyReport(makeLatencyReport(opts), opts.format)
      : renderReport(makeReport(opts), opts.format);
  if (opts.out) {
    try {
      writeFileSync(opts.out, text);
    } catch (err) {
      throw new ReportError(
        `cannot write ${opts.out}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}; pick a writable ` +
          `--out path`,
      );
    }
  } else io.out.write(text);
  return 0;
}
