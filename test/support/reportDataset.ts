// A small store whose every report figure can be worked out by hand (the expected values in
// test/report.test.ts are written out from the numbers here). It goes through the real writers:
// vLLM exposition text → normalizeBody → ScrapeStore (deltas, resets, rollups), and LedgerStore.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { normalizeBody, type ScrapeResult } from '../../src/scrape/scrapeTarget.ts';
import { makeTarget } from '../../src/scrape/target.ts';
import { LedgerStore, type LedgerRow } from '../../src/store/ledgerStore.ts';
import { openDatabase } from '../../src/store/openDatabase.ts';
import { ScrapeStore } from '../../src/store/scrapeStore.ts';

export const NOV3 = Date.parse('2026-11-03T00:00:00Z');
export const NOV4 = Date.parse('2026-11-04T00:00:00Z');
export const NOV5 = Date.parse('2026-11-05T00:00:00Z');
const at = (day: number, hh: number, mm: number, ss = 1) => day + ((hh * 60 + mm) * 60 + ss) * 1000;
const K = 1000; // token counters in thousands, so prices per 1M tokens give readable dollars

export const TARGET_A = makeTarget('http://10.0.0.1:8000/metrics', {}, 'auto', {}, 'test');
export const TARGET_B = makeTarget('http://10.0.0.2:8000/metrics', {}, 'auto', {}, 'test');

interface Counters {
  prompt: number;
  gen: number;
  success: number;
  cached?: number;
  hits: number;
  preempt?: number;
  kv: number;
  waiting: number;
}

function exposition(model: string, c: Counters): string {
  const l = `{engine="0",model_name="${model}"}`;
  return [
    `vllm:prompt_tokens_total${l} ${c.prompt}`,
    `vllm:generation_tokens_total${l} ${c.gen}`,
    `vllm:request_success_total${l} ${c.success}`,
    `vllm:prefix_cache_queries_total${l} ${c.prompt}`,
    `vllm:prefix_cache_hits_total${l} ${c.hits}`,
    ...(c.cached !== undefined ? [`vllm:prompt_tokens_cached_total${l} ${c.cached}`] : []),
    ...(c.preempt !== undefined ? [`vllm:num_preemptions_total${l} ${c.preempt}`] : []),
    `vllm:kv_cache_usage_perc${l} ${c.kv}`,
    `vllm:num_requests_waiting${l} ${c.waiting}`,
    `vllm:num_requests_running${l} 1`,
    '',
  ].join('\n');
}

function scrape(target: typeof TARGET_A, model: string, ts: number, c: Counters): ScrapeResult {
  return { target, startedMs: ts, durationMs: 5, up: true, ...normalizeBody(target, exposition(model, c)) };
}

/**
 * Target A (10.0.0.1:8000, llama-8b) exposes prompt_tokens_cached and, deliberately different,
 * prefix-cache hits: reports must use the former. Target B (10.0.0.2:8000, qwen-7b) has hits only,
 * no preemption counter, and restarts on Nov 4 (a counter reset).
 */
export const SCRAPES: Array<[typeof TARGET_A, string, number, Counters]> = [
  [
    TARGET_A,
    'llama-8b',
    at(NOV3, 10, 0),
    { prompt: 1000 * K, cached: 400 * K, hits: 999 * K, gen: 500 * K, success: 10, preempt: 0, kv: 0.2, waiting: 0 },
  ],
  [
    TARGET_A,
    'llama-8b',
    at(NOV3, 10, 1),
    { prompt: 3000 * K, cached: 1400 * K, hits: 1999 * K, gen: 1500 * K, success: 20, preempt: 1, kv: 0.4, waiting: 2 },
  ],
  [
    TARGET_A,
    'llama-8b',
    at(NOV3, 10, 2),
    { prompt: 4000 * K, cached: 1900 * K, hits: 2999 * K, gen: 2000 * K, success: 25, preempt: 1, kv: 0.6, waiting: 4 },
  ],
  [
    TARGET_A,
    'llama-8b',
    at(NOV4, 10, 0),
    { prompt: 6000 * K, cached: 2900 * K, hits: 3999 * K, gen: 3000 * K, success: 35, preempt: 1, kv: 0.8, waiting: 6 },
  ],
  [
    TARGET_A,
    'llama-8b',
    at(NOV4, 10, 1),
    { prompt: 7000 * K, cached: 3400 * K, hits: 4999 * K, gen: 3500 * K, success: 40, preempt: 3, kv: 0.9, waiting: 8 },
  ],
  [
    TARGET_B,
    'qwen-7b',
    at(NOV3, 10, 0),
    { prompt: 500 * K, hits: 100 * K, gen: 100 * K, success: 5, kv: 0.5, waiting: 1 },
  ],
  [
    TARGET_B,
    'qwen-7b',
    at(NOV3, 10, 1),
    { prompt: 1500 * K, hits: 500 * K, gen: 600 * K, success: 10, kv: 0.5, waiting: 1 },
  ],
  [
    TARGET_B,
    'qwen-7b',
    at(NOV4, 10, 0),
    { prompt: 200 * K, hits: 50 * K, gen: 100 * K, success: 2, kv: 0.1, waiting: 0 },
  ],
  [
    TARGET_B,
    'qwen-7b',
    at(NOV4, 10, 1),
    { prompt: 1200 * K, hits: 650 * K, gen: 400 * K, success: 6, kv: 0.3, waiting: 0 },
  ],
];

const ledgerRow = (
  traceId: string,
  targetId: number,
  instance: string,
  model: string,
  startMs: number,
  prompt: number,
  completion: number,
  cached: number | null,
  estimate: number | null,
  tenantJson: string | null,
): LedgerRow => ({
  traceId,
  spanId: `${traceId}-span`,
  startMs,
  endMs: startMs + 2000,
  spanName: 'llm_request',
  serviceName: 'vllm',
  targetId,
  instance,
  model,
  match: 'resource',
  promptTokens: prompt,
  completionTokens: completion,
  cachedTokens: cached,
  cachedTokensEstimate: estimate,
  windowComplete: true,
  latency: {},
  tenantJson,
  kvUsageStart: null,
  waitingStart: null,
});

/**
 * Four request spans. acme: t1 (A, Nov 3, its own cached count) and t3 (B, Nov 3, allocated). globex,
 * named only by a gateway span on the trace: t2 (A, Nov 4, allocated) and t4 (A, Nov 4, a real count
 * on the gateway span, which wins over its estimate).
 */
export function writeLedger(db: ReturnType<typeof openDatabase>, ids: { a: number; b: number }): void {
  const store = new LedgerStore(db);
  store.write(
    [
      ledgerRow(
        't1',
        ids.a,
        '10.0.0.1:8000',
        'llama-8b',
        at(NOV3, 10, 0, 30),
        1000 * K,
        400 * K,
        600 * K,
        null,
        '{"tenant.id":"acme"}',
      ),
      ledgerRow('t2', ids.a, '10.0.0.1:8000', 'llama-8b', at(NOV4, 10, 0, 30), 1000 * K, 500 * K, null, 300 * K, null),
      ledgerRow(
        't3',
        ids.b,
        '10.0.0.2:8000',
        'qwen-7b',
        at(NOV3, 10, 0, 40),
        500 * K,
        200 * K,
        null,
        200 * K,
        '{"tenant.id":"acme"}',
      ),
      ledgerRow('t4', ids.a, '10.0.0.1:8000', 'llama-8b', at(NOV4, 10, 1, 10), 500 * K, 100 * K, null, 999, null),
    ],
    [
      {
        traceId: 't2',
        key: 'tenant.id',
        value: 'globex',
        seenMs: at(NOV4, 10, 0, 31),
        spanStartMs: at(NOV4, 10, 0, 29),
        spanEndMs: at(NOV4, 10, 0, 31),
      },
      {
        traceId: 't4',
        key: 'tenant.id',
        value: 'globex',
        seenMs: at(NOV4, 10, 1, 11),
        spanStartMs: at(NOV4, 10, 1, 9),
        spanEndMs: at(NOV4, 10, 1, 11),
      },
    ],
    [
      {
        traceId: 't4',
        cachedTokens: 250 * K,
        seenMs: at(NOV4, 10, 1, 11),
        spanStartMs: at(NOV4, 10, 1, 9),
        spanEndMs: at(NOV4, 10, 1, 11),
      },
    ],
  );
}

export const PRICES_YAML = `# per 1M tokens; llama gets dearer on Nov 4
currency: USD
models:
  - match: "llama-*"
    input: 1.00
    cached_input: 0.10
    output: 2.00
    effective_from: 2026-11-01
  - match: "llama-*"
    input: 2.00
    cached_input: 0.50
    output: 4.00
    effective_from: 2026-11-04
instances:
  - match: "10.0.0.2:*"
    gpu_hour: 6.00
    gpus: 1
`;

export function buildDataset(): { dir: string; dbPath: string; pricesPath: string; ids: { a: number; b: number } } {
  const dir = mkdtempSync(join(tmpdir(), 'cachelens-report-'));
  const dbPath = join(dir, 'cachelens.db');
  const db = openDatabase(dbPath);
  const store = new ScrapeStore(db);
  for (const [t, model, ts, c] of SCRAPES) store.writeRound([scrape(t, model, ts, c)]);
  const id = (url: string) => db.prepare('SELECT id FROM targets WHERE url = ?').pluck().get(url) as number;
  const ids = { a: id(TARGET_A.key), b: id(TARGET_B.key) };
  writeLedger(db, ids);
  db.close();
  const pricesPath = join(dir, 'prices.yaml');
  writeFileSync(pricesPath, PRICES_YAML);
  return { dir, dbPath, pricesPath, ids };
}
