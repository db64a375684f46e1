// Downstream goes away, comes back, and flaps. The spool fills and clients get retryable refusals;
// nothing acknowledged is lost, and the backlog drains at a measured rate.
import { AckingClient, Check, settle, DaemonProcess, OtlpSink, sleep, waitUntil, type CaseResult } from '../lib.ts';

export async function downstreamOutage(opts: { outageMs: number; flapMs: number }): Promise<CaseResult> {
  const check = new Check();
  const sink = await new OtlpSink().start();
  const d = await new DaemonProcess({
    spool: { max_bytes: '4MiB' },
    exporter: { endpoint: sink.endpoint, retry_initial_interval: '100ms', retry_max_interval: '1s' },
  }).init();
  d.start();
  await d.ready();
  const clients = [new AckingClient(), new AckingClient()];
  let stop = false;
  const codes = new Map<string, number>();
  const loops = (['grpc', 'http'] as const).map(async (transport, i) => {
    while (!stop) {
      const out = await clients[i]!.batch(d, transport, 100);
      if (!out.acked) codes.set(`${transport} ${out.code}`, (codes.get(`${transport} ${out.code}`) ?? 0) + 1);
      await sleep(out.acked ? 5 : 50);
    }
  });
  await sleep(1000);
  // Outage: every export fails UNAVAILABLE, as a Collector that is restarting answers.
  sink.failAll = { code: 14, message: 'downstream restarting' };
  const outageStart = Date.now();
  let spoolPeak = 0;
  while (Date.now() - outageStart < opts.outageMs) {
    spoolPeak = Math.max(spoolPeak, (await d.metric('cachelens_spool_spans')) ?? 0);
    await sleep(200);
  }
  const refusedDuringOutage = clients[0]!.refusedRetryable + clients[1]!.refusedRetryable;
  stop = true;
  await Promise.all(loops);
  const backlog = (await d.metric('cachelens_spool_spans')) ?? 0;
  const readyWhileFull = await fetch(`http://127.0.0.1:${d.telemetryPort}/readyz`).then((r) => r.status);
  sink.failAll = undefined;
  const drainStart = Date.now();
  await waitUntil(async () => ((await d.metric('cachelens_spool_spans')) ?? 1) === 0, 60_000);
  const drainMs = Date.now() - drainStart;
  // Flapping: down and up every flapMs/10 while clients send again.
  stop = false;
  const loops2 = (['grpc', 'http'] as const).map(async (transport, i) => {
    while (!stop) {
      await clients[i]!.batch(d, transport, 50);
      await sleep(20);
    }
  });
  const flapStart = Date.now();
  let flaps = 0;
  while (Date.now() - flapStart < opts.flapMs) {
    sink.failAll = flaps % 2 === 0 ? { code: 14, message: 'flap' } : undefined;
    flaps++;
    await sleep(opts.flapMs / 10);
  }
  sink.failAll = undefined;
  stop = true;
  await Promise.all(loops2);
  const acked = new Set([...clients[0]!.acked, ...clients[1]!.acked]);
  const { lost } = await settle(sink, acked, 60_000);
  check.that(lost === 0, `${lost} acknowledged spans never arrived`);
  check.that(refusedDuringOutage > 0, 'the spool filled and clients were refused');
  check.that(
    clients.every((c) => c.refusedOther === 0),
    `every refusal was retryable (${[...codes].map(([k, v]) => `${k}×${v}`).join(', ')})`,
  );
  check.that(
    readyWhileFull === 503,
    `/readyz was 503 with the spool above its high-water mark (got ${readyWhileFull})`,
  );
  const exit = await d.stop();
  check.that(exit === 0, `clean exit (got ${exit})`);
  await sink.stop();
  clients.forEach((c) => c.close());
  const rate = backlog / (drainMs / 1000);
  return {
    name: 'downstream outage and flapping',
    load:
      `gRPC + HTTP clients of 100-span requests; downstream UNAVAILABLE for ${opts.outageMs / 1000} s with a 4 MiB ` +
      `spool, then ${flaps} flaps over ${opts.flapMs / 1000} s`,
    lost,
    refused:
      `${refusedDuringOutage} requests refused while the spool was full, all retryable ` +
      `(${[...codes].map(([k, v]) => `${k} ×${v}`).join(', ')})`,
    recovered:
      `backlog of ${backlog} spans drained in ${(drainMs / 1000).toFixed(1)} s (${Math.round(rate)} spans/s); ` +
      `${acked.size} acknowledged spans all delivered`,
    notes: [
      `spool peaked at ${spoolPeak} spans during the outage; /readyz answered ${readyWhileFull} while it was full`,
    ],
    ok: check.failures.length === 0,
    failures: check.failures,
  };
}
