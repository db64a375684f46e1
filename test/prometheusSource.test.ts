// Prometheus as the source of fleet counters, against the real Prometheus from Debian's `prometheus`
// package: two vLLM servers scraped by Prometheus every second, read by cachelens from the HTTP API.
// What cachelens stores must equal what it stores when it scrapes the same bodies itself at the same
// sample times: deltas (across a counter reset), gauges, span events and report figures, also across
// a restart of Prometheus and a restart of cachelens.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import type { Database } from 'better-sqlite3';
import { buildConfig, type PrometheusSourceConfig } from '../src/config/config.ts';
import { DEFAULT_REQUEST_SPAN_NAMES } from '../src/config/spanNames.ts';
import { Enricher } from '../src/correlate/enricher.ts';
import { compileSpanSelector } from '../src/correlate/requestSpans.ts';
import { demoModelState, renderVllmExposition, type VllmModelState } from '../src/demo/vllmExposition.ts';
import { ExportTraceServiceRequest, type OtlpTraceRequest } from '../src/otlp/schema.ts';
import { CREATED_GROUPS, NAME_GROUPS, PrometheusSource } from '../src/scrape/prometheusSource.ts';
import { normalizeBody, type ScrapeResult } from '../src/scrape/scrapeTarget.ts';
import type { Target } from '../src/scrape/target.ts';
import { FleetQueries } from '../src/store/fleetQueries.ts';
import { openDatabase } from '../src/store/openDatabase.ts';
import { ScrapeStore } from '../src/store/scrapeStore.ts';
import { context, SpanKind, trace } from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-grpc';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, type ReadableSpan, type SpanProcessor } from '@opentelemetry/sdk-trace-base';
import { Daemon } from '../src/cli/daemon.ts';
import { MetricsServer } from './support/metricsServer.ts';
import { freePort } from './support/ports.ts';
import { PrometheusServer } from './support/prometheusServer.ts';
import { memoryLogger } from './support/silentLogger.ts';
import { toolSkip } from './support/systemTool.ts';

const NO_PROMETHEUS = toolSkip('prometheus', ['--version'], 'prometheus');
const BIN = new URL('../bin/cachelens.js', import.meta.url).pathname;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function waitFor(cond: () => Promise<boolean>, what: string, timeoutMs = 15_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(200);
  }
}

/** A vLLM server whose counters grow with every scrape; it keeps every body it served, with the time. */
class VllmServer {
  readonly http = new MetricsServer();
  readonly served: Array<{ atMs: number; body: string }> = [];
  private n = 0;
  resetAt?: number;

  constructor(
    private readonly model: string,
    private readonly step: number,
  ) {}

  private state(): VllmModelState {
    // After resetAt, the engine restarted: counters start again from small values, with a new _created.
    const restarted = this.resetAt !== undefined && this.n >= this.resetAt;
    const k = restarted ? this.n - this.resetAt! + 1 : this.n;
    const base = demoModelState(this.model, restarted ? 0 : 1);
    return {
      ...base,
      prefixCacheQueries: base.prefixCacheQueries + k * 10 * this.step,
      prefixCacheHits: base.prefixCacheHits + k * 7 * this.step,
      promptTokens: base.promptTokens + k * 10 * this.step,
      promptTokensCached: base.promptTokensCached + k * 6 * this.step,
      generationTokens: base.generationTokens + k * 3 * this.step,
      preemptions: base.preemptions + (k % 4 === 0 ? 1 : 0) * k,
      requestsWaiting: k % 5,
      kvCacheUsage: (k % 10) / 10,
      createdUnixSeconds: restarted ? 1_764_100_000.5 : base.createdUnixSeconds,
    };
  }

  async start(): Promise<this> {
    await this.http.start();
    this.http.serve('/metrics', () => {
      this.n++;
      const body = renderVllmExposition([this.state()], { histograms: false, created: true });
      this.served.push({ atMs: Date.now(), body });
      return body;
    });
    return this;
  }
}

const DELTAS = `SELECT t.instance, s.signal, s.model, s.engine, d.ts_ms, d.delta, d.resets, d.interval_ms
  FROM counter_deltas d JOIN series s ON s.id = d.series_id JOIN targets t ON t.id = s.target_id
  ORDER BY 1, 2, 3, 4, 5`;
const GAUGES = `SELECT t.instance, s.signal, s.model, g.ts_ms, g.value
  FROM gauge_samples g JOIN series s ON s.id = g.series_id JOIN targets t ON t.id = s.target_id
  ORDER BY 1, 2, 3, 4`;

/**
 * The store cachelens would have written scraping the same bodies itself: for every scrape Prometheus
 * stored, the body the server served for it (the first one served at or after its timestamp), written
 * at the same sample time.
 */
function directStore(path: string, from: Database, servers: ReadonlyMap<string, VllmServer>): Database {
  const db = openDatabase(path);
  const store = new ScrapeStore(db);
  const scrapes = from
    .prepare(
      `SELECT t.url, t.instance, t.labels_json, s.ts_ms, s.up, s.duration_ms FROM scrapes s
       JOIN targets t ON t.id = s.target_id ORDER BY s.ts_ms, t.url`,
    )
    .all() as Array<{
    url: string;
    instance: string;
    labels_json: string;
    ts_ms: number;
    up: number;
    duration_ms: number;
  }>;
  const results: ScrapeResult[] = [];
  for (const s of scrapes) {
    const labels = JSON.parse(s.labels_json) as Record<string, string>;
    const target: Target = {
      url: new URL(s.url),
      key: s.url,
      instance: s.instance,
      labels,
      profile: 'auto',
      auth: {},
      source: 'direct',
    };
    const server = servers.get(labels.pod!)!;
    const body = server.served.find((b) => b.atMs >= s.ts_ms - 5)?.body;
    assert.ok(body, `a body served for the scrape at ${s.ts_ms}`);
    results.push({
      target,
      startedMs: s.ts_ms,
      durationMs: s.duration_ms,
      up: s.up === 1,
      ...normalizeBody(target, body),
    });
  }
  store.writeRound(results);
  return db;
}

describe('Prometheus as the source of fleet counters', { skip: NO_PROMETHEUS, timeout: 240_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'cachelens-promsrc-'));
  const a = new VllmServer('meta-llama/Llama-3.1-8B-Instruct', 1);
  const b = new VllmServer('Qwen/Qwen2.5-7B-Instruct', 3);
  const servers = new Map([
    ['vllm-a-0', a],
    ['vllm-b-0', b],
  ]);
  let prom: PrometheusServer;
  let cfg: PrometheusSourceConfig;
  const storePath = join(dir, 'from-prometheus.db');
  let db: Database;
  let store: ScrapeStore;
  const { log, lines } = memoryLogger();
  const newSource = () => new PrometheusSource({ cfg, log, store, onRound: (results) => store.writeRound(results) });

  before(async () => {
    await a.start();
    await b.start();
    b.resetAt = 6;
    const job = (name: string, port: number, pod: string) => ({
      targets: [`127.0.0.1:${port}`],
      labels: { namespace: 'llm', pod, ...(name === 'other' ? {} : {}) },
    });
    prom = new PrometheusServer(dir, {
      global: { scrape_interval: '1s', scrape_timeout: '900ms', evaluation_interval: '1s' },
      scrape_configs: [
        {
          job_name: 'vllm',
          static_configs: [job('vllm', a.http.port, 'vllm-a-0'), job('vllm', b.http.port, 'vllm-b-0')],
        },
      ],
    });
    await prom.start();
    cfg = buildConfig(
      {
        scrape: {
          prometheus: {
            url: prom.url,
            interval: '2s',
            timeout: '1s',
            selector: '{job="vllm"}',
            instance_labels: ['namespace', 'pod'],
            backfill: '1m',
          },
        },
      },
      {},
    ).config.scrape.prometheus!;
    db = openDatabase(storePath);
    store = new ScrapeStore(db);
    await sleep(9000);
  });

  after(async () => {
    await prom?.stop();
    await a.http.stop().catch(() => undefined);
    await b.http.stop().catch(() => undefined);
  });

  const assertSameAsDirect = (what: string) => {
    const direct = directStore(join(dir, `direct-${what}.db`), db, servers);
    const fromProm = db.prepare(DELTAS).all();
    assert.ok(fromProm.length > 40, `${what}: deltas were stored (${fromProm.length})`);
    assert.deepEqual(fromProm, direct.prepare(DELTAS).all(), `${what}: counter deltas equal direct scraping`);
    assert.deepEqual(db.prepare(GAUGES).all(), direct.prepare(GAUGES).all(), `${what}: gauges equal direct scraping`);
    return direct;
  };

  it('reads every sample with its stored time; deltas, resets and gauges equal direct scraping', async () => {
    const source = newSource();
    await source.read();
    assert.equal(source.status.up, true, source.status.lastError);
    assert.equal(
      source.status.queries,
      NAME_GROUPS.length + CREATED_GROUPS.length,
      'a few queries for every server, not one per server',
    );
    assert.ok(NAME_GROUPS.length + CREATED_GROUPS.length <= 6);
    const targets = db.prepare('SELECT url, instance, labels_json FROM targets ORDER BY instance').all() as Array<{
      url: string;
      instance: string;
      labels_json: string;
    }>;
    assert.deepEqual(
      targets.map((t) => t.instance),
      ['llm/vllm-a-0', 'llm/vllm-b-0'],
      'one server per instance label set, named by its labels',
    );
    await sleep(2500);
    await source.read();
    // Later reads ask Prometheus which _created times changed (real PromQL, accepted) before reading any raw;
    // how many are read again depends on when vllm-b-0's restart falls, so test/prometheusApi.test.ts counts them.
    await sleep(2500);
    const before = source.status.queries;
    await source.read();
    assert.equal(source.status.up, true, source.status.lastError);
    assert.ok(source.status.queries - before >= NAME_GROUPS.length + 1, 'a read after the first asks which changed');
    const resets = db
      .prepare(
        `SELECT sum(resets) FROM counter_deltas d JOIN series s ON s.id = d.series_id
         WHERE s.signal = 'prompt_tokens' AND s.engine = ''`,
      )
      .pluck()
      .get();
    assert.equal(resets, 1, "vllm-b-0's engine restart is one reset");
    const direct = assertSameAsDirect('first');
    direct.close();
    const profiles = db.prepare('SELECT DISTINCT profile FROM scrapes').pluck().all();
    assert.deepEqual(profiles, ['vllm'], 'the profile is detected from the names in Prometheus');
  });

  it('catches up after Prometheus restarts, and after cachelens restarts, counting nothing twice', async () => {
    await prom.stop();
    const source = newSource();
    await source.read();
    assert.equal(source.status.up, false);
    assert.equal(source.failures.get('connect'), 1);
    await source.read();
    assert.equal(
      lines.filter((l) => String(l.msg).startsWith('cannot read from Prometheus')).length,
      1,
      'logged once per outage',
    );
    await sleep(1500);
    await prom.start();
    await sleep(4000);
    await source.read();
    assert.equal(source.status.up, true, source.status.lastError);
    assertSameAsDirect('prometheus-restart').close();

    // cachelens restarts: a new store object over the same file, a new source; it resumes where the store ends.
    db.close();
    db = openDatabase(storePath);
    store = new ScrapeStore(db);
    await sleep(3000);
    await newSource().read();
    const direct = assertSameAsDirect('cachelens-restart');

    // Span events for a request span of vllm-a-0, matched by its pod labels (k8s.pod.name, k8s.namespace.name).
    const [first, last] = db
      .prepare(
        `SELECT min(ts_ms), max(ts_ms) FROM scrapes s JOIN targets t ON t.id = s.target_id
         WHERE t.instance = 'llm/vllm-a-0'`,
      )
      .raw()
      .get() as [number, number];
    const span = (startMs: number, endMs: number): OtlpTraceRequest =>
      ExportTraceServiceRequest.fromObject({
        resourceSpans: [
          {
            resource: {
              attributes: [
                { key: 'k8s.pod.name', value: { stringValue: 'vllm-a-0' } },
                { key: 'k8s.namespace.name', value: { stringValue: 'llm' } },
              ],
            },
            scopeSpans: [
              {
                spans: [
                  {
                    traceId: Buffer.alloc(16, 1),
                    spanId: Buffer.alloc(8, 2),
                    name: 'llm_request',
                    startTimeUnixNano: String(BigInt(startMs) * 1_000_000n),
                    endTimeUnixNano: String(BigInt(endMs) * 1_000_000n),
                    attributes: [{ key: 'gen_ai.usage.prompt_tokens', value: { intValue: 500 } }],
                  },
                ],
              },
            ],
          },
        ],
      }) as unknown as OtlpTraceRequest;
    const eventsFrom = (store: Database) => {
      const e = new Enricher(new FleetQueries(store), {
        maxWaitMs: 4000,
        as: 'events',
        selector: compileSpanSelector(DEFAULT_REQUEST_SPAN_NAMES),
        tenantKeys: [],
        lookbackMs: 6 * 3600_000,
        targetMatch: () => new Map(),
        labelAttributes: cfg.resource_attributes,
      });
      e.refresh(Date.now());
      const p = e.prepare(e.facts(span(first + 2500, last - 2500)), null, Date.now(), Date.now());
      assert.ok(p.ready);
      const extra = [...p.extras.values()][0]!;
      return { cache: extra.cache, scheduler: extra.scheduler, match: [...p.byMatch.keys()] };
    };
    const fromProm = eventsFrom(db);
    assert.deepEqual(fromProm.match, ['resource'], 'matched by the mapped pod labels');
    assert.deepEqual(fromProm, eventsFrom(direct), 'span events equal direct scraping');
    direct.close();

    // Report figures, through the real CLI.
    const report = async (path: string) => {
      const { stdout } = await promisify(execFile)(process.execPath, [
        BIN,
        'report',
        '--db',
        path,
        '--since',
        '1h',
        '--by',
        'instance',
        '--format',
        'json',
      ]);
      const r = JSON.parse(stdout) as { rows: unknown[]; totals?: unknown };
      return { rows: r.rows, totals: r.totals };
    };
    assert.deepEqual(await report(storePath), await report(join(dir, 'direct-cachelens-restart.db')));
  });

  it('in the daemon: servers on cachelens_target_up, the source on cachelens_source_*, a /readyz check', async () => {
    const [grpcPort, httpPort, telemetryPort] = [await freePort(), await freePort(), await freePort()];
    const { config } = buildConfig(
      {
        storage: { path: join(dir, 'daemon.db') },
        scrape: { prometheus: { url: prom.url, interval: '1s', timeout: '800ms', instance_labels: ['pod'] } },
        receivers: { grpc: { endpoint: `127.0.0.1:${grpcPort}` }, http: { endpoint: `127.0.0.1:${httpPort}` } },
        telemetry: { endpoint: `127.0.0.1:${telemetryPort}` },
      },
      {},
    );
    assert.deepEqual(config.scrape.targets, [], 'no default target is assumed beside Prometheus');
    assert.equal(config.enrich.max_wait, 10_000, 'max_wait follows the slower source (2 × 5 s scrape.interval)');
    const daemon = new Daemon(config, memoryLogger().log);
    await daemon.start();
    try {
      const metrics = async () => (await fetch(`http://127.0.0.1:${telemetryPort}/metrics`)).text();
      await waitFor(async () => /cachelens_source_up\{source="prometheus"\} 1/.test(await metrics()), 'a read');
      const text = await metrics();
      assert.match(text, /cachelens_target_up\{target="vllm-a-0"\} 1/);
      assert.match(text, /cachelens_source_servers\{source="prometheus"\} 2/);
      assert.match(text, /cachelens_source_read_failures_total\{source="prometheus",reason="connect"\} 0/);
      assert.equal((await fetch(`http://127.0.0.1:${telemetryPort}/readyz`)).status, 200);
      await prom.stop();
      await waitFor(async () => (await fetch(`http://127.0.0.1:${telemetryPort}/readyz`)).status === 503, 'not ready');
      assert.match(
        await (await fetch(`http://127.0.0.1:${telemetryPort}/readyz`)).text(),
        /cannot read from Prometheus/,
      );
      assert.match(
        await metrics(),
        /cachelens_source_read_failures_total\{source="prometheus",reason="connect"\} [1-9]/,
      );
    } finally {
      await daemon.shutdown();
      await prom.start();
    }
  });

  it(
    'an HA pair of daemons, traces split by trace id as the loadbalancing exporter splits them: ' +
      'the merged report equals one daemon that saw every trace',
    async () => {
      const start = async (name: string) => {
        const { config } = buildConfig(
          {
            storage: { path: join(dir, `ha-${name}.db`) },
            scrape: {
              prometheus: {
                url: prom.url,
                interval: '1s',
                timeout: '800ms',
                instance_labels: ['namespace', 'pod'],
                backfill: '30m',
              },
            },
            receivers: { grpc: { endpoint: '127.0.0.1:0' }, http: { endpoint: '127.0.0.1:0' } },
            telemetry: { enabled: false },
            enrich: { max_wait: '20s' },
            ledger: { tenant_attributes: ['tenant.id'] },
          },
          {},
        );
        const d = new Daemon(config, memoryLogger().log);
        await d.start();
        return d;
      };
      const daemons = { a: await start('a'), b: await start('b'), c: await start('c') };
      const exporterFor = (d: Daemon) => new OTLPTraceExporter({ url: `http://127.0.0.1:${d.pipeline!.grpc!.port}` });
      // The Collector's loadbalancing exporter with routing_key: traceID, plus a copy of every span to c.
      const routing = (): SpanProcessor => {
        const to = { a: exporterFor(daemons.a), b: exporterFor(daemons.b), c: exporterFor(daemons.c) };
        return {
          onStart: () => undefined,
          onEnd: (span: ReadableSpan) => {
            const half = Number.parseInt(span.spanContext().traceId.slice(-1), 16) % 2 ? to.b : to.a;
            for (const e of [half, to.c]) e.export([span], () => undefined);
          },
          forceFlush: async () => {
            await Promise.all(Object.values(to).map((e) => e.forceFlush()));
          },
          shutdown: async () => {
            await Promise.all(Object.values(to).map((e) => e.shutdown()));
          },
        };
      };
      const provider = (resource: Record<string, string>) =>
        new BasicTracerProvider({ resource: resourceFromAttributes(resource), spanProcessors: [routing()] });
      const gateway = provider({ 'service.name': 'gateway' });
      const pods = ['vllm-a-0', 'vllm-b-0'].map((pod) =>
        provider({ 'service.name': 'vllm', 'k8s.pod.name': pod, 'k8s.namespace.name': 'llm' }),
      );
      for (let i = 0; i < 12; i++) {
        const gw = gateway.getTracer('t').startSpan('POST /v1/chat/completions', {
          kind: SpanKind.SERVER,
          attributes: { 'tenant.id': i % 3 ? 'acme' : 'globex' },
        });
        const req = pods[i % 2]!.getTracer('t').startSpan(
          'llm_request',
          {
            kind: SpanKind.SERVER,
            attributes: { 'gen_ai.usage.prompt_tokens': 500 + 10 * i, 'gen_ai.usage.completion_tokens': 40 },
          },
          trace.setSpan(context.active(), gw),
        );
        await sleep(400);
        req.end();
        gw.end();
      }
      await Promise.all([gateway, ...pods].map((p) => p.forceFlush()));
      const ledgerRows = (name: string) => {
        const db = openDatabase(join(dir, `ha-${name}.db`), { readonly: true });
        try {
          return db.prepare('SELECT count(*) FROM request_ledger').pluck().get() as number;
        } finally {
          db.close();
        }
      };
      const counts = async () =>
        `a ${ledgerRows('a')}, b ${ledgerRows('b')}, c ${ledgerRows('c')}; spools ` +
        JSON.stringify(Object.values(daemons).map((d) => d.pipeline!.spool.counts())) +
        (await Promise.all(Object.values(daemons).map((d) => d.registry.metrics())))
          .map((t) =>
            t
              .split('\n')
              .filter((l) => /^cachelens_(receiver_accepted|spans_enriched|exporter_dropped|enrich_incomplete)/.test(l))
              .join(' | '),
          )
          .join(' ## ');
      await waitFor(
        async () => ledgerRows('c') === 12 && ledgerRows('a') + ledgerRows('b') === 12,
        'every request span in the ledgers',
        40_000,
      ).catch(async (err: Error) => {
        throw new Error(`${err.message}: ${await counts()}`);
      });
      assert.ok(ledgerRows('a') > 0 && ledgerRows('b') > 0, 'both halves of the pair took traces');
      // The fleet stops serving (its servers go down), so every store ends with the same samples.
      await a.http.stop();
      await b.http.stop();
      await sleep(4000);
      for (const d of Object.values(daemons)) await d.shutdown();
      const report = async (dbs: string[], by: string) => {
        const { stdout } = await promisify(execFile)(process.execPath, [
          BIN,
          'report',
          ...dbs.flatMap((d) => ['--db', join(dir, `ha-${d}.db`)]),
          '--since',
          '1h',
          '--by',
          by,
          '--format',
          'json',
        ]);
        const r = JSON.parse(stdout) as Record<string, unknown>;
        return { rows: r.rows, totals: r.totals, notes: r.notes };
      };
      for (const by of ['tenant', 'model', 'instance'])
        assert.deepEqual(await report(['a', 'b'], by), await report(['c'], by), `by ${by}`);
    },
  );
});
