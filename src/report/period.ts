import { UserError } from '../config/userError.ts';
// --since / --until: a duration back from now (7d, 12h, 90m, 2w), a UTC date (2026-11-01, meaning its
// midnight), or an ISO timestamp. --until is exclusive.

export class PeriodError extends UserError {
  constructor(message: string) {
    super(message, 'report');
  }
}

const RELATIVE_RE = /^(\d+(?:\.\d+)?)(m|h|d|w)$/;
const UNIT_MS = { m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 } as const;
const DATE_RE = /^\d{4}-\d{2}-\d{2}$/;
const TIMESTAMP_RE = /^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?$/;

export function parseInstant(text: string, nowMs: number, flag: string): number {
  const s = text.trim();
  if (s === 'now') return nowMs;
  const rel = RELATIVE_RE.exec(s);
  if (rel) return nowMs - Number(rel[1]) * UNIT_MS[rel[2] as keyof typeof UNIT_MS];
  let ms = NaN;
  if (DATE_RE.test(s)) ms = Date.parse(`${s}T00:00:00Z`);
  // A timestamp without a zone is UTC, like every time the report prints.
  else if (TIMESTAMP_RE.test(s))
    ms = Date.parse(/Z$|[+-]\d{2}:?\d{2}$/.test(s) ? s.replace(' ', 'T') : `${s.replace(' ', 'T')}Z`);
  if (!Number.isFinite(ms))
    throw new PeriodError(
      `${flag} ${JSON.stringify(text)}: not a time; use a duration back from now (7d, 12h, 30m, 2w), a UTC date ` +
        `(2026-11-01) or an ISO timestamp (2026-11-01T12:00:00Z)`,
    );
  return ms;
}

export function parsePeriod(
  since: string | undefined,
  until: string | undefined,
  nowMs: number,
): { fromMs: number; toMs: number } {
  const toMs = until === undefined ? nowMs : parseInstant(until, nowMs, '--until');
  const fromMs = parseInstant(since ?? '7d', nowMs, '--since');
  if (fromMs >= toMs)
    throw new PeriodError(
      `--since ${new Date(fromMs).toISOString()} is not before --until ${new Date(toMs).toISOString()}; pick a ` +
        `--since earlier than --until`,
    );
  return { fromMs, toMs };
}
