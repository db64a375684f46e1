// The faults the held-out run tried, against the real daemon: a poisoned batch, token files that are
// missing or vanish, a port already taken, damaged spool rows, and the upstream conformance corpora.
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { status as GrpcStatus } from '@grpc/grpc-js';
import { decodeProtobuf, encodeRequest } from '../../src/otlp/decode.ts';
import { parseExposition } from '../../src/scrape/parseExposition.ts';
import { ALL } from '../../src/scrape/splitExposition.ts';
import {
  AckingClient,
  Check,
  DaemonProcess,
  delivered,
  makeRequest,
  OtlpSink,
  settle,
  sleep,
  waitUntil,
  type CaseResult,
} from '../lib.ts';

const ROOT = new URL('../../', import.meta.url);

/** Two clients share a downstream that refuses a whole request for one bad span; spool rows merge while it is down. */
export async function poisonedBatch(opts: { requests: number }): Promise<CaseResult> {
  const check = new Check();
  const sink = await new OtlpSink().start();
  sink.rejectIf = (req) =>
    req.resourceSpans.some((rs) => rs.scopeSpans.some((ss) => ss.spans.some((s) => s.name === 'poison')))
      ? { code: GrpcStatus.INVALID_ARGUMENT, message: 'invalid span' }
      : undefined;
  sink.failAll = { code: GrpcStatus.UNAVAILABLE, message: 'down' };
  const d = await new DaemonProcess({
    exporter: { endpoint: sink.endpoint, retry_initial_interval: '100ms', retry_max_interval: '300ms' },
  }).init();
  d.start();
  await d.ready();
  const innocent = new AckingClient();
  const guilty = new AckingClient();
  const poisonIds = new Set<string>();
  try {
    for (let i = 0; i < opts.requests; i++) {
      await innocent.batch(d, i % 2 ? 'grpc' : 'http', 20, { name: 'innocent' });
      // Every other guilty request carries one poisoned span among 19 good ones.
      const r = decodeProtobuf(makeRequest(20, { name: 'guilty' }).body);
      const spans = r.resourceSpans[0]!.scopeSpans[0]!.spans;
      if (i % 2 === 0) {
        const p = spans[(i * 7) % spans.length]!;
        p.name = 'poison';
        poisonIds.add(Buffer.from(p.spanId).toString('hex'));
      }
      const body = encodeRequest(r);
      const out = i % 2 ? await guilty.sendHttp(d.httpUrl, body) : await guilty.sendGrpc(d.grpcAddr, body);
      if (out.acked)
        for (const ss of r.resourceSpans[0]!.scopeSpans)
          for (const s of ss.spans) guilty.acked.add(Buffer.from(s.spanId).toString('hex'));
      if (i === Math.floor(opts.requests / 2)) sink.failAll = undefined; // the backlog goes out merged, and is refused
    }
    sink.failAll = undefined;
    const innocentSettled = await settle(sink, innocent.acked, 60_000);
    const guiltyGood = new Set([...guilty.acked].filter((id) => !poisonIds.has(id)));
    const guiltySettled = await settle(sink, guiltyGood, 60_000);
    await waitUntil(async () => (await d.metric('cachelens_exporter_dropped_spans_total')) === poisonIds.size, 20_000);
    const dropped = await d.metric('cachelens_exporter_dropped_spans_total');
    const got = delivered(sink);
    const poisonDelivered = [...poisonIds].filter((id) => got.has(id)).length;
    check.that(innocentSettled.lost === 0, `${innocentSettled.lost} of the innocent client's spans lost`);
    check.that(guiltySettled.lost === 0, `${guiltySettled.lost} of the guilty client's good spans lost`);
    check.that(poisonDelivered === 0, `${poisonDelivered} poisoned spans delivered`);
    check.that(dropped === poisonIds.size, `dropped ${dropped}, poisoned ${poisonIds.size}`);
    const logged = d.current!.stderr.filter((l) => l.includes('refused spans permanently, alone')).length;
    check.that(logged === poisonIds.size, `${logged} drop log lines for ${poisonIds.size} poisoned spans`);
    return {
      name: 'poisoned batch',
      load:
        `2 clients × ${opts.requests} requests of 20 spans (gRPC + HTTP); ${poisonIds.size} poisoned spans; ` +
        `downstream down for the first half, then refusing any request that holds a poisoned span`,
      lost: innocentSettled.lost + guiltySettled.lost,
      refused: `${dropped} poisoned spans dropped, each alone and logged with its client's address`,
      recovered:
        `${innocent.acked.size} innocent and ${guiltyGood.size} good guilty-client spans all delivered; ` +
        `${sink.attempts} export attempts`,
      notes: [],
      ok: check.failures.length === 0,
      failures: check.failures,
    };
  } finally {
    innocent.close();
    guilty.close();
    await d.stop();
    await sink.stop();
  }
}

/** Token files missing at start or vanishing later, a port already taken, damaged spool rows. */
export async function startupFaults(): Promise<CaseResult> {
  const check = new Check();
  const notes: string[] = [];
  // 1. A missing token file at start: one line naming the key, a non-zero exit, fast.
  const missing = await new DaemonProcess({ receivers: { bearer_token_file: '/nonexistent/otlp.token' } }).init();
  let t0 = Date.now();
  missing.start();
  const code1 = await missing.current!.exited;
  const ms1 = Date.now() - t0;
  check.that(code1 !== 0 && code1 !== null, `missing token file: exit ${code1}`);
  check.that(
    missing.current!.stderr.some((l) =>
      /receivers\.bearer_token_file: \/nonexistent\/otlp\.token: no such file/.test(l),
    ),
    `missing token file: the key is named (${missing.current!.stderr.slice(-2).join(' | ')})`,
  );
  check.that(ms1 < 5000, `missing token file: exited after ${ms1} ms`);

  // 2. A token file that vanishes while running: 401s, one log line, still running, fine once back.
  const tokenDir = new DaemonProcess({});
  const token = join(tokenDir.dir, 'otlp.token');
  writeFileSync(token, 's3cret\n');
  const running = await new DaemonProcess(
    { receivers: { bearer_token_file: token }, log: { level: 'info' } },
    tokenDir.dir,
  ).init();
  running.start();
  await running.ready();
  const post = () =>
    fetch(running.httpUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/x-protobuf', authorization: 'Bearer s3cret' },
      body: Buffer.from(makeRequest(2).body),
    }).then((r) => r.status);
  const before = await post();
  rmSync(token);
  const during: number[] = [];
  for (let i = 0; i < 50; i++) during.push(await post());
  writeFileSync(token, 's3cret\n');
  const after = await post();
  const logLines = running.current!.stderr.filter((l) => l.includes('bearer token file unreadable')).length;
  check.that(before === 200 && after === 200, `token file: ${before} before, ${after} once back`);
  check.that(
    during.every((s) => s === 401),
    `token file gone: ${[...new Set(during)].join(',')} instead of 401`,
  );
  check.that(logLines === 1, `token file gone: logged ${logLines} times for 50 requests`);
  check.that(running.current!.child.exitCode === null, 'token file gone: the daemon kept running');
  const stopCode = await running.stop();
  check.that(stopCode === 0, `token file: SIGTERM exit ${stopCode}`);

  // 3. A port already taken: the start fails within 5 s, naming the key, and frees what it bound.
  const taken = await new DaemonProcess({}).init();
  const squatter = createServer();
  await new Promise<void>((r) => squatter.listen(taken.httpPort, '127.0.0.1', r));
  t0 = Date.now();
  taken.start();
  const code3 = await Promise.race([taken.current!.exited, sleep(10_000).then(() => 'hung' as const)]);
  const ms3 = Date.now() - t0;
  await new Promise<void>((r) => squatter.close(() => r()));
  if (code3 === 'hung') await taken.kill9();
  check.that(code3 !== 'hung' && code3 !== 0 && code3 !== -1, `port in use: exit ${code3}`);
  check.that(ms3 < 5000, `port in use: exited after ${ms3} ms`);
  check.that(
    taken.current!.stderr.some((l) =>
      /receivers\.http\.endpoint 127\.0\.0\.1:\d+: cannot listen \(EADDRINUSE\)/.test(l),
    ),
    `port in use: the key is named (${taken.current!.stderr.slice(-2).join(' | ')})`,
  );

  // 4. Damaged spool rows: some lose their body, some get garbage; the rest is delivered, nothing spins.
  const sink = await new OtlpSink().start();
  sink.failAll = { code: GrpcStatus.UNAVAILABLE, message: 'down' };
  const spooled = await new DaemonProcess({ exporter: { endpoint: sink.endpoint, shutdown_timeout: '1s' } }).init();
  spooled.start();
  await spooled.ready();
  const client = new AckingClient();
  const rowsSpans: string[][] = [];
  for (let i = 0; i < 40; i++) {
    const r = makeRequest(10);
    const out = await client.sendHttp(spooled.httpUrl, r.body);
    if (out.acked) rowsSpans.push(r.spanIds);
  }
  await spooled.stop();
  const db = new Database(join(spooled.dir, 'store-spool.db'));
  const ids = db.prepare('SELECT id FROM spool ORDER BY id').pluck().all() as number[];
  const damaged = new Set<number>();
  ids.forEach((id, k) => {
    if (k % 10 === 3) db.prepare('DELETE FROM spool_body WHERE id = ?').run(id);
    else if (k % 10 === 7)
      db.prepare('UPDATE spool_body SET body = ? WHERE id = ?').run(Buffer.from('not a protobuf request \xff'), id);
    else return;
    damaged.add(k);
  });
  db.close();
  sink.failAll = undefined;
  spooled.start();
  await spooled.ready();
  const good = new Set(rowsSpans.filter((_, k) => !damaged.has(k)).flat());
  const settled = await settle(sink, good, 30_000);
  await waitUntil(
    async () => (await spooled.metric('cachelens_exporter_dropped_spans_total')) === damaged.size * 10,
    10_000,
  );
  const droppedDamaged = await spooled.metric('cachelens_exporter_dropped_spans_total');
  // The damaged rows are gone and the rest sent: a loop spinning on a bad row would leave rows behind.
  const left = new Database(join(spooled.dir, 'store-spool.db'), { readonly: true });
  const rowsLeft = left.prepare('SELECT count(*) FROM spool').pluck().get() as number;
  left.close();
  check.that(settled.lost === 0, `damaged spool: ${settled.lost} spans of undamaged rows lost`);
  check.that(
    droppedDamaged === damaged.size * 10,
    `damaged spool: dropped ${droppedDamaged}, damaged ${damaged.size * 10}`,
  );
  check.that(rowsLeft === 0, `damaged spool: ${rowsLeft} rows left`);
  const code4 = await spooled.stop();
  check.that(code4 === 0, `damaged spool: SIGTERM exit ${code4}`);
  await sink.stop();
  client.close();
  notes.push(`missing token file exit in ${ms1} ms; port in use exit in ${ms3} ms`);
  return {
    name: 'start-up faults',
    load:
      `a missing receivers.bearer_token_file; the token file removed under 50 requests and put back; the HTTP port ` +
      `taken; ${damaged.size} of ${ids.length} spool rows damaged (no body, or garbage)`,
    lost: settled.lost,
    refused:
      `missing file: exit ${code1} in ${ms1} ms; file gone: 50× 401, ${logLines} log line; ` +
      `port taken: exit ${code3} in ${ms3} ms; ${droppedDamaged} spans of damaged rows dropped`,
    recovered: `200 again once the token file is back; ${good.size} spans of undamaged rows delivered; spool empty`,
    notes,
    ok: check.failures.length === 0,
    failures: check.failures,
  };
}

interface ExpositionCase {
  input: string;
  bytes?: 'latin1';
  expect: {
    samples?: Array<[string, Record<string, string>, number | string]>;
    error?: true;
    good?: number;
    tolerated?: string;
  };
}
interface JsonCase {
  field: string;
  json: string;
  expect: { value: unknown } | { error: true };
}

/**
 * The upstream corpora: the exposition cases through the parser, the OTLP/JSON ones through the real daemon's HTTP
 * receiver.
 */
export async function corpora(): Promise<CaseResult> {
  const check = new Check();
  const expo = JSON.parse(
    readFileSync(new URL('test/conformance/exposition-cases.json', ROOT), 'utf8'),
  ) as ExpositionCase[];
  let expoMisreads = 0;
  for (const c of expo) {
    const body = c.bytes ? new TextDecoder().decode(Buffer.from(c.input, 'latin1')) : c.input;
    const p = parseExposition(body, ALL);
    const ok = c.expect.samples
      ? p.parseErrors === 0 && p.samples.length === c.expect.samples.length
      : c.expect.error
        ? p.parseErrors >= 1 && p.samples.length === (c.expect.good ?? 0)
        : p.parseErrors === 0;
    if (!ok) expoMisreads++;
  }
  const { cases } = JSON.parse(readFileSync(new URL('test/conformance/otlp-json-cases.json', ROOT), 'utf8')) as {
    cases: JsonCase[];
  };
  const sink = await new OtlpSink().start();
  const d = await new DaemonProcess({ exporter: { endpoint: sink.endpoint } }).init();
  d.start();
  await d.ready();
  let jsonMisreads = 0;
  let accepted = 0;
  try {
    const trace = '0102030405060708090a0b0c0d0e0f10';
    for (const [i, c] of cases.entries()) {
      // Each case in a span of its own trace, so what arrives downstream can be found.
      const spanId = (0x1000000000000000n + BigInt(i)).toString(16);
      const place: Record<string, string> = {
        traceId: `"traceId":${c.json},"spanId":"${spanId}"`,
        spanId: `"traceId":"${trace}","spanId":${c.json}`,
        parentSpanId: `"traceId":"${trace}","spanId":"${spanId}","parentSpanId":${c.json}`,
        'link.traceId':
          `"traceId":"${trace}","spanId":"${spanId}",` + `"links":[{"traceId":${c.json},"spanId":"${spanId}"}]`,
        startTimeUnixNano: `"traceId":"${trace}","spanId":"${spanId}","startTimeUnixNano":${c.json}`,
        'event.timeUnixNano':
          `"traceId":"${trace}","spanId":"${spanId}",` + `"events":[{"name":"e","timeUnixNano":${c.json}}]`,
        droppedAttributesCount: `"traceId":"${trace}","spanId":"${spanId}","droppedAttributesCount":${c.json}`,
        kind: `"traceId":"${trace}","spanId":"${spanId}","kind":${c.json}`,
        'status.code': `"traceId":"${trace}","spanId":"${spanId}","status":{"code":${c.json}}`,
        intValue: `"traceId":"${trace}","spanId":"${spanId}","attributes":[{"key":"k","value":{"intValue":${c.json}}}]`,
        doubleValue:
          `"traceId":"${trace}","spanId":"${spanId}",` + `"attributes":[{"key":"k","value":{"doubleValue":${c.json}}}]`,
        bytesValue:
          `"traceId":"${trace}","spanId":"${spanId}",` + `"attributes":[{"key":"k","value":{"bytesValue":${c.json}}}]`,
      };
      const res = await fetch(d.httpUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: `{"resourceSpans":[{"scopeSpans":[{"spans":[{"name":"x",${place[c.field]}}]}]}]}`,
      });
      await res.arrayBuffer();
      const want = 'error' in c.expect ? 400 : 200;
      if (res.status !== want) jsonMisreads++;
      if (res.status === 200) accepted++;
    }
    const arrived = await waitUntil(() => sink.spans().length >= accepted, 15_000);
    check.that(arrived, `${sink.spans().length} of ${accepted} accepted spans downstream`);
  } finally {
    await d.stop();
    await sink.stop();
  }
  check.that(expoMisreads === 0, `${expoMisreads} exposition cases misread`);
  check.that(jsonMisreads === 0, `${jsonMisreads} OTLP/JSON cases answered wrongly`);
  return {
    name: 'upstream corpora',
    load:
      `${expo.length} exposition cases (Prometheus, OpenMetrics) through the parser; ${cases.length} OTLP/JSON cases ` +
      `(Collector pdata) posted to the daemon`,
    lost: 0,
    refused: `${expoMisreads + jsonMisreads} misreads`,
    recovered: `${accepted} valid OTLP/JSON requests accepted and forwarded`,
    notes: [],
    ok: check.failures.length === 0,
    failures: check.failures,
  };
}
