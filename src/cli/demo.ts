// `cachelens demo`: a simulated vLLM fleet, the real daemon, and what comes out of it, in about a minute.
// `cachelens demo --fleet-only` runs just the simulated fleet, for docker-compose's demo profile.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildConfig } from '../config/config.ts';
import { CaptureSink, type CapturedSpan } from '../demo/captureSink.ts';
import { demoScenario, Fleet } from '../demo/fleetSim.ts';
import { FleetServer } from '../demo/fleetServer.ts';
import { anyValueToJs, nanosToMs, type JsAttrValue } from '../otlp/decode.ts';
import { parseEndpoint } from '../config/endpoint.ts';
import { createLogger } from '../telemetry/logger.ts';
import { Daemon } from './daemon.ts';
import { makeLatencyReport, makeReport, renderLatencyReport, renderReport } from './report.ts';

export interface DemoOptions {
  durationMs: number;
  /** Where the DB and prices file go; a fresh temp dir by default. */
  dir?: string;
  logLevel: string;
  out: NodeJS.WritableStream;
  err: NodeJS.WritableStream;
}

// Illustrative list prices per 1M tokens, so the report can show money saved.
const DEMO_PRICES = `currency: USD
models:
  - match: "meta-llama/*"
    input: 0.20
    cached_input: 0.05
    external_cached_input: 0.08   # a token loaded from the shared KV tier: network and store
    output: 0.60
  - match: "Qwen/*"
    input: 0.15
    cached_input: 0.04
    output: 0.45
`;

type Attrs = Map<string, JsAttrValue>;

interface Shown {
  captured: CapturedSpan;
  attrs: Attrs;
  cache: Attrs;
  sched: Attrs;
  startMs: number;
}

const toMap = (kvs: Array<{ key: string; value?: Parameters<typeof anyValueToJs>[0] }>): Attrs =>
  new Map(kvs.map((kv) => [kv.key, anyValueToJs(kv.value)]));
const pct = (v: JsAttrValue) => (typeof v === 'number' ? `${(v * 100).toFixed(0)}%` : 'n/a');
const num = (v: JsAttrValue) => (typeof v === 'number' ? Math.round(v).toLocaleString('en-US') : 'n/a');
const secs = (v: JsAttrValue) => (typeof v === 'number' ? `${v.toFixed(2)} s` : 'n/a');

function describe(s: Shown, title: string): string {
  const a = s.attrs;
  const c = s.cache;
  const q = s.sched;
  const windowS = (
    (Number(c.get('cachelens.window.end_unix_nano')) - Number(c.get('cachelens.window.start_unix_nano'))) /
    1e9
  ).toFixed(1);
  const lines = [
    `── ${title} ${'─'.repeat(Math.max(4, 76 - title.length))}`,
    `llm_request ${a.get('gen_ai.request.id')}  ${c.get('cachelens.instance')} · ${c.get('cachelens.model')}`,
    `  took ${secs(a.get('gen_ai.latency.e2e'))} (queued ${secs(a.get('gen_ai.latency.time_in_queue'))}, first token ` +
      `${secs(a.get('gen_ai.latency.time_to_first_token'))}); prompt ${num(a.get('gen_ai.usage.prompt_tokens'))} ` +
      `tokens, ${num(a.get('gen_ai.usage.completion_tokens'))} generated`,
    `  event cachelens.cache      matched by ${c.get('cachelens.match')}; window ${windowS} ` +
      `s${c.get('cachelens.window.complete') ? '' : ' (incomplete)'}`,
    `      instance: prefix-cache hit ratio ${pct(c.get('cachelens.prefix_cache.hit_ratio'))} ` +
      `(${num(c.get('cachelens.prefix_cache.hits'))} of ${num(c.get('cachelens.prefix_cache.queries'))} queried ` +
      `tokens), KV cache ${pct(c.get('cachelens.kv_cache.usage.start'))} at start, ` +
      `${pct(c.get('cachelens.kv_cache.usage.max'))} max`,
    `      fleet (${num(c.get('cachelens.fleet.instances'))} instance(s) of the model): hit ratio ` +
      `${pct(c.get('cachelens.fleet.prefix_cache.hit_ratio'))}, KV max ` +
      `${pct(c.get('cachelens.fleet.kv_cache.usage.max'))}`,
    `      this request's cached prompt tokens (estimate): ` +
      `${num(c.get('cachelens.request.cache_read.input_tokens.estimate'))}`,
    `  event cachelens.scheduler  waiting ${num(q.get('cachelens.queue.waiting.start'))} at start, ` +
      `${num(q.get('cachelens.queue.waiting.max'))} max; running ${num(q.get('cachelens.requests.running.start'))}; ` +
      `preemptions ${num(q.get('cachelens.preemptions'))} (fleet ${num(q.get('cachelens.fleet.preemptions'))})`,
  ];
  return lines.join('\n') + '\n';
}

function rawEvents(s: Shown): string {
  const lines: string[] = [];
  for (const ev of s.captured.span.events) {
    lines.push(`  ${ev.name} @ span start`);
    for (const kv of ev.attributes) lines.push(`    ${kv.key.padEnd(52)} ${JSON.stringify(anyValueToJs(kv.value))}`);
  }
  return lines.join('\n') + '\n';
}

export async function runDemo(opts: DemoOptions): Promise<number> {
  const { out } = opts;
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'cachelens-demo-'));
  const dbPath = join(dir, 'cachelens.db');
  const pricesPath = join(dir, 'prices.yaml');
  writeFileSync(pricesPath, DEMO_PRICES);
  const scenario = demoScenario(opts.durationMs);
  const fleet = new Fleet(scenario, Date.now());
  const sink = new CaptureSink((s) => s.name === 'llm_request');
  const sinkUrl = await sink.start();
  let requests = 0;
  let restartAtMs = 0;
  const server = new FleetServer(fleet, {
    host: '127.0.0.1',
    basePort: 0,
    onRequest: () => requests++,
    onRestart: (name) => {
      restartAtMs = Date.now();
      out.write(`  ! ${name} restarts: /metrics refuses for a few seconds, then its counters start again from 0\n`);
    },
  });
  await server.start();
  const { config } = buildConfig(
    {
      storage: { path: dbPath },
      scrape: {
        interval: '1s',
        timeout: '900ms',
        targets: server.urls.map((u) => ({ url: u.url, labels: { instance: u.instance } })),
      },
      receivers: { grpc: { endpoint: '127.0.0.1:0' }, http: { endpoint: '127.0.0.1:0' } },
      telemetry: { endpoint: '127.0.0.1:0' },
      exporter: { endpoint: sinkUrl },
      log: { level: opts.logLevel },
    },
    {},
  );
  const daemon = new Daemon(config, createLogger(opts.logLevel, opts.err));
  await daemon.start();
  const grpcUrl = `http://127.0.0.1:${daemon.pipeline!.grpc!.port}`;
  out.write(
    [
      'cachelens demo: a simulated vLLM fleet, the real cachelens daemon, and what it adds to each request span.',
      '',
      `  fleet     ${server.urls.map((u) => `${u.instance} (${u.model.split('/')[1]})`).join(', ')}; /metrics ` +
        `scraped every 1 s`,
      `  traces    vllm-shaped llm_request spans under an api-gateway span (tenant.id), OTel JS SDK → OTLP/gRPC ` +
        `${grpcUrl}`,
      `  downstream an in-process OTLP receiver standing in for your trace backend`,
      `  store     ${dbPath}`,
      `  script    ${(opts.durationMs / 1000).toFixed(0)} s: steady traffic, a burst on Llama (queue, KV pressure, ` +
        `preemptions) from ${(scenario.phases[0]!.fromMs / 1000).toFixed(0)} s to ` +
        `${(scenario.phases[0]!.toMs / 1000).toFixed(0)} s, vllm-1 restarts at ` +
        `${(scenario.restarts[0]!.atMs / 1000).toFixed(0)} s`,
      '',
    ].join('\n') + '\n',
  );
  // Start the traffic once every instance has been scraped, so even the first spans find their target.
  const db = daemon.db!;
  for (const until = Date.now() + 10_000; Date.now() < until; await new Promise((r) => setTimeout(r, 100))) {
    if (
      (db.prepare('SELECT count(DISTINCT target_id) FROM scrapes WHERE up = 1').pluck().get() as number) >=
      server.urls.length
    )
      break;
  }
  server.run(grpcUrl);
  const t0 = Date.now();
  const progress = setInterval(() => {
    const t = ((Date.now() - t0) / 1000).toFixed(0).padStart(3);
    const inst = fleet.instances
      .map(
        (i) =>
          `${i.spec.name} kv ${(i.counters.kvCacheUsage * 100).toFixed(0).padStart(3)}% queue ` +
          `${String(i.counters.requestsWaiting).padStart(2)}`,
      )
      .join(' │ ');
    out.write(
      `  ${t}s ${fleet.phaseAt(Date.now()).padEnd(6)} ${inst} │ ` +
        `${requests} requests, ${sink.spans.length} enriched downstream\n`,
    );
  }, 5000);
  await new Promise((r) => setTimeout(r, opts.durationMs));
  clearInterval(progress);
  await server.stopTraffic();
  // The last spans wait in the spool for the scrape that closes their window (enrich.max_wait at most).
  const deadline = Date.now() + 15_000;
  while (sink.spans.length < requests && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  await daemon.shutdown();
  await server.close();
  await sink.stop();

  const shown: Shown[] = sink.spans.flatMap((captured) => {
    const ev = (name: string) => captured.span.events.find((e) => e.name === name);
    const cache = ev('cachelens.cache');
    const sched = ev('cachelens.scheduler');
    if (!cache || !sched) return [];
    return [
      {
        captured,
        attrs: toMap(captured.span.attributes),
        cache: toMap(cache.attributes),
        sched: toMap(sched.attributes),
        startMs: nanosToMs(captured.span.startTimeUnixNano),
      },
    ];
  });
  const byMatch = new Map<string, number>();
  for (const s of shown)
    byMatch.set(String(s.cache.get('cachelens.match')), (byMatch.get(String(s.cache.get('cachelens.match'))) ?? 0) + 1);
  const incomplete = shown.filter((s) => !s.cache.get('cachelens.window.complete')).length;
  out.write(
    `\n${requests} requests finished; downstream received ${sink.received} spans, ${shown.length} llm_request spans ` +
      `enriched (${[...byMatch].map(([m, n]) => `${n} matched by ${m}`).join(', ')}), ` +
      `${incomplete} with an incomplete ` +
      `window.\n\n`,
  );

  const burst = scenario.phases[0]!;
  const inPhase = (s: Shown, from: number, to: number) => s.startMs - t0 >= from && s.startMs - t0 < to;
  const n = (v: JsAttrValue) => (typeof v === 'number' ? v : -1);
  const best = (list: Shown[], score: (s: Shown) => number) =>
    list.reduce<Shown | undefined>((b, s) => (!b || score(s) > score(b) ? s : b), undefined);
  const picks: Array<[string, Shown | undefined]> = [
    [
      'a warm cache (steady traffic)',
      best(
        shown.filter((s) => inPhase(s, 0, burst.fromMs) && s.cache.get('cachelens.window.complete')),
        (s) => n(s.cache.get('cachelens.prefix_cache.hit_ratio')),
      ),
    ],
    [
      'a long queue and a full KV cache (the burst)',
      best(
        shown.filter((s) => inPhase(s, burst.fromMs, burst.toMs + 5000)),
        (s) => n(s.sched.get('cachelens.queue.waiting.max')) * 10 + n(s.sched.get('cachelens.preemptions')),
      ),
    ],
    [
      'a cold cache (vllm-1 just restarted)',
      restartAtMs
        ? shown
            .filter(
              (s) =>
                s.cache.get('cachelens.instance') === 'vllm-1' &&
                s.startMs >= restartAtMs + scenario.restarts[0]!.downMs,
            )
            .sort((x, y) => x.startMs - y.startMs)[0]
        : undefined,
    ],
  ];
  for (const [title, s] of picks) if (s) out.write(describe(s, title) + '\n');
  const first = picks.find(([, s]) => s)?.[1];
  if (first) out.write(`The events on the first span, as your trace backend receives them:\n${rawEvents(first)}\n`);

  const period = {
    db: dbPath,
    since: new Date(t0 - 60_000).toISOString(),
    prices: pricesPath,
    tenantKeys: config.ledger.tenant_attributes,
  };
  out.write('Report by model (cachelens report --by model):\n');
  out.write(renderReport(makeReport({ ...period, by: 'model' }), 'table'));
  out.write('\nReport by tenant (cachelens report --by tenant), from the request ledger:\n');
  out.write(renderReport(makeReport({ ...period, by: 'tenant' }), 'table'));
  // The simulated engines prefill only the uncached part of a prompt, as vLLM does: warm requests
  // reach their first token sooner.
  out.write('\nLatency by cache-hit share (cachelens report --view latency --by model):\n');
  out.write(renderLatencyReport(makeLatencyReport({ ...period, prices: undefined, by: 'model' }), 'table'));
  out.write(
    [
      '',
      'Try next:',
      `  cachelens report --db ${dbPath} --prices ${pricesPath} --by instance --since 1h`,
      `  cachelens report --db ${dbPath} --prices ${pricesPath} --format html --out report.html --since 1h`,
      `  cachelens report --db ${dbPath} --view latency --by model,tenant --since 1h`,
      '  docker compose --profile demo up      # the same fleet with Jaeger, Prometheus and Grafana',
      '',
    ].join('\n'),
  );
  return shown.length > 0 ? 0 : 1;
}

/** The simulated fleet alone, until SIGTERM: /metrics on port, port+1, port+2 and spans to an OTLP/gRPC endpoint. */
export async function runFleetOnly(
  listen: string,
  otlp: string | undefined,
  out: NodeJS.WritableStream,
): Promise<void> {
  const { host, port } = parseEndpoint(listen);
  // The script (a burst and a restart) repeats every 10 minutes.
  const cycleMs = 600_000;
  const server = new FleetServer(new Fleet(demoScenario(cycleMs), Date.now(), 42, cycleMs), { host, basePort: port });
  await server.start();
  server.run(otlp);
  out.write(`${JSON.stringify({ msg: 'simulated fleet running', targets: server.urls, otlp: otlp ?? null })}\n`);
  await new Promise<void>((resolve) => {
    process.once('SIGTERM', resolve);
    process.once('SIGINT', resolve);
  });
  await server.close();
}
