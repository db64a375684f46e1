// The latency view on a dataset worked out by hand: requests with known TTFT, queue, prefill, e2e,
// cached shares and fleet state in every bucket. Each figure below is the nearest-rank percentile of
// the listed values, computed by hand; the view must give it within the sketches' stated 1 %.
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import BetterSqlite3 from 'better-sqlite3';
import { main } from '../src/cli/main.ts';
import { makeLatencyReport } from '../src/cli/report.ts';
import { HEADLINE_MIN_REQUESTS, LATENCY_SCHEMA, type LatencyReport, type LatencyRow } from '../src/report/latency.ts';
import { Compactor } from '../src/store/compaction.ts';
import { type LedgerRow, LedgerStore } from '../src/store/ledgerStore.ts';
import { listMigrations, migrate } from '../src/store/migrate.ts';
import { openDatabase } from '../src/store/openDatabase.ts';
import { loadLatencyFacts } from '../src/store/reportQueries.ts';
import { Retention } from '../src/store/retention.ts';
import { buildStore, H0, ledgerRows, requests } from './support/latencyDataset.ts';
import { toLegacySketches } from './support/legacySketches.ts';
import { memoryLogger } from './support/silentLogger.ts';

const HOUR = 3_600_000;
const TENANT_KEYS = ['tenant.id'];

const view = (db: string | string[], by: string): LatencyReport =>
  makeLatencyReport({
    db,
    since: new Date(H0).toISOString(),
    until: new Date(H0 + 3 * HOUR).toISOString(),
    by,
    tenantKeys: TENANT_KEYS,
    nowMs: H0 + 5 * HOUR,
  });

const row = (r: LatencyReport, key: Record<string, string>, family: string, bucket: string): LatencyRow => {
  const found = r.rows.find(
    (x) => x.family === family && x.bucket === bucket && Object.entries(key).every(([k, v]) => x.key[k as never] === v),
  );
  assert.ok(found, `no row ${JSON.stringify(key)} ${family} ${bucket}`);
  return found;
};

/** Within the sketches' 1 % relative accuracy. */
function near(actual: number | null, expected: number, what: string): void {
  assert.ok(actual !== null, `${what}: null`);
  assert.ok(Math.abs(actual - expected) <= 0.01 * expected + 1e-12, `${what}: ${actual}, expected ${expected} ± 1%`);
}

function checkHandWorked(r: LatencyReport): void {
  const llama = { model: 'llama' };
  // cache-hit share
  const cold = row(r, llama, 'cache_hit', '0-0.1');
  assert.equal(cold.requests, 30);
  assert.equal(cold.mean_prompt_tokens, 1000);
  near(cold.ttft_p50_s, 0.64, 'cold TTFT p50'); // rank 15 of 30
  near(cold.ttft_p95_s, 0.78, 'cold TTFT p95'); // rank 29 of 30
  near(cold.queue_p50_s, 0.1, 'cold queue p50');
  near(cold.queue_p95_s, 0.1, 'cold queue p95');
  near(cold.prefill_p50_s, 0.54, 'cold prefill p50');
  near(cold.e2e_p50_s, 3.4, 'cold e2e p50');
  near(cold.e2e_p95_s, 4.8, 'cold e2e p95');
  near(cold.prefill_s_per_1k_uncached_p50, 0.54, 'cold prefill per 1k uncached'); // 1,000 uncached tokens
  assert.deepEqual([cold.share_measured, cold.share_estimated], [30, 0]);

  const warm = row(r, llama, 'cache_hit', '0.9-1');
  assert.equal(warm.requests, 25);
  near(warm.ttft_p50_s, 0.22, 'warm TTFT p50'); // rank 13 of 25
  near(warm.ttft_p95_s, 0.33, 'warm TTFT p95'); // rank 24 of 25
  near(warm.queue_p95_s, 0.02, 'warm queue p95');
  near(warm.prefill_p50_s, 0.062, 'warm prefill p50');
  near(warm.prefill_s_per_1k_uncached_p50, 1.24, 'warm prefill per 1k uncached'); // 0.062 s / 50 tokens
  near(warm.e2e_p95_s, 1, 'warm e2e p95');
  assert.deepEqual([warm.share_measured, warm.share_estimated], [0, 25]);

  const mid = row(r, llama, 'cache_hit', '0.5-0.9');
  assert.equal(mid.requests, 5);
  assert.equal(mid.mean_prompt_tokens, 2000);
  near(mid.ttft_p50_s, 0.3, 'mid TTFT p50');
  near(mid.prefill_s_per_1k_uncached_p50, 0.25, 'mid prefill per 1k uncached'); // 0.2 s / 800 tokens
  const unknown = row(r, llama, 'cache_hit', 'unknown');
  assert.equal(unknown.requests, 2);
  assert.equal(unknown.mean_prompt_tokens, null);
  assert.equal(unknown.prefill_s_per_1k_uncached_p50, null);
  assert.deepEqual([unknown.share_measured, unknown.share_estimated], [0, 0]);
  assert.ok(!r.rows.some((x) => x.key.model === 'llama' && x.family === 'cache_hit' && x.bucket === '0.1-0.5'));

  // KV usage and requests waiting at the window's start
  near(row(r, llama, 'kv_usage', '>=0.9').ttft_p50_s, 0.64, 'KV ≥ 90% TTFT p50');
  assert.equal(row(r, llama, 'kv_usage', '>=0.9').requests, 30);
  near(row(r, llama, 'kv_usage', '<0.5').ttft_p95_s, 0.33, 'KV < 50% TTFT p95');
  assert.equal(row(r, llama, 'kv_usage', '0.5-0.9').requests, 5);
  assert.equal(row(r, llama, 'kv_usage', 'unknown').requests, 2);
  assert.equal(row(r, llama, 'waiting', '>=5').requests, 30);
  near(row(r, llama, 'waiting', '>=5').queue_p50_s, 0.1, 'waiting ≥ 5 queue p50');
  assert.equal(row(r, llama, 'waiting', '0').requests, 25);
  assert.equal(row(r, llama, 'waiting', '1-4').requests, 5);

  // bucket edges: 0.1 and 0.9 shares, KV 0.5 and 1 waiting open the upper bucket
  const qwen = { model: 'qwen' };
  assert.equal(row(r, qwen, 'cache_hit', '0-0.1').requests, 5);
  assert.equal(row(r, qwen, 'cache_hit', '0.1-0.5').requests, 1);
  assert.equal(row(r, qwen, 'cache_hit', '0.9-1').requests, 6);
  assert.equal(row(r, qwen, 'kv_usage', '0.5-0.9').requests, 12);
  assert.equal(row(r, qwen, 'waiting', '1-4').requests, 12);

  // Headline: warm (share ≥ 0.5: 25 + 5) against cold (30) for llama; qwen has 6 warm and 5 cold.
  const h = r.headlines.find((x) => x.model === 'llama')!;
  assert.equal(h.shown, true);
  assert.equal(h.warm.requests, 30);
  near(h.warm.ttft_p50_s, 0.24, 'warm headline TTFT p50'); // rank 15 of 0.10 … 0.34 and five 0.3
  near(h.cold.ttft_p50_s, 0.64, 'cold headline TTFT p50');
  assert.match(h.text, /warm requests \(share ≥ 0\.5\) had TTFT p50 0\.2[34]\d s against 0\.6[34]\d s for cold ones/);
  assert.match(h.text, /at similar prompt lengths \(mean 1167 and 1000 tokens\)/);
  assert.match(h.text, /correlation/);
  assert.doesNotMatch(h.text, /because|caused|saves/);
  const q = r.headlines.find((x) => x.model === 'qwen')!;
  assert.equal(q.shown, false);
  assert.match(q.text, new RegExp(`6 warm and 5 cold .*at least ${HEADLINE_MIN_REQUESTS}`));
}

describe('the latency view', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cachelens-latency-'));
  const raw = join(dir, 'raw.db');
  buildStore(raw);

  it('gives every hand-worked figure from raw ledger rows', () => {
    const r = view(raw, 'model');
    assert.equal(r.schema, LATENCY_SCHEMA);
    assert.match(r.accuracy, /1%/);
    checkHandWorked(r);
    assert.match(r.notes.join(' '), /2 of 74 requests have no KV usage/);
  });

  it('gives the same figures from the hourly and daily rollups, by tenant and by instance', async () => {
    const compacted = join(dir, 'compacted.db');
    copyFileSync(raw, compacted);
    const db = openDatabase(compacted);
    await new Compactor(db, { tenantKeys: TENANT_KEYS, graceMs: 0, log: memoryLogger().log }).runOnce(H0 + 26 * HOUR);
    assert.ok((db.prepare("SELECT count(*) FROM latency_rollup WHERE level = 'hour'").pluck().get() as number) > 0);
    // The ledger rows go: the rollups alone must answer.
    db.prepare('DELETE FROM request_ledger').run();
    db.close();
    checkHandWorked(view(compacted, 'model'));
    const byDay = makeLatencyReport({
      db: compacted,
      since: '2026-11-03',
      until: '2026-11-04',
      by: 'model,day',
      tenantKeys: TENANT_KEYS,
      nowMs: H0 + 26 * HOUR,
    });
    near(row(byDay, { model: 'llama', day: '2026-11-03' }, 'cache_hit', '0-0.1').ttft_p95_s, 0.78, 'by day');
    const tenants = view(compacted, 'tenant');
    assert.equal(row(tenants, { tenant: 'globex' }, 'cache_hit', '0.9-1').requests, 25);
    near(row(tenants, { tenant: 'globex' }, 'cache_hit', '0.9-1').ttft_p50_s, 0.22, 'globex warm');
    assert.equal(row(tenants, { tenant: 'acme' }, 'cache_hit', '0-0.1').requests, 35);
    const instances = view(compacted, 'instance');
    assert.equal(row(instances, { instance: '10.0.0.2:8000' }, 'cache_hit', '0.9-1').requests, 6);
    // The rollups keep instances or tenants, not both (that would be more rows than requests): a view by both
    // reads the ledger, and agrees with the rollups on what they both hold.
    const both = view(raw, 'instance,tenant');
    assert.equal(row(both, { instance: '10.0.0.1:8000', tenant: 'globex' }, 'cache_hit', '0.9-1').requests, 25);
    assert.equal(row(both, { instance: '10.0.0.2:8000', tenant: 'acme' }, 'cache_hit', '0.9-1').requests, 6);
    const db2 = openDatabase(compacted, { readonly: true });
    assert.deepEqual(
      db2.prepare("SELECT DISTINCT tenant FROM latency_rollup WHERE level IN ('hour', 'day')").pluck().all(),
      ['*'],
    );
    assert.deepEqual(
      db2.prepare("SELECT DISTINCT target_id FROM latency_rollup WHERE level IN ('hour_all', 'day_all')").pluck().all(),
      [0],
    );
    // by model or time: both folded, the fewest rows
    assert.deepEqual(
      db2
        .prepare(
          "SELECT DISTINCT target_id || ' ' || tenant FROM latency_rollup WHERE level IN ('hour_model', 'day_model')",
        )
        .pluck()
        .all(),
      ['0 *'],
    );
    db2.close();
  });

  it('reads the JSON sketches of a store written before the compact form, to the same figures', () => {
    const compacted = join(dir, 'compacted.db');
    const legacy = join(dir, 'legacy.db');
    copyFileSync(compacted, legacy);
    toLegacySketches(legacy);
    const db = openDatabase(legacy, { readonly: true });
    const first = db.prepare('SELECT ttft_sketch FROM latency_rollup WHERE ttft_sketch IS NOT NULL').pluck().get();
    assert.match(String(first), /^\[/);
    db.close();
    checkHandWorked(view(legacy, 'model'));
    for (const by of ['tenant', 'instance', 'day']) {
      const strip = (r: LatencyReport) => ({ ...r, db: '', generated_at: '' });
      assert.deepEqual(strip(view(legacy, by)), strip(view(compacted, by)), by);
    }
  });

  it('over an HA pair of stores (each trace in one) equals one store; the same store twice counts once', async () => {
    const reqs = requests();
    const a = join(dir, 'ha-a.db');
    const b = join(dir, 'ha-b.db');
    buildStore(a, reqs);
    buildStore(b, reqs);
    for (const [path, keep] of [
      [a, 0],
      [b, 1],
    ] as const) {
      const db = openDatabase(path);
      // the load-balancing exporter's split by trace id
      db.prepare('DELETE FROM request_ledger WHERE CAST(substr(trace_id, 2) AS INTEGER) % 2 <> ?').run(keep);
      if (keep === 0)
        await new Compactor(db, { tenantKeys: TENANT_KEYS, graceMs: 0, log: memoryLogger().log }).runOnce(
          H0 + 26 * HOUR,
        );
      db.close();
    }
    const strip = (r: LatencyReport) => ({ ...r, db: '' });
    assert.deepEqual(strip(view([a, b], 'model')), strip(view(raw, 'model')));
    assert.deepEqual(strip(view([raw, raw], 'model,tenant')), strip(view(raw, 'model,tenant')));
  });

  it('a view not by day or hour reads whole weeks, rebuilt when one of their days is redone', async () => {
    const DAY = 24 * HOUR;
    const NOV2 = Date.UTC(2026, 10, 2); // a Monday
    const weekly = join(dir, 'weekly.db');
    copyFileSync(raw, weekly);
    const db = openDatabase(weekly);
    const compactor = new Compactor(db, { tenantKeys: TENANT_KEYS, graceMs: 0, log: memoryLogger().log });
    await compactor.runOnce(NOV2 + 8 * DAY);
    assert.deepEqual(db.prepare('SELECT bucket_ms FROM latency_week_done').pluck().all(), [NOV2]);
    const q = {
      fromMs: NOV2 - DAY,
      toMs: NOV2 + 8 * DAY,
      bucketMs: DAY,
      tenantKeys: TENANT_KEYS,
      ledgerPerTarget: false,
      tenants: true,
      foldTime: true,
    };
    const sources = (x: typeof q) => loadLatencyFacts(db, x).segments.map((s) => s.source);
    assert.deepEqual(sources(q), ['day', 'week', 'day']);
    assert.deepEqual(sources({ ...q, foldTime: false }), ['day'], 'a view by day reads days');
    const weekView = (path: string, by: string) =>
      makeLatencyReport({
        db: path,
        since: new Date(NOV2 - DAY).toISOString(),
        until: new Date(NOV2 + 8 * DAY).toISOString(),
        by,
        tenantKeys: TENANT_KEYS,
        nowMs: NOV2 + 8 * DAY,
      });
    // Without its days, hours and ledger rows, the week alone gives every hand-worked figure.
    const weekOnly = join(dir, 'week-only.db');
    db.exec(`VACUUM INTO '${weekOnly}'`);
    const w = openDatabase(weekOnly);
    w.exec('DELETE FROM latency_rollup; DELETE FROM request_ledger');
    w.close();
    checkHandWorked(weekView(weekOnly, 'model'));
    const tenants = weekView(weekOnly, 'tenant');
    assert.equal(row(tenants, { tenant: 'globex' }, 'cache_hit', '0.9-1').requests, 25);
    near(row(tenants, { tenant: 'globex' }, 'cache_hit', '0.9-1').ttft_p50_s, 0.22, 'globex warm, from the week');
    assert.equal(row(weekView(weekOnly, 'instance'), { instance: '10.0.0.2:8000' }, 'cache_hit', '0.9-1').requests, 6);

    // A span of Nov 3 exported late: its day is read from hours and raw rows until redone, then the week again.
    const warm = () => row(weekView(weekly, 'tenant'), { tenant: 'globex' }, 'cache_hit', '0.9-1').requests;
    const warmGlobex = requests().filter(
      (r) => r.tenant === 'globex' && r.prompt !== null && (r.cached ?? r.estimate ?? 0) >= 0.9 * r.prompt,
    );
    const [late] = ledgerRows(warmGlobex, H0 + HOUR);
    new LedgerStore(db).write([{ ...late!, traceId: 'late', spanId: 'late' }], []);
    assert.equal(warm(), 26);
    assert.ok(!sources(q).includes('week'));
    await compactor.runOnce(NOV2 + 8 * DAY);
    assert.deepEqual(sources(q), ['day', 'week', 'day']);
    assert.equal(warm(), 26);
    // Retention past the week's start removes it, done mark included: the days left are read as days.
    await new Retention(db, DAY, 25 * DAY, memoryLogger().log).runOnce(NOV2 + 30 * DAY);
    assert.equal(db.prepare('SELECT count(*) FROM latency_week').pluck().get(), 0);
    assert.deepEqual(db.prepare('SELECT bucket_ms FROM latency_week_done').pluck().all(), []);
    db.close();
  });

  it('a store compacted before the view existed reads those hours raw, then builds them once', async () => {
    const old = join(dir, 'old.db');
    const four = join(dir, 'four');
    mkdirSync(four);
    for (const m of listMigrations().slice(0, 4))
      writeFileSync(join(four, `${String(m.version).padStart(3, '0')}_${m.name}.sql`), m.sql);
    const db4 = new BetterSqlite3(old);
    migrate(db4, four);
    db4
      .prepare(
        'INSERT INTO targets (id, url, instance, first_seen_ms, last_seen_ms) VALUES ' +
          "(1, 'http://10.0.0.1:8000/metrics', '10.0.0.1:8000', 0, 0)",
      )
      .run();
    // A row as the old ledger wrote it (no fleet state columns), in an hour already compacted.
    db4
      .prepare(
        `INSERT INTO request_ledger (start_ms, trace_id, span_id, end_ms, span_name, target_id, instance, model, match,
        prompt_tokens, cached_tokens, window_complete, latency_ttft_s) VALUES (?, 'old', 's', ?, 'llm_request', 1,
        '10.0.0.1:8000', 'llama', 'resource', 1000, 950, 1, 0.25)`,
      )
      .run(H0 + 1000, H0 + 2000);
    db4.prepare("INSERT INTO compaction VALUES ('hour', ?), ('day', ?)").run(H0 + HOUR, Date.UTC(2026, 10, 3));
    db4.close();
    const db = openDatabase(old); // migrates to the latest version
    assert.deepEqual(db.prepare('SELECT bucket_ms FROM latency_backfill').pluck().all(), [H0]);
    assert.deepEqual(
      db.prepare('SELECT kv_usage_start, waiting_start, latency_ttft_s FROM request_ledger').raw().all(),
      [[null, null, 0.25]],
      'old rows stay readable',
    );
    db.close();
    const before = view(old, 'model');
    assert.equal(row(before, { model: 'llama' }, 'cache_hit', '0.9-1').requests, 1);
    assert.equal(row(before, { model: 'llama' }, 'kv_usage', 'unknown').requests, 1);
    const rw = openDatabase(old);
    await new Compactor(rw, { tenantKeys: TENANT_KEYS, graceMs: 0, log: memoryLogger().log }).runOnce(H0 + 2 * HOUR);
    assert.equal(rw.prepare('SELECT count(*) FROM latency_backfill').pluck().get(), 0);
    assert.ok((rw.prepare('SELECT count(*) FROM latency_rollup WHERE bucket_ms = ?').pluck().get(H0) as number) > 0);
    rw.close();
    assert.deepEqual({ ...view(old, 'model'), db: '' }, { ...before, db: '' });
  });

  it('through the CLI: table, CSV, JSON and HTML; a wrong view or --prices is one clear line', async () => {
    const run = async (...args: string[]) => {
      let out = '';
      let err = '';
      const code = await main(
        [
          'report',
          '--view',
          'latency',
          '--db',
          raw,
          '--since',
          '2026-11-03T10:00:00Z',
          '--until',
          '2026-11-03T13:00:00Z',
          ...args,
        ],
        {
          out: { write: (s: string) => ((out += s), true) } as never,
          err: { write: (s: string) => ((err += s), true) } as never,
        },
      );
      return { code, out, err };
    };
    const table = await run('--by', 'model');
    assert.equal(table.code, 0);
    assert.match(table.out, /TTFT p50/);
    assert.match(table.out, /llama +cache-hit share +0-0\.1 +30 +1\.00k +0\.6[34]\d/);
    assert.match(table.out, /warm requests/);
    const csv = await run('--by', 'model', '--format', 'csv');
    const [header, ...records] = csv.out.trimEnd().split('\r\n');
    assert.equal(
      header,
      'model,family,bucket,requests,mean_prompt_tokens,ttft_p50_s,ttft_p95_s,queue_p50_s,queue_p95_s,prefill_p50_s,' +
        'e2e_p50_s,e2e_p95_s,prefill_s_per_1k_uncached_p50,share_measured,share_estimated',
    );
    assert.ok(records.some((r) => /^llama,cache_hit,0-0\.1,30,1000,0\.6[34]/.test(r)));
    const json = JSON.parse((await run('--format', 'json')).out) as LatencyReport;
    assert.equal(json.schema, 'cachelens.latency/v1');
    assert.equal(json.rows.find((r) => r.family === 'cache_hit' && r.bucket === '0-0.1')!.requests, 35);
    const out = join(dir, 'latency.html');
    assert.equal((await run('--format', 'html', '--out', out)).code, 0);
    const html = readFileSync(out, 'utf8');
    assert.match(html, /TTFT p50 by cache-hit share/);
    assert.match(html, /llama · 0\.9-1/);
    // --view given twice: the last wins, as with every option
    await assert.rejects(run('--view', 'speed'), /--view speed: use one of cost, latency/);
    await assert.rejects(run('--prices', 'p.yaml'), /--prices: the latency view has no prices/);
  });
});
