import type { Report, SeriesPoint } from './build.ts';
import { columnsFor, hasTiers, rowsWithTotal, showsBasis } from './columns.ts';
import { formatCell, formatMoney, humanNumber } from './formatText.ts';

// One self-contained page: inline CSS and SVG, no script, and a CSP that forbids every fetch, so it
// opens offline and a hostile model or tenant name can neither run nor phone home.

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
export const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => ESCAPES[c]!);

const PALETTE = ['#2563eb', '#dc2626', '#16a34a', '#d97706', '#7c3aed', '#0891b2', '#db2777', '#4b5563'];
const W = 760;
const H = 260;
const M = { l: 64, r: 16, t: 16, b: 40 };

interface Line {
  name: string;
  points: Array<[number, number | null]>;
}

function lineChart(
  title: string,
  lines: Line[],
  fromMs: number,
  toMs: number,
  yFormat: (v: number) => string,
  yMaxHint?: number,
): string {
  const values = lines.flatMap((l) => l.points.map((p) => p[1]).filter((v): v is number => v !== null));
  if (!values.length)
    return `<figure><figcaption>${escapeHtml(title)}</figcaption><p class="empty">No data in this period.</p></figure>`;
  const yMax = Math.max(yMaxHint ?? 0, ...values) || 1;
  const x = (t: number) => M.l + ((t - fromMs) / Math.max(1, toMs - fromMs)) * (W - M.l - M.r);
  const y = (v: number) => H - M.b - (v / yMax) * (H - M.t - M.b);
  const parts: string[] = [];
  for (let i = 0; i <= 4; i++) {
    const v = (yMax * i) / 4;
    parts.push(`<line class="grid" x1="${M.l}" x2="${W - M.r}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}"/>`);
    parts.push(
      `<text class="tick" x="${M.l - 6}" y="${(y(v) + 4).toFixed(1)}" ` +
        `text-anchor="end">${escapeHtml(yFormat(v))}</text>`,
    );
  }
  for (let i = 0; i <= 4; i++) {
    const t = fromMs + ((toMs - fromMs) * i) / 4;
    const label = new Date(t)
      .toISOString()
      .slice(5, toMs - fromMs > 3 * 86_400_000 ? 10 : 16)
      .replace('T', ' ');
    parts.push(
      `<text class="tick" x="${x(t).toFixed(1)}" y="${H - M.b + 18}" ` +
        `text-anchor="${i === 0 ? 'start' : i === 4 ? 'end' : 'middle'}">${escapeHtml(label)}</text>`,
    );
  }
  lines.forEach((l, i) => {
    const color = PALETTE[i % PALETTE.length]!;
    let run: string[] = [];
    const flush = () => {
      if (run.length > 1)
        parts.push(`<polyline fill="none" stroke="${color}" stroke-width="2" points="${run.join(' ')}"/>`);
      run = [];
    };
    for (const [t, v] of l.points) {
      if (v === null) {
        flush();
        continue;
      }
      const pt = `${x(t).toFixed(1)},${y(v).toFixed(1)}`;
      run.push(pt);
      parts.push(
        `<circle cx="${x(t).toFixed(1)}" cy="${y(v).toFixed(1)}" r="2.5" fill="${color}">` +
          `<title>${escapeHtml(`${l.name} ${new Date(t).toISOString()}: ${yFormat(v)}`)}</title></circle>`,
      );
    }
    flush();
  });
  parts.push(`<line class="axis" x1="${M.l}" x2="${W - M.r}" y1="${H - M.b}" y2="${H - M.b}"/>`);
  const legend = lines
    .map((l, i) => `<span><i style="background:${PALETTE[i % PALETTE.length]}"></i>${escapeHtml(l.name)}</span>`)
    .join('');
  return `${svgFigure(title, H, parts)}<div class="legend">${legend}</div></figure>`;
}

export function barChart(
  title: string,
  bars: Array<{ name: string; value: number | null }>,
  format: (v: number) => string,
  emptyHint: string,
): string {
  const shown = bars.filter((b): b is { name: string; value: number } => b.value !== null).slice(0, 20);
  if (!shown.length)
    return (
      `<figure><figcaption>${escapeHtml(title)}</figcaption><p class="empty">${escapeHtml(emptyHint)}` + '</p></figure>'
    );
  const rowH = 24;
  const h = shown.length * rowH + 8;
  const labelW = 220;
  const max = Math.max(...shown.map((b) => Math.abs(b.value))) || 1;
  const parts = shown.map((b, i) => {
    const w = (Math.abs(b.value) / max) * (W - labelW - 120);
    const yy = 4 + i * rowH;
    const color = b.value < 0 ? '#dc2626' : PALETTE[0];
    const label = b.name.length > 34 ? `${b.name.slice(0, 33)}…` : b.name;
    return (
      `<text class="tick" x="${labelW - 8}" y="${yy + 15}" text-anchor="end">${escapeHtml(label)}</text>` +
      `<rect x="${labelW}" y="${yy + 3}" width="${Math.max(1, w).toFixed(1)}" height="${rowH - 8}" fill="${color}">` +
      `<title>${escapeHtml(`${b.name}: ${format(b.value)}`)}</title></rect>` +
      `<text class="tick" x="${(labelW + Math.max(1, w) + 6).toFixed(1)}" y="${yy + 15}">` +
      `${escapeHtml(format(b.value))}</text>`
    );
  });
  return `${svgFigure(title, h, parts)}</figure>`;
}

/** A figure's caption and its chart; the caller closes the figure (after a legend, if any). */
function svgFigure(title: string, height: number, parts: string[]): string {
  const t = escapeHtml(title);
  return (
    `<figure><figcaption>${t}</figcaption>` +
    `<svg viewBox="0 0 ${W} ${height}" width="${W}" height="${height}" role="img" aria-label="${t}">` +
    `${parts.join('')}</svg>`
  );
}

const BUCKET_MS = { minute: 60_000, hour: 3_600_000, day: 86_400_000 } as const;

/**
 * A point sits at the middle of its bucket, kept inside the period: a bucket that starts before the
 * period (an hour bucket of a 10-minute report) would otherwise fall off the chart's left edge.
 */
function linesBy(
  points: SeriesPoint[],
  field:
    | 'cache_hit_ratio'
    | 'kv_cache_usage_mean'
    | 'queue_depth_mean'
    | 'local_cached_prompt_tokens'
    | 'external_cached_prompt_tokens',
  bucket: keyof typeof BUCKET_MS,
  fromMs: number,
  toMs: number,
): Line[] {
  const byModel = new Map<string, Array<[number, number | null]>>();
  for (const p of points) {
    const list = byModel.get(p.model) ?? [];
    list.push([Math.min(toMs, Math.max(fromMs, Date.parse(p.t) + BUCKET_MS[bucket] / 2)), p[field]]);
    byModel.set(p.model, list);
  }
  return [...byModel].sort((a, b) => (a[0] < b[0] ? -1 : 1)).map(([name, pts]) => ({ name, points: pts }));
}

export const CSS = [
  'body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#111;background:#fff}',
  'h1{font-size:20px;margin:0 0 4px}.meta{color:#555;margin-bottom:16px}.notes li{color:#92400e}',
  'figure{margin:16px 0}figcaption{font-weight:600;margin-bottom:4px}',
  'svg{background:#fafafa;border:1px solid #e5e7eb}.grid{stroke:#e5e7eb}.axis{stroke:#9ca3af}',
  '.tick{font-size:11px;fill:#4b5563}.legend span{margin-right:14px;font-size:12px}',
  '.legend i{display:inline-block;width:10px;height:10px;margin-right:4px;vertical-align:middle}',
  '.empty{color:#6b7280;font-style:italic}table{border-collapse:collapse;font-size:12px;margin-top:8px}',
  'th,td{padding:3px 8px;border-bottom:1px solid #e5e7eb;white-space:nowrap}',
  'td.n{text-align:right;font-variant-numeric:tabular-nums}',
  'tr.total td{font-weight:600;border-top:2px solid #9ca3af}.grid2{display:flex;flex-wrap:wrap;gap:0 24px}',
].join('');

export function formatHtml(report: Report): string {
  const fromMs = Date.parse(report.period.since);
  const toMs = Date.parse(report.period.until);
  const pts = report.series.points;
  const money = (v: number) => formatMoney(v, report.currency ?? 'USD');
  const noPrices = 'No prices: pass --prices prices.yaml to see savings.';
  const charts = [
    lineChart(
      'Prefix-cache hit ratio over time, per model',
      linesBy(pts, 'cache_hit_ratio', report.series.bucket, fromMs, toMs),
      fromMs,
      toMs,
      (v) => `${(v * 100).toFixed(0)}%`,
      1,
    ),
    barChart(
      'Savings per model',
      report.savings_by_model.map((s) => ({ name: s.model, value: s.savings })),
      money,
      report.currency ? 'No priced tokens in this period.' : noPrices,
    ),
    barChart(
      'Savings per tenant',
      report.savings_by_tenant.map((s) => ({ name: s.tenant, value: s.savings })),
      money,
      report.currency ? 'No request spans with tenants in this period.' : noPrices,
    ),
    lineChart(
      'KV-cache usage over time (mean, per model)',
      linesBy(pts, 'kv_cache_usage_mean', report.series.bucket, fromMs, toMs),
      fromMs,
      toMs,
      (v) => `${(v * 100).toFixed(0)}%`,
      1,
    ),
    lineChart(
      'Queue depth over time (requests waiting per instance, mean, per model)',
      linesBy(pts, 'queue_depth_mean', report.series.bucket, fromMs, toMs),
      fromMs,
      toMs,
      (v) => humanNumber(Number(v.toFixed(1))),
    ),
  ];
  // Tiered KV caches: only where a server said where its cached tokens came from.
  if (hasTiers(report))
    charts.push(
      lineChart(
        'Cached prompt tokens over time: local prefix cache and external KV tier, per model',
        [
          ...linesBy(pts, 'local_cached_prompt_tokens', report.series.bucket, fromMs, toMs).map((l) => ({
            ...l,
            name: `${l.name} · local`,
          })),
          ...linesBy(pts, 'external_cached_prompt_tokens', report.series.bucket, fromMs, toMs).map((l) => ({
            ...l,
            name: `${l.name} · external`,
          })),
        ],
        fromMs,
        toMs,
        (v) => humanNumber(Math.round(v)),
      ),
    );
  const cols = columnsFor(report);
  const dims = report.group_by;
  const basis = showsBasis(report);
  const headers = [...(dims.length ? dims : ['']), ...(basis ? ['basis'] : []), ...cols.map((c) => c.header)];
  const head = `<tr>${headers.map((d) => `<th>${escapeHtml(d)}</th>`).join('')}</tr>`;
  const body = rowsWithTotal(report)
    .map((r) => {
      const keys = dims.length
        ? dims.map((d, i) => ('total' in r ? (i === 0 ? 'TOTAL' : '') : (r.key[d] ?? '')))
        : ['TOTAL'];
      const cells = [...keys, ...(basis ? ['total' in r ? 'exact' : r.basis] : [])]
        .map((k) => `<td>${escapeHtml(k)}</td>`)
        .join('');
      const values = cols.map(
        (c) => `<td class="n">${escapeHtml(formatCell(r[c.field], c.kind, report.currency))}</td>`,
      );
      return `<tr${'total' in r ? ' class="total"' : ''}>${cells}${values.join('')}</tr>`;
    })
    .join('\n');
  const notes = report.notes.length
    ? `<ul class="notes">${report.notes.map((n) => `<li>${escapeHtml(n)}</li>`).join('')}</ul>`
    : '';
  const meta = [
    `${escapeHtml(report.period.since)} → ${escapeHtml(report.period.until)}`,
    ...(dims.length ? [`by ${escapeHtml(dims.join(', '))}`] : []),
    escapeHtml(report.db),
    `generated ${escapeHtml(report.generated_at)}`,
  ].join(' · ');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>cachelens report ${escapeHtml(report.period.since)} to ${escapeHtml(report.period.until)}</title>
<style>${CSS}</style></head><body>
<h1>cachelens FinOps report</h1>
<div class="meta">${meta}</div>
${notes}
<div class="grid2">${charts.join('\n')}</div>
<table><thead>${head}</thead><tbody>
${body}
</tbody></table>
</body></html>
`;
}
