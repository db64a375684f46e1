import { fork, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import { Daemon } from '../src/cli/daemon.ts';
import { buildConfig } from '../src/config/config.ts';
import { decodeProtobuf } from '../src/pipeline/otlp/decode.ts';
import { toReadableSpans } from './toReadableSpans.ts';
import { createLogger } from '../src/telemetry/logger.ts';
import { makeRequest } from '../test/support/otlpRequests.ts';

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

/** Bare decode → ReadableSpan → OTLP encode of the same bytes: the floor the full path is compared to. */
function floor(requests: number): { spans_per_s: number } {
  const body = makeRequest(SPANS, { resource: { 'service.instance.id': 'vllm-a' } }).body;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < requests; i++) ProtobufTraceSerializer.serializeRequest(toReadableSpans(decodeProtobuf(body)));
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  return { spans_per_s: Math.round((requests * SPANS) / s) };
}

async function fullPath(load: ChildProcess, info: { sinkPort: number; metricsUrl: string }, transport: 'grpc' | 'http', enrich: boolean, requests: number, ratePerS?: number) {
  const dir = mkdtempSync(join(tmpdir(), 'cachelens-bench-'));
  const { config } = buildConfig(
    {
      storage: { path: join(dir, 'store.db') },
      scrape: { interval: '1s', timeout: '500ms', targets: [{ url: info.metricsUrl, labels: { instance: 'vllm-a' } }] },
      receivers: { grpc: { endpoint: '127.0.0.1:0' }, http: { endpoint: '127.0.0.1:0' } },
        telemetry: { endpoint: '127.0.0.1:0' },
      exporter: { endpoint: `http://127.0.0.1:${info.sinkPort}` },
      enrich: { span_names: enrich ? ['llm_request'] : ['none'] },
      log: { level: 'warn' },
    },
    {},
  );
  const daemon = new Daemon(config, createLogger('warn'));
  await daemon.start();
  await new Promise((r) => setTimeout(r, 2500)); // two scrapes, so windows close at once
  const latencies: number[] = [];
  daemon.pipeline!.queue.onSent = (ms) => latencies.push(ms);
  let rssMax = 0;
  const rssTimer = setInterval(() => (rssMax = Math.max(rssMax, process.memoryUsage().rss)), 100);
  const port = transport === 'grpc' ? daemon.pipeline!.grpc!.port : daemon.pipeline!.http!.port;
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  load.send({ transport, port, requests, concurrency: 4, spansPerRequest: SPANS, ratePerS });
  const done = await waitMessage<{ done?: boolean; received: number }>(load, (m) => !!m.done);
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = process.cpuUsage(cpu0);
  clearInterval(rssTimer);
  await daemon.shutdown();
  rmSync(dir, { recursive: true, force: true });
  latencies.sort((a, b) => a - b);
  const cpuS = (cpu.user + cpu.system) / 1e6;
  return {
    transport,
    enrich,
    offered: ratePerS ? `${Math.round(ratePerS * SPANS)} spans/s` : 'as fast as possible',
    spans: done.received,
    wall_s: +wall.toFixed(2),
    spans_per_s_wall: Math.round(done.received / wall),
    // Spans per second of cachelens CPU time: the one-core figure.
    spans_per_cpu_s: Math.round(done.received / cpuS),
    cpu_cores_used: +(cpuS / wall).toFixed(2),
    ack_to_downstream_ack_ms: { p50: +pct(latencies, 50).toFixed(1), p99: +pct(latencies, 99).toFixed(1), max: +(latencies.at(-1) ?? NaN).toFixed(1) },
    rss_max_mb: Math.round(rssMax / 1048576),
  };
}

export async function runPipelineBench(requests: number): Promise<unknown> {
  const load = fork(fileURLToPath(new URL('./pipelineLoad.ts', import.meta.url)), [], { execArgv: ['--import', 'tsx'] });
  const info = await waitMessage<{ sinkPort: number; metricsUrl: string }>(load, (m) => 'sinkPort' in m);
  const out = {
    batch: `${SPANS} spans x 15 attributes`,
    floor_decode_encode: floor(Math.max(20, requests / 4)),
    grpc_enrich: await fullPath(load, info, 'grpc', true, requests),
    grpc_no_enrich: await fullPath(load, info, 'grpc', false, requests),
    http_enrich: await fullPath(load, info, 'http', true, requests),
    http_no_enrich: await fullPath(load, info, 'http', false, requests),
    // Latency and memory below saturation: 5,000 spans/s offered over gRPC with enrichment.
    grpc_enrich_paced: await fullPath(load, info, 'grpc', true, Math.min(requests, 100), 5000 / SPANS),
  };
  load.send({ stop: true });
  return out;
}
