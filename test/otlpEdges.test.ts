// OTLP at the edges: exact 64-bit JSON numbers, every id validated, a refused merged request never
// drops another client's spans, and rejected spans are cut out of the received bytes.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { status } from '@grpc/grpc-js';
import { decodeJson, decodeProtobuf, encodeRequest, validateRequest } from '../src/otlp/decode.ts';
import { ExportTraceServiceRequest, type OtlpTraceRequest } from '../src/otlp/schema.ts';
import { removeSpans } from '../src/otlp/splice.ts';
import { WireWriter } from '../src/otlp/wire.ts';
import { makeRequest } from './support/otlpRequests.ts';
import { OtlpSink } from './support/otlpSink.ts';
import { startPipeline, waitFor } from './support/pipelineHarness.ts';

const TRACE = '0102030405060708090a0b0c0d0e0f10';
const longOf = (v: unknown) => {
  const l = v as { low: number; high: number };
  return (BigInt(l.high >>> 0) << 32n) | BigInt(l.low >>> 0);
};

describe('OTLP/JSON 64-bit numbers', () => {
  it('reads int64 and uint64 given as JSON numbers exactly', () => {
    const text =
      `{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"${TRACE}","spanId":"0102030405060708","name":"x",` +
      `"startTimeUnixNano": 1544712660123456789,"endTimeUnixNano":1544712661123456789,` +
      `"attributes":[{"key":"big","value":{"intValue":9007199254740993}},` +
      `{"key":"neg","value":{"intValue":-9007199254740993}},` +
      `{"key":"s","value":{"stringValue":"\\"intValue\\": 12345678901234567890"}}],"events":` +
      `[{"name":"e","timeUnixNano":1544712660123456789}]}]}]}]}`;
    const span = decodeJson(text).resourceSpans[0]!.scopeSpans[0]!.spans[0]!;
    assert.equal(longOf(span.startTimeUnixNano), 1544712660123456789n);
    assert.equal(longOf(span.endTimeUnixNano), 1544712661123456789n);
    assert.equal(longOf(span.events[0]!.timeUnixNano), 1544712660123456789n);
    assert.equal(longOf(span.attributes[0]!.value!.intValue), 9007199254740993n);
    assert.equal(BigInt.asIntN(64, longOf(span.attributes[1]!.value!.intValue)), -9007199254740993n);
    assert.equal(
      span.attributes[2]!.value!.stringValue,
      '"intValue": 12345678901234567890',
      'a string that looks like a key is left alone',
    );
  });
});

describe('span ids validated like the Collector validates them', () => {
  const reqWith = (span: Record<string, unknown>) =>
    ExportTraceServiceRequest.fromObject({
      resourceSpans: [
        {
          scopeSpans: [
            {
              spans: [
                {
                  traceId: Buffer.from(TRACE, 'hex'),
                  spanId: Buffer.from('0102030405060708', 'hex'),
                  name: 'x',
                  ...span,
                },
              ],
            },
          ],
        },
      ],
    }) as unknown as OtlpTraceRequest;
  it('a parent must be empty or 8 bytes; a link needs a 16-byte trace id and an 8-byte span id', () => {
    const cases: Array<[Record<string, unknown>, RegExp | undefined]> = [
      [{ parentSpanId: Buffer.alloc(0) }, undefined],
      [{ parentSpanId: Buffer.from('0102030405060708', 'hex') }, undefined],
      [{ parentSpanId: Buffer.from('010203', 'hex') }, /parent_span_id must be empty or 8 bytes \(got 3\)/],
      [{ links: [{ traceId: Buffer.from(TRACE, 'hex'), spanId: Buffer.from('0102030405060708', 'hex') }] }, undefined],
      [
        { links: [{ traceId: Buffer.from('0102', 'hex'), spanId: Buffer.from('0102030405060708', 'hex') }] },
        /links\[0\] needs a 16-byte trace_id/,
      ],
      [{ links: [{ traceId: Buffer.from(TRACE, 'hex'), spanId: Buffer.alloc(8) }] }, /links\[0\]/],
      [{ links: [{ traceId: Buffer.from(TRACE, 'hex') }] }, /links\[0\]/],
    ];
    for (const [span, re] of cases) {
      const v = validateRequest(reqWith(span));
      if (re) {
        assert.equal(v.rejected, 1, JSON.stringify(span));
        assert.match(v.reasons[0]!, re);
      } else assert.equal(v.rejected, 0, JSON.stringify(span));
    }
  });
});

describe('removeSpans: rejected spans cut out of the received bytes', () => {
  it('keeps unknown fields of the other spans and leaves no empty ScopeSpans behind', () => {
    const good = makeRequest(2);
    const bad = ExportTraceServiceRequest.fromObject({
      resourceSpans: [
        {
          resource: { attributes: [{ key: 'service.name', value: { stringValue: 'b' } }] },
          scopeSpans: [
            {
              scope: { name: 'bad' },
              spans: [
                {
                  traceId: Buffer.from(TRACE, 'hex'),
                  spanId: Buffer.from('0102030405060708', 'hex'),
                  parentSpanId: Buffer.from('0102', 'hex'),
                  name: 'bad',
                },
              ],
            },
          ],
        },
      ],
    });
    // A newer field cachelens's schema does not know (Resource.entity_refs is field 3), on the good resource.
    const unknown = new WireWriter().tag(3, 2).bytes(Buffer.from('entity-ref')).finish();
    const goodReq = decodeProtobuf(good.body);
    const goodBytes = encodeRequest(goodReq);
    // Rebuild: request{ resource_spans(1): { resource(1): {...attrs, entity_refs}, scope_spans(2): ... } } + the bad
    // resource.
    const rs = ExportTraceServiceRequest.encode(ExportTraceServiceRequest.fromObject({})).finish();
    void rs;
    const withUnknown = appendToFirstResource(goodBytes, unknown);
    const body = Buffer.concat([withUnknown, encodeRequest(bad as unknown as OtlpTraceRequest)]);
    const req = decodeProtobuf(body);
    const v = validateRequest(req);
    assert.equal(v.rejected, 1);
    assert.deepEqual(v.rejectedIndexes, [2]);
    const out = removeSpans(body, new Set(v.rejectedIndexes));
    const bytes = Buffer.concat(out.chunks, out.len);
    assert.ok(bytes.includes(Buffer.from('entity-ref')), 'the unknown field survives');
    const after = decodeProtobuf(bytes);
    assert.equal(after.resourceSpans.length, 1, 'the emptied resource is gone');
    assert.equal(after.resourceSpans[0]!.scopeSpans.length, 1, 'no empty ScopeSpans');
    assert.deepEqual(
      after.resourceSpans[0]!.scopeSpans[0]!.spans.map((s) => Buffer.from(s.spanId).toString('hex')),
      good.spanIds,
    );
    assert.ok(!bytes.includes(Buffer.from('bad')), 'nothing of the rejected span or its scope is left');
  });
});

/** Appends encoded fields to the first ResourceSpans' Resource message. */
function appendToFirstResource(body: Uint8Array, extra: Uint8Array): Buffer {
  const req = decodeProtobuf(body);
  const rs0 = ExportTraceServiceRequest.fromObject({ resourceSpans: [req.resourceSpans[0]] });
  const bytes = Buffer.from(encodeRequest(rs0 as unknown as OtlpTraceRequest));
  // request: tag(1,LEN) len resourceSpans{ tag(1,LEN) len resource{...} tag(2,LEN) ... }
  let p = 1;
  const [rsLen, rsStart] = varint(bytes, p);
  p = rsStart;
  assert.equal(bytes[p], 0x0a);
  const [resLen, resStart] = varint(bytes, p + 1);
  const resource = Buffer.concat([bytes.subarray(resStart, resStart + resLen), extra]);
  const rest = bytes.subarray(resStart + resLen, rsStart + rsLen);
  const rsBody = Buffer.concat([new WireWriter().tag(1, 2).bytes(resource).finish(), rest]);
  const out = Buffer.concat([new WireWriter().tag(1, 2).bytes(rsBody).finish()]);
  const others = ExportTraceServiceRequest.fromObject({ resourceSpans: req.resourceSpans.slice(1) });
  return Buffer.concat([out, encodeRequest(others as unknown as OtlpTraceRequest)]);
}
function varint(b: Uint8Array, pos: number): [number, number] {
  let v = 0;
  let shift = 0;
  for (;;) {
    const x = b[pos++]!;
    v += (x & 0x7f) * 2 ** shift;
    if (x < 0x80) return [v, pos];
    shift += 7;
  }
}

describe("a refused merged request never drops another client's spans", () => {
  let sink: OtlpSink;
  before(async () => {
    sink = await new OtlpSink().start();
  });
  after(() => sink.stop());

  it(
    'splits the export back into its requests, bisects ' + 'the bad one, and drops only the span that fails alone',
    async () => {
      // Like the Collector: one span it will not take refuses the whole request.
      sink.rejectIf = (req) =>
        req.resourceSpans.some((rs) => rs.scopeSpans.some((ss) => ss.spans.some((s) => s.name === 'poison')))
          ? { code: status.INVALID_ARGUMENT, message: 'invalid span' }
          : undefined;
      sink.failAll = { code: status.UNAVAILABLE, message: 'down' };
      const h = await startPipeline({
        exporter: { endpoint: sink.endpoint, retry_initial_interval: '50ms', retry_max_interval: '100ms' },
      });
      try {
        const innocent = makeRequest(5, { name: 'innocent' });
        const guilty = (() => {
          const r = decodeProtobuf(makeRequest(4, { name: 'guilty' }).body);
          r.resourceSpans[0]!.scopeSpans[0]!.spans[2]!.name = 'poison';
          return encodeRequest(r);
        })();
        const post = (body: Uint8Array) =>
          fetch(h.httpUrl, {
            method: 'POST',
            headers: { 'content-type': 'application/x-protobuf' },
            body: Buffer.from(body),
          });
        assert.equal((await post(innocent.body)).status, 200);
        assert.equal((await post(guilty)).status, 200);
        await waitFor(() => sink.attempts >= 1, 'a first (failed) attempt');
        sink.failAll = undefined; // both spooled requests now go out merged, and are refused
        await waitFor(() => sink.spans().length >= 8, 'every span but the poisoned one downstream');
        await h.pipeline.queue.whenIdle();
        const names = sink.spans().map((s) => s.name);
        assert.equal(names.filter((n) => n === 'innocent').length, 5);
        assert.equal(names.filter((n) => n === 'guilty').length, 3);
        assert.equal(names.filter((n) => n === 'poison').length, 0);
        const text = await h.pipeline.metrics.registry.metrics();
        assert.match(text, /^cachelens_exporter_dropped_spans_total 1$/m);
        const drop = h.lines.find((l) => String(l.msg).includes('refused spans permanently, alone'));
        assert.ok(drop, 'logged');
        assert.equal(drop.spans, 1);
        assert.match(String(drop.peer), /127\.0\.0\.1/);
      } finally {
        await h.close();
      }
    },
  );
});
