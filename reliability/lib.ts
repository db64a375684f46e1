// Shared parts of the reliability suite: the real CLI as a child process, OTLP clients that count
// what was acknowledged, a downstream that counts what arrived, and RSS sampling.
import { daemonEnv, daemonNodeFlags } from '../bench/processes.ts';
import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client, credentials, Metadata, status as GrpcStatus } from '@grpc/grpc-js';
import { stringify as toYaml } from 'yaml';
import { makeRequest } from '../test/support/otlpRequests.ts';
import { OtlpSink } from '../test/support/otlpSink.ts';
import { freePort } from '../test/support/ports.ts';
import { demoModelState, renderVllmExposition } from '../src/demo/vllmExposition.ts';
import { VllmLoad } from '../bench/vllmLoad.ts';

export const BIN = fileURLToPath(new URL('../bin/cachelens.js', import.meta.url));
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface CaseResult {
  name: string;
  /** What was thrown at it, in words with numbers. */
  load: string;
  /** Acknowledged spans that never reached downstream, bad inputs that crashed or stalled it: must be 0. */
  lost: number;
  refused: string;
  recovered: string;
  /** Other figures worth printing. */
  notes: string[];
  ok: boolean;
  failures: string[];
}

export class Check {
  readonly failures: string[] = [];
  that(cond: boolean, what: string): void {
    if (!cond) this.failures.push(what);
  }
}

export interface DaemonHandle {
  child: ChildProcess;
  stderr: string[];
  exited: Promise<number | null>;
}

export class DaemonProcess {
  readonly dir: string;
  readonly configPath: string;
  grpcPort = 0;
  httpPort = 0;
  telemetryPort = 0;
  current?: DaemonHandle;
  starts = 0;

  constructor(
    private readonly raw: Record<string, unknown>,
    dir?: string,
  ) {
    this.dir = dir ?? mkdtempSync(join(tmpdir(), 'cachelens-rel-'));
    this.configPath = join(this.dir, 'cachelens.yaml');
  }

  async init(): Promise<this> {
    [this.grpcPort, this.httpPort, this.telemetryPort] = [await freePort(), await freePort(), await freePort()];
    const raw = structuredClone(this.raw) as Record<string, any>;
    raw.storage = { path: join(this.dir, 'store.db'), ...raw.storage };
    raw.receivers = {
      ...raw.receivers,
      grpc: { endpoint: `127.0.0.1:${this.grpcPort}` },
      http: { endpoint: `127.0.0.1:${this.httpPort}` },
    };
    raw.telemetry = { endpoint: `127.0.0.1:${this.telemetryPort}` };
    raw.log = { level: 'warn', ...raw.log };
    raw.scrape = { targets: [], ...raw.scrape };
    writeFileSync(this.configPath, toYaml(raw));
    return this;
  }

  get httpUrl(): string {
    return `http://127.0.0.1:${this.httpPort}/v1/traces`;
  }
  get grpcAddr(): string {
    return `127.0.0.1:${this.grpcPort}`;
  }

  start(): DaemonHandle {
    // As the image runs it (Dockerfile ENTRYPOINT and ENV): the overload case's RSS depends on them (404-429 MB
    // against its 400 MB bound without MALLOC_ARENA_MAX or V8's old-space limit; bench/README.md).
    const child = spawn(process.execPath, [...daemonNodeFlags(), BIN, 'run', '--config', this.configPath], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: daemonEnv(),
    });
    const stderr: string[] = [];
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (s: string) => {
      stderr.push(...s.split('\n').filter(Boolean));
      if (stderr.length > 2000) stderr.splice(0, stderr.length - 2000);
    });
    const exited = new Promise<number | null>((r) =>
      child.once('exit', (code, signal) => r(code ?? (signal ? -1 : null))),
    );
    this.current = { child, stderr, exited };
    this.starts++;
    return this.current;
  }

  async ready(timeoutMs = 20_000): Promise<void> {
    let exitCode: number | null | undefined;
    void this.current?.exited.then((c) => (exitCode = c));
    for (const until = Date.now() + timeoutMs; Date.now() < until; await sleep(50)) {
      if (exitCode !== undefined)
        throw new Error(
          `daemon exited (${exitCode}) before it was ready; stderr: ${this.current?.stderr.slice(-5).join(' | ')}`,
        );
      const ok = await fetch(`http://127.0.0.1:${this.telemetryPort}/readyz`).then(
        (r) => r.status === 200,
        () => false,
      );
      if (ok) return;
    }
    throw new Error(`daemon not ready within ${timeoutMs} ms; stderr: ${this.current?.stderr.slice(-5).join(' | ')}`);
  }

  async kill9(): Promise<void> {
    const c = this.current;
    if (!c) return;
    c.child.kill('SIGKILL');
    await c.exited;
  }

  async stop(): Promise<number | null> {
    const c = this.current;
    if (!c) return null;
    c.child.kill('SIGTERM');
    return c.exited;
  }

  rssBytes(): number | undefined {
    const pid = this.current?.child.pid;
    if (!pid) return undefined;
    try {
      const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      return m ? Number(m[1]) * 1024 : undefined;
    } catch {
      return undefined;
    }
  }

  async metric(name: string): Promise<number | undefined> {
    const text = await fetch(`http://127.0.0.1:${this.telemetryPort}/metrics`).then(
      (r) => r.text(),
      () => '',
    );
    let sum: number | undefined;
    for (const m of text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'gm')))
      sum = (sum ?? 0) + Number(m[1]);
    return sum;
  }
}

const identity = (b: Buffer) => b;

export interface SendOutcome {
  acked: boolean;
  /** A refusal an OTLP client retries (503 / UNAVAILABLE / RESOURCE_EXHAUSTED with RetryInfo). */
  retryable: boolean;
  code: string;
}

/** A client over both transports that records every span it saw acknowledged. */
export class AckingClient {
  readonly acked = new Set<string>();
  sentRequests = 0;
  refusedRetryable = 0;
  refusedOther = 0;
  connectionErrors = 0;
  private grpc?: Client;
  private grpcAddr?: string;

  async sendHttp(url: string, body: Uint8Array): Promise<SendOutcome> {
    this.sentRequests++;
    try {
      const res = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/x-protobuf' },
        body: Buffer.from(body),
        signal: AbortSignal.timeout(10_000),
      });
      await res.arrayBuffer();
      return {
        acked: res.status === 200,
        retryable: res.status === 503 || res.status === 429,
        code: String(res.status),
      };
    } catch (err) {
      this.connectionErrors++;
      return { acked: false, retryable: true, code: (err as Error).name };
    }
  }

  sendGrpc(addr: string, body: Uint8Array): Promise<SendOutcome> {
    if (this.grpcAddr !== addr) {
      this.grpc?.close();
      this.grpc = new Client(addr, credentials.createInsecure());
      this.grpcAddr = addr;
    }
    this.sentRequests++;
    return new Promise((resolve) => {
      this.grpc!.makeUnaryRequest(
        '/opentelemetry.proto.collector.trace.v1.TraceService/Export',
        identity,
        identity,
        Buffer.from(body),
        new Metadata(),
        { deadline: Date.now() + 10_000 },
        (err) => {
          if (!err) return resolve({ acked: true, retryable: false, code: 'OK' });
          const retryable = [
            GrpcStatus.UNAVAILABLE,
            GrpcStatus.RESOURCE_EXHAUSTED,
            GrpcStatus.DEADLINE_EXCEEDED,
          ].includes(err.code);
          if (err.code === GrpcStatus.UNAVAILABLE && /connect|ECONNREFUSED|No connection/i.test(err.details))
            this.connectionErrors++;
          resolve({ acked: false, retryable, code: GrpcStatus[err.code] ?? String(err.code) });
        },
      );
    });
  }

  /** Sends a body built elsewhere (bench/vllmLoad.ts: cheap to make at any rate) and remembers its acked spans. */
  async sendBody(
    d: DaemonProcess,
    transport: 'grpc' | 'http',
    body: Uint8Array,
    spanIds: readonly string[],
  ): Promise<SendOutcome> {
    const out = transport === 'grpc' ? await this.sendGrpc(d.grpcAddr, body) : await this.sendHttp(d.httpUrl, body);
    if (out.acked) for (const id of spanIds) this.acked.add(id);
    else if (out.retryable) this.refusedRetryable++;
    else this.refusedOther++;
    return out;
  }

  /** Sends one batch of n spans over the given transport; acknowledged span ids are remembered. */
  async batch(
    d: DaemonProcess,
    transport: 'grpc' | 'http',
    n: number,
    opts: Parameters<typeof makeRequest>[1] = { name: 'background' },
  ): Promise<SendOutcome> {
    const r = makeRequest(n, opts);
    const out = transport === 'grpc' ? await this.sendGrpc(d.grpcAddr, r.body) : await this.sendHttp(d.httpUrl, r.body);
    if (out.acked) for (const id of r.spanIds) this.acked.add(id);
    else if (out.retryable) this.refusedRetryable++;
    else this.refusedOther++;
    return out;
  }

  close(): void {
    this.grpc?.close();
  }
}

/** Span ids that reached the sink, with how often. */
export function delivered(sink: OtlpSink): Map<string, number> {
  const m = new Map<string, number>();
  for (const s of sink.spans()) {
    const id = Buffer.from(s.spanId).toString('hex');
    m.set(id, (m.get(id) ?? 0) + 1);
  }
  return m;
}

/** Waits for every acknowledged span to reach downstream; counts the ones that never did and the duplicates. */
export async function settle(
  sink: OtlpSink,
  acked: ReadonlySet<string>,
  timeoutMs = 30_000,
): Promise<{ lost: number; dupes: number }> {
  await waitUntil(() => {
    const got = delivered(sink);
    return [...acked].every((id) => got.has(id));
  }, timeoutMs);
  const got = delivered(sink);
  return { lost: [...acked].filter((id) => !got.has(id)).length, dupes: [...got.values()].filter((n) => n > 1).length };
}

export async function waitUntil(cond: () => boolean | Promise<boolean>, timeoutMs: number): Promise<boolean> {
  for (const until = Date.now() + timeoutMs; Date.now() < until; await sleep(100)) if (await cond()) return true;
  return cond();
}

/**
 * `n` vLLM servers behind one port on 127.0.0.1 (`/t/<i>`), named vllm-0…, whose prompt and prefix-hit counters
 * grow with every scrape; and the scrape targets that name them.
 */
export async function growingFleet(n: number): Promise<{
  targets: Array<{ url: string; labels: { instance: string } }>;
  close: () => void;
}> {
  let scrapes = 0;
  const server = http.createServer((_req, res) => {
    scrapes++;
    res.writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4' });
    res.end(
      renderVllmExposition([
        { ...demoModelState('llama'), promptTokens: 1000 * scrapes, prefixCacheHits: 400 * scrapes },
      ]),
    );
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    targets: Array.from({ length: n }, (_, i) => ({ url: `${base}/t/${i}`, labels: { instance: `vllm-${i}` } })),
    close: () => server.close(),
  };
}

/**
 * vLLM-shaped request spans for a daemon: one template per instance of growingFleet, fresh ids per request (cheap
 * to make, so the load is not capped by the client), gRPC and HTTP alternating.
 */
export class SpanDriver {
  /** Spans offered so far, acknowledged or not. */
  attempted = 0;
  private seq = 0;
  private readonly loads: VllmLoad[];

  constructor(
    private readonly d: DaemonProcess,
    readonly client: AckingClient,
    instances: number,
    private readonly batch: number,
  ) {
    this.loads = Array.from(
      { length: instances },
      (_, i) => new VllmLoad(batch, { 'service.instance.id': `vllm-${i}` }),
    );
  }

  send(): Promise<SendOutcome> {
    this.attempted += this.batch;
    const i = this.seq++;
    const load = this.loads[i % this.loads.length]!;
    const body = load.next();
    return this.client.sendBody(this.d, i % 2 ? 'grpc' : 'http', body, load.spanIds(body));
  }

  /** `workers` senders for `ms`, each at `perWorker` batches a second (Infinity: as fast as acks come). */
  async drive(ms: number, workers: number, perWorker: number): Promise<void> {
    const until = Date.now() + ms;
    await Promise.all(
      Array.from({ length: workers }, async () => {
        const start = Date.now();
        let sent = 0;
        while (Date.now() < until) {
          const out = await this.send();
          sent++;
          // A refused request is retried after the hint, as an OTLP exporter would; here it is sent anew.
          if (!out.acked && out.retryable) await sleep(200);
          if (Number.isFinite(perWorker)) await sleep(Math.max(0, start + (sent / perWorker) * 1000 - Date.now()));
        }
      }),
    );
  }
}

export { OtlpSink, makeRequest };
export { seededRandom } from '../src/demo/fleetSim.ts';
