// Report benchmark: a store holding 30 days of a 100-instance fleet (2 models each, scraped every
// 5 s, kept as the per-minute rollups the daemon writes) and 10 requests/s in the request ledger,
// compacted by the real Compactor; then `cachelens report` by day, by model and by tenant.
import { execFileSync } from 'node:child_process';
import { seededRandom } from '../src/demo/fleetSim.ts';
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeLatencyReport, makeReport, renderLatencyReport, renderReport } from '../src/cli/report.ts';
import { Compactor } from '../src/store/compaction.ts';
import { openDatabase } from '../src/store/openDatabase.ts';
import { DAY_MS, HOUR_MS } from '../src/store/rollups.ts';
import { createLogger } from '../src/telemetry/logger.ts';

export const END_MS = Date.parse('2026-11-25T00:00:00Z');
const COUNTERS = [
  'requests_finished',
  'prompt_tokens',
  'prompt_tokens_cached',
  'prefix_cache_hits',
  'prefix_cache_queries',
  'generation_tokens',
  'preemptions',
];
const GAUGES = ['kv_cache_usage', 'requests_waiting', 'requests_running'];
const MODELS = [
  'meta-llama/Llama-3.1-8B-Instruct',
  'meta-llama/Llama-3.1-70B-Instruct',
  'Qwen/Qwen2.5-7B-Instruct',
  'Qwen/Qwen2.5-32B-Instruct',
  'mistralai/Mistral-7B-Instruct-v0.3',
  'google/gemma-2-9b-it',
];
export const TENANT_KEYS = ['tenant.id'];

export interface DatasetParams {
  days: number;
  instances: number;
  modelsPerInstance: number;
  scrapeIntervalS: number;
  requestsPerS: number;
  tenants: number;
  /** Where this store's instance numbers start (stores of different pools hold different servers). */
  firstInstance?: number;
}

export function generate(path: string, p: DatasetParams): { seconds: number; minuteRows: number; ledgerRows: number } {
  const t0 = performance.now();
  const db = openDatabase(path);
  db.pragma('synchronous = OFF');
  const rand = seededRandom(42);
  const startMs = END_MS - p.days * DAY_MS;
  const insTarget = db
    .prepare(
      'INSERT INTO targets (url, instance, labels_json, profile, first_seen_ms, last_seen_ms) VALUES (?, ?, ?, ?, ?, ' +
        '?) RETURNING id',
    )
    .pluck();
  const insSeries = db
    .prepare(
      "INSERT INTO series (target_id, model, engine, signal, kind, unit) VALUES (?, ?, '', ?, ?, 'x') RETURNING id",
    )
    .pluck();
  interface Srs {
    id: number;
    signal: string;
  }
  const perInstance: Array<{ targetId: number; instance: string; models: Array<{ model: string; series: Srs[] }> }> =
    [];
  db.transaction(() => {
    for (let n = 0; n < p.instances; n++) {
      const i = n + (p.firstInstance ?? 0);
      const instance = `10.0.${Math.floor(i / 250)}.${(i % 250) + 1}:8000`;
      const targetId = insTarget.get(
        `http://${instance}/metrics`,
        instance,
        JSON.stringify({ instance }),
        'vllm',
        startMs,
        END_MS,
      ) as number;
      const models = [];
      for (let m = 0; m < p.modelsPerInstance; m++) {
        const model = MODELS[(i + m) % MODELS.length]!;
        models.push({
          model,
          series: [
            ...COUNTERS.map((s) => ({ id: insSeries.get(targetId, model, s, 'counter') as number, signal: s })),
            ...GAUGES.map((s) => ({ id: insSeries.get(targetId, model, s, 'gauge') as number, signal: s })),
          ],
        });
      }
      perInstance.push({ targetId, instance, models });
    }
  })();

  // Per-minute rollups, as the scrape store writes them: counter delta sums, gauge min/max/sum/count/last over the
  // minute's scrapes.
  const scrapesPerMinute = 60 / p.scrapeIntervalS;
  const insCounter = db.prepare(
    'INSERT INTO rollup_minute (series_id, minute_ms, delta_sum, resets) VALUES (?, ?, ?, 0)',
  );
  const insGauge = db.prepare(
    'INSERT INTO rollup_minute (series_id, minute_ms, gauge_min, gauge_max, gauge_sum, gauge_count, gauge_last) ' +
      'VALUES (?, ?, ?, ?, ?, ?, ?)',
  );
  let minuteRows = 0;
  const dayMinutes = DAY_MS / 60_000;
  for (let d = 0; d < p.days; d++) {
    db.transaction(() => {
      for (const inst of perInstance) {
        for (const m of inst.models) {
          // Requests per minute on this instance and model follow a daily curve; cache reuse drifts.
          for (let k = 0; k < dayMinutes; k++) {
            const minuteMs = startMs + (d * dayMinutes + k) * 60_000;
            const load = 0.5 + 0.5 * Math.sin((2 * Math.PI * k) / dayMinutes);
            const reqs = Math.round(load * 20 + rand() * 5);
            const prompt = reqs * (1500 + Math.floor(rand() * 1000));
            const cached = Math.floor(prompt * (0.3 + 0.4 * rand()));
            const kv = Math.min(1, 0.2 + 0.6 * load + 0.1 * rand());
            const waiting = Math.floor(load * load * 8 * rand());
            for (const s of m.series) {
              let v: number;
              switch (s.signal) {
                case 'requests_finished':
                  v = reqs;
                  break;
                case 'prompt_tokens':
                case 'prefix_cache_queries':
                  v = prompt;
                  break;
                case 'prompt_tokens_cached':
                case 'prefix_cache_hits':
                  v = cached;
                  break;
                case 'generation_tokens':
                  v = reqs * 250;
                  break;
                case 'preemptions':
                  v = kv > 0.95 ? 1 : 0;
                  break;
                case 'kv_cache_usage':
                  v = kv;
                  break;
                case 'requests_waiting':
                  v = waiting;
                  break;
                default:
                  v = 4 + Math.floor(load * 12);
              }
              if (COUNTERS.includes(s.signal)) insCounter.run(s.id, minuteMs, v);
              else insGauge.run(s.id, minuteMs, v, v, v * scrapesPerMinute, scrapesPerMinute, v);
              minuteRows++;
            }
          }
        }
      }
    })();
  }

  // The request ledger: 10 requests/s, tenants from a skewed distribution; 70 % name their tenant on
  // the span, 20 % only on a gateway span of the trace, 10 % have none; 20 % carry a real cached count.
  const insLedger =
    db.prepare(`INSERT INTO request_ledger (trace_id, span_id, start_ms, end_ms, span_name, service_name, target_id,
      instance, model, match,
    prompt_tokens, completion_tokens, cached_tokens, cached_tokens_estimate, window_complete, latency_e2e_s,
    tenant_json, latency_ttft_s, latency_queue_s, latency_prefill_s, kv_usage_start, waiting_start)
    VALUES (?, ?, ?, ?, 'llm_request', 'vllm', ?, ?, ?, 'resource', ?, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?, ?)`);
  const insTenant = db.prepare('INSERT INTO trace_tenants (trace_id, key, value, seen_ms) VALUES (?, ?, ?, ?)');
  const hex = (n: number, len: number) => n.toString(16).padStart(len, '0');
  let ledgerRows = 0;
  const perDay = p.requestsPerS * 86_400;
  for (let d = 0; d < p.days; d++) {
    db.transaction(() => {
      for (let r = 0; r < perDay; r++) {
        const start = startMs + d * DAY_MS + Math.floor((r / perDay) * DAY_MS);
        const inst = perInstance[Math.floor(rand() * perInstance.length)]!;
        const m = inst.models[Math.floor(rand() * inst.models.length)]!;
        const tenant = `tenant-${String(Math.floor(p.tenants * rand() ** 2)).padStart(3, '0')}`;
        const traceId = hex(d, 8) + hex(r, 24);
        const prompt = 1500 + Math.floor(rand() * 1000);
        const cached = Math.floor(prompt * (0.3 + 0.4 * rand()));
        const measured = rand() < 0.2;
        const how = rand();
        // Latency as the fleet's state shapes it: a queue under pressure, prefill of the uncached part.
        const kv = rand();
        const waiting = Math.floor(10 * rand() ** 3);
        const queue = waiting * 0.15 * rand();
        const prefill = (prompt - cached) / 20_000;
        insLedger.run(
          traceId,
          hex(r, 16),
          start,
          start + 2500,
          inst.targetId,
          inst.instance,
          m.model,
          prompt,
          250,
          measured ? cached : null,
          measured ? null : cached,
          2.5,
          how < 0.7 ? JSON.stringify({ 'tenant.id': tenant }) : null,
          queue + prefill + 0.02,
          queue,
          prefill,
          kv,
          waiting,
        );
        if (how >= 0.7 && how < 0.9) insTenant.run(traceId, 'tenant.id', tenant, start);
        ledgerRows++;
      }
    })();
  }
  db.pragma('synchronous = NORMAL');
  db.close();
  return { seconds: (performance.now() - t0) / 1000, minuteRows, ledgerRows };
}

function timeIt<T>(fn: () => T, runs: number): { result: T; medianMs: number; maxMs: number } {
  const times: number[] = [];
  let result!: T;
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    result = fn();
    times.push(performance.now() - t);
  }
  times.sort((a, b) => a - b);
  return {
    result,
    medianMs: Number(times[Math.floor(times.length / 2)]!.toFixed(1)),
    maxMs: Number(times[times.length - 1]!.toFixed(1)),
  };
}

export async function runReportBench(p: DatasetParams): Promise<Record<string, unknown>> {
  const dir = process.env.BENCH_REPORT_DIR ?? join(tmpdir(), 'cachelens-bench-report');
  mkdirSync(dir, { recursive: true });
  const path = join(
    dir,
    `store-${p.days}d-${p.instances}i-${p.modelsPerInstance}m-${p.requestsPerS}rps-${p.tenants}t.db`,
  );
  const ready = `${path}.ready`;
  let gen: Record<string, unknown> = { reused: true };
  if (existsSync(ready) && process.env.BENCH_REPORT_RECOMPACT) {
    // Same data, rollups rebuilt: after a change to compaction, without regenerating 10 GB.
    const db = openDatabase(path);
    db.exec(
      'DELETE FROM fleet_rollup; DELETE FROM ledger_rollup; DELETE FROM latency_rollup; DELETE FROM compaction; ' +
        'DELETE FROM compaction_dirty; DELETE FROM latency_backfill;',
    );
    const t = performance.now();
    const done = await new Compactor(db, {
      tenantKeys: TENANT_KEYS,
      graceMs: 10 * 60_000,
      log: createLogger('warn'),
    }).runOnce(END_MS + HOUR_MS);
    db.pragma('wal_checkpoint(TRUNCATE)');
    db.close();
    gen = {
      ...JSON.parse(readFileSync(ready, 'utf8')),
      compactSeconds: Number(((performance.now() - t) / 1000).toFixed(1)),
      compacted: done,
    };
    writeFileSync(ready, JSON.stringify(gen));
  } else if (existsSync(ready)) gen = { reused: true, ...JSON.parse(readFileSync(ready, 'utf8')) };
  if (!existsSync(ready)) {
    for (const f of [path, `${path}-wal`, `${path}-shm`]) rmSync(f, { force: true });
    const g = generate(path, p);
    const db = openDatabase(path);
    const t = performance.now();
    const compactor = new Compactor(db, { tenantKeys: TENANT_KEYS, graceMs: 10 * 60_000, log: createLogger('warn') });
    const done = await compactor.runOnce(END_MS + HOUR_MS);
    db.pragma('wal_checkpoint(TRUNCATE)');
    db.close();
    gen = {
      generateSeconds: Number(g.seconds.toFixed(1)),
      minuteRows: g.minuteRows,
      ledgerRows: g.ledgerRows,
      compactSeconds: Number(((performance.now() - t) / 1000).toFixed(1)),
      compacted: done,
    };
    writeFileSync(ready, JSON.stringify(gen));
  }
  const dbBytes = statSync(path).size;
  const pricesPath = join(dir, 'prices.yaml');
  writeFileSync(
    pricesPath,
    `models:\n  - match: "meta-llama/*"\n    input: 0.20\n    cached_input: 0.02\n    output: 0.60\n  - match: ` +
      `"meta-llama/*"\n    input: 0.25\n    cached_input: 0.025\n` +
      `    output: 0.75\n    effective_from: 2026-11-15\n  - ` +
      `match: "*"\n    input: 0.10\n    cached_input: 0.01\n    output: 0.30\n`,
  );
  const since = `${p.days}d`;
  const results: Record<string, unknown> = {};
  for (const by of ['day', 'model', 'tenant', 'instance']) {
    const t = timeIt(
      () =>
        renderReport(
          makeReport({ db: path, since, by, prices: pricesPath, tenantKeys: TENANT_KEYS, nowMs: END_MS }),
          'table',
        ),
      5,
    );
    results[`by ${by} (in-process)`] = { medianMs: t.medianMs, maxMs: t.maxMs, rows: t.result.split('\n').length };
  }
  for (const by of ['day', 'model', 'tenant', 'instance']) {
    const t = timeIt(
      () =>
        renderLatencyReport(
          makeLatencyReport({ db: path, since, by, tenantKeys: TENANT_KEYS, nowMs: END_MS }),
          'table',
        ),
      5,
    );
    results[`latency view by ${by} (in-process)`] = { medianMs: t.medianMs, maxMs: t.maxMs };
  }
  // The whole CLI, as a user runs it: Node + tsx start-up included.
  const bin = new URL('../bin/cachelens.js', import.meta.url).pathname;
  const until = new Date(END_MS).toISOString();
  const sinceIso = new Date(END_MS - p.days * DAY_MS).toISOString();
  /** Median wall time of 3 CLI runs. */
  const cliMedianMs = (args: string[]) => {
    const times: number[] = [];
    for (let i = 0; i < 3; i++) {
      const t = performance.now();
      execFileSync(process.execPath, [bin, 'report', '--db', path, '--since', sinceIso, '--until', until, ...args], {
        stdio: ['ignore', 'ignore', 'inherit'],
      });
      times.push(performance.now() - t);
    }
    times.sort((a, b) => a - b);
    return { medianMs: Number(times[1]!.toFixed(0)) };
  };
  for (const by of ['day', 'model', 'tenant'])
    results[`by ${by} (CLI, wall)`] = cliMedianMs(['--by', by, '--prices', pricesPath]);
  for (const by of ['day', 'model', 'tenant', 'instance'])
    results[`latency view by ${by} (CLI, wall)`] = cliMedianMs(['--view', 'latency', '--by', by]);
  const startup = performance.now();
  execFileSync(process.execPath, [bin, 'help'], { stdio: 'ignore' });
  results['CLI start-up alone (cachelens help)'] = { ms: Number((performance.now() - startup).toFixed(0)) };
  return { dataset: { ...p, db: path, dbBytes, dbGiB: Number((dbBytes / 2 ** 30).toFixed(2)), ...gen }, results };
}
