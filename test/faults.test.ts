// Faults against the real CLI: files the config names, a port in use, damaged spool rows. None may
// crash, hang or half-start the daemon.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { makeRequest } from './support/otlpRequests.ts';
import { OtlpSink } from './support/otlpSink.ts';
import { waitFor } from './support/pipelineHarness.ts';
import { freePort } from './support/ports.ts';

const BIN = fileURLToPath(new URL('../bin/cachelens.js', import.meta.url));

interface Run {
  child: ChildProcess;
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; ms: number }>;
}

function run(configPath: string): Run {
  const t0 = Date.now();
  const child = spawn(process.execPath, [BIN, 'run', '--config', configPath], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (d) => (err += d));
  child.stdout!.on('data', (d) => (err += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; ms: number }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal, ms: Date.now() - t0 })),
  );
  return { child, stderr: () => err, exited };
}

function config(dir: string, grpcPort: number, httpPort: number, extra: string[] = []): string {
  const p = join(dir, 'cachelens.yaml');
  writeFileSync(
    p,
    [
      `storage: {path: ${join(dir, 'store.db')}}`,
      'scrape: {targets: []}',
      'telemetry: {endpoint: "127.0.0.1:0"}',
      'log: {level: info}',
      ...extra,
      ...(extra.some((l) => l.startsWith('receivers:'))
        ? []
        : [`receivers: {grpc: {endpoint: "127.0.0.1:${grpcPort}"}, http: {endpoint: "127.0.0.1:${httpPort}"}}`]),
    ].join('\n'),
  );
  return p;
}

describe('faults against the real CLI', { timeout: 120_000 }, () => {
  it('a missing receivers.bearer_token_file stops the start with one line naming the key', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cachelens-fault-'));
    const [g, h] = [await freePort(), await freePort()];
    const r = run(
      config(dir, g, h, [
        `receivers: {grpc: {endpoint: "127.0.0.1:${g}"}, http: {endpoint: "127.0.0.1:${h}"}, bearer_token_file: ` +
          `${join(dir, 'nope.token')}}`,
      ]),
    );
    const { code, ms } = await r.exited;
    assert.notEqual(code, 0);
    assert.ok(ms < 5000, `exited after ${ms} ms`);
    assert.match(r.stderr(), /receivers\.bearer_token_file: .*nope\.token: no such file/);
    assert.doesNotMatch(r.stderr(), /\n\s+at /, 'no stack trace');
  });

  it('a token file that disappears later: requests get 401, logged once, and the daemon keeps running', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cachelens-fault-'));
    const token = join(dir, 'otlp.token');
    writeFileSync(token, 's3cret\n');
    const [g, h] = [await freePort(), await freePort()];
    const r = run(
      config(dir, g, h, [
        `receivers: {grpc: {endpoint: "127.0.0.1:${g}"}, http: {endpoint: "127.0.0.1:${h}"}, bearer_token_file: ` +
          `${token}}`,
      ]),
    );
    try {
      await waitFor(() => r.stderr().includes('cachelens started'), 'the start', 20_000);
      const post = () =>
        fetch(`http://127.0.0.1:${h}/v1/traces`, {
          method: 'POST',
          headers: { 'content-type': 'application/x-protobuf', authorization: 'Bearer s3cret' },
          body: Buffer.from(makeRequest(2).body),
        });
      assert.equal((await post()).status, 200);
      rmSync(token);
      for (let i = 0; i < 5; i++) assert.equal((await post()).status, 401);
      assert.equal(r.stderr().match(/bearer token file unreadable/g)?.length, 1, 'logged once');
      writeFileSync(token, 's3cret\n');
      assert.equal((await post()).status, 200, 'works again once the file is back');
      assert.equal(r.child.exitCode, null, 'still running');
    } finally {
      r.child.kill('SIGTERM');
      const { code } = await r.exited;
      assert.equal(code, 0);
    }
  });

  it(
    'a port already in use: the start fails, stops what ' + 'started, names the key and exits non-zero within 5 s',
    async () => {
      const dir = mkdtempSync(join(tmpdir(), 'cachelens-fault-'));
      const [g, h] = [await freePort(), await freePort()];
      const squatter = createServer();
      await new Promise<void>((resolve) => squatter.listen(h, '127.0.0.1', resolve));
      try {
        const r = run(config(dir, g, h));
        const { code, ms } = await r.exited;
        assert.notEqual(code, 0);
        assert.notEqual(code, 143, 'not killed: it exited by itself');
        assert.ok(ms < 10_000, `exited after ${ms} ms`);
        assert.match(r.stderr(), /receivers\.http\.endpoint 127\.0\.0\.1:\d+: cannot listen \(EADDRINUSE\)/);
        // The gRPC port it had bound is free again.
        const probe = createServer();
        await new Promise<void>((resolve, reject) => probe.once('error', reject).listen(g, '127.0.0.1', resolve));
        await new Promise<void>((resolve) => probe.close(() => resolve()));
      } finally {
        await new Promise<void>((resolve) => squatter.close(() => resolve()));
      }
    },
  );

  it('damaged spool rows are dropped and counted; the rest is sent and the loop does not spin', async () => {
    const sink = await new OtlpSink().start();
    const dir = mkdtempSync(join(tmpdir(), 'cachelens-fault-'));
    const [g, h] = [await freePort(), await freePort()];
    const cfg = config(dir, g, h, [`exporter: {endpoint: "${sink.endpoint}", shutdown_timeout: 2s}`]);
    // A first run creates the spool; spans are spooled while downstream is down.
    sink.failAll = { code: 14, message: 'down' };
    let r = run(cfg);
    await waitFor(() => r.stderr().includes('cachelens started'), 'the start', 20_000);
    const good = makeRequest(3);
    for (let i = 0; i < 3; i++)
      assert.equal(
        (
          await fetch(`http://127.0.0.1:${h}/v1/traces`, {
            method: 'POST',
            headers: { 'content-type': 'application/x-protobuf' },
            body: Buffer.from(i === 2 ? good.body : makeRequest(2).body),
          })
        ).status,
        200,
      );
    r.child.kill('SIGTERM');
    assert.equal((await r.exited).code, 0);
    // Damage two rows: one loses its body, one gets garbage for a body.
    const spool = new Database(join(dir, 'store-spool.db'));
    const ids = spool.prepare('SELECT id FROM spool ORDER BY id').pluck().all() as number[];
    assert.equal(ids.length, 3);
    spool.prepare('DELETE FROM spool_body WHERE id = ?').run(ids[0]);
    spool.prepare('UPDATE spool_body SET body = ? WHERE id = ?').run(Buffer.from([0xff, 0xff, 0xff]), ids[1]);
    spool.close();
    sink.failAll = undefined;
    r = run(cfg);
    try {
      await waitFor(() => sink.spans().length >= 3, 'the undamaged row downstream', 20_000);
      await waitFor(
        () => (r.stderr().match(/dropping an undecodable spool row/g)?.length ?? 0) >= 2,
        'both damaged rows reported',
        10_000,
      );
      assert.deepEqual(
        sink
          .spans()
          .map((s) => Buffer.from(s.spanId).toString('hex'))
          .sort(),
        [...good.spanIds].sort(),
      );
    } finally {
      r.child.kill('SIGTERM');
      const { code, ms } = await r.exited;
      assert.equal(code, 0, r.stderr().slice(-2000));
      assert.ok(ms < 30_000);
      await sink.stop();
    }
  });
});
