// One truth for cached tokens: prefix hits in blocks are turned into tokens with the engine's block
// size or kept out of every token figure, and the per-request estimate reads the same source as the
// reports (prompt_tokens_cached, else prefix hits in tokens).
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { context, trace, SpanKind } from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-grpc';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { Daemon } from '../src/cli/daemon.ts';
import { makeReport } from '../src/cli/report.ts';
import { buildConfig } from '../src/config/config.ts';
import { demoModelState, renderVllmExposition } from '../src/demo/vllmExposition.ts';
import { anyValueToJs, toHex } from '../src/otlp/decode.ts';
import { normalizeBody } from '../src/scrape/scrapeTarget.ts';
import { makeTarget } from '../src/scrape/target.ts';
import { openDatabase } from '../src/store/openDatabase.ts';
import { ScrapeStore } from '../src/store/scrapeStore.ts';
import { MetricsServer } from './support/metricsServer.ts';
import { OtlpSink } from './support/otlpSink.ts';
import { waitFor } from './support/pipelineHarness.ts';
import { memoryLogger } from './support/silentLogger.ts';

/** A vLLM 0.8 V0 body: prefix counters in blocks (their HELP says so), optionally with cache_config_info. */
function v0Body(
  n: { queries: number; hits: number; prompt: number },
  blockSizes: Record<string, number> | null,
  engines = ['0'],
): string {
  const lines: string[] = [];
  const perEngine = (v: number) => v / engines.length;
  if (blockSizes) {
    lines.push(
      '# HELP vllm:cache_config_info Information of the LLMEngine CacheConfig',
      '# TYPE vllm:cache_config_info gauge',
    );
    for (const e of engines)
      lines.push(
        `vllm:cache_config_info{block_size="${blockSizes[e]}",enable_prefix_caching="True",engine="${e}"} 1.0`,
      );
  }
  const counter = (name: string, help: string, v: number) => {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} counter`);
    for (const e of engines) lines.push(`${name}_total{engine="${e}",model_name="m"} ${perEngine(v)}`);
  };
  counter(
    'vllm:gpu_prefix_cache_queries',
    'GPU prefix cache queries, in terms of number of queried blocks.',
    n.queries,
  );
  counter('vllm:gpu_prefix_cache_hits', 'GPU prefix cache hits, in terms of number of cached blocks.', n.hits);
  counter('vllm:prompt_tokens', 'Number of prefill tokens processed.', n.prompt);
  lines.push('# TYPE vllm:gpu_cache_usage_perc gauge');
  for (const e of engines) lines.push(`vllm:gpu_cache_usage_perc{engine="${e}",model_name="m"} 0.5`);
  return lines.join('\n') + '\n';
}

const target = makeTarget('http://10.0.0.1:8000/metrics', {}, 'auto', {}, 'v0');
const signal = (body: string, name: string) => normalizeBody(target, body).signals.filter((s) => s.signal === name);

describe('prefix hits in blocks', () => {
  it("become tokens with the engine's block_size from vllm:cache_config_info", () => {
    const hits = signal(v0Body({ queries: 1000, hits: 500, prompt: 16_000 }, { '0': 16 }), 'prefix_cache_hits');
    assert.equal(hits.length, 1);
    assert.equal(hits[0]!.unit, 'tokens');
    assert.equal(hits[0]!.value, 500 * 16);
    // Two engines with their own block sizes: each converted with its own.
    const two = signal(
      v0Body({ queries: 1000, hits: 500, prompt: 16_000 }, { '0': 16, '1': 32 }, ['0', '1']),
      'prefix_cache_hits',
    );
    assert.deepEqual(two.map((s) => [s.engine, s.value]).sort(), [
      ['0', 250 * 16],
      ['1', 250 * 32],
    ]);
  });

  it('without a block size stay in blocks, under their own signal, never as prefix_cache_hits', () => {
    const body = v0Body({ queries: 1000, hits: 500, prompt: 16_000 }, null);
    assert.deepEqual(signal(body, 'prefix_cache_hits'), []);
    const blocks = signal(body, 'prefix_cache_hits_blocks');
    assert.equal(blocks.length, 1);
    assert.equal(blocks[0]!.unit, 'blocks');
    assert.equal(blocks[0]!.value, 500);
  });

  for (const [name, sizes, expectRatio] of [
    ['with block_size 16: 500 hit blocks against 16,000 prompt tokens is 50 %', { '0': 16 }, 0.5],
    ['with no block size: hits are left out, with a note, never read as 3.1 %', null, null],
  ] as const) {
    it(`the report, ${name}`, () => {
      const dir = mkdtempSync(join(tmpdir(), 'cachelens-blocks-'));
      const path = join(dir, 'store.db');
      const db = openDatabase(path);
      const store = new ScrapeStore(db);
      const t0 = Date.now() - 10 * 60_000;
      const round = (ms: number, n: { queries: number; hits: number; prompt: number }) =>
        store.writeRound([
          { target, startedMs: ms, durationMs: 1, up: true, ...normalizeBody(target, v0Body(n, sizes)) },
        ]);
      round(t0, { queries: 0, hits: 0, prompt: 0 });
      round(t0 + 15_000, { queries: 1000, hits: 500, prompt: 16_000 });
      db.close();
      const r = makeReport({ db: path, since: '1h', by: 'model', tenantKeys: [] });
      assert.equal(r.totals.prompt_tokens, 16_000);
      assert.equal(r.totals.cache_hit_ratio, expectRatio);
      assert.equal(r.totals.cached_prompt_tokens, expectRatio === null ? null : 8000);
      const note = r.notes.find((n) => /counted in blocks/.test(n));
      if (expectRatio === null) assert.ok(note, r.notes.join('\n'));
      else assert.equal(note, undefined);
    });
  }
});

describe('the estimate on a vLLM 0.12-style fleet (no prompt_tokens_cached)', () => {
  const fleet = new MetricsServer();
  const sink = new OtlpSink();
  let daemon: Daemon;
  let n = 0;
  before(async () => {
    await fleet.start();
    await sink.start();
    // Per scrape: 1000 prompt tokens, 250 of them prefix-cache hits (tokens), no cached-token counter.
    fleet.serve('/a', () => {
      n++;
      return renderVllmExposition(
        [
          {
            ...demoModelState('llama'),
            promptTokens: 1000 * n,
            prefixCacheHits: 250 * n,
            prefixCacheQueries: 1000 * n,
          },
        ],
        { histograms: false, cachedCounters: false },
      );
    });
    const dir = mkdtempSync(join(tmpdir(), 'cachelens-v012-'));
    const { config } = buildConfig(
      {
        storage: { path: join(dir, 'store.db') },
        scrape: {
          interval: '1s',
          timeout: '500ms',
          targets: [{ url: fleet.url('/a'), labels: { instance: 'vllm-a' } }],
        },
        receivers: { grpc: { endpoint: '127.0.0.1:0' }, http: { endpoint: '127.0.0.1:0' } },
        telemetry: { endpoint: '127.0.0.1:0' },
        exporter: { endpoint: sink.endpoint },
        enrich: { max_wait: '4s' },
        ledger: { tenant_attributes: ['tenant.id'] },
      },
      {},
    );
    daemon = new Daemon(config, memoryLogger().log);
    await daemon.start();
    await waitFor(() => n >= 2, 'two scrapes', 10_000);
  });
  after(async () => {
    await daemon.shutdown();
    await sink.stop();
    await fleet.stop();
  });

  it('gets an estimate from prefix hits in tokens, and tenant rows reconcile', async () => {
    const url = `http://127.0.0.1:${daemon.pipeline!.grpc!.port}`;
    const provider = (resource: Record<string, string>) =>
      new BasicTracerProvider({
        resource: resourceFromAttributes(resource),
        spanProcessors: [new SimpleSpanProcessor(new OTLPTraceExporter({ url }))],
      });
    const gw = provider({ 'service.name': 'gateway' });
    const vllm = provider({ 'service.name': 'vllm', 'service.instance.id': 'vllm-a' });
    const ids: string[] = [];
    for (const tenant of ['acme', 'globex']) {
      const g = gw
        .getTracer('t')
        .startSpan('POST /v1/chat/completions', { kind: SpanKind.SERVER, attributes: { 'tenant.id': tenant } });
      const s = vllm.getTracer('t').startSpan(
        'llm_request',
        {
          kind: SpanKind.SERVER,
          attributes: { 'gen_ai.usage.prompt_tokens': 400, 'gen_ai.usage.completion_tokens': 4 },
        },
        trace.setSpan(context.active(), g),
      );
      await new Promise((r) => setTimeout(r, 1200));
      s.end();
      g.end();
      ids.push(s.spanContext().spanId);
    }
    await Promise.all([gw.forceFlush(), vllm.forceFlush()]);
    await waitFor(
      () => ids.every((id) => sink.spans().some((x) => toHex(x.spanId) === id)),
      'both request spans downstream',
      15_000,
    );
    for (const id of ids) {
      const span = sink.spans().find((x) => toHex(x.spanId) === id)!;
      const cache = Object.fromEntries(
        span.events.find((e) => e.name === 'cachelens.cache')!.attributes.map((kv) => [kv.key, anyValueToJs(kv.value)]),
      );
      // The window's hits are a quarter of its prompt tokens, so the estimate is a quarter of 400.
      assert.equal(cache['cachelens.request.cache_read.input_tokens.estimate'], 100, JSON.stringify(cache));
    }
    const db = daemon.db!;
    await waitFor(
      () => (db.prepare('SELECT count(*) FROM request_ledger_tenants').pluck().get() as number) >= 2,
      'tenants',
      10_000,
    );
    const r = makeReport({ db: db.name, since: '1h', by: 'tenant', tenantKeys: ['tenant.id'] });
    const row = (t: string) => r.rows.find((x) => x.key.tenant === t);
    assert.equal(row('acme')?.cached_allocated_tokens, 100);
    assert.equal(row('globex')?.cached_allocated_tokens, 100);
    const rec = r.reconciliation!;
    assert.ok(rec.fleet_cached_prompt_tokens! > 0, 'the fleet figure comes from prefix hits');
    assert.equal(rec.tenant_allocated, 200);
    assert.equal(rec.unattributed, rec.fleet_cached_prompt_tokens! - rec.tenant_measured - rec.tenant_allocated);
  });
});
