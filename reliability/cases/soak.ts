// A fixed span rate with 50 scraped targets, a few of them flapping: memory stays flat and the spool
// stays bounded. Reports RSS at the start and end of the measured part and its slope.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { demoModelState, renderVllmExposition } from '../../src/demo/vllmExposition.ts';
import { AckingClient, Check, settle, DaemonProcess, OtlpSink, sleep, type CaseResult } from '../lib.ts';

function slope(points: Array<[number, number]>): number {
  const n = points.length;
  const mx = points.reduce((s, p) => s + p[0], 0) / n;
  const my = points.reduce((s, p) => s + p[1], 0) / n;
  const num = points.reduce((s, p) => s + (p[0] - mx) * (p[1] - my), 0);
  const den = points.reduce((s, p) => s + (p[0] - mx) ** 2, 0);
  return den ? num / den : 0;
}

export async function soak(opts: { durationMs: number; spansPerSecond: number }): Promise<CaseResult> {
  const check = new Check();
  const TARGETS = 50;
  const FLAPPING = 5;
  const t0 = Date.now();
  const counts = new Array<number>(TARGETS).fill(0);
  const server = http.createServer((req, res) => {
    const i = Number((req.url ?? '').split('/')[2]);
    // Flapping targets are down for 10 s out of every 20.
    if (i < FLAPPING && Math.floor((Date.now() - t0) / 10_000) % 2 === 1) return req.socket.destroy();
    counts[i]!++;
    res.writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4' });
    res.end(
      renderVllmExposition([
        {
          ...demoModelState(`model-${i % 4}`),
          promptTokens: 1000 * counts[i]!,
          prefixCacheQueries: 1000 * counts[i]!,
          prefixCacheHits: 400 * counts[i]!,
        },
      ]),
    );
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const sink = await new OtlpSink().start();
  const d = await new DaemonProcess({
    scrape: {
      interval: '5s',
      timeout: '2s',
      targets: Array.from({ length: TARGETS }, (_, i) => ({
        url: `${base}/t/${i}`,
        labels: { instance: `vllm-${i}` },
      })),
    },
    exporter: { endpoint: sink.endpoint },
  }).init();
  d.start();
  await d.ready();
  const client = new AckingClient();
  let stop = false;
  let spoolMax = 0;
  const rss: Array<[number, number]> = [];
  const batch = 50;
  const perSecond = opts.spansPerSecond / batch;
  let sentBatches = 0;
  const sender = (async () => {
    const start = Date.now();
    while (!stop) {
      // Half request spans matched to a scraped instance, half other spans: a fixed rate.
      const i = sentBatches % TARGETS;
      await client.batch(
        d,
        sentBatches % 2 ? 'grpc' : 'http',
        batch,
        sentBatches % 2
          ? { name: 'llm_request', resource: { 'service.instance.id': `vllm-${i}` } }
          : { name: 'background' },
      );
      sentBatches++;
      const due = start + (sentBatches / perSecond) * 1000;
      await sleep(Math.max(0, due - Date.now()));
    }
  })();
  const minutes = opts.durationMs / 60_000;
  const warmupMs = Math.min(30_000, opts.durationMs / 4);
  while (Date.now() - t0 < opts.durationMs) {
    await sleep(2000);
    spoolMax = Math.max(spoolMax, (await d.metric('cachelens_spool_spans')) ?? 0);
    const r = d.rssBytes();
    if (r && Date.now() - t0 >= warmupMs) rss.push([(Date.now() - t0) / 60_000, r / 1048576]);
  }
  stop = true;
  await sender;
  const acked = client.acked;
  const { lost } = await settle(sink, acked, 30_000);
  const up =
    (await fetch(`http://127.0.0.1:${d.telemetryPort}/metrics`).then((r) => r.text())).match(
      /^cachelens_target_up\{[^}]*\} 1$/gm,
    )?.length ?? 0;
  const exit = await d.stop();
  await sink.stop();
  server.close();
  client.close();
  const mbPerMin = slope(rss);
  const [first, last] = [rss[0]?.[1] ?? 0, rss[rss.length - 1]?.[1] ?? 0];
  check.that(lost === 0, `${lost} acknowledged spans never arrived`);
  check.that(exit === 0, `clean exit (got ${exit})`);
  check.that(spoolMax <= opts.spansPerSecond * 10, `spool depth stayed under 10 s of intake (max ${spoolMax} spans)`);
  // RSS climbs for the first ~2.5 minutes (V8 heap and SQLite page caches reaching their working size;
  // a 6-minute run plateaus at +18 MB) and is then flat. A leak of 1 KB per span would add ~60 MB a
  // minute here. The long form judges the slope of its second half; the short form bounds the growth.
  const secondHalf = rss.filter(([m]) => m >= minutes / 2);
  const lateSlope = slope(secondHalf);
  if (minutes >= 10)
    check.that(lateSlope < 1, `RSS slope over the second half ${lateSlope.toFixed(2)} MB/min (flat is < 1)`);
  else
    check.that(
      last - first < 40,
      `RSS grew ${(last - first).toFixed(0)} MB after warm-up (bound 40 MB for the warm-up of caches)`,
    );
  const rate = (acked.size / (opts.durationMs / 1000)).toFixed(0);
  return {
    name: `soak (${minutes} min)`,
    load:
      `${rate} spans/s acknowledged (half request spans, enriched) for ${minutes} min; ${TARGETS} targets scraped ` +
      `every 5 s, ${FLAPPING} of them down 10 s out of every 20`,
    lost,
    refused: `${client.refusedRetryable + client.refusedOther} requests refused`,
    recovered:
      `RSS ${first.toFixed(0)} → ${last.toFixed(0)} MB after ${(warmupMs / 1000).toFixed(0)} s warm-up, slope ` +
      `${mbPerMin.toFixed(2)} MB/min (second half ${lateSlope.toFixed(2)}); spool depth max ${spoolMax} spans; ` +
      `${acked.size} spans all delivered`,
    notes: [
      `${up} of ${TARGETS} targets up at the end (flapping ones may be down)`,
      `RSS (MB) by minute: ${rss
        .filter((_, i) => i % 15 === 0)
        .map(([m, v]) => `${m.toFixed(1)}: ${v.toFixed(0)}`)
        .join(', ')}`,
    ],
    ok: check.failures.length === 0,
    failures: check.failures,
  };
}
