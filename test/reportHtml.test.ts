import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { makeLatencyReport, makeReport, renderLatencyReport, renderReport } from '../src/cli/report.ts';
import { escapeHtml } from '../src/report/formatHtml.ts';
import { normalizeBody } from '../src/scrape/scrapeTarget.ts';
import { makeTarget } from '../src/scrape/target.ts';
import { LedgerStore } from '../src/store/ledgerStore.ts';
import { openDatabase } from '../src/store/openDatabase.ts';
import { ScrapeStore } from '../src/store/scrapeStore.ts';
import { buildStore, H0, requests } from './support/latencyDataset.ts';
import { buildDataset } from './support/reportDataset.ts';
import { decodePng, pixelStats } from './support/png.ts';
import { toolSkip } from './support/systemTool.ts';

const run = promisify(execFile);
const CHROMIUM = process.env.CHROMIUM ?? 'chromium';
const NO_CHROMIUM = toolSkip(CHROMIUM, ['--version'], 'chromium');

/** Renders a page in headless Chromium: its screenshot's pixel stats and every console message. */
async function render(htmlPath: string): Promise<{ stats: ReturnType<typeof pixelStats>; console: string[] }> {
  const dir = mkdtempSync(join(tmpdir(), 'cachelens-chromium-'));
  const png = join(dir, 'shot.png');
  let stderr: string;
  try {
    ({ stderr } = await run(
      CHROMIUM,
      [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        `--user-data-dir=${dir}`,
        '--enable-logging=stderr',
        '--v=0',
        `--screenshot=${png}`,
        '--window-size=1000,2400',
        `file://${htmlPath}`,
      ],
      { timeout: 90_000 },
    ));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT')
      throw new Error(`${CHROMIUM} not found: install Debian's chromium package (.ci/run does), or set CHROMIUM`);
    throw err;
  }
  // Console messages (console.* calls, uncaught errors, CSP refusals) are logged as "...:CONSOLE..." lines.
  const consoleLines = stderr.split('\n').filter((l) => /:CONSOLE[:(]/.test(l));
  return { stats: pixelStats(decodePng(readFileSync(png))), console: consoleLines };
}

const HOSTILE_MODEL = '<img src=x onerror=console.error(1)>';
const HOSTILE_TENANT = '</td><script>console.error("xss")</script>&amp;';

describe('report: HTML in headless Chromium', { timeout: 180_000, skip: NO_CHROMIUM }, () => {
  it('the checks can fail: a console error and a blank page are caught', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cachelens-html-'));
    const bad = join(dir, 'bad.html');
    writeFileSync(bad, '<!doctype html><body style="background:#fff"><script>console.error("control")</script></body>');
    const r = await render(bad);
    assert.equal(r.console.length, 1, r.console.join('\n'));
    assert.match(r.console[0]!, /control/);
    assert.ok(
      r.stats.nonBackground < 0.001 && r.stats.colors < 3,
      `a blank page reads as blank: ${JSON.stringify(r.stats)}`,
    );
  });

  it('renders the charts: a non-blank screenshot and no console errors', async () => {
    const data = buildDataset();
    const report = makeReport({
      db: data.dbPath,
      since: '2026-11-03',
      until: '2026-11-05',
      by: 'tenant',
      prices: data.pricesPath,
      tenantKeys: ['tenant.id'],
    });
    const html = renderReport(report, 'html');
    const file = join(data.dir, 'report.html');
    writeFileSync(file, html);
    const r = await render(file);
    assert.deepEqual(r.console, []);
    assert.ok(r.stats.colors > 20, `charts in several colours: ${JSON.stringify(r.stats)}`);
    assert.ok(r.stats.nonBackground > 0.03, `more than text on white: ${JSON.stringify(r.stats)}`);
    for (const caption of [
      'Prefix-cache hit ratio over time, per model',
      'Savings per model',
      'Savings per tenant',
      'KV-cache usage over time',
      'Queue depth over time',
    ])
      assert.ok(html.includes(caption), caption);
    assert.equal((html.match(/<polyline /g) ?? []).length, 6, 'a line per model in the three time charts');
  });

  it('the latency view: bars by cache-hit and KV bucket per model, no console errors, names escaped', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cachelens-html-latency-'));
    const db = join(dir, 'latency.db');
    // The hand-worked dataset, with a hostile model name on the qwen requests.
    buildStore(
      db,
      requests().map((r) => (r.model === 'qwen' ? { ...r, model: HOSTILE_MODEL } : r)),
    );
    const html = renderLatencyReport(
      makeLatencyReport({
        db,
        since: new Date(H0).toISOString(),
        until: new Date(H0 + 3 * 3_600_000).toISOString(),
        by: 'model',
        tenantKeys: ['tenant.id'],
      }),
      'html',
    );
    const file = join(dir, 'latency.html');
    writeFileSync(file, html);
    const r = await render(file);
    assert.deepEqual(r.console, [], 'nothing runs, nothing is refused');
    assert.ok(r.stats.nonBackground > 0.03, `bars, not a blank page: ${JSON.stringify(r.stats)}`);
    for (const caption of [
      'TTFT p50 by cache-hit share',
      'TTFT p95 by cache-hit share',
      'TTFT p50 by KV-cache usage at the window&#39;s start',
      'TTFT p95 by KV-cache usage at the window&#39;s start',
    ])
      assert.ok(html.includes(caption), caption);
    // llama: 3 cache-hit buckets, qwen: 3; llama: 3 KV buckets, qwen: 1; p50 and p95 of each
    assert.equal((html.match(/<rect /g) ?? []).length, 2 * (6 + 4));
    assert.ok(!html.includes(HOSTILE_MODEL) && html.includes(escapeHtml(HOSTILE_MODEL)), 'the model name is escaped');
    assert.match(html, /warm requests \(share ≥ 0\.5\) had TTFT p50/);
  });

  it('a short period draws lines: minute buckets, every point inside the chart', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cachelens-html-'));
    const dbPath = join(dir, 'short.db');
    const db = openDatabase(dbPath);
    const target = makeTarget('http://10.9.9.8:8000/metrics', {}, 'auto', {}, 'test');
    const body = (i: number) =>
      `vllm:prompt_tokens_total{model_name="m"} ${1000 * i}\nvllm:prompt_tokens_cached_total{model_name="m"} ` +
      `${400 * i + 10 * i * i}\nvllm:kv_cache_usage_perc{model_name="m"} ` +
      `${0.2 + i / 50}\nvllm:num_requests_waiting{model_name="m"} ${i % 4}\n`;
    // The demo's case: 20 minutes of scrapes, read with a 30-minute --since, inside one clock hour.
    const now = Date.parse('2026-11-03T10:40:00Z');
    const store = new ScrapeStore(db);
    for (let i = 0; i <= 20; i++)
      store.writeRound([
        {
          target,
          startedMs: now - 25 * 60_000 + i * 60_000,
          durationMs: 1,
          up: true,
          ...normalizeBody(target, body(i)),
        },
      ]);
    db.close();
    const report = makeReport({ db: dbPath, since: '30m', by: 'model', tenantKeys: [], nowMs: now, format: 'html' });
    assert.equal(report.series.bucket, 'minute');
    const html = renderReport(report, 'html');
    assert.equal((html.match(/<polyline /g) ?? []).length, 3, 'a line in each time chart');
    // Every plotted point lies inside the plot area (x from the left margin to the right edge).
    const xs = [...html.matchAll(/<circle cx="([\d.]+)"/g)].map((m) => Number(m[1]));
    assert.ok(xs.length >= 3 * 19, `${xs.length} points`);
    const svgWidth = Number(/<svg viewBox="0 0 (\d+)/.exec(html)![1]);
    assert.ok(
      xs.every((x) => x >= 64 && x <= svgWidth - 16),
      `points off the chart: ${xs.filter((x) => x < 64 || x > svgWidth - 16).slice(0, 5)}`,
    );
    const file = join(dir, 'short.html');
    writeFileSync(file, html);
    const r = await render(file);
    assert.deepEqual(r.console, []);
    assert.ok(r.stats.colors > 10, `lines in colour: ${JSON.stringify(r.stats)}`);
  });

  it('hostile model and tenant names are escaped: nothing runs, the names read as text', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cachelens-html-'));
    const dbPath = join(dir, 'hostile.db');
    const db = openDatabase(dbPath);
    const target = makeTarget('http://10.9.9.9:8000/metrics', {}, 'auto', {}, 'test');
    const body = (p: number) =>
      `vllm:prompt_tokens_total{model_name="${HOSTILE_MODEL}"} ` +
      `${p}\nvllm:prompt_tokens_cached_total{model_name="${HOSTILE_MODEL}"} ` +
      `${p / 2}\nvllm:kv_cache_usage_perc{model_name="${HOSTILE_MODEL}"} 0.5\n`;
    const t0 = Date.parse('2026-11-03T10:00:01Z');
    const store = new ScrapeStore(db);
    store.writeRound([{ target, startedMs: t0, durationMs: 1, up: true, ...normalizeBody(target, body(1000)) }]);
    store.writeRound([
      { target, startedMs: t0 + 60_000, durationMs: 1, up: true, ...normalizeBody(target, body(3000)) },
    ]);
    const targetId = db.prepare('SELECT id FROM targets').pluck().get() as number;
    new LedgerStore(db).write(
      [
        {
          traceId: 'x1',
          spanId: 's1',
          startMs: t0 + 1000,
          endMs: t0 + 2000,
          spanName: 'llm_request',
          serviceName: 'vllm',
          targetId,
          instance: '10.9.9.9:8000',
          model: HOSTILE_MODEL,
          match: 'resource',
          promptTokens: 500,
          completionTokens: 10,
          cachedTokens: 100,
          cachedTokensEstimate: null,
          windowComplete: true,
          latency: {},
          tenantJson: JSON.stringify({ 'tenant.id': HOSTILE_TENANT }),
          kvUsageStart: null,
          waitingStart: null,
        },
      ],
      [],
    );
    db.close();
    const prices = join(dir, 'prices.yaml');
    writeFileSync(prices, 'models:\n  - match: "*"\n    input: 1\n    cached_input: 0.1\n    output: 2\n');
    const report = makeReport({
      db: dbPath,
      since: '2026-11-03',
      until: '2026-11-04',
      by: 'tenant,model',
      prices,
      tenantKeys: ['tenant.id'],
    });
    assert.ok(
      report.rows.some((r) => r.key.model === HOSTILE_MODEL && r.key.tenant === HOSTILE_TENANT),
      'the names reached the report unchanged',
    );
    const html = renderReport(report, 'html');
    assert.ok(!html.includes(HOSTILE_MODEL) && !html.includes('<script>'), 'no raw markup from the data');
    assert.ok(html.includes('&lt;img src=x onerror=console.error(1)&gt;'));
    assert.ok(html.includes('&lt;/td&gt;&lt;script&gt;console.error(&quot;xss&quot;)&lt;/script&gt;&amp;amp;'));
    const file = join(dir, 'hostile.html');
    writeFileSync(file, html);
    const r = await render(file);
    assert.deepEqual(r.console, [], 'no script ran and nothing was fetched');
    const csv = renderReport(report, 'csv');
    assert.ok(csv.includes(`"${HOSTILE_TENANT.replace(/"/g, '""')}"`), 'CSV quotes the tenant and doubles its quotes');
  });
});
