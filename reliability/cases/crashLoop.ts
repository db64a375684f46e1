// kill -9 at random moments while clients send over gRPC and HTTP; every acknowledged span must
// reach downstream at least once.
import { AckingClient, Check, seededRandom, settle, DaemonProcess, OtlpSink, sleep, type CaseResult } from '../lib.ts';

export async function crashLoop(opts: { kills: number; seed?: number }): Promise<CaseResult> {
  const check = new Check();
  const sink = await new OtlpSink().start();
  const d = await new DaemonProcess({
    exporter: { endpoint: sink.endpoint, retry_initial_interval: '100ms', retry_max_interval: '500ms' },
  }).init();
  const clients = [new AckingClient(), new AckingClient()];
  let stop = false;
  const t0 = Date.now();
  // Two steady clients, one per transport, ~40 requests/s each of 20 spans; they keep going through the kills.
  const loops = (['grpc', 'http'] as const).map(async (transport, i) => {
    while (!stop) {
      await clients[i]!.batch(d, transport, 20);
      await sleep(25);
    }
  });
  const random = seededRandom(opts.seed ?? 12345);
  d.start();
  await d.ready();
  for (let k = 0; k < opts.kills; k++) {
    // A random moment 0.2–1.5 s into each run: mid-intake, mid-export, mid-commit alike.
    await sleep(200 + random() * 1300);
    await d.kill9();
    await sleep(random() * 200);
    d.start();
    await d.ready();
  }
  await sleep(500);
  stop = true;
  await Promise.all(loops);
  const acked = new Set([...clients[0]!.acked, ...clients[1]!.acked]);
  const { lost, dupes } = await settle(sink, acked, 30_000);
  check.that(lost === 0, `${lost} acknowledged spans never arrived`);
  check.that(clients[0]!.acked.size > 0 && clients[1]!.acked.size > 0, 'both transports had spans acknowledged');
  const exit = await d.stop();
  check.that(exit === 0, `clean exit after the loop (got ${exit})`);
  await sink.stop();
  clients.forEach((c) => c.close());
  const secs = ((Date.now() - t0) / 1000).toFixed(0);
  return {
    name: 'crash loop (kill -9)',
    load:
      `${opts.kills} kill -9 at random moments over ${secs} s; gRPC + HTTP clients, ` +
      `${clients[0]!.sentRequests + clients[1]!.sentRequests} requests of 20 spans`,
    lost,
    refused:
      `${clients[0]!.connectionErrors + clients[1]!.connectionErrors} requests failed to connect while down (client ` +
      `retries them)`,
    recovered:
      `${acked.size} acknowledged spans all delivered; ${dupes} delivered twice ` +
      `(${((dupes / Math.max(1, acked.size)) * 100).toFixed(2)} %)`,
    notes: [],
    ok: check.failures.length === 0,
    failures: check.failures,
  };
}
