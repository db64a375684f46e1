import { execFileSync, fork, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeHeapSnapshot } from 'node:v8';
import { fileURLToPath } from 'node:url';
import { ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import { Daemon } from '../src/cli/daemon.ts';
import { buildConfig } from '../src/config/config.ts';
import { ExtraEncoder } from '../src/pipeline/encodeExtras.ts';
import { decodeProtobuf, validateRequest } from '../src/otlp/decode.ts';
import { spliceSpans } from '../src/otlp/splice.ts';
import { toReadableSpans } from './toReadableSpans.ts';
import { createLogger } from '../src/telemetry/logger.ts';
import { VllmLoad } from './vllmLoad.ts';

const SPANS = 512;

function waitMessage<T>(child: ChildProcess, pred: (m: T) => boolean): Promise<T> {
  return new Promise((resolve) => {
    const on = (m: T) => {
      if (pred(m)) {
        child.off('message', on);
        resolve(m);
      }
    };
    child.on('message', on);
  });
}

function pct(sorted: number[], p: number): number {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]! : NaN;
}

/**
 * In-process references on the same batch, no I/O: the floor (protobufjs decode + validate, what
 * every received request costs before its bytes can be forwarded), the same with two cachelens
 * events spliced into every span, and what re-encoding through OTLPTraceExporter's serializer
 * (decode → ReadableSpan → ProtobufTraceSerializer) costs, which is how cachelens forwarded before.
 */
function references(requests: number): Record<string, { spans_per_s: number }> {
  const body = new VllmLoad(SPANS, { 'service.instance.id': 'vllm-a' }).next();
  const time = (fn: () => void) => {
    for (let i = 0; i < 5; i++) fn();
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < requests; i++) fn();
    const s = Number(process.hrtime.bigint() - t0) / 1e9;
    return { spans_per_s: Math.round((requests * SPANS) / s) };
  };
  const enc = new ExtraEncoder();
  // One window shared by every span, as in the full-path runs; a per-span estimate as vLLM spans get.
  const cache = {
    'cachelens.match': 'resource',
    'cachelens.instance': 'vllm-a',
    'cachelens.model': 'm',
    'cachelens.window.start_unix_nano': 1.764e18,
    'cachelens.window.end_unix_nano': 1.764e18 + 1e9,
    'cachelens.window.complete': true,
    'cachelens.prefix_cache.queries': 12000,
    'cachelens.prefix_cache.hits': 9000,
    'cachelens.prefix_cache.hit_ratio': 0.75,
    'cachelens.prompt_tokens': 12000,
    'cachelens.prompt_tokens.cached': 9000,
    'cachelens.kv_cache.usage.start': 0.4,
  };
  const scheduler = {
    'cachelens.queue.waiting.start': 1,
    'cachelens.queue.waiting.max': 4,
    'cachelens.requests.running.start': 12,
    'cachelens.preemptions': 0,
    'cachelens.fleet.queue.waiting.start': 1,
    'cachelens.fleet.preemptions': 0,
  };
  return {
    floor_decode_forward: time(() => {
      const req = decodeProtobuf(body);
      validateRequest(req);
      spliceSpans(body, [], SPANS);
    }),
    decode_splice_two_events: time(() => {
      const req = decodeProtobuf(body);
      validateRequest(req);
      const adds = req.resourceSpans[0]!.scopeSpans[0]!.spans.map((s, i) =>
        enc.encode({
          as: 'events',
          detail: 'full',
          time: s.startTimeUnixNano,
          cache,
          scheduler,
          own: { 'cachelens.request.cache_read.input_tokens.estimate': 100 + i / 3 },
        }),
      );
      const r = spliceSpans(body, adds, SPANS);
      Buffer.concat(r.chunks, r.len);
    }),
    sdk_reencode_reference: time(() => ProtobufTraceSerializer.serializeRequest(toReadableSpans(decodeProtobuf(body)))),
  };
}

async function fullPath(
  load: ChildProcess,
  info: { sinkPort: number; metricsUrl: string },
  transport: 'grpc' | 'http',
  enrich: boolean,
  requests: number,
  ratePerS?: number,
  detail: 'full' | 'compact' = 'full',
) {
  const dir = mkdtempSync(join(tmpdir(), 'cachelens-bench-'));
  const { config } = buildConfig(
    {
      storage: { path: join(dir, 'store.db') },
      scrape: { interval: '1s', timeout: '500ms', targets: [{ url: info.metricsUrl, labels: { instance: 'vllm-a' } }] },
      receivers: { grpc: { endpoint: '127.0.0.1:0' }, http: { endpoint: '127.0.0.1:0' } },
      telemetry: { endpoint: '127.0.0.1:0' },
      exporter: { endpoint: `http://127.0.0.1:${info.sinkPort}` },
      enrich: { span_names: enrich ? ['llm_request'] : ['none'], detail },
      log: { level: 'warn' },
    },
    {},
  );
  const daemon = new Daemon(config, createLogger('warn'));
  await daemon.start();
  await new Promise((r) => setTimeout(r, 2500)); // two scrapes, so windows close at once
  const port = transport === 'grpc' ? daemon.pipeline!.grpc!.port : daemon.pipeline!.http!.port;
  // Warm-up, not measured: the first connection downstream, JIT of every path.
  load.send({ transport, port, requests: 8, concurrency: 4, spansPerRequest: SPANS });
  await waitMessage<{ done?: boolean }>(load, (m) => !!m.done);
  await daemon.pipeline!.queue.whenIdle();
  const latencies: number[] = [];
  const waited: number[] = [];
  const direct: number[] = [];
  const handedOff: number[] = [];
  daemon.pipeline!.queue.onSent = (ms, _spans, wasWoken) => {
    latencies.push(ms);
    (wasWoken ? waited : direct).push(ms);
  };
  daemon.pipeline!.queue.onHandedOff = (ms) => handedOff.push(ms);
  let rssMax = 0;
  let atMax = process.memoryUsage();
  const atStart = atMax;
  const rssTimer = setInterval(() => {
    const m = process.memoryUsage();
    if (m.rss > rssMax) [rssMax, atMax] = [m.rss, m];
  }, 100);
  // BENCH_HEAP_SNAPSHOT=dir: one heap snapshot 3 s into the measured run (where memory goes).
  const snapDir = process.env.BENCH_HEAP_SNAPSHOT;
  const snapTimer = snapDir
    ? setTimeout(() => writeHeapSnapshot(join(snapDir, `${transport}-${enrich}.heapsnapshot`)), 3000)
    : undefined;
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  // At least 20 s (BENCH_PIPELINE_S): runs of 3-7 s differed by up to 2x.
  const durationS = Number(process.env.BENCH_PIPELINE_S ?? 20);
  load.send({ transport, port, requests, concurrency: 4, spansPerRequest: SPANS, ratePerS, durationS });
  const done = await waitMessage<{ done?: boolean; received: number }>(load, (m) => !!m.done);
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = process.cpuUsage(cpu0);
  clearInterval(rssTimer);
  clearTimeout(snapTimer);
  await daemon.shutdown();
  rmSync(dir, { recursive: true, force: true });
  const summary = (xs: number[]) => {
    xs.sort((a, b) => a - b);
    return {
      p50: +pct(xs, 50).toFixed(1),
      p90: +pct(xs, 90).toFixed(1),
      p99: +pct(xs, 99).toFixed(1),
      max: +(xs.at(-1) ?? NaN).toFixed(1),
      rows: xs.length,
    };
  };
  const cpuS = (cpu.user + cpu.system) / 1e6;
  return {
    transport,
    enrich,
    detail,
    offered: ratePerS ? `${Math.round(ratePerS * SPANS)} spans/s` : 'as fast as possible',
    spans: done.received,
    wall_s: +wall.toFixed(2),
    spans_per_s_wall: Math.round(done.received / wall),
    // Spans per second of cachelens CPU time: the one-core figure.
    spans_per_cpu_s: Math.round(done.received / cpuS),
    cpu_cores_used: +(cpuS / wall).toFixed(2),
    ack_to_downstream_ack_ms: summary(latencies),
    // to the moment the request is handed to the gRPC transport: without downstream's own decode and ack
    ack_to_send_ms: summary(handedOff),
    // Rows whose closing scrape already existed when they arrived, and rows released by a scrape round
    // (timed from that round): a round releases every span that ended since the last one at once.
    by_wait: { arrived_after_closing_scrape: summary(direct), released_by_a_scrape_round: summary(waited) },
    rss_at_start_mb: Math.round(atStart.rss / 1048576),
    rss_max_mb: Math.round(rssMax / 1048576),
    // Where that RSS was: V8's heap in use, and Buffers and other memory outside it.
    at_rss_max_mb: {
      heap_used: Math.round(atMax.heapUsed / 1048576),
      heap_total: Math.round(atMax.heapTotal / 1048576),
      external: Math.round(atMax.external / 1048576),
    },
  };
}

/** Each full-path run in a fresh process, so its RSS is its own and not what earlier runs left in the heap. */
function isolated(name: string, requests: number): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const child = fork(fileURLToPath(new URL('./run.ts', import.meta.url)), ['pipeline'], {
      execArgv: ['--import', 'tsx'],
      env: { ...process.env, BENCH_PIPELINE_RUNS: name, BENCH_REQUESTS: String(requests) },
      stdio: ['ignore', 'pipe', 'inherit', 'ipc'],
    });
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d));
    // 'exit' comes after the run's load client and sink have exited (the run waits for them).
    child.on('exit', (code) => {
      if (code !== 0) return reject(new Error(`pipeline run ${name} exited ${code}`));
      resolve((JSON.parse(out) as { pipeline: Record<string, Record<string, unknown>> }).pipeline[name]!);
    });
  });
}

/** Busy share of every core from /proc/stat between two readings: the machine's load, ours included. */
function cpuTimes(): { busy: number; total: number } {
  const [, ...f] = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/);
  const n = f.map(Number);
  const idle = n[3]! + (n[4] ?? 0);
  const total = n.reduce((a, b) => a + b, 0);
  return { busy: total - idle, total };
}

const get = (o: unknown, path: string): number => {
  let v: unknown = o;
  for (const k of path.split('.')) v = (v as Record<string, unknown>)?.[k];
  return typeof v === 'number' ? v : Number.NaN;
};

/** Median and range of the figures that matter over the repeats. */
function spread(runs: ReadonlyArray<Record<string, unknown>>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const path of [
    'spans_per_s_wall',
    'spans_per_cpu_s',
    'cpu_cores_used',
    'ack_to_send_ms.p99',
    'ack_to_downstream_ack_ms.p99',
    'rss_max_mb',
  ]) {
    const xs = runs.map((r) => get(r, path)).sort((a, b) => a - b);
    out[path] = { median: xs[Math.floor(xs.length / 2)], min: xs[0], max: xs.at(-1) };
  }
  return out;
}

const NAMES = [
  'grpc_enrich',
  'grpc_enrich_compact',
  'grpc_no_enrich',
  'http_enrich',
  'http_no_enrich',
  'grpc_enrich_5k',
  'grpc_enrich_10k',
  'grpc_enrich_20k',
];

export async function runPipelineBench(requests: number): Promise<unknown> {
  // BENCH_PIPELINE_RUNS=grpc_enrich,http_no_enrich runs those in this process (what isolated() uses; also for
  // profiling).
  const only = process.env.BENCH_PIPELINE_RUNS?.split(',');
  if (!only) {
    const repeats = Number(process.env.BENCH_PIPELINE_REPEATS ?? 3);
    const out: Record<string, unknown> = {
      batch: `${SPANS} spans x 15 attributes`,
      seconds_per_run: Number(process.env.BENCH_PIPELINE_S ?? 20),
      repeats,
      in_process: references(Math.max(20, requests / 4)),
    };
    const cases = process.env.BENCH_PIPELINE_CASES?.split(',') ?? NAMES;
    for (const name of cases) {
      const runs: Array<Record<string, unknown>> = [];
      const load1m: number[] = [];
      const machineBusy: number[] = [];
      for (let i = 0; i < repeats; i++) {
        load1m.push(Number(loadavg()[0]!.toFixed(2)));
        const before = cpuTimes();
        runs.push(await isolated(name, requests));
        const after = cpuTimes();
        machineBusy.push(Math.round(((after.busy - before.busy) / (after.total - before.total)) * 100));
      }
      out[name] = {
        ...spread(runs),
        // The machine around each run: the 1-minute load average before it, and how busy every core was during
        // it (cachelens, the load client and the sink included).
        background: { load_average_1m_before: load1m, all_cores_busy_percent: machineBusy },
        runs,
      };
    }
    return out;
  }
  const load = fork(fileURLToPath(new URL('./pipelineLoad.ts', import.meta.url)), [], {
    execArgv: ['--import', 'tsx'],
  });
  const info = await waitMessage<{ sinkPort: number; metricsUrl: string }>(load, (m) => 'sinkPort' in m);
  // BENCH_PIN_CORE=N: cachelens (every thread of this process) on core N alone, the load client and
  // sink (forked before this) elsewhere: the one-core figure on a machine with cores to spare.
  if (process.env.BENCH_PIN_CORE)
    execFileSync('taskset', ['-a', '-cp', process.env.BENCH_PIN_CORE, String(process.pid)], { stdio: 'ignore' });
  // Runs last BENCH_PIPELINE_S seconds; `requests` only caps them.
  const many = Number.MAX_SAFE_INTEGER;
  const paced = (spansPerS: number) => () => fullPath(load, info, 'grpc', true, many, spansPerS / SPANS);
  const runs: Record<string, () => Promise<unknown>> = {
    grpc_enrich: () => fullPath(load, info, 'grpc', true, many),
    grpc_enrich_compact: () => fullPath(load, info, 'grpc', true, many, undefined, 'compact'),
    grpc_no_enrich: () => fullPath(load, info, 'grpc', false, many),
    http_enrich: () => fullPath(load, info, 'http', true, many),
    http_no_enrich: () => fullPath(load, info, 'http', false, many),
    // Latency and memory below saturation, and RSS at 5k, 10k and 20k spans/s offered steadily.
    grpc_enrich_5k: paced(5000),
    grpc_enrich_10k: paced(10_000),
    grpc_enrich_20k: paced(20_000),
  };
  const out: Record<string, unknown> = {};
  for (const name of only) {
    if (!runs[name]) throw new Error(`unknown pipeline run ${name} (one of ${NAMES.join(', ')})`);
    out[name] = await runs[name]();
  }
  load.send({ stop: true });
  // The next case starts only once this one's load client and sink are gone.
  await new Promise((r) => load.once('exit', r));
  return out;
}
