// SIGTERM at random moments under steady OTLP load, with scraped targets (the simulated fleet through
// its bursts, one target down, one answering 500): every run must exit 0 within the shutdown deadline,
// print no stack trace, and lose no acknowledged span (it arrives now or after the next start).
import { FleetServer } from '../../src/demo/fleetServer.ts';
import { demoScenario, Fleet } from '../../src/demo/fleetSim.ts';
import { MetricsServer } from '../../test/support/metricsServer.ts';
import { freePort } from '../../test/support/ports.ts';
import { AckingClient, Check, DaemonProcess, OtlpSink, seededRandom, settle, sleep, type CaseResult } from '../lib.ts';

const DEADLINE_MS = 10_000;

export async function sigtermLoop(opts: { stops: number; seed?: number }): Promise<CaseResult> {
  const check = new Check();
  const sink = await new OtlpSink().start();
  // A 12 s cycle: the Llama burst runs from 3.6 s to 6.6 s of each, so some stops land mid-burst.
  const fleet = new FleetServer(new Fleet(demoScenario(12_000), Date.now(), 7, 12_000), {
    host: '127.0.0.1',
    basePort: 0,
  });
  await fleet.start();
  const broken = new MetricsServer();
  await broken.start();
  broken.route('/metrics', (_req, res) => {
    res.statusCode = 500;
    res.end('engine dead');
  });
  const deadPort = await freePort();
  const d = await new DaemonProcess({
    scrape: {
      interval: '1s',
      timeout: '800ms',
      targets: [
        ...fleet.urls.map((u) => ({ url: u.url, labels: { instance: u.instance } })),
        { url: `http://127.0.0.1:${deadPort}/metrics`, labels: { instance: 'vllm-down' } },
        { url: broken.url('/metrics'), labels: { instance: 'vllm-500' } },
      ],
    },
    exporter: {
      endpoint: sink.endpoint,
      retry_initial_interval: '100ms',
      retry_max_interval: '500ms',
      shutdown_timeout: '2s',
    },
    enrich: { max_wait: '2s' },
  }).init();
  fleet.run(`http://127.0.0.1:${d.grpcPort}`);
  const clients = [new AckingClient(), new AckingClient()];
  let stopLoad = false;
  // Request spans and others, over both transports, through every start and stop.
  const loops = (['grpc', 'http'] as const).map(async (transport, i) => {
    while (!stopLoad) {
      await clients[i]!.batch(d, transport, 10, {
        name: i ? 'llm_request' : 'background',
        resource: { 'service.instance.id': 'vllm-0' },
      });
      await sleep(30);
    }
  });
  const random = seededRandom(opts.seed ?? 4242);
  const exits: number[] = [];
  const stopMs: number[] = [];
  let midBurst = 0;
  let traces = 0;
  for (let k = 0; k < opts.stops; k++) {
    d.start();
    await d.ready();
    await sleep(200 + random() * 2500);
    if (fleet.fleet.phaseAt(Date.now()) === 'burst') midBurst++;
    const t0 = Date.now();
    const handle = d.current!;
    handle.child.kill('SIGTERM');
    const code = await Promise.race([handle.exited, sleep(DEADLINE_MS).then(() => 'hung' as const)]);
    const ms = Date.now() - t0;
    if (code === 'hung') {
      await d.kill9();
      check.that(false, `stop ${k + 1}: still running ${DEADLINE_MS} ms after SIGTERM`);
    } else {
      exits.push(code ?? -1);
      stopMs.push(ms);
      check.that(code === 0, `stop ${k + 1}: exit ${code}`);
    }
    const traceLines = handle.stderr.filter(
      (l) => /^\s+at \S/.test(l) || /\b(?:TypeError|RangeError|ReferenceError|Uncaught|unhandled)/i.test(l),
    );
    if (traceLines.length) traces++;
    check.that(
      traceLines.length === 0,
      `stop ${k + 1}: a stack trace or uncaught error: ${traceLines.slice(0, 3).join(' | ')}`,
    );
  }
  // The last start sends whatever the stops left in the spool.
  d.start();
  await d.ready();
  await sleep(500);
  stopLoad = true;
  await Promise.all(loops);
  const acked = new Set([...clients[0]!.acked, ...clients[1]!.acked]);
  const { lost, dupes } = await settle(sink, acked, 60_000);
  check.that(lost === 0, `${lost} acknowledged spans never arrived`);
  check.that(midBurst > 0, 'at least one stop landed during a fleet burst');
  const finalExit = await d.stop();
  check.that(finalExit === 0, `the final stop: exit ${finalExit}`);
  await fleet.close();
  await broken.stop();
  await sink.stop();
  clients.forEach((c) => c.close());
  stopMs.sort((a, b) => a - b);
  const p = (q: number) => stopMs[Math.min(stopMs.length - 1, Math.floor(q * stopMs.length))] ?? 0;
  return {
    name: 'SIGTERM loop',
    load:
      `${opts.stops} SIGTERMs at random moments (0.2–2.7 s after ready) under gRPC + HTTP load; 5 targets scraped ` +
      `every 1 s (the simulated fleet with bursts, one down, one answering 500); ${midBurst} stops mid-burst`,
    lost,
    refused:
      `${clients[0]!.connectionErrors + clients[1]!.connectionErrors} requests failed to connect while stopped ` +
      `(clients retry them)`,
    recovered:
      `${exits.filter((c) => c === 0).length} of ${opts.stops} exits 0, time to exit median ${p(0.5)} ms, max ` +
      `${p(1)} ms (deadline ${DEADLINE_MS} ms); ${traces} with a stack trace; ${acked.size} acknowledged spans all ` +
      `delivered, ${dupes} twice`,
    notes: [],
    ok: check.failures.length === 0,
    failures: check.failures,
  };
}
