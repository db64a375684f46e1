import assert from 'node:assert/strict';
import http from 'node:http';
import { gzipSync } from 'node:zlib';
import { after, before, describe, it } from 'node:test';
import { Client, credentials, Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { ExportTraceServiceResponse, RetryInfo, RpcStatus } from '../src/otlp/schema.ts';
import { makeRequest } from './support/otlpRequests.ts';
import { OtlpSink } from './support/otlpSink.ts';
import { startPipeline, waitFor, type Harness } from './support/pipelineHarness.ts';

const PATH = '/opentelemetry.proto.collector.trace.v1.TraceService/Export';

function grpcExport(
  port: number,
  body: Uint8Array,
  opts: { gzip?: boolean; token?: string } = {},
): Promise<{ err?: ServiceError; res?: Buffer }> {
  const client = new Client(
    `127.0.0.1:${port}`,
    credentials.createInsecure(),
    opts.gzip ? { 'grpc.default_compression_algorithm': 2 } : {},
  );
  const md = new Metadata();
  if (opts.token) md.set('authorization', `Bearer ${opts.token}`);
  return new Promise((resolve) => {
    client.makeUnaryRequest(
      PATH,
      (b: Buffer) => b,
      (b: Buffer) => b,
      Buffer.from(body),
      md,
      (err, res) => {
        client.close();
        resolve({ err: err ?? undefined, res: res ?? undefined });
      },
    );
  });
}

const statusOf = (err: ServiceError) =>
  RpcStatus.decode(err.metadata.get('grpc-status-details-bin')[0] as Buffer) as unknown as {
    code: number;
    message: string;
    details: Array<{ typeUrl: string; value: Uint8Array }>;
  };

async function post(url: string, body: Uint8Array | string, headers: Record<string, string> = {}, method = 'POST') {
  const res = await fetch(url, {
    method,
    headers: { 'content-type': 'application/x-protobuf', ...headers },
    body: method === 'GET' ? undefined : Buffer.from(body),
  });
  return { status: res.status, headers: res.headers, body: Buffer.from(await res.arrayBuffer()) };
}

describe('receivers: OTLP status codes for bad input, nothing crashes', () => {
  let h: Harness;
  let sink: OtlpSink;
  before(async () => {
    sink = await new OtlpSink().start();
    h = await startPipeline({ exporter: { endpoint: sink.endpoint }, receivers: { max_request_bytes: '256KiB' } });
  });
  after(async () => {
    await h.close();
    await sink.stop();
  });

  it('OTLP/JSON with a bad int64, enum or nested intValue is 400 naming the field, not silently 0', async () => {
    const span = (o: object) => ({
      traceId: '0102030405060708090a0b0c0d0e0f10',
      spanId: '0102030405060708',
      name: 'x',
      startTimeUnixNano: '1',
      endTimeUnixNano: '2',
      ...o,
    });
    const cases: Array<[object, RegExp]> = [
      [span({ startTimeUnixNano: 'yesterday' }), /spans\[0\]\.startTimeUnixNano: expected an unsigned integer/],
      [span({ kind: 'SERVERISH' }), /spans\[0\]\.kind: expected an integer or one of SPAN_KIND_UNSPECIFIED/],
      [span({ status: { code: 'BROKEN' } }), /spans\[0\]\.status\.code/],
      [
        span({
          attributes: [{ key: 'k', value: { kvlistValue: { values: [{ key: 'i', value: { intValue: '7x' } }] } } }],
        }),
        /attributes\[0\]\.value\.kvlistValue\.values\[0\]\.value\.intValue/,
      ],
      [span({ events: [{ name: 'e', timeUnixNano: 1.5 }] }), /events\[0\]\.timeUnixNano/],
    ];
    for (const [sp, re] of cases) {
      const res = await fetch(h.httpUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ resourceSpans: [{ scopeSpans: [{ spans: [sp] }] }] }),
      });
      assert.equal(res.status, 400);
      assert.match(((await res.json()) as { message: string }).message, re);
    }
    const ok = await fetch(h.httpUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        resourceSpans: [
          {
            scopeSpans: [
              {
                spans: [
                  span({
                    kind: 'SPAN_KIND_SERVER',
                    status: { code: 2 },
                    attributes: [{ key: 'n', value: { intValue: -5 } }],
                  }),
                ],
              },
            ],
          },
        ],
      }),
    });
    assert.equal(ok.status, 200, 'enum names, integer codes and numeric intValue are fine');
  });

  it('kvlists 100 deep are accepted and arrive downstream intact (protobufjs stops at 34 by default)', async () => {
    let v: Record<string, unknown> = { stringValue: 'bottom' };
    for (let i = 0; i < 100; i++) v = { kvlistValue: { values: [{ key: `l${100 - i}`, value: v }] } };
    const now = String(BigInt(Date.now()) * 1_000_000n);
    const spanId = '0a0b0c0d0e0f0102';
    const body = JSON.stringify({
      resourceSpans: [
        {
          resource: { attributes: [] },
          scopeSpans: [
            {
              spans: [
                {
                  traceId: '0102030405060708090a0b0c0d0e0f10',
                  spanId,
                  name: 'deep',
                  kind: 1,
                  startTimeUnixNano: now,
                  endTimeUnixNano: now,
                  attributes: [{ key: 'deep', value: v }],
                },
              ],
            },
          ],
        },
      ],
    });
    const res = await fetch(h.httpUrl, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    assert.equal(res.status, 200, await res.text());
    await waitFor(
      () => sink.spans().some((s) => Buffer.from(s.spanId).toString('hex') === spanId),
      'the deep span downstream',
    );
    let got = sink.spans().find((s) => Buffer.from(s.spanId).toString('hex') === spanId)!.attributes[0]!.value;
    let depth = 0;
    while (got?.kvlistValue) {
      depth++;
      got = got.kvlistValue.values![0]!.value;
    }
    assert.equal(depth, 100);
    assert.equal(got?.stringValue, 'bottom');
  });

  it('HTTP: 405, 415, 404, 400 with a google.rpc.Status, 413 for big bodies and gzip bombs', async () => {
    assert.equal((await post(h.httpUrl, '', {}, 'GET')).status, 405);
    assert.equal((await post(h.httpUrl, 'x', { 'content-type': 'text/plain' })).status, 415);
    assert.equal((await post(h.httpUrl.replace('/v1/traces', '/v1/metrics'), 'x')).status, 404);
    assert.equal((await post(h.httpUrl, 'x', { 'content-encoding': 'br' })).status, 415);

    const malformed = await post(h.httpUrl, Buffer.from([0x0a, 0xff, 0xff, 0xff, 0x0f, 0x01]));
    assert.equal(malformed.status, 400);
    const st = RpcStatus.decode(malformed.body) as unknown as { code: number; message: string };
    assert.equal(st.code, status.INVALID_ARGUMENT);
    assert.match(st.message, /invalid OTLP protobuf/);

    const { body } = makeRequest(20);
    assert.equal((await post(h.httpUrl, body.subarray(0, body.length - 7))).status, 400, 'truncated');
    assert.equal((await post(h.httpUrl, '{"resourceSpans": [', { 'content-type': 'application/json' })).status, 400);
    const badHex = await post(
      h.httpUrl,
      JSON.stringify({ resourceSpans: [{ scopeSpans: [{ spans: [{ traceId: 'zz', spanId: '00' }] }] }] }),
      { 'content-type': 'application/json' },
    );
    assert.equal(badHex.status, 400);
    assert.match(JSON.parse(badHex.body.toString()).message, /traceId: expected a hex string/);
    assert.equal(
      (await post(h.httpUrl, gzipSync(Buffer.from('not protobuf at all')), { 'content-encoding': 'gzip' })).status,
      400,
    );
    assert.equal((await post(h.httpUrl, Buffer.from('\x1f\x8b garbage'), { 'content-encoding': 'gzip' })).status, 400);

    assert.equal((await post(h.httpUrl, Buffer.alloc(300 * 1024))).status, 413);
    const bomb = gzipSync(Buffer.alloc(50 * 1024 * 1024));
    assert.ok(bomb.length < 256 * 1024);
    const r = await post(h.httpUrl, bomb, { 'content-encoding': 'gzip' });
    assert.equal(r.status, 413);
    assert.match((RpcStatus.decode(r.body) as unknown as { message: string }).message, /after decompression/);

    // Still serving after all of that.
    const ok = await post(h.httpUrl, makeRequest(3).body);
    assert.equal(ok.status, 200);
  });

  it('partial success: spans with invalid ids are rejected and counted, the rest accepted', async () => {
    const good = makeRequest(2);
    const json = {
      resourceSpans: [
        {
          scopeSpans: [
            {
              spans: [
                {
                  traceId: '5b8efff798038103d269b633813fc60c',
                  spanId: 'eee19b7ec3c1b174',
                  name: 'ok',
                  startTimeUnixNano: '1',
                  endTimeUnixNano: '2',
                },
                { traceId: '0102', spanId: 'eee19b7ec3c1b175', name: 'short-trace-id' },
              ],
            },
          ],
        },
      ],
    };
    const res = await post(h.httpUrl, JSON.stringify(json), { 'content-type': 'application/json' });
    assert.equal(res.status, 200);
    const body = JSON.parse(res.body.toString());
    assert.equal(body.partialSuccess.rejectedSpans, '1');
    assert.match(body.partialSuccess.errorMessage, /short-trace-id/);
    await waitFor(
      () => sink.spans().some((s) => Buffer.from(s.spanId).toString('hex') === 'eee19b7ec3c1b174'),
      'the valid span',
    );
    assert.ok(!sink.spans().some((s) => Buffer.from(s.spanId).toString('hex') === 'eee19b7ec3c1b175'));
    const full = await post(h.httpUrl, good.body);
    assert.equal(full.body.length, 0, 'full success has no partial_success');
    assert.deepEqual(ExportTraceServiceResponse.toObject(ExportTraceServiceResponse.decode(full.body)), {});
  });

  it('gRPC: INVALID_ARGUMENT with BadRequest details, RESOURCE_EXHAUSTED for a gzip bomb, OK otherwise', async () => {
    const bad = await grpcExport(h.pipeline.grpc!.port, Buffer.from([0x0a, 0xff, 0xff]));
    assert.equal(bad.err?.code, status.INVALID_ARGUMENT);
    assert.ok(statusOf(bad.err!).details.some((d) => d.typeUrl.endsWith('google.rpc.BadRequest')));
    const big = await grpcExport(h.pipeline.grpc!.port, Buffer.alloc(2 * 1024 * 1024), { gzip: true });
    assert.equal(big.err?.code, status.RESOURCE_EXHAUSTED);
    const ok = await grpcExport(h.pipeline.grpc!.port, makeRequest(5).body, { gzip: true });
    assert.equal(ok.err, undefined);
  });
});

describe('receivers: bearer auth', () => {
  it('refuses requests without the token on both transports', async () => {
    const h = await startPipeline({ receivers: { bearer_token: 't0ken' } });
    try {
      assert.equal((await post(h.httpUrl, makeRequest(1).body)).status, 401);
      assert.equal((await post(h.httpUrl, makeRequest(1).body, { authorization: 'Bearer t0ken' })).status, 200);
      assert.equal((await grpcExport(h.pipeline.grpc!.port, makeRequest(1).body)).err?.code, status.UNAUTHENTICATED);
      assert.equal((await grpcExport(h.pipeline.grpc!.port, makeRequest(1).body, { token: 't0ken' })).err, undefined);
    } finally {
      await h.close();
    }
  });
});

describe('spool bound and downstream failures', () => {
  it(
    'a full spool answers 503 + Retry-After and UNAVAILABLE ' +
      '+ RetryInfo; once downstream is back, everything arrives',
    async () => {
      const sink = await new OtlpSink().start();
      sink.failAll = { code: status.UNAVAILABLE, message: 'backend restarting' };
      const h = await startPipeline({
        exporter: { endpoint: sink.endpoint, retry_initial_interval: '100ms', retry_max_interval: '200ms' },
        spool: { max_bytes: '40KiB' },
      });
      try {
        const accepted: string[] = [];
        let refusedHttp: Awaited<ReturnType<typeof post>> | undefined;
        for (let i = 0; i < 20 && !refusedHttp; i++) {
          const r = makeRequest(10);
          const res = await post(h.httpUrl, r.body);
          if (res.status === 200) accepted.push(...r.spanIds);
          else refusedHttp = res;
        }
        assert.ok(refusedHttp, 'the spool filled up');
        assert.equal(refusedHttp!.status, 503);
        assert.ok(Number(refusedHttp!.headers.get('retry-after')) >= 1);
        const g = await grpcExport(h.pipeline.grpc!.port, makeRequest(10).body);
        assert.equal(g.err?.code, status.UNAVAILABLE);
        const retry = statusOf(g.err!).details.find((d) => d.typeUrl.endsWith('google.rpc.RetryInfo'))!;
        assert.ok(retry, 'RetryInfo attached');
        assert.ok(
          Number(
            (RetryInfo.decode(retry.value) as unknown as { retryDelay: { seconds: number } }).retryDelay.seconds,
          ) >= 1,
        );
        assert.ok(h.pipeline.spool.bytes <= 40 * 1024);
        await waitFor(() => sink.attempts >= 3, 'retries against the failing backend');
        assert.equal(sink.spans().length, 0);

        sink.failAll = undefined;
        await waitFor(
          () => accepted.every((id) => sink.spans().some((s) => Buffer.from(s.spanId).toString('hex') === id)),
          'every accepted span downstream',
        );
        await waitFor(() => h.pipeline.spool.counts().rows === 0, 'an empty spool');
        assert.equal((await post(h.httpUrl, makeRequest(10).body)).status, 200, 'accepting again');
      } finally {
        await h.close();
        await sink.stop();
      }
    },
  );

  it('honours RetryInfo, and drops (and counts) only permanent rejects', async () => {
    const sink = await new OtlpSink().start();
    sink.failures = [{ code: status.UNAVAILABLE, message: 'slow down', retryAfterMs: 1200 }];
    const req = makeRequest(4);
    const bad = req.spanIds[1]!;
    // Downstream refuses any request that holds this one span, as the Collector does for one bad id.
    sink.rejectIf = (r) =>
      r.resourceSpans.some((rs) =>
        rs.scopeSpans.some((ss) => ss.spans.some((sp) => Buffer.from(sp.spanId).toString('hex') === bad)),
      )
        ? { code: status.INVALID_ARGUMENT, message: 'bad spans' }
        : undefined;
    const h = await startPipeline({ exporter: { endpoint: sink.endpoint, retry_initial_interval: '10ms' } });
    try {
      const t0 = Date.now();
      assert.equal((await post(h.httpUrl, req.body)).status, 200);
      await waitFor(() => sink.attempts >= 2, 'the retry after RetryInfo');
      assert.ok(Date.now() - t0 >= 1150, `waited ${Date.now() - t0} ms for RetryInfo's 1.2 s`);
      await waitFor(() => h.pipeline.spool.counts().rows === 0, 'the rejected span leaves the spool');
      assert.deepEqual(
        sink
          .spans()
          .map((sp) => Buffer.from(sp.spanId).toString('hex'))
          .sort(),
        req.spanIds.filter((id) => id !== bad).sort(),
        'the request is bisected: its other spans arrive',
      );
      const dropped = await h.pipeline.metrics.registry.getSingleMetricAsString(
        'cachelens_exporter_dropped_spans_total',
      );
      assert.match(dropped, /cachelens_exporter_dropped_spans_total 1/);
      assert.ok(
        h.lines.some(
          (l) =>
            l.msg === 'downstream refused spans permanently, alone; dropped' &&
            /INVALID_ARGUMENT/.test(String(l.reason)),
        ),
      );
      // A later batch goes through normally.
      const r = makeRequest(3);
      await post(h.httpUrl, r.body);
      await waitFor(
        () => r.spanIds.every((id) => sink.spans().some((s) => Buffer.from(s.spanId).toString('hex') === id)),
        'the next batch',
      );
    } finally {
      await h.close();
      await sink.stop();
    }
  });
});

describe('the in-flight bound: requests are shed before they are buffered', () => {
  it('past max_inflight_bytes: 503 + Retry-After and UNAVAILABLE + RetryInfo; retried, they land', async () => {
    const sink = await new OtlpSink().start();
    const h = await startPipeline({
      exporter: { endpoint: sink.endpoint },
      receivers: { max_inflight_bytes: '4KiB' },
    });
    try {
      // A client uploading slowly holds its declared length in flight while its body trickles in.
      const slow = makeRequest(20);
      const url = new URL(h.httpUrl);
      let slowStatus = 0;
      const slowDone = new Promise<void>((resolve) => {
        const req = http.request(
          {
            host: url.hostname,
            port: url.port,
            path: url.pathname,
            method: 'POST',
            headers: { 'content-type': 'application/x-protobuf', 'content-length': slow.body.length },
          },
          (res) => {
            slowStatus = res.statusCode ?? 0;
            res.resume();
            res.on('end', resolve);
          },
        );
        req.write(Buffer.from(slow.body.subarray(0, 10)));
        setTimeout(() => req.end(Buffer.from(slow.body.subarray(10))), 1500);
      });
      assert.ok(slow.body.length > 2048, `${slow.body.length} bytes: more than half the bound`);
      await waitFor(() => h.pipeline.intake.inFlightBytes > 0, 'the slow upload admitted');
      const refused = await post(h.httpUrl, makeRequest(20).body);
      assert.equal(refused.status, 503);
      assert.ok(Number(refused.headers.get('retry-after')) >= 1, 'Retry-After');
      assert.match((RpcStatus.decode(refused.body) as unknown as { message: string }).message, /max_inflight_bytes/);
      const g = await grpcExport(h.pipeline.grpc!.port, makeRequest(20).body);
      assert.equal(g.err?.code, status.UNAVAILABLE);
      assert.ok(
        statusOf(g.err!).details.some((d) => d.typeUrl.endsWith('google.rpc.RetryInfo')),
        'RetryInfo',
      );
      await slowDone;
      assert.equal(slowStatus, 200, 'the admitted request completes');
      assert.equal(h.pipeline.intake.inFlightBytes, 0, 'the budget is given back');
      // what was refused is sent again, as an OTLP client does, and lands
      const again = makeRequest(20);
      assert.equal((await post(h.httpUrl, again.body)).status, 200);
      await waitFor(
        () =>
          [...slow.spanIds, ...again.spanIds].every((id) =>
            sink.spans().some((s) => Buffer.from(s.spanId).toString('hex') === id),
          ),
        'the accepted spans downstream',
      );
      const metrics = await h.pipeline.metrics.registry.metrics();
      assert.match(metrics, /^cachelens_receiver_refused_requests_total\{transport="http",reason="unavailable"\} 1$/m);
      assert.match(metrics, /^cachelens_receiver_inflight_bytes 0$/m);
    } finally {
      await h.close();
      await sink.stop();
    }
  });
});

describe('stopping the HTTP receiver under load', () => {
  it('a keep-alive client that never pauses cannot hold the listener open', async () => {
    const h = await startPipeline({});
    const agent = new http.Agent({ keepAlive: true, maxSockets: 2 });
    const body = makeRequest(2).body;
    let stop = false;
    const post = () =>
      new Promise<void>((resolve) => {
        const req = http.request(
          h.httpUrl,
          { method: 'POST', agent, headers: { 'content-type': 'application/x-protobuf' } },
          (res) => {
            res.resume();
            res.on('end', () => resolve());
          },
        );
        req.on('error', () => resolve());
        req.end(body);
      });
    const load = (async () => {
      while (!stop) await post();
    })();
    await new Promise((r) => setTimeout(r, 300));
    const t0 = Date.now();
    const stopped = await Promise.race([
      h.pipeline.stopIntake().then(() => 'stopped'),
      new Promise((r) => setTimeout(() => r('still open'), 8000)),
    ]);
    stop = true;
    await load;
    agent.destroy();
    assert.equal(stopped, 'stopped');
    assert.ok(Date.now() - t0 < 6000, `took ${Date.now() - t0} ms`);
    await h.close();
  });
});
