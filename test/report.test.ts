import assert from 'node:assert/strict';
import { writeFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { main, runCli } from '../src/cli/main.ts';
import { makeReport } from '../src/cli/report.ts';
import type { Report, ReportRow } from '../src/report/build.ts';
import { Compactor } from '../src/store/compaction.ts';
import { toLegacySketches } from './support/legacySketches.ts';
import { LedgerStore } from '../src/store/ledgerStore.ts';
import { openDatabase } from '../src/store/openDatabase.ts';
import { loadFacts, planSegments } from '../src/store/reportQueries.ts';
import { HOUR_MS } from '../src/store/rollups.ts';
import { memoryLogger } from './support/silentLogger.ts';
import { NOV3, NOV4, NOV5, buildDataset } from './support/reportDataset.ts';

const K = 1000;
const TENANT_KEYS = ['tenant.id'];

function report(
  dbPath: string,
  by: string,
  prices?: string,
  extra: Partial<Parameters<typeof makeReport>[0]> = {},
): Report {
  return makeReport({
    db: dbPath,
    since: '2026-11-03',
    until: '2026-11-05',
    by,
    prices,
    tenantKeys: TENANT_KEYS,
    nowMs: NOV5 + 3600_000,
    ...extra,
  });
}

function close(actual: number | null, expected: number, tolerance = 1e-9, what = ''): void {
  assert.ok(actual !== null, `${what}: expected ${expected}, got null`);
  assert.ok(
    Math.abs(actual - expected) <= tolerance * Math.max(1, Math.abs(expected)),
    `${what}: expected ${expected}, got ${actual}`,
  );
}

const row = (r: Report, key: Record<string, string>): ReportRow => {
  const found = r.rows.find((x) => Object.entries(key).every(([k, v]) => x.key[k as keyof typeof x.key] === v));
  assert.ok(found, `no row ${JSON.stringify(key)} in ${JSON.stringify(r.rows.map((x) => x.key))}`);
  return found;
};

function capture(): { stream: Writable; text: () => string } {
  let buf = '';
  return { stream: new Writable({ write: (c, _e, cb) => ((buf += String(c)), cb()) }), text: () => buf };
}

// Hand-worked figures (see test/support/reportDataset.ts for the scrapes and spans behind them).
// A (llama-8b): deltas Nov 3 prompt 2000k+1000k, cached 1000k+500k (prompt_tokens_cached, not the hits),
//   gen 1000k+500k, requests 10+5, preemptions 1; Nov 4 (the first scrape after a day's gap counts in
//   full) prompt 2000k+1000k, cached 1000k+500k, gen 1000k+500k, requests 10+5, preemptions 0+2.
// B (qwen-7b): Nov 3 prompt 1000k, hits 400k, gen 500k, requests 5; Nov 4 restart: prompt 200k (reset)
//   +1000k, hits 50k+600k, gen 100k+300k, requests 2+4.
const A = { prompt: 6000 * K, cached: 3000 * K, gen: 3000 * K, requests: 30, preemptions: 3 };
const B = { prompt: 2200 * K, cached: 1050 * K, gen: 900 * K, requests: 11 };

describe('report: figures on a dataset worked out by hand', () => {
  const data = buildDataset();

  it('by model: exact deltas, prompt_tokens_cached preferred over hits (never both), a counter reset, gauges', () => {
    const r = report(data.dbPath, 'model');
    const a = row(r, { model: 'llama-8b' });
    assert.equal(a.source, 'fleet');
    assert.equal(a.basis, 'exact');
    assert.equal(a.requests, A.requests);
    assert.equal(a.prompt_tokens, A.prompt);
    assert.equal(a.cached_prompt_tokens, A.cached, 'prompt_tokens_cached (3000k), not prefix-cache hits (4000k)');
    close(a.cache_hit_ratio, 0.5, 1e-12, 'hit ratio');
    assert.equal(a.generation_tokens, A.gen);
    assert.equal(a.preemptions, A.preemptions);
    // KV 1-minute means 0.2, 0.4, 0.6, 0.8, 0.9; waiting 0, 2, 4, 6, 8. p95 = nearest rank 5 of 5, within 1%.
    close(a.kv_cache_usage_mean, (0.2 + 0.4 + 0.6 + 0.8 + 0.9) / 5, 1e-12, 'kv mean');
    close(a.kv_cache_usage_p95, 0.9, 0.01, 'kv p95');
    close(a.queue_depth_mean, 4, 1e-12, 'queue mean');
    close(a.queue_depth_p95, 8, 0.01, 'queue p95');
    const b = row(r, { model: 'qwen-7b' });
    assert.equal(b.prompt_tokens, B.prompt, 'the reset counts the restarted counter from 0, not a negative delta');
    assert.equal(b.cached_prompt_tokens, B.cached, 'no prompt_tokens_cached on B: prefix-cache hits');
    close(b.cache_hit_ratio, 1050 / 2200, 1e-12);
    assert.equal(b.preemptions, null, 'B exposes no preemption counter: unknown, not 0');
    assert.equal(b.requests, B.requests);
    close(b.kv_cache_usage_mean, (0.5 + 0.5 + 0.1 + 0.3) / 4, 1e-12);
    close(b.queue_depth_p95, 1, 0.01);
    assert.equal(r.totals.prompt_tokens, A.prompt + B.prompt);
    assert.equal(r.totals.cached_prompt_tokens, A.cached + B.cached);
    assert.equal(r.totals.requests, A.requests + B.requests);
    assert.equal(r.totals.preemptions, 3);
    assert.equal(r.currency, null);
    assert.equal(r.totals.savings, null, 'no prices: no cost figures');
    assert.ok(
      r.notes.some((n) => n.includes('--prices')),
      'says how to add prices',
    );
    assert.ok(r.notes.some((n) => n.includes('1 counter reset')));
  });

  it('prices: a per-model price that changes inside the period, and a GPU-hour price per instance', () => {
    const r = report(data.dbPath, 'instance,day', data.pricesPath);
    assert.equal(r.currency, 'USD');
    // A on Nov 3 at $1 in / $0.10 cached / $2 out per 1M: 3M prompt of which 1.5M cached, 1.5M out.
    const a3 = row(r, { instance: '10.0.0.1:8000', day: '2026-11-03' });
    close(a3.cost_without_cache, 3 * 1 + 1.5 * 2, 1e-12, 'A Nov 3 without');
    close(a3.cost_with_cache, 1.5 * 1 + 1.5 * 0.1 + 1.5 * 2, 1e-12, 'A Nov 3 with');
    close(a3.savings, 1.5 * (1 - 0.1), 1e-12, 'A Nov 3 savings');
    // A on Nov 4 at the new $2 / $0.50 / $4.
    const a4 = row(r, { instance: '10.0.0.1:8000', day: '2026-11-04' });
    close(a4.cost_without_cache, 3 * 2 + 1.5 * 4, 1e-12, 'A Nov 4 without');
    close(a4.cost_with_cache, 1.5 * 2 + 1.5 * 0.5 + 1.5 * 4, 1e-12, 'A Nov 4 with');
    // B at $6/GPU-hour, 2 minutes with samples each day = $0.20; spread over processed tokens
    // (prompt − cached + generated), so without the cache the same work costs 0.20 × (prompt + gen) / processed.
    const b3 = row(r, { instance: '10.0.0.2:8000', day: '2026-11-03' });
    close(b3.cost_with_cache, 0.2, 1e-12, 'B Nov 3 with');
    close(b3.cost_without_cache, (0.2 * (1000 + 500)) / (600 + 500), 1e-12, 'B Nov 3 without');
    const b4 = row(r, { instance: '10.0.0.2:8000', day: '2026-11-04' });
    close(b4.cost_with_cache, 0.2, 1e-12, 'B Nov 4 with');
    close(b4.cost_without_cache, (0.2 * (1200 + 400)) / (550 + 400), 1e-12, 'B Nov 4 without');
    close(r.totals.savings, 1.35 + 2.25 + (0.2 * 1500) / 1100 - 0.2 + (0.2 * 1600) / 950 - 0.2, 1e-12, 'total savings');
  });

  it(
    'by tenant: measured vs allocated, a tenant only a gateway span names, and an unattributed remainder that ' +
      'reconciles',
    () => {
      const r = report(data.dbPath, 'tenant', data.pricesPath);
      const acme = row(r, { tenant: 'acme' });
      assert.equal(acme.source, 'tenant');
      assert.equal(acme.requests, 2);
      assert.equal(acme.prompt_tokens, 1500 * K);
      assert.equal(acme.cached_measured_tokens, 600 * K, 't1 carried its own count');
      assert.equal(acme.cached_allocated_tokens, 200 * K, "t3's window estimate");
      assert.equal(acme.cached_prompt_tokens, 800 * K);
      assert.equal(acme.basis, 'mixed');
      // t1 on A Nov 3 at the old price; t3 on B Nov 3 at B's cost per processed token (0.20 / 1100k).
      close(acme.cost_with_cache, 0.4 * 1 + 0.6 * 0.1 + 0.4 * 2 + (0.2 * 500) / 1100, 1e-12, 'acme with');
      close(acme.cost_without_cache, 1 * 1 + 0.4 * 2 + (0.2 * 700) / 1100, 1e-12, 'acme without');
      const globex = row(r, { tenant: 'globex' });
      assert.equal(globex.requests, 2, 'both globex requests resolve through their gateway spans');
      assert.equal(globex.cached_measured_tokens, 250 * K, "t4: the gateway span's real count wins over the estimate");
      assert.equal(globex.cached_allocated_tokens, 300 * K);
      // Both on A Nov 4 at the new price.
      close(
        globex.cost_with_cache,
        0.7 * 2 + 0.3 * 0.5 + 0.5 * 4 + (0.25 * 2 + 0.25 * 0.5 + 0.1 * 4),
        1e-12,
        'globex with',
      );
      const rest = row(r, { tenant: 'unattributed' });
      assert.equal(rest.source, 'unattributed');
      assert.equal(rest.requests, A.requests + B.requests - 4);
      assert.equal(rest.prompt_tokens, A.prompt + B.prompt - 3000 * K);
      assert.equal(rest.cached_prompt_tokens, A.cached + B.cached - 800 * K - 550 * K);
      for (const f of [
        'requests',
        'prompt_tokens',
        'cached_prompt_tokens',
        'generation_tokens',
        'cost_with_cache',
        'cost_without_cache',
        'savings',
      ] as const) {
        close(acme[f]! + globex[f]! + rest[f]!, r.totals[f]!, 1e-9, `${f} reconciles`);
      }
      assert.deepEqual(r.reconciliation, {
        fleet_cached_prompt_tokens: A.cached + B.cached,
        tenant_measured: 850 * K,
        tenant_allocated: 500 * K,
        unattributed: A.cached + B.cached - 1350 * K,
      });
      assert.equal(r.rows[r.rows.length - 1]!.key.tenant, 'unattributed', 'the remainder sorts last');
    },
  );

  it('by tenant and model: unattributed per model', () => {
    const r = report(data.dbPath, 'tenant,model', data.pricesPath);
    assert.equal(row(r, { tenant: 'unattributed', model: 'qwen-7b' }).cached_prompt_tokens, B.cached - 200 * K);
    assert.equal(row(r, { tenant: 'unattributed', model: 'llama-8b' }).cached_prompt_tokens, A.cached - 1150 * K);
    assert.equal(row(r, { tenant: 'acme', model: 'qwen-7b' }).requests, 1);
  });

  it('by hour and day: the buckets the deltas landed in', () => {
    const byHour = report(data.dbPath, 'hour');
    assert.deepEqual(
      byHour.rows.map((x) => x.key.hour),
      ['2026-11-03T10:00Z', '2026-11-04T10:00Z'],
    );
    assert.equal(row(byHour, { hour: '2026-11-04T10:00Z' }).prompt_tokens, 3000 * K + 1200 * K);
    const byDay = report(data.dbPath, 'model,day', undefined, { since: '2026-11-04' });
    assert.deepEqual(
      byDay.rows.map((x) => `${x.key.model} ${x.key.day}`),
      ['llama-8b 2026-11-04', 'qwen-7b 2026-11-04'],
    );
  });

  it(
    'compacted hours and days give the same report as ' + 'the raw rows, and a late ledger row is seen at once',
    async () => {
      const variants = (): Report[] => [
        ...['model', 'tenant', 'instance,day', 'hour'].map((by) => report(data.dbPath, by, data.pricesPath)),
        // no GPU-hour prices and no instance: the ledger rollups with instances folded together
        report(data.dbPath, 'tenant,model'),
      ];
      const raw = variants();
      const db = openDatabase(data.dbPath);
      const compactor = new Compactor(db, { tenantKeys: TENANT_KEYS, graceMs: 10 * 60_000, log: memoryLogger().log });
      const done = await compactor.runOnce(NOV5 + 2 * HOUR_MS);
      // from the first hour with data, Nov 3 10:00, to the last closed one, Nov 5 01:00
      assert.deepEqual(done, { hours: 39, days: 2 });
      const segments = planSegments(db, { fromMs: NOV3, toMs: NOV5, bucketMs: 86_400_000 });
      assert.deepEqual(
        segments,
        [{ source: 'day', fromMs: NOV3, toMs: NOV5 }],
        'a by-day report reads two day rows per series, nothing raw',
      );
      // Sums over rollups add in another order: equal to the last few bits.
      const rounded = (r: Report) =>
        JSON.parse(
          JSON.stringify({ ...r, generated_at: '' }, (_k, v) =>
            typeof v === 'number' ? Number(v.toPrecision(12)) : v,
          ),
        );
      const compacted = variants();
      for (let i = 0; i < raw.length; i++) assert.deepEqual(rounded(compacted[i]!), rounded(raw[i]!));
      // A store whose rollups hold the JSON sketches of before 2026-12 reads to the same report.
      const legacyPath = `${data.dbPath}.legacy.db`;
      db.exec(`VACUUM INTO '${legacyPath}'`);
      toLegacySketches(legacyPath);
      const legacy = report(legacyPath, 'instance,day', data.pricesPath);
      assert.ok(legacy.rows.some((r) => (r.kv_cache_usage_p95 ?? 0) > 0));
      assert.deepEqual(rounded({ ...legacy, db: '' }), rounded({ ...compacted[2]!, db: '' }));

      // A span from Nov 3 exported only now (a spool that drained late): its hour is read raw until redone.
      new LedgerStore(db).write(
        [
          {
            traceId: 't9',
            spanId: 's9',
            startMs: NOV3 + 10 * HOUR_MS + 5000,
            endMs: NOV3 + 10 * HOUR_MS + 6000,
            spanName: 'llm_request',
            serviceName: 'vllm',
            targetId: data.ids.a,
            instance: '10.0.0.1:8000',
            model: 'llama-8b',
            match: 'resource',
            promptTokens: 100 * K,
            completionTokens: 10 * K,
            cachedTokens: 50 * K,
            cachedTokensEstimate: null,
            windowComplete: true,
            latency: {},
            tenantJson: '{"tenant.id":"initech"}',
            kvUsageStart: null,
            waitingStart: null,
          },
        ],
        [],
      );
      assert.equal(
        row(report(data.dbPath, 'tenant'), { tenant: 'initech' }).cached_measured_tokens,
        50 * K,
        'visible before the redo',
      );
      await compactor.runOnce(NOV5 + 2 * HOUR_MS);
      assert.equal(db.prepare('SELECT count(*) FROM compaction_dirty').pluck().get(), 0);
      assert.equal(planSegments(db, { fromMs: NOV3, toMs: NOV5, bucketMs: 86_400_000 })[0]!.source, 'day');
      assert.equal(
        row(report(data.dbPath, 'tenant'), { tenant: 'initech' }).cached_measured_tokens,
        50 * K,
        'and after it, from the rollups',
      );
      db.close();
    },
  );
});

describe('report: trace-level facts and the time-keyed ledger', () => {
  it(
    "a gateway span's count splits over its trace's request spans across an hour boundary; arriving late, it marks " +
      'the hours its carrier spans',
    async () => {
      const data = buildDataset();
      const db = openDatabase(data.dbPath);
      const compactor = new Compactor(db, { tenantKeys: TENANT_KEYS, graceMs: 10 * 60_000, log: memoryLogger().log });
      const store = new LedgerStore(db);
      const min = 60_000;
      const req = (spanId: string, startMs: number, prompt: number) => ({
        traceId: 'tx',
        spanId,
        startMs,
        endMs: startMs + 1000,
        spanName: 'llm_request',
        serviceName: 'vllm',
        targetId: data.ids.a,
        instance: '10.0.0.1:8000',
        model: 'llama-8b',
        match: 'resource',
        promptTokens: prompt,
        completionTokens: 1,
        cachedTokens: null,
        cachedTokensEstimate: 1,
        windowComplete: true,
        latency: {},
        tenantJson: null,
        kvUsageStart: null,
        waitingStart: null,
      });
      store.write(
        [req('a', NOV4 + 11 * HOUR_MS + 50 * min, 100 * K), req('b', NOV4 + 12 * HOUR_MS + 20 * min, 300 * K)],
        [],
      );
      await compactor.runOnce(NOV5 + 2 * HOUR_MS);
      assert.equal(db.prepare('SELECT count(*) FROM compaction_dirty').pluck().get(), 0);

      // The gateway span (11:49–12:25) arrives after both hours were compacted.
      const carrier = {
        spanStartMs: NOV4 + 11 * HOUR_MS + 49 * min,
        spanEndMs: NOV4 + 12 * HOUR_MS + 25 * min,
        seenMs: NOV5 + 2 * HOUR_MS,
      };
      store.write(
        [],
        [{ traceId: 'tx', key: 'tenant.id', value: 'umbrella', ...carrier }],
        [{ traceId: 'tx', cachedTokens: 400 * K, ...carrier }],
      );
      assert.deepEqual(
        db.prepare('SELECT bucket_ms FROM compaction_dirty ORDER BY 1').pluck().all(),
        [NOV4 + 11 * HOUR_MS, NOV4 + 12 * HOUR_MS],
        'the two hours the carrier spans (± 5 min), no others',
      );
      const raw = row(report(data.dbPath, 'tenant'), { tenant: 'umbrella' });
      assert.equal(raw.requests, 2);
      close(raw.cached_measured_tokens, 400 * K, 1e-12, 'the whole count, split 1:3 by prompt tokens');
      await compactor.runOnce(NOV5 + 2 * HOUR_MS);
      assert.equal(db.prepare('SELECT count(*) FROM compaction_dirty').pluck().get(), 0);
      const hourly = (h: number) =>
        db
          .prepare(
            "SELECT cached_measured FROM ledger_rollup WHERE level = 'hour' AND bucket_ms = ? AND tenant = 'umbrella'",
          )
          .pluck()
          .get(NOV4 + h * HOUR_MS);
      assert.equal(hourly(11), 100 * K, "11:00's request: a quarter, though its sibling is in the next hour");
      assert.equal(hourly(12), 300 * K);
      close(
        row(report(data.dbPath, 'tenant'), { tenant: 'umbrella' }).cached_measured_tokens,
        400 * K,
        1e-12,
        'compacted',
      );

      // A carrier with a nonsense start marks at most a day of hours, not every hour since 1970.
      store.write([], [{ traceId: 'ty', key: 'tenant.id', value: 'x', spanStartMs: 0, spanEndMs: NOV4, seenMs: NOV5 }]);
      assert.equal(db.prepare('SELECT count(*) FROM compaction_dirty').pluck().get(), 25);
      db.close();
    },
  );
});

describe('report: a reader next to the daemon', () => {
  it('a read transaction (what a report holds) never blocks the writer, and sees one snapshot', () => {
    const data = buildDataset();
    const writer = openDatabase(data.dbPath, { busyTimeoutMs: 0 }); // would throw SQLITE_BUSY at once if blocked
    const ledger = new LedgerStore(writer);
    const reader = openDatabase(data.dbPath, { readonly: true });
    const q = {
      fromMs: NOV3,
      toMs: NOV5,
      bucketMs: HOUR_MS,
      tenantKeys: TENANT_KEYS,
      ledger: true,
      ledgerPerTarget: true,
    };
    let writes = 0;
    reader
      .transaction(() => {
        const before = loadFacts(reader, q);
        for (let i = 0; i < 200; i++) {
          ledger.write(
            [
              {
                traceId: `w${i}`,
                spanId: 's',
                startMs: NOV3 + 10 * HOUR_MS + i,
                endMs: NOV3 + 10 * HOUR_MS + i + 1,
                spanName: 'llm_request',
                serviceName: null,
                targetId: data.ids.a,
                instance: null,
                model: 'llama-8b',
                match: 'resource',
                promptTokens: 10,
                completionTokens: 1,
                cachedTokens: null,
                cachedTokensEstimate: 5,
                windowComplete: true,
                latency: {},
                tenantJson: null,
                kvUsageStart: null,
                waitingStart: null,
              },
            ],
            [],
          );
          writes++;
        }
        assert.deepEqual(loadFacts(reader, q).ledger, before.ledger, 'the reader still sees its snapshot');
      })
      .deferred();
    assert.equal(writes, 200);
    const after = loadFacts(reader, q).ledger.reduce((n, l) => n + l.requests, 0);
    assert.equal(after, 4 + 200, 'a new read sees every commit');
    reader.close();
    writer.close();
  });
});

describe('report: formats', () => {
  const data = buildDataset();

  it('table: aligned columns with units, human-sized numbers, a TOTAL row', async () => {
    const out = capture();
    assert.equal(
      await main(
        [
          'report',
          '--db',
          data.dbPath,
          '--since',
          '2026-11-03',
          '--until',
          '2026-11-05',
          '--by',
          'model',
          '--prices',
          data.pricesPath,
        ],
        { out: out.stream, err: out.stream },
      ),
      0,
    );
    const lines = out.text().split('\n');
    const header = lines.find((l) => l.startsWith('model'))!;
    for (const h of ['prompt tok', 'hit %', 'KV p95 %', 'saved']) assert.ok(header.includes(h), h);
    const llama = lines.find((l) => l.startsWith('llama-8b'))!;
    assert.match(llama, /6\.00M\s+3\.00M\s+50\.0%/);
    assert.match(llama, /\$18\.00\s+\$14\.40\s+\$3\.60$/);
    const rule = lines[lines.indexOf(header) + 1]!;
    // every column starts where its dashes start
    const starts = [...rule.matchAll(/-+/g)].map((m) => m.index);
    const hits = header.indexOf('hit %');
    assert.ok(starts.includes(hits), 'hit % column aligned with its rule');
    assert.ok(lines.some((l) => l.startsWith('TOTAL')));
  });

  it('csv: RFC 4180, one header row, raw numbers, CRLF records', () => {
    const out = capture();
    return main(
      [
        'report',
        '--db',
        data.dbPath,
        '--since',
        '2026-11-03',
        '--until',
        '2026-11-05',
        '--by',
        'tenant',
        '--format',
        'csv',
        '--prices',
        data.pricesPath,
      ],
      { out: out.stream, err: out.stream },
    ).then(() => {
      const text = out.text();
      assert.ok(text.endsWith('\r\n'));
      const records = text.slice(0, -2).split('\r\n');
      assert.equal(
        records[0],
        'tenant,source,basis,cached_split_basis,requests,prompt_tokens,cached_prompt_tokens,' +
          'cached_measured_tokens,cached_allocated_tokens,local_cached_prompt_tokens,external_cached_prompt_tokens,' +
          'external_hit_ratio,cache_hit_ratio,generation_tokens,preemptions,kv_cache_usage_mean,kv_cache_usage_p95,' +
          'queue_depth_mean,queue_depth_p95,cost_without_cache,cost_with_cache,savings',
      );
      assert.equal(records.length, 1 + 3 + 1, 'header, acme, globex, unattributed, total');
      const acme = records[1]!.split(',');
      // no server of this fleet exposes a tiered cache: the split is empty, not 0
      assert.deepEqual(acme.slice(0, 12), [
        'acme',
        'tenant',
        'mixed',
        '',
        '2',
        '1500000',
        '800000',
        '600000',
        '200000',
        '',
        '',
        '',
      ]);
      assert.equal(records[4]!.split(',')[1], 'total');
    });
  });

  it('json: the documented schema', () => {
    const r = JSON.parse(JSON.stringify(report(data.dbPath, 'model', data.pricesPath))) as Report;
    assert.equal(r.schema, 'cachelens.report/v1');
    assert.deepEqual(Object.keys(r), [
      'schema',
      'generated_at',
      'db',
      'period',
      'group_by',
      'currency',
      'prices_file',
      'rows',
      'totals',
      'reconciliation',
      'series',
      'savings_by_model',
      'savings_by_tenant',
      'notes',
    ]);
    assert.deepEqual(Object.keys(r.rows[0]!), [
      'key',
      'source',
      'basis',
      'cached_split_basis',
      'requests',
      'prompt_tokens',
      'cached_prompt_tokens',
      'cached_measured_tokens',
      'cached_allocated_tokens',
      'local_cached_prompt_tokens',
      'external_cached_prompt_tokens',
      'cache_hit_ratio',
      'external_hit_ratio',
      'generation_tokens',
      'preemptions',
      'kv_cache_usage_mean',
      'kv_cache_usage_p95',
      'queue_depth_mean',
      'queue_depth_p95',
      'cost_without_cache',
      'cost_with_cache',
      'savings',
    ]);
    assert.equal(r.series.bucket, 'hour');
    assert.deepEqual(
      r.series.points.map((p) => `${p.t} ${p.model}`),
      [
        '2026-11-03T10:00:00.000Z llama-8b',
        '2026-11-03T10:00:00.000Z qwen-7b',
        '2026-11-04T10:00:00.000Z llama-8b',
        '2026-11-04T10:00:00.000Z qwen-7b',
      ],
    );
    const reportsDoc = readFileSync(new URL('../docs/reports.md', import.meta.url), 'utf8');
    for (const k of [...Object.keys(r), ...Object.keys(r.rows[0]!)])
      assert.ok(reportsDoc.includes(`\`${k}\``), `docs/reports.md documents the JSON field ${k}`);
  });

  it('--out writes the file; html is one self-contained page', async () => {
    const out = join(data.dir, 'r.html');
    const io = capture();
    assert.equal(
      await main(
        [
          'report',
          '--db',
          data.dbPath,
          '--since',
          '2026-11-03',
          '--until',
          '2026-11-05',
          '--by',
          'tenant',
          '--format',
          'html',
          '--prices',
          data.pricesPath,
          '--out',
          out,
        ],
        { out: io.stream, err: io.stream },
      ),
      0,
    );
    assert.equal(io.text(), '');
    const html = readFileSync(out, 'utf8');
    assert.ok(html.startsWith('<!doctype html>'));
    assert.equal(
      (html.match(/<svg /g) ?? []).length,
      5,
      'hit ratio, savings per model, savings per tenant, KV usage, queue depth',
    );
    assert.doesNotMatch(html, /<script|https?:\/\/|src=|href=/i, 'nothing to fetch or run');
  });
});

describe('report: bad input gets one line with the fix', () => {
  const data = buildDataset();

  async function cli(args: string[]): Promise<{ code: number | undefined; stderr: string }> {
    const write = process.stderr.write.bind(process.stderr);
    let stderr = '';
    process.stderr.write = ((c: string) => ((stderr += c), true)) as typeof process.stderr.write;
    const before = process.exitCode;
    try {
      await runCli(args);
      return { code: process.exitCode as number | undefined, stderr };
    } finally {
      process.stderr.write = write;
      process.exitCode = before;
    }
  }

  const cases: Array<[string, string[], RegExp]> = [
    ['unknown --by', ['--by', 'region'], /--by region: unknown; use one or more of model, instance, day, hour, tenant/],
    ['bad date', ['--since', '2026-13-45'], /--since "2026-13-45": not a time; use a duration back from now \(7d/],
    ['since after until', ['--since', '2026-11-05', '--until', '2026-11-01'], /is not before --until/],
    ['unknown format', ['--format', 'xml'], /--format xml: use one of table, csv, json, html/],
    ['missing DB', ['--db', '/nonexistent/x.db'], /no database at \/nonexistent\/x\.db; pass --db FILE/],
    [
      'missing prices file',
      ['--prices', '/nonexistent/p.yaml'],
      /cannot read prices file \/nonexistent\/p\.yaml: ENOENT/,
    ],
  ];
  for (const [name, args, re] of cases) {
    it(name, async () => {
      const r = await cli(['report', '--db', data.dbPath, ...args]);
      assert.equal(r.code, 2);
      assert.match(r.stderr, re);
      assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
      assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
    });
  }

  const badPrices: Array<[string, string, RegExp]> = [
    ['not YAML', 'models: [\n  - match: x', /not valid YAML/],
    [
      'a price that is not a number',
      'models:\n  - match: "llama-*"\n    input: cheap\n    cached_input: 0.1\n    output: 2\n',
      /models\[0\]\.input: "cheap"; set it to a number ≥ 0/,
    ],
    [
      'a missing cached price',
      'models:\n  - match: "llama-*"\n    input: 1\n    output: 2\n',
      /models\[0\]\.cached_input: missing; set it to a number ≥ 0/,
    ],
    [
      'a bad effective_from',
      'models:\n  - match: "*"\n    input: 1\n    cached_input: 0\n    output: 1\n    effective_from: next tuesday\n',
      /effective_from: "next tuesday" is not a date; write it as YYYY-MM-DD/,
    ],
    [
      'a misspelt key',
      'instances:\n  - match: "*"\n    gpu_hours: 2\n',
      /instances\[0\]: unknown key "gpu_hours"; allowed: match, gpu_hour, gpus, effective_from/,
    ],
  ];
  for (const [name, yaml, re] of badPrices) {
    it(`malformed prices file: ${name}`, async () => {
      const file = join(data.dir, `prices-${name.replace(/\W+/g, '-')}.yaml`);
      writeFileSync(file, yaml);
      const r = await cli(['report', '--db', data.dbPath, '--prices', file]);
      assert.equal(r.code, 2);
      assert.match(r.stderr, re);
      assert.ok(r.stderr.includes(file), 'names the file');
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    });
  }

  it('an empty period gets an empty report with a hint, in every format', async () => {
    for (const format of ['table', 'csv', 'json', 'html']) {
      const out = capture();
      assert.equal(
        await main(
          ['report', '--db', data.dbPath, '--since', '2026-10-01', '--until', '2026-10-02', '--format', format],
          { out: out.stream, err: out.stream },
        ),
        0,
      );
      if (format === 'csv') assert.equal(out.text().split('\r\n').filter(Boolean).length, 2, 'header and total');
      else assert.match(out.text(), /No data between 2026-10-01T00:00:00\.000Z and 2026-10-02T00:00:00\.000Z/);
    }
  });

  it('an empty DB gets an empty report with a hint', async () => {
    const path = join(data.dir, 'empty.db');
    openDatabase(path).close();
    const out = capture();
    assert.equal(await main(['report', '--db', path, '--by', 'tenant'], { out: out.stream, err: out.stream }), 0);
    assert.match(out.text(), /\(no data\)/);
    assert.match(out.text(), /No data between/);
  });
});
