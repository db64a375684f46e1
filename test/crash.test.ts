import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { makeRequest } from './support/otlpRequests.ts';
import { OtlpSink } from './support/otlpSink.ts';
import { waitFor } from './support/pipelineHarness.ts';
import { freePort } from './support/ports.ts';

const BIN = fileURLToPath(new URL('../bin/cachelens.js', import.meta.url));

function writeConfig(
  dir: string,
  sinkEndpoint: string,
  grpcPort: number,
  httpPort: number,
  exporterExtra = '',
): string {
  const configPath = join(dir, 'cachelens.yaml');
  writeFileSync(
    configPath,
    [
      `storage: {path: ${join(dir, 'store.db')}}`,
      'scrape: {targets: []}',
      `receivers: {grpc: {endpoint: "127.0.0.1:${grpcPort}"}, http: {endpoint: "127.0.0.1:${httpPort}"}}`,
      'telemetry: {endpoint: "127.0.0.1:0"}',
      `exporter: {endpoint: "${sinkEndpoint}", retry_initial_interval: 100ms, retry_max_interval: 200ms, ` +
        `shutdown_timeout: 2s${exporterExtra}}`,
      'log: {level: warn}',
    ].join('\n'),
  );
  return configPath;
}

const spanIdsOf = (sink: OtlpSink): Set<string> =>
  new Set(sink.spans().map((s) => Buffer.from(s.spanId).toString('hex')));

async function post(url: string, n: number): Promise<string[]> {
  const r = makeRequest(n, { name: 'background' });
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/x-protobuf' },
    body: Buffer.from(r.body),
  });
  assert.equal(res.status, 200);
  return r.spanIds;
}

function startDaemon(configPath: string): ChildProcess {
  const child = spawn(process.execPath, [BIN, 'run', '--config', configPath], { stdio: ['ignore', 'ignore', 'pipe'] });
  child.stderr!.resume();
  return child;
}

describe('crash safety', () => {
  it('kill -9 mid-stream, then a restart: every acknowledged span arrives downstream', async () => {
    const sink = await new OtlpSink().start();
    const dir = mkdtempSync(join(tmpdir(), 'cachelens-crash-'));
    const httpPort = await freePort();
    const grpcPort = await freePort();
    const configPath = writeConfig(dir, sink.endpoint, grpcPort, httpPort);
    const url = `http://127.0.0.1:${httpPort}/v1/traces`;
    const acked = new Set<string>();
    let child = startDaemon(configPath);
    let stop = false;
    let sent = 0;
    // A client that keeps sending; only 200 answers count as acknowledged.
    const client = (async () => {
      while (!stop) {
        const r = makeRequest(25, { name: 'background' });
        try {
          const res = await fetch(url, {
            method: 'POST',
            headers: { 'content-type': 'application/x-protobuf' },
            body: Buffer.from(r.body),
          });
          if (res.status === 200) for (const id of r.spanIds) acked.add(id);
          sent++;
        } catch {
          await new Promise((res) => setTimeout(res, 20));
        }
      }
    })();
    await waitFor(() => acked.size >= 500, '500 acknowledged spans', 20_000);
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    const ackedAtKill = acked.size;
    await new Promise((r) => setTimeout(r, 300));
    child = startDaemon(configPath);
    await waitFor(() => acked.size >= ackedAtKill + 250, 'the restarted daemon acknowledging again', 20_000);
    stop = true;
    await client;
    const received = (): Map<string, number> => {
      const m = new Map<string, number>();
      for (const s of sink.spans()) {
        const id = Buffer.from(s.spanId).toString('hex');
        m.set(id, (m.get(id) ?? 0) + 1);
      }
      return m;
    };
    await waitFor(() => [...acked].every((id) => received().has(id)), 'every acknowledged span downstream', 30_000);
    const dupes = [...received().values()].filter((n) => n > 1).length;
    // Duplicates are allowed (sent, but the delete was lost in the kill); report them.
    console.log(`crash test: ${acked.size} acknowledged in ${sent} requests, all delivered; ${dupes} delivered twice`);
    assert.ok(dupes <= 2 * 2048, 'duplicates bounded by the rows in flight at the kill');
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
    await sink.stop();
  });

  it(
    'SIGTERM sends what it can within exporter.shutdown_timeout, ' + 'exits 0, and leaves the rest for the next start',
    async () => {
      const sink = await new OtlpSink().start();
      const dir = mkdtempSync(join(tmpdir(), 'cachelens-term-'));
      const [grpcPort, httpPort] = [await freePort(), await freePort()];
      // One request in flight, 100 spans each, 200 ms per answer: 500 spans need ~1 s of sending after SIGTERM.
      const configPath = writeConfig(
        dir,
        sink.endpoint,
        grpcPort,
        httpPort,
        ', max_in_flight: 1, max_batch_spans: 100',
      );
      const url = `http://127.0.0.1:${httpPort}/v1/traces`;
      const exit = (c: ChildProcess) => new Promise<number | null>((r) => c.once('exit', (code) => r(code)));
      const ready = async () => {
        for (const deadline = Date.now() + 20_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 50))) {
          if (
            await fetch(url, { method: 'GET' }).then(
              () => true,
              () => false,
            )
          )
            return;
        }
        throw new Error('the daemon did not start listening');
      };

      // Downstream healthy: spans acknowledged just before SIGTERM are sent before the process exits.
      sink.delayMs = 200;
      let child = startDaemon(configPath);
      await ready();
      const first = (await Promise.all(Array.from({ length: 10 }, () => post(url, 50)))).flat();
      child.kill('SIGTERM');
      assert.equal(await exit(child), 0);
      const got = spanIdsOf(sink);
      assert.ok(
        first.every((id) => got.has(id)),
        `${first.filter((id) => !got.has(id)).length} of ${first.length} spans were not sent before exit`,
      );

      // Downstream down: exit 0 by the deadline (2s), spans stay spooled, and the next start sends them.
      sink.delayMs = 0;
      sink.failAll = { code: 14, message: 'collector restarting' };
      child = startDaemon(configPath);
      await ready();
      const second = await post(url, 300);
      const t0 = Date.now();
      child.kill('SIGTERM');
      assert.equal(await exit(child), 0);
      const took = Date.now() - t0;
      assert.ok(took < 2000 + 3000, `shutdown took ${took} ms with a 2 s deadline`);
      assert.ok(
        !second.some((id) => spanIdsOf(sink).has(id)),
        'downstream was down; nothing of the second batch can have arrived',
      );
      sink.failAll = undefined;
      child = startDaemon(configPath);
      await waitFor(
        () => second.every((id) => spanIdsOf(sink).has(id)),
        'the spooled spans sent after the restart',
        20_000,
      );
      child.kill('SIGTERM');
      assert.equal(await exit(child), 0);
      await sink.stop();
    },
  );
});
