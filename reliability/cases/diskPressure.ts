// The store and spool on a small tmpfs that fills up: listeners refuse (retryably) what they cannot
// spool, scrapes log and go on, nothing corrupts, and the daemon recovers by itself when space returns.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, openSync, rmSync, writeSync, closeSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { demoModelState, renderVllmExposition } from '../../src/demo/vllmExposition.ts';
import { AckingClient, Check, settle, DaemonProcess, OtlpSink, sleep, waitUntil, type CaseResult } from '../lib.ts';

function fillDisk(path: string): number {
  const fd = openSync(path, 'w');
  const chunk = Buffer.alloc(256 * 1024, 1);
  let written = 0;
  try {
    for (;;) written += writeSync(fd, chunk);
  } catch {
    // ENOSPC: full
  } finally {
    closeSync(fd);
  }
  return written;
}

export async function diskPressure(opts: { fullMs: number }): Promise<CaseResult> {
  const check = new Check();
  const mnt = mkdtempSync(join(tmpdir(), 'cachelens-tmpfs-'));
  // Root mounts directly; otherwise passwordless sudo, as CI machines have.
  const asRoot = (args: string[]) =>
    process.getuid?.() === 0
      ? execFileSync(args[0]!, args.slice(1), { stdio: 'pipe' })
      : execFileSync('sudo', ['-n', ...args], { stdio: 'pipe' });
  try {
    asRoot(['mount', '-t', 'tmpfs', '-o', `size=48m,uid=${process.getuid?.() ?? 0}`, 'tmpfs', mnt]);
  } catch (err) {
    rmSync(mnt, { recursive: true, force: true });
    return {
      name: 'disk pressure (tmpfs)',
      load: 'not run',
      lost: 0,
      refused: '–',
      recovered: '–',
      notes: [`skipped: cannot mount a tmpfs here (${(err as Error).message.split('\n')[0]}); run as root`],
      ok: true,
      failures: [],
    };
  }
  let scrapes = 0;
  const target = http.createServer((_req, res) => {
    scrapes++;
    res.writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4' });
    res.end(renderVllmExposition([{ ...demoModelState('m'), promptTokens: 1000 * scrapes }]));
  });
  await new Promise<void>((r) => target.listen(0, '127.0.0.1', () => r()));
  const sink = await new OtlpSink().start();
  const d = await new DaemonProcess(
    {
      scrape: {
        interval: '1s',
        timeout: '900ms',
        targets: [{ url: `http://127.0.0.1:${(target.address() as AddressInfo).port}/metrics` }],
      },
      exporter: { endpoint: sink.endpoint, retry_initial_interval: '100ms', retry_max_interval: '500ms' },
      spool: { max_bytes: '1GiB' },
    },
    mnt,
  ).init();
  const client = new AckingClient();
  try {
    d.start();
    await d.ready();
    await sleep(2000);
    // Downstream down, so the spool must hold everything; then the disk fills.
    sink.failAll = { code: 14, message: 'down' };
    const ballast = join(mnt, 'ballast');
    const filled = fillDisk(ballast);
    const codes = new Map<string, number>();
    const t0 = Date.now();
    while (Date.now() - t0 < opts.fullMs) {
      for (const transport of ['grpc', 'http'] as const) {
        const out = await client.batch(d, transport, 200);
        if (!out.acked) codes.set(`${transport} ${out.code}`, (codes.get(`${transport} ${out.code}`) ?? 0) + 1);
      }
      await sleep(50);
    }
    const refusedWhileFull = client.refusedRetryable;
    const alive = await fetch(`http://127.0.0.1:${d.telemetryPort}/healthz`).then(
      (r) => r.status === 200,
      () => false,
    );
    check.that(alive && d.current!.child.exitCode === null, 'the daemon stays up with the disk full');
    check.that(refusedWhileFull > 0, 'requests were refused while the disk was full');
    check.that(
      client.refusedOther === 0,
      `every refusal was retryable (${[...codes].map(([k, v]) => `${k}×${v}`).join(', ')})`,
    );
    const scrapeErrors = d.current!.stderr.filter((l) => /SQLITE_FULL|full|disk/i.test(l)).length;
    // Space returns: the ballast goes, downstream comes back.
    rmSync(ballast);
    sink.failAll = undefined;
    const back = Date.now();
    let acceptedAgain = false;
    await waitUntil(async () => (acceptedAgain = (await client.batch(d, 'http', 10)).acked), 30_000);
    const recoverMs = Date.now() - back;
    check.that(acceptedAgain, 'spans are accepted again once space returns');
    const scrapesBefore = scrapes;
    await sleep(3000);
    const acked = client.acked;
    const { lost } = await settle(sink, acked, 30_000);
    check.that(lost === 0, `${lost} acknowledged spans never arrived`);
    const exit = await d.stop();
    check.that(exit === 0, `clean exit (got ${exit})`);
    const integrity = ['store.db', 'store-spool.db'].map((f) => {
      const db = new Database(join(mnt, f), { readonly: true });
      const r = db.pragma('integrity_check', { simple: true });
      const stored =
        f === 'store.db' ? (db.prepare('SELECT count(*) FROM scrapes WHERE ts_ms > ?').pluck().get(back) as number) : 0;
      db.close();
      return { f, r, stored };
    });
    for (const i of integrity) check.that(i.r === 'ok', `${i.f}: integrity_check says ${i.r}`);
    const storedAfter = integrity[0]!.stored;
    check.that(storedAfter >= 2, `scrapes are stored again after space returned (${storedAfter} rows)`);
    return {
      name: 'disk pressure (48 MiB tmpfs)',
      load:
        `store and spool on a 48 MiB tmpfs, filled with ${(filled / 1048576).toFixed(0)} MiB of ballast while ` +
        `downstream was down; gRPC + HTTP clients sending 200-span requests for ${opts.fullMs / 1000} s; scrapes ` +
        `every 1 s`,
      lost,
      refused:
        `${refusedWhileFull} requests refused while full, all retryable ` +
        `(${[...codes].map(([k, v]) => `${k} ×${v}`).join(', ')}); ${scrapeErrors} log lines name the full disk`,
      recovered:
        `accepting again ${(recoverMs / 1000).toFixed(1)} s after space returned, with no restart; ${storedAfter} ` +
        `scrape rows stored after; integrity_check ok on both files; ${acked.size} acknowledged spans all delivered`,
      notes: [`${scrapes - scrapesBefore} scrapes in the 3 s after recovery`],
      ok: check.failures.length === 0,
      failures: check.failures,
    };
  } finally {
    await d.stop().catch(() => undefined);
    await sink.stop();
    target.close();
    client.close();
    try {
      asRoot(['umount', mnt]);
      rmSync(mnt, { recursive: true, force: true });
    } catch {
      // left mounted only if something still holds it
    }
  }
}
