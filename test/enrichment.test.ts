import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { context, trace, SpanKind, type Tracer } from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-grpc';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { Daemon } from '../src/cli/daemon.ts';
import { makeReport } from '../src/cli/report.ts';
import { buildConfig } from '../src/config/config.ts';
import { anyValueToJs, toHex } from '../src/otlp/decode.ts';
import type { OtlpSpan } from '../src/otlp/schema.ts';
import { MetricsServer } from './support/metricsServer.ts';
import { OtlpSink } from './support/otlpSink.ts';
import { waitFor } from './support/pipelineHarness.ts';
import { memoryLogger } from './support/silentLogger.ts';
import { renderVllmExposition, type VllmModelState } from '../src/demo/vllmExposition.ts';

// The scripted fleet: scrape n of target A or B exposes these cumulative counters and gauges.
const SCRIPT = {
  a: (n: number) => ({
    queries: 100 * n,
    hits: 40 * n,
    prompt: 1000 * n,
    cached: 400 * n,
    preempt: n,
    waiting: n,
    running: 10 + n,
    kv: n / 16,
  }),
  b: (n: number) => ({
    queries: 50 * n,
    hits: 10 * n,
    prompt: 500 * n,
    cached: 100 * n,
    preempt: 2 * n,
    waiting: 2 * n,
    running: 5,
    kv: n / 32,
  }),
};

function state(v: ReturnType<typeof SCRIPT.a>): VllmModelState {
  return {
    model: 'llama',
    engine: '0',
    prefixCacheQueries: v.queries,
    prefixCacheHits: v.hits,
    promptTokens: v.prompt,
    promptTokensCached: v.cached,
    generationTokens: 0,
    preemptions: v.preempt,
    requestsFinished: { stop: 0, length: 0, abort: 0, error: 0, repetition: 0 },
    requestsWaiting: v.waiting,
    requestsRunning: v.running,
    kvCacheUsage: v.kv,
    createdUnixSeconds: 1_764_000_000,
  };
}

const eventAttrs = (span: OtlpSpan, name: string): Record<string, unknown> | undefined => {
  const e = span.events.find((x) => x.name === name);
  if (!e) return undefined;
  return Object.fromEntries(e.attributes.map((kv) => [kv.key, anyValueToJs(kv.value)]));
};

describe('enrichment: request spans carry the scripted fleet numbers for their window', () => {
  const fleet = new MetricsServer();
  const sink = new OtlpSink();
  let daemon: Daemon;
  const scrapes = { a: 0, b: 0 };
  let tracerFor: (resource: Record<string, string | number>) => { tracer: Tracer; flush: () => Promise<void> };

  before(async () => {
    await fleet.start();
    await sink.start();
    fleet.serve('/a', () => renderVllmExposition([state(SCRIPT.a(++scrapes.a))], { histograms: false }));
    fleet.serve('/b', () => renderVllmExposition([state(SCRIPT.b(++scrapes.b))], { histograms: false }));
    fleet.route('/c', (_req, res) => {
      res.statusCode = 500;
      res.end('engine dead');
    });
    const dir = mkdtempSync(join(tmpdir(), 'cachelens-enrich-'));
    const { config } = buildConfig(
      {
        storage: { path: join(dir, 'store.db') },
        scrape: {
          interval: '1s',
          timeout: '500ms',
          targets: [
            { url: fleet.url('/a'), labels: { instance: 'vllm-a' } },
            // vLLM sets no instance id of its own: a config match on the service name it was given (rule 1).
            { url: fleet.url('/b'), labels: { instance: 'vllm-b' }, match: { 'service.name': 'vllm-b-server' } },
            { url: fleet.url('/c'), labels: { instance: 'vllm-c' } },
          ],
        },
        receivers: { grpc: { endpoint: '127.0.0.1:0' }, http: { endpoint: '127.0.0.1:0' } },
        telemetry: { endpoint: '127.0.0.1:0' },
        exporter: { endpoint: sink.endpoint },
        enrich: { max_wait: '4s' },
      },
      {},
    );
    daemon = new Daemon(config, memoryLogger().log);
    await daemon.start();
    const url = `http://127.0.0.1:${daemon.pipeline!.grpc!.port}`;
    tracerFor = (resource) => {
      const provider = new BasicTracerProvider({
        resource: resourceFromAttributes(resource),
        spanProcessors: [new SimpleSpanProcessor(new OTLPTraceExporter({ url }))],
      });
      return { tracer: provider.getTracer('test'), flush: () => provider.forceFlush() };
    };
    await waitFor(() => scrapes.a >= 2 && scrapes.b >= 2, 'two scrapes of each target', 10_000);
  });

  after(async () => {
    await daemon.shutdown();
    await sink.stop();
    await fleet.stop();
  });

  it('matches by service.instance.id, waits for the closing scrape, and sets every value from the script', async () => {
    const gateway = tracerFor({ 'service.name': 'gateway' });
    const vllm = tracerFor({ 'service.name': 'vllm-server', 'service.instance.id': 'vllm-a' });
    const gw = gateway.tracer.startSpan('POST /v1/chat/completions', {
      kind: SpanKind.SERVER,
      attributes: { 'tenant.id': 'acme' },
    });
    const req = vllm.tracer.startSpan(
      'llm_request',
      {
        kind: SpanKind.SERVER,
        attributes: {
          'gen_ai.usage.prompt_tokens': 812,
          'gen_ai.usage.completion_tokens': 64,
          'gen_ai.latency.e2e': 2.2,
          'gen_ai.latency.time_in_queue': 0.25,
        },
      },
      trace.setSpan(context.active(), gw),
    );
    const untouched = vllm.tracer.startSpan('detokenize', {}, trace.setSpan(context.active(), req));
    await new Promise((r) => setTimeout(r, 2200));
    untouched.end();
    req.end();
    gw.end();
    await Promise.all([vllm.flush(), gateway.flush()]);
    const reqId = req.spanContext().spanId;
    await waitFor(() => sink.spans().some((s) => toHex(s.spanId) === reqId), 'the request span downstream', 10_000);
    const span = sink.spans().find((s) => toHex(s.spanId) === reqId)!;
    const cache = eventAttrs(span, 'cachelens.cache')!;
    const sched = eventAttrs(span, 'cachelens.scheduler')!;
    assert.ok(cache && sched, 'both events present');
    assert.deepEqual(
      span.events.map((e) => e.timeUnixNano.toString()),
      [span.startTimeUnixNano.toString(), span.startTimeUnixNano.toString()],
      'events are stamped at span start',
    );

    // Work out the window from the store, then every expected number from the script.
    const db = daemon.db!;
    const times = (instance: string): number[] =>
      db
        .prepare(
          'SELECT s.ts_ms FROM scrapes s JOIN targets t ON t.id = s.target_id WHERE t.instance = ? AND s.up = 1 ' +
            'ORDER BY s.ts_ms',
        )
        .pluck()
        .all(instance) as number[];
    const ta = times('vllm-a');
    const tb = times('vllm-b');
    const startMs = Number(span.startTimeUnixNano.toString()) / 1e6;
    const endMs = Number(span.endTimeUnixNano.toString()) / 1e6;
    const from = ta.filter((t) => t <= startMs).at(-1)!;
    const to = ta.find((t) => t >= endMs)!;
    const na = ta.indexOf(from) + 1;
    const nb = ta.indexOf(to) + 1;
    const A0 = SCRIPT.a(na);
    const A1 = SCRIPT.a(nb);
    const countB = (ms: number) => tb.filter((t) => t <= ms).length;
    const B0 = SCRIPT.b(countB(from));
    const B1 = SCRIPT.b(countB(to));
    const kvB = Math.max(...tb.filter((t) => t >= from && t <= to).map((t) => SCRIPT.b(tb.indexOf(t) + 1).kv));
    const dA = (k: keyof ReturnType<typeof SCRIPT.a>) => A1[k] - A0[k];
    const dB = (k: keyof ReturnType<typeof SCRIPT.b>) => B1[k] - B0[k];

    assert.deepEqual(cache, {
      'cachelens.match': 'resource',
      'cachelens.instance': 'vllm-a',
      'cachelens.model': 'llama',
      'cachelens.window.start_unix_nano': from * 1e6,
      'cachelens.window.end_unix_nano': to * 1e6,
      'cachelens.window.complete': true,
      'cachelens.prefix_cache.queries': dA('queries'),
      'cachelens.prefix_cache.hits': dA('hits'),
      'cachelens.prefix_cache.hit_ratio': dA('hits') / dA('queries'),
      'cachelens.prompt_tokens': dA('prompt'),
      'cachelens.prompt_tokens.cached': dA('cached'),
      // vLLM ≥ 0.16 without a KV connector: every cached token local, the connector's counters at 0
      'cachelens.prompt_tokens.cached.local': dA('cached'),
      'cachelens.prompt_tokens.cached.external': 0,
      'cachelens.prefix_cache.external.queries': 0,
      'cachelens.prefix_cache.external.hits': 0,
      'cachelens.kv_cache.usage.start': A0.kv,
      'cachelens.kv_cache.usage.max': A1.kv,
      'cachelens.fleet.prefix_cache.hit_ratio': (dA('hits') + dB('hits')) / (dA('queries') + dB('queries')),
      'cachelens.fleet.kv_cache.usage.max': Math.max(A1.kv, kvB),
      'cachelens.fleet.instances': 2,
      'cachelens.request.cache_read.input_tokens.estimate': Math.min(812, (dA('cached') * 812) / dA('prompt')),
    });
    assert.deepEqual(sched, {
      'cachelens.queue.waiting.start': A0.waiting,
      'cachelens.queue.waiting.max': A1.waiting,
      'cachelens.requests.running.start': A0.running,
      'cachelens.preemptions': dA('preempt'),
      'cachelens.fleet.queue.waiting.start': A0.waiting + B0.waiting,
      'cachelens.fleet.preemptions': dA('preempt') + dB('preempt'),
    });
    assert.ok(nb - na >= 2, `the window spans the 2.2 s request (${na}→${nb})`);

    // Other spans pass through untouched.
    const detok = sink.spans().find((s) => toHex(s.spanId) === untouched.spanContext().spanId)!;
    assert.deepEqual(detok.events, []);

    // The ledger row, and the tenant found on the gateway span of the same trace.
    const row = db.prepare('SELECT * FROM request_ledger WHERE span_id = ?').get(reqId) as Record<string, unknown>;
    assert.equal(row.instance, 'vllm-a');
    assert.equal(row.model, 'llama');
    assert.equal(row.match, 'resource');
    assert.equal(row.prompt_tokens, 812);
    assert.equal(row.completion_tokens, 64);
    assert.equal(row.cached_tokens, null);
    assert.equal(row.cached_tokens_estimate, Math.min(812, (dA('cached') * 812) / dA('prompt')));
    assert.equal(row.latency_e2e_s, 2.2);
    assert.equal(row.latency_queue_s, 0.25);
    assert.equal(row.window_complete, 1);
    // the fleet state the latency view buckets by: the span's event values, at the window's start
    assert.equal(row.kv_usage_start, A0.kv);
    assert.equal(row.waiting_start, A0.waiting);
    await waitFor(
      () => !!db.prepare('SELECT 1 FROM request_ledger_tenants WHERE span_id = ?').get(reqId),
      'tenant of the trace',
    );
    assert.deepEqual(db.prepare('SELECT key, value FROM request_ledger_tenants WHERE span_id = ?').all(reqId), [
      { key: 'tenant.id', value: 'acme' },
    ]);
  });

  it('a real cached count on a gateway span, exported in its own batch, reaches the report as measured', async () => {
    const gateway = tracerFor({ 'service.name': 'gateway' });
    const vllm = tracerFor({ 'service.name': 'vllm-server', 'service.instance.id': 'vllm-a' });
    const gw = gateway.tracer.startSpan('POST /v1/chat/completions', {
      kind: SpanKind.SERVER,
      attributes: { 'tenant.id': 'initech', 'gen_ai.usage.cache_read.input_tokens': 300 },
    });
    const req = vllm.tracer.startSpan(
      'llm_request',
      { kind: SpanKind.SERVER, attributes: { 'gen_ai.usage.prompt_tokens': 400, 'gen_ai.usage.completion_tokens': 8 } },
      trace.setSpan(context.active(), gw),
    );
    req.end();
    gw.end();
    await vllm.flush();
    await gateway.flush();
    const traceId = req.spanContext().traceId;
    const db = daemon.db!;
    await waitFor(
      () =>
        !!db.prepare('SELECT 1 FROM trace_usage WHERE trace_id = ?').get(traceId) &&
        !!db.prepare('SELECT 1 FROM request_ledger WHERE trace_id = ?').get(traceId),
      'ledger row and trace usage',
      10_000,
    );
    assert.equal(db.prepare('SELECT cached_tokens FROM trace_usage WHERE trace_id = ?').pluck().get(traceId), 300);
    const r = makeReport({ db: db.name, since: '1h', by: 'tenant', tenantKeys: ['tenant.id'] });
    const initech = r.rows.find((x) => x.key.tenant === 'initech');
    assert.ok(initech, JSON.stringify(r.rows.map((x) => x.key)));
    assert.equal(initech.cached_measured_tokens, 300, "the gateway's count, not the request span's window estimate");
    assert.equal(initech.cached_allocated_tokens, 0);
    assert.equal(initech.prompt_tokens, 400);
  });

  it('a failed ledger write keeps the spans in the spool: sent again, and written once the ledger works', async () => {
    const db = daemon.db!;
    const spool = daemon.pipeline!.spool;
    const vllm = tracerFor({ 'service.name': 'vllm-server', 'service.instance.id': 'vllm-a' });
    db.exec('ALTER TABLE request_ledger RENAME TO request_ledger_off');
    try {
      const req = vllm.tracer.startSpan('llm_request', {
        kind: SpanKind.SERVER,
        attributes: { 'gen_ai.usage.prompt_tokens': 5 },
      });
      req.end();
      await vllm.flush();
      const spanId = req.spanContext().spanId;
      const copies = () => sink.spans().filter((s) => toHex(s.spanId) === spanId).length;
      await waitFor(() => copies() >= 1, 'sent before the ledger write', 10_000);
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(spool.counts().rows, 1, 'acknowledged downstream, but its ledger row is missing: it stays');
      db.exec('ALTER TABLE request_ledger_off RENAME TO request_ledger');
      await waitFor(() => spool.counts().rows === 0, 'the row sent again and deleted', 15_000);
      assert.ok(copies() >= 2, 'a duplicate downstream, as after a crash');
      assert.equal(db.prepare('SELECT count(*) FROM request_ledger WHERE span_id = ?').pluck().get(spanId), 1);
    } finally {
      if (db.prepare("SELECT 1 FROM sqlite_master WHERE name = 'request_ledger_off'").get())
        db.exec('ALTER TABLE request_ledger_off RENAME TO request_ledger');
    }
  });

  it('a config match on a dotted resource attribute (service.name) wins over every other rule', async () => {
    const vllm = tracerFor({ 'service.name': 'vllm-b-server', 'host.name': 'vllm-a' });
    const req = vllm.tracer.startSpan('llm_request', {
      kind: SpanKind.SERVER,
      attributes: { 'gen_ai.usage.prompt_tokens': 50 },
    });
    req.end();
    await vllm.flush();
    await waitFor(
      () => sink.spans().some((x) => toHex(x.spanId) === req.spanContext().spanId),
      'the span downstream',
      10_000,
    );
    const c = eventAttrs(sink.spans().find((x) => toHex(x.spanId) === req.spanContext().spanId)!, 'cachelens.cache')!;
    assert.equal(c['cachelens.match'], 'config');
    assert.equal(c['cachelens.instance'], 'vllm-b', 'host.name names vllm-a, but the config rule comes first');
  });

  it(
    'an ambiguous peer falls back to fleet context; a dead ' +
      'target is enriched after max_wait and marked incomplete',
    async () => {
      const anon = tracerFor({ 'service.name': 'sglang' });
      const dead = tracerFor({ 'service.name': 'vllm', 'service.instance.id': 'vllm-c' });
      const s1 = anon.tracer.startSpan(' Req 1a2b3c4d', {
        attributes: { 'gen_ai.usage.prompt_tokens': 10, 'gen_ai.usage.cached_tokens': 8 },
      });
      const s2 = dead.tracer.startSpan('llm_request', { kind: SpanKind.SERVER });
      s1.end();
      s2.end();
      const t0 = Date.now();
      await Promise.all([anon.flush(), dead.flush()]);
      await waitFor(
        () => [s1, s2].every((s) => sink.spans().some((x) => toHex(x.spanId) === s.spanContext().spanId)),
        'both spans downstream',
        15_000,
      );
      const got = (s: typeof s1) => sink.spans().find((x) => toHex(x.spanId) === s.spanContext().spanId)!;
      const c1 = eventAttrs(got(s1), 'cachelens.cache')!;
      assert.equal(c1['cachelens.match'], 'fleet');
      assert.equal(c1['cachelens.instance'], undefined);
      assert.equal(c1['cachelens.fleet.instances'], 2);
      assert.equal(c1['cachelens.prefix_cache.queries'], undefined, 'instance values are absent, never 0');
      assert.equal(
        c1['cachelens.request.cache_read.input_tokens.estimate'],
        undefined,
        'the span carries a real cached count',
      );
      const c2 = eventAttrs(got(s2), 'cachelens.cache')!;
      assert.equal(c2['cachelens.match'], 'resource');
      assert.equal(c2['cachelens.instance'], 'vllm-c');
      assert.equal(c2['cachelens.window.complete'], false);
      assert.equal(c2['cachelens.prefix_cache.hit_ratio'], undefined);
      assert.ok(Date.now() - t0 >= 3500, "the dead target's span waited for enrich.max_wait");
      const row = daemon
        .db!.prepare('SELECT cached_tokens, match FROM request_ledger WHERE span_id = ?')
        .get(s1.spanContext().spanId);
      assert.deepEqual(row, { cached_tokens: 8, match: 'fleet' });
    },
  );
});
