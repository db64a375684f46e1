// Tiered KV caches on a scripted fleet with a KV connector, worked out by hand: local hits and external
// transfers from vllm:prompt_tokens_by_source, a reset of one engine, a scrape where the split does not
// add up to prompt_tokens_cached, and a vLLM 0.12-style server exposing only the connector's counters.
// Every figure is checked on spans (the real Enricher over the real store) and in reports.
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { makeReport, renderReport } from '../src/cli/report.ts';
import { DEFAULT_REQUEST_SPAN_NAMES } from '../src/config/spanNames.ts';
import { Enricher } from '../src/correlate/enricher.ts';
import { compileSpanSelector } from '../src/correlate/requestSpans.ts';
import { ExportTraceServiceRequest, type OtlpTraceRequest } from '../src/otlp/schema.ts';
import { normalizeBody } from '../src/scrape/scrapeTarget.ts';
import { makeTarget } from '../src/scrape/target.ts';
import { FleetQueries } from '../src/store/fleetQueries.ts';
import { LedgerStore } from '../src/store/ledgerStore.ts';
import { openDatabase } from '../src/store/openDatabase.ts';
import { ScrapeStore } from '../src/store/scrapeStore.ts';

interface Engine {
  compute: number;
  local: number;
  external: number;
  /** prompt_tokens_cached, when it is not local + external (the mismatch the daemon counts) */
  cached?: number;
  queries: number;
  hits: number;
  created: number;
}

/** vLLM ≥ 0.16 with a KV connector: by-source prompt tokens, cached tokens, the connector's lookups. */
function v016(engines: Engine[]): string {
  const lines: string[] = [];
  const counter = (name: string, help: string, v: (e: Engine) => number, extra = '') => {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} counter`);
    engines.forEach((e, i) => {
      const labels = `engine="${i}",model_name="llama"${extra}`;
      lines.push(`${name}_total{${labels}} ${v(e)}`, `${name}_created{${labels}} ${e.created}`);
    });
  };
  counter('vllm:prompt_tokens', 'Number of prefill tokens processed.', (e) => e.compute + e.local + e.external);
  for (const [source, v] of [
    ['local_compute', (e: Engine) => e.compute],
    ['local_cache_hit', (e: Engine) => e.local],
    ['external_kv_transfer', (e: Engine) => e.external],
  ] as const)
    counter('vllm:prompt_tokens_by_source', 'Number of prompt tokens by source.', v, `,source="${source}"`);
  counter(
    'vllm:prompt_tokens_cached',
    'Number of cached prompt tokens (local + external).',
    (e) => e.cached ?? e.local + e.external,
  );
  counter('vllm:external_prefix_cache_queries', 'External prefix cache queries.', (e) => e.queries);
  counter('vllm:external_prefix_cache_hits', 'External prefix cache hits.', (e) => e.hits);
  lines.push('# TYPE vllm:kv_cache_usage_perc gauge');
  engines.forEach((_, i) => lines.push(`vllm:kv_cache_usage_perc{engine="${i}",model_name="llama"} 0.5`));
  return `${lines.join('\n')}\n`;
}

/** vLLM 0.12-style: prefix-cache counters and the connector's, no prompt_tokens_by_source or _cached. */
function v012(n: { prompt: number; queries: number; hits: number; extQueries: number; extHits: number }): string {
  const c = (name: string, v: number) => `# TYPE ${name} counter\n${name}_total{engine="0",model_name="qwen"} ${v}\n`;
  return (
    c('vllm:prompt_tokens', n.prompt) +
    c('vllm:prefix_cache_queries', n.queries) +
    c('vllm:prefix_cache_hits', n.hits) +
    c('vllm:external_prefix_cache_queries', n.extQueries) +
    c('vllm:external_prefix_cache_hits', n.extHits) +
    '# TYPE vllm:kv_cache_usage_perc gauge\nvllm:kv_cache_usage_perc{engine="0",model_name="qwen"} 0.25\n'
  );
}

const T0 = Date.UTC(2026, 10, 20, 12, 0, 0);
const STEP = 10_000;
const e = (v: Omit<Engine, 'created'>, created = 1_700_000_000): Engine => ({ ...v, created });

/**
 * Server a (llama, engines 0 and 1), deltas per step:
 * - step 1: local 300 + 200 = 500, external 100 + 400 = 500, cached 1000; lookups 500 + 700, hits 100 + 400;
 *   prompt 1000 + 1000.
 * - step 2: engine 1 restarts (its _created moves; its deltas are its new values): local 200 + 50 = 250,
 *   external 200 + 150 = 350, cached 600; lookups 400 + 200, hits 200 + 150; prompt 800 + 300.
 * - step 3: engine 0 reports cached 10 more than local + external: local 100, external 100, cached 210
 *   (a mismatch, counted, stored as exposed); lookups 100, hits 100; prompt 300.
 * Server b (qwen, vLLM 0.12): step 1 prompt 2000, local hits 800, lookups 1200, external hits 600; step 2
 * prompt 1000, local hits 200, lookups 800, external hits 300.
 */
const A_STEPS: Engine[][] = [
  [
    e({ compute: 1000, local: 0, external: 0, queries: 0, hits: 0 }),
    e({ compute: 0, local: 0, external: 0, queries: 0, hits: 0 }),
  ],
  [
    e({ compute: 1600, local: 300, external: 100, queries: 500, hits: 100 }),
    e({ compute: 400, local: 200, external: 400, queries: 700, hits: 400 }),
  ],
  [
    e({ compute: 2000, local: 500, external: 300, queries: 900, hits: 300 }),
    e({ compute: 100, local: 50, external: 150, queries: 200, hits: 150 }, 1_700_000_500),
  ],
  [
    e({ compute: 2100, local: 600, external: 400, cached: 1010, queries: 1000, hits: 400 }),
    e({ compute: 100, local: 50, external: 150, queries: 200, hits: 150 }, 1_700_000_500),
  ],
];
const B_STEPS = [
  { prompt: 0, queries: 0, hits: 0, extQueries: 0, extHits: 0 },
  { prompt: 2000, queries: 2000, hits: 800, extQueries: 1200, extHits: 600 },
  { prompt: 3000, queries: 3000, hits: 1000, extQueries: 2000, extHits: 900 },
];

function buildStore(): { path: string; mismatches: number } {
  const dir = mkdtempSync(join(tmpdir(), 'cachelens-tiered-'));
  const path = join(dir, 'store.db');
  const db = openDatabase(path);
  const store = new ScrapeStore(db);
  const a = makeTarget('http://10.0.0.1:8000/metrics', { instance: 'vllm-a' }, 'auto', {}, 'a');
  const b = makeTarget('http://10.0.0.2:8000/metrics', { instance: 'vllm-b' }, 'auto', {}, 'b');
  let mismatches = 0;
  A_STEPS.forEach((engines, i) => {
    const results = [
      { target: a, startedMs: T0 + i * STEP, durationMs: 1, up: true, ...normalizeBody(a, v016(engines)) },
    ];
    if (B_STEPS[i])
      results.push({
        target: b,
        startedMs: T0 + i * STEP,
        durationMs: 1,
        up: true,
        ...normalizeBody(b, v012(B_STEPS[i]!)),
      });
    mismatches += store.writeRound(results).cachedDisagreements;
  });
  db.close();
  return { path, mismatches };
}

function spanOn(instance: string, startMs: number): OtlpTraceRequest {
  const start = BigInt(startMs) * 1_000_000n;
  return ExportTraceServiceRequest.fromObject({
    resourceSpans: [
      {
        resource: { attributes: [{ key: 'service.instance.id', value: { stringValue: instance } }] },
        scopeSpans: [
          {
            spans: [
              {
                traceId: Buffer.alloc(16, 1),
                spanId: Buffer.alloc(8, 2),
                name: 'llm_request',
                startTimeUnixNano: String(start),
                endTimeUnixNano: String(start + 8_000_000_000n),
                attributes: [{ key: 'gen_ai.usage.prompt_tokens', value: { intValue: 500 } }],
              },
            ],
          },
        ],
      },
    ],
  }) as unknown as OtlpTraceRequest;
}

describe('tiered KV caches: local hits and external transfers', () => {
  const { path, mismatches } = buildStore();

  it('on spans: the window split of the matched server; absent where the server does not expose it', () => {
    const db = openDatabase(path, { readonly: true });
    const enricher = new Enricher(new FleetQueries(db), {
      maxWaitMs: 0,
      as: 'events',
      selector: compileSpanSelector(DEFAULT_REQUEST_SPAN_NAMES),
      tenantKeys: [],
      lookbackMs: 3_600_000,
      targetMatch: () => new Map(),
    });
    enricher.refresh(T0 + 60_000);
    const cacheOf = (instance: string) => {
      const p = enricher.prepare(enricher.facts(spanOn(instance, T0 + STEP + 1)), null, T0 + 60_000, T0 + 60_000);
      assert.ok(p.ready);
      return p.extras.get(0)!.cache;
    };
    // The window step 1 → step 2, with engine 1's reset inside it.
    const a = cacheOf('vllm-a');
    assert.equal(a['cachelens.prompt_tokens.cached'], 600);
    assert.equal(a['cachelens.prompt_tokens.cached.local'], 250);
    assert.equal(a['cachelens.prompt_tokens.cached.external'], 350);
    assert.equal(a['cachelens.prefix_cache.external.queries'], 600);
    assert.equal(a['cachelens.prefix_cache.external.hits'], 350);
    const b = cacheOf('vllm-b');
    assert.equal(b['cachelens.prompt_tokens.cached.local'], undefined, 'no prompt_tokens_by_source on b');
    assert.equal(b['cachelens.prompt_tokens.cached.external'], undefined);
    assert.equal(b['cachelens.prefix_cache.external.queries'], 800);
    assert.equal(b['cachelens.prefix_cache.external.hits'], 300);
    // its estimate reads the same cached tokens as the reports: GPU hits plus the connector's (200 + 300 of 1,000)
    const p = enricher.prepare(enricher.facts(spanOn('vllm-b', T0 + STEP + 1)), null, T0 + 60_000, T0 + 60_000);
    assert.ok(p.ready);
    assert.equal(p.extras.get(0)!.own?.['cachelens.request.cache_read.input_tokens.estimate'], (500 * 500) / 1000);
    db.close();
  });

  it('the split that does not add up is counted once, and stored as exposed', () => {
    assert.equal(mismatches, 1);
  });

  it('in reports: local and external per model, the external hit ratio, savings at the external price', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cachelens-tiered-prices-'));
    const prices = join(dir, 'prices.yaml');
    writeFileSync(
      prices,
      'models:\n  - match: llama\n    input: 1000\n    cached_input: 100\n' +
        '    external_cached_input: 500\n    output: 0\n' +
        '  - match: qwen\n    input: 1000\n    cached_input: 100\n    output: 0\n',
    );
    const r = makeReport({
      db: path,
      since: new Date(T0 - 60_000).toISOString(),
      until: new Date(T0 + 120_000).toISOString(),
      by: 'model',
      prices,
      tenantKeys: [],
    });
    const llama = r.rows.find((x) => x.key.model === 'llama')!;
    assert.equal(llama.prompt_tokens, 2000 + 1100 + 300);
    assert.equal(llama.cached_prompt_tokens, 1000 + 600 + 210);
    assert.equal(llama.local_cached_prompt_tokens, 500 + 250 + 100);
    assert.equal(llama.external_cached_prompt_tokens, 500 + 350 + 100);
    assert.equal(llama.external_hit_ratio, (500 + 350 + 100) / (1200 + 600 + 100));
    assert.equal(llama.cached_split_basis, 'exact');
    // (3400 − 1810) × 1000 + (1810 − 950) × 100 + 950 × 500, per 1M tokens
    assert.ok(Math.abs(llama.cost_with_cache! - (1590 * 1000 + 860 * 100 + 950 * 500) / 1e6) < 1e-9);
    assert.ok(Math.abs(llama.cost_without_cache! - 3.4) < 1e-9);
    // b: cached = local hits + external hits; external from the connector's hits
    const qwen = r.rows.find((x) => x.key.model === 'qwen')!;
    assert.equal(qwen.cached_prompt_tokens, 800 + 600 + 200 + 300);
    assert.equal(qwen.local_cached_prompt_tokens, 1000);
    assert.equal(qwen.external_cached_prompt_tokens, 900);
    assert.equal(qwen.external_hit_ratio, 900 / 2000);
    // external_cached_input defaults to cached_input
    assert.ok(Math.abs(qwen.cost_with_cache! - (1100 * 1000 + 1900 * 100) / 1e6) < 1e-9);
    assert.equal(r.totals.external_cached_prompt_tokens, 950 + 900);
    // the HTML charts the split over time: a local and an external line per model
    const html = renderReport(r, 'html');
    assert.match(html, /Cached prompt tokens over time: local prefix cache and external KV tier, per model/);
    for (const line of ['llama · local', 'llama · external', 'qwen · local', 'qwen · external'])
      assert.ok(html.includes(line), line);
    // a fleet without a tiered cache shows no such chart and no such columns in the table
    assert.doesNotMatch(
      renderReport(
        {
          ...r,
          rows: [],
          totals: { ...r.totals, local_cached_prompt_tokens: null, external_cached_prompt_tokens: null },
        },
        'table',
      ),
      /external cached/,
    );
  });

  it('tenant rows split their cached tokens as their model did, marked allocated; unattributed takes the rest', () => {
    const db = openDatabase(path);
    new LedgerStore(db).write(
      [
        {
          traceId: 't1',
          spanId: 's1',
          startMs: T0 + 15_000,
          endMs: T0 + 18_000,
          spanName: 'llm_request',
          serviceName: 'vllm',
          targetId: db.prepare("SELECT id FROM targets WHERE instance = 'vllm-a'").pluck().get() as number,
          instance: 'vllm-a',
          model: 'llama',
          match: 'resource',
          promptTokens: 400,
          completionTokens: 10,
          cachedTokens: 181,
          cachedTokensEstimate: null,
          windowComplete: true,
          latency: {},
          tenantJson: '{"tenant.id":"acme"}',
          kvUsageStart: null,
          waitingStart: null,
        },
      ],
      [],
    );
    db.close();
    const r = makeReport({
      db: path,
      since: new Date(T0 - 60_000).toISOString(),
      until: new Date(T0 + 120_000).toISOString(),
      by: 'model,tenant',
      tenantKeys: ['tenant.id'],
    });
    const acme = r.rows.find((x) => x.key.tenant === 'acme')!;
    assert.equal(acme.cached_split_basis, 'allocated');
    // llama's fleet: 950 of 1810 cached tokens external, in the same minute
    assert.ok(Math.abs(acme.external_cached_prompt_tokens! - (181 * 950) / 1810) < 1e-9);
    assert.ok(Math.abs(acme.local_cached_prompt_tokens! - (181 * 860) / 1810) < 1e-9);
    const rest = r.rows.find((x) => x.key.model === 'llama' && x.key.tenant === 'unattributed')!;
    assert.equal(rest.cached_split_basis, 'remainder');
    assert.ok(Math.abs(rest.external_cached_prompt_tokens! + acme.external_cached_prompt_tokens! - 950) < 1e-9);
  });
});
