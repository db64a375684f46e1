import { formatTable } from './formatTable.ts';
import type { Report, ReportRow } from './build.ts';
import { columnsFor, rowsWithTotal, showsBasis, type ColumnKind } from './columns.ts';

/** 1234 → 1.23k, 5_600_000 → 5.60M: three significant digits, enough to compare rows at a glance. */
export function humanNumber(n: number): string {
  const abs = Math.abs(n);
  if (abs < 1000) return Number.isInteger(n) ? String(n) : n.toFixed(abs < 10 ? 2 : 1);
  for (const [div, suffix] of [
    [1e12, 'T'],
    [1e9, 'B'],
    [1e6, 'M'],
    [1e3, 'k'],
  ] as const) {
    if (abs >= div) {
      const v = n / div;
      return `${Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 10 ? v.toFixed(1) : v.toFixed(2)}${suffix}`;
    }
  }
  return String(n);
}

export function formatMoney(n: number, currency: string): string {
  const fixed = Math.abs(n)
    .toFixed(2)
    .replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  const sign = n < 0 ? '-' : '';
  return currency === 'USD' ? `${sign}$${fixed}` : `${sign}${fixed} ${currency}`;
}

export function formatCell(v: number | null, kind: ColumnKind, currency: string | null): string {
  if (v === null) return '–';
  switch (kind) {
    case 'ratio':
      return `${(v * 100).toFixed(1)}%`;
    case 'depth':
      return v.toFixed(1);
    case 'money':
      return formatMoney(v, currency ?? 'USD');
    default:
      return humanNumber(Math.round(v));
  }
}

function basisCell(r: ReportRow): string {
  if (r.source !== 'tenant') return r.source === 'unattributed' ? 'remainder' : 'exact';
  const m = r.cached_measured_tokens ?? 0;
  const a = r.cached_allocated_tokens ?? 0;
  if (r.basis === 'mixed') return `mixed (${Math.round((100 * m) / (m + a))}% measured)`;
  return r.basis;
}

/** The terminal table: aligned columns, units in the headers, human-sized numbers, then the notes. */
export function formatText(report: Report): string {
  const cols = columnsFor(report);
  const dims = report.group_by;
  const header = [...dims, ...(showsBasis(report) ? ['basis'] : []), ...cols.map((c) => c.header)];
  const body = rowsWithTotal(report).map((r) => [
    ...dims.map((d, i) => ('total' in r ? (i === 0 ? 'TOTAL' : '') : (r.key[d] ?? ''))),
    ...(showsBasis(report) ? ['total' in r ? 'exact' : basisCell(r)] : []),
    ...cols.map((c) => formatCell(r[c.field], c.kind, report.currency)),
  ]);
  if (!dims.length) body.forEach((row) => row.unshift('TOTAL'));
  const first = dims.length ? 0 : 1;
  const numeric = header.map((_, i) => i).filter((i) => i >= dims.length + first + (showsBasis(report) ? 1 : 0));
  const out = [
    `cachelens report  ${report.period.since} → ${report.period.until}` +
      (dims.length ? `  by ${dims.join(', ')}` : ''),
  ];
  if (!report.rows.length && !report.totals.requests && !report.totals.prompt_tokens) out.push('', '(no data)');
  else out.push('', formatTable(dims.length ? header : ['', ...header], body, numeric).trimEnd());
  if (report.reconciliation) {
    const r = report.reconciliation;
    const f = (n: number | null) => (n === null ? '–' : humanNumber(Math.round(n)));
    out.push(
      '',
      `cached prompt tokens: fleet ${f(r.fleet_cached_prompt_tokens)} = tenants measured ${f(r.tenant_measured)} + ` +
        `allocated ${f(r.tenant_allocated)} + unattributed ${f(r.unattributed)}`,
    );
  }
  if (report.notes.length) out.push('', ...report.notes.map((n) => `note: ${n}`));
  return out.join('\n') + '\n';
}
