// Spans stamped minutes in the future or the past, or ending before they start, from hosts whose
// clocks differ from the scraper's: windows never run backwards, and future-stamped spans are marked.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { anyValueToJs } from '../../src/otlp/decode.ts';
import { demoModelState, renderVllmExposition } from '../../src/demo/vllmExposition.ts';
import { Check, DaemonProcess, makeRequest, OtlpSink, sleep, waitUntil, type CaseResult } from '../lib.ts';
import { ExportTraceServiceRequest } from '../../src/otlp/schema.ts';
import { encodeRequest } from '../../src/otlp/decode.ts';
import type { OtlpTraceRequest } from '../../src/otlp/schema.ts';

const MIN = 60_000;

export async function clockSkew(opts: { spansPerOffset: number }): Promise<CaseResult> {
  const check = new Check();
  let scrapes = 0;
  const server = http.createServer((_req, res) => {
    scrapes++;
    res.writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4' });
    res.end(
      renderVllmExposition(
        [{ ...demoModelState('m'), prefixCacheQueries: 1000 * scrapes, prefixCacheHits: 600 * scrapes }],
        { histograms: false },
      ),
    );
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/metrics`;
  const sink = await new OtlpSink().start();
  const d = await new DaemonProcess({
    scrape: { interval: '1s', timeout: '900ms', targets: [{ url, labels: { instance: 'vllm-skew' } }] },
    exporter: { endpoint: sink.endpoint },
  }).init();
  d.start();
  await d.ready();
  await sleep(3000); // a few scrapes of history
  // Offsets of the sending host's clock, and one span whose end precedes its start.
  const offsets: Array<{ label: string; startOff: number; endOff: number }> = [
    { label: '+10 min', startOff: 10 * MIN - 2000, endOff: 10 * MIN },
    { label: '+2 min', startOff: 2 * MIN - 500, endOff: 2 * MIN },
    { label: '-5 min', startOff: -5 * MIN - 1000, endOff: -5 * MIN },
    { label: '-2 days', startOff: -2 * 24 * 60 * MIN, endOff: -2 * 24 * 60 * MIN + 800 },
    { label: 'end before start', startOff: -1000, endOff: -3000 },
    { label: 'in sync', startOff: -1500, endOff: -200 },
  ];
  const sent = new Map<string, string>();
  for (const o of offsets) {
    const r = makeRequest(opts.spansPerOffset, {
      name: 'llm_request',
      resource: { 'service.instance.id': 'vllm-skew' },
    });
    const req = ExportTraceServiceRequest.decode(r.body) as unknown as OtlpTraceRequest;
    const now = Date.now();
    for (const s of req.resourceSpans[0]!.scopeSpans[0]!.spans) {
      s.startTimeUnixNano = String(BigInt(now + o.startOff) * 1_000_000n) as never;
      s.endTimeUnixNano = String(BigInt(now + o.endOff) * 1_000_000n) as never;
    }
    const res = await fetch(d.httpUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/x-protobuf' },
      body: Buffer.from(
        encodeRequest(ExportTraceServiceRequest.fromObject(req as never) as unknown as OtlpTraceRequest),
      ),
    });
    check.that(res.status === 200, `${o.label}: accepted (${res.status})`);
    for (const id of r.spanIds) sent.set(id, o.label);
  }
  await waitUntil(
    () => sink.spans().filter((s) => sent.has(Buffer.from(s.spanId).toString('hex'))).length >= sent.size,
    20_000,
  );
  const byLabel = new Map<
    string,
    { n: number; negative: number; complete: number; skewMarked: number; maxSkewS: number; hadValues: number }
  >();
  for (const s of sink.spans()) {
    const label = sent.get(Buffer.from(s.spanId).toString('hex'));
    if (!label) continue;
    const ev = s.events.find((e) => e.name === 'cachelens.cache');
    const a = Object.fromEntries((ev?.attributes ?? []).map((kv) => [kv.key, anyValueToJs(kv.value)]));
    const b = byLabel.get(label) ?? { n: 0, negative: 0, complete: 0, skewMarked: 0, maxSkewS: 0, hadValues: 0 };
    b.n++;
    const from = Number(a['cachelens.window.start_unix_nano']);
    const to = Number(a['cachelens.window.end_unix_nano']);
    if (to < from) b.negative++;
    if (a['cachelens.window.complete'] === true) b.complete++;
    if (typeof a['cachelens.clock_skew_ms'] === 'number') {
      b.skewMarked++;
      b.maxSkewS = Math.max(b.maxSkewS, (a['cachelens.clock_skew_ms'] as number) / 1000);
    }
    if (a['cachelens.prefix_cache.queries'] !== undefined) b.hadValues++;
    byLabel.set(label, b);
  }
  const get = (l: string) =>
    byLabel.get(l) ?? { n: 0, negative: 0, complete: 0, skewMarked: 0, maxSkewS: 0, hadValues: 0 };
  const total = [...byLabel.values()].reduce((n, b) => n + b.n, 0);
  const negative = [...byLabel.values()].reduce((n, b) => n + b.negative, 0);
  check.that(total === sent.size, `${total} of ${sent.size} spans arrived downstream`);
  check.that(negative === 0, `${negative} windows ran backwards`);
  for (const l of ['+10 min', '+2 min'])
    check.that(
      get(l).skewMarked === get(l).n && get(l).complete === 0,
      `${l}: every span marked with cachelens.clock_skew_ms and incomplete`,
    );
  for (const l of ['-5 min', '-2 days', 'in sync', 'end before start'])
    check.that(get(l).skewMarked === 0, `${l}: not marked as running ahead`);
  for (const l of ['-5 min', '-2 days'])
    check.that(get(l).complete === 0, `${l}: incomplete (stamped before the first scrape)`);
  check.that(get('in sync').complete === get('in sync').n, 'in-sync spans have complete windows');
  check.that(
    get('end before start').complete === get('end before start').n,
    'a span ending before it starts is read as a point at its start',
  );
  const exit = await d.stop();
  check.that(exit === 0, `clean exit (got ${exit})`);
  await sink.stop();
  server.close();
  return {
    name: 'clock skew',
    load: `${sent.size} request spans from hosts whose clocks are off by ${offsets.map((o) => o.label).join(', ')}`,
    lost: sent.size - total,
    refused: 'none (every span accepted and forwarded)',
    recovered:
      `${negative} negative windows; ahead-of-time spans marked ` +
      `(${get('+10 min').skewMarked + get('+2 min').skewMarked} with cachelens.clock_skew_ms, up to ` +
      `${get('+10 min').maxSkewS.toFixed(0)} s) and incomplete`,
    notes: [...byLabel].map(
      ([l, b]) =>
        `${l}: ${b.n} spans, ${b.complete} complete windows, ${b.skewMarked} marked ahead, ${b.hadValues} with ` +
        `instance values`,
    ),
    ok: check.failures.length === 0,
    failures: check.failures,
  };
}
