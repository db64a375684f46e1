import type { Report } from './build.ts';
import { columnsFor, rowsWithTotal } from './columns.ts';

/** RFC 4180: CRLF records; a field with a comma, quote, CR or LF is quoted, quotes doubled. */
export function csvField(v: string): string {
  return /[",\r\n]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v;
}

/** One header row, then one record per report row and a final `total` record; raw numbers, no units. */
export function formatCsv(report: Report): string {
  const cols = columnsFor(report, true);
  const header = [...report.group_by, 'source', 'basis', 'cached_split_basis', ...cols.map((c) => c.field)];
  const records = rowsWithTotal(report).map((r) => [
    ...report.group_by.map((d) => ('total' in r ? '' : (r.key[d] ?? ''))),
    'total' in r ? 'total' : r.source,
    r.basis,
    r.cached_split_basis ?? '',
    ...cols.map((c) => {
      const v = r[c.field];
      return v === null ? '' : String(v);
    }),
  ]);
  return [header, ...records].map((rec) => rec.map(csvField).join(',')).join('\r\n') + '\r\n';
}
