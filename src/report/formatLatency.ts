import { csvField } from './formatCsv.ts';
import { barChart, CSS, escapeHtml } from './formatHtml.ts';
import { formatTable } from './formatTable.ts';
import { humanNumber } from './formatText.ts';
import type { LatencyReport, LatencyRow } from './latency.ts';

type Field = Exclude<keyof LatencyRow, 'key' | 'family' | 'bucket'>;

/** The view's figures in order: JSON/CSV field, table header, and whether it is a time in seconds. */
const COLUMNS: Array<{ field: Field; header: string; seconds: boolean }> = [
  { field: 'requests', header: 'requests', seconds: false },
  { field: 'mean_prompt_tokens', header: 'prompt mean', seconds: false },
  { field: 'ttft_p50_s', header: 'TTFT p50', seconds: true },
  { field: 'ttft_p95_s', header: 'TTFT p95', seconds: true },
  { field: 'queue_p50_s', header: 'queue p50', seconds: true },
  { field: 'queue_p95_s', header: 'queue p95', seconds: true },
  { field: 'prefill_p50_s', header: 'prefill p50', seconds: true },
  { field: 'e2e_p50_s', header: 'e2e p50', seconds: true },
  { field: 'e2e_p95_s', header: 'e2e p95', seconds: true },
  { field: 'prefill_s_per_1k_uncached_p50', header: 'prefill s/1k uncached p50', seconds: true },
  { field: 'share_measured', header: 'share measured', seconds: false },
  { field: 'share_estimated', header: 'share estimated', seconds: false },
];

const FAMILY_LABEL = { cache_hit: 'cache-hit share', kv_usage: 'KV usage at start', waiting: 'waiting at start' };

function cell(v: number | null, seconds: boolean): string {
  if (v === null) return '–';
  if (seconds) return v < 10 ? v.toFixed(3) : v.toFixed(1);
  return humanNumber(Number.isInteger(v) ? v : Number(v.toFixed(1)));
}

export function formatLatencyText(r: LatencyReport): string {
  const dims = r.group_by;
  const header = [...dims, 'family', 'bucket', ...COLUMNS.map((c) => c.header)];
  const rows = r.rows.map((row) => [
    ...dims.map((d) => row.key[d] ?? ''),
    FAMILY_LABEL[row.family],
    row.bucket,
    ...COLUMNS.map((c) => cell(row[c.field], c.seconds)),
  ]);
  const right = COLUMNS.map((_, i) => dims.length + 2 + i);
  const lines = [
    `cachelens latency view  ${r.period.since} → ${r.period.until}${dims.length ? `  by ${dims.join(', ')}` : ''}`,
    `store: ${r.db}`,
    'times in seconds; share = cached prompt tokens / prompt tokens (measured, else estimated from the window)',
    '',
    formatTable(header, rows, right).trimEnd(),
    '',
    ...r.headlines.map((h) => h.text),
    ...r.notes.map((n) => `note: ${n}`),
    `accuracy: ${r.accuracy}`,
  ];
  return `${lines.join('\n')}\n`;
}

/** One record per row; raw numbers in seconds and tokens, empty where unknown. */
export function formatLatencyCsv(r: LatencyReport): string {
  const header = [...r.group_by, 'family', 'bucket', ...COLUMNS.map((c) => c.field)];
  const records = r.rows.map((row) => [
    ...r.group_by.map((d) => row.key[d] ?? ''),
    row.family,
    row.bucket,
    ...COLUMNS.map((c) => {
      const v = row[c.field];
      return v === null ? '' : String(v);
    }),
  ]);
  return `${[header, ...records].map((rec) => rec.map(csvField).join(',')).join('\r\n')}\r\n`;
}

/** Bars per model and bucket of one family (the unknown bucket left out). */
function perModel(r: LatencyReport, family: LatencyRow['family'], field: Field) {
  return r.per_model
    .filter((row) => row.family === family && row.bucket !== 'unknown')
    .map((row) => ({ name: `${row.key.model} · ${row.bucket}`, value: row[field] }));
}

export function formatLatencyHtml(r: LatencyReport): string {
  const s = (v: number) => `${v < 1 ? v.toFixed(3) : v.toFixed(2)} s`;
  const empty = 'No request spans with a TTFT in this period.';
  const charts = [
    barChart('TTFT p50 by cache-hit share', perModel(r, 'cache_hit', 'ttft_p50_s'), s, empty),
    barChart('TTFT p95 by cache-hit share', perModel(r, 'cache_hit', 'ttft_p95_s'), s, empty),
    barChart("TTFT p50 by KV-cache usage at the window's start", perModel(r, 'kv_usage', 'ttft_p50_s'), s, empty),
    barChart("TTFT p95 by KV-cache usage at the window's start", perModel(r, 'kv_usage', 'ttft_p95_s'), s, empty),
  ];
  const dims = r.group_by;
  const head = `<tr>${[...dims, 'family', 'bucket', ...COLUMNS.map((c) => c.header)]
    .map((h) => `<th>${escapeHtml(h)}</th>`)
    .join('')}</tr>`;
  const body = r.rows
    .map(
      (row) =>
        `<tr>${[...dims.map((d) => row.key[d] ?? ''), FAMILY_LABEL[row.family], row.bucket]
          .map((k) => `<td>${escapeHtml(k)}</td>`)
          .join(
            '',
          )}${COLUMNS.map((c) => `<td class="n">${escapeHtml(cell(row[c.field], c.seconds))}</td>`).join('')}</tr>`,
    )
    .join('\n');
  const headlines = r.headlines.length
    ? `<ul class="headlines">${r.headlines.map((h) => `<li>${escapeHtml(h.text)}</li>`).join('')}</ul>`
    : '';
  const notes = r.notes.length
    ? `<ul class="notes">${r.notes.map((n) => `<li>${escapeHtml(n)}</li>`).join('')}</ul>`
    : '';
  const meta = [
    `${escapeHtml(r.period.since)} → ${escapeHtml(r.period.until)}`,
    ...(dims.length ? [`by ${escapeHtml(dims.join(', '))}`] : []),
    escapeHtml(r.db),
    `generated ${escapeHtml(r.generated_at)}`,
  ].join(' · ');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>cachelens latency ${escapeHtml(r.period.since)} to ${escapeHtml(r.period.until)}</title>
<style>${CSS}</style></head><body>
<h1>cachelens latency view</h1>
<div class="meta">${meta}</div>
${headlines}
${notes}
<div class="grid2">${charts.join('\n')}</div>
<table><thead>${head}</thead><tbody>
${body}
</tbody></table>
<p class="meta">${escapeHtml(r.accuracy)}</p>
</body></html>
`;
}
