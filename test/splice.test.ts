import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { SpanExtra } from '../src/correlate/enricher.ts';
import { ExtraEncoder } from '../src/pipeline/encodeExtras.ts';
import { anyValueToJs, attributesToJs, decodeProtobuf, encodeRequest, toHex } from '../src/otlp/decode.ts';
import { ExportTraceServiceRequest, type LongLike, type OtlpSpan, type OtlpTraceRequest } from '../src/otlp/schema.ts';
import { spliceSpans } from '../src/otlp/splice.ts';
import { WireError } from '../src/otlp/wire.ts';

const kv = (key: string, value: object) => ({ key, value });

/** Two resources × two scopes × three spans, each span with an event of its own. */
function request(): Uint8Array {
  let n = 0;
  const span = () => {
    n++;
    return {
      traceId: Buffer.alloc(16, n),
      spanId: Buffer.alloc(8, n),
      name: `span-${n}`,
      kind: 2,
      startTimeUnixNano: String(1764000000000000000n + BigInt(n)),
      endTimeUnixNano: String(1764000001000000000n + BigInt(n)),
      attributes: [kv('n', { intValue: n }), kv('s', { stringValue: 'x'.repeat(n * 50) })],
      events: [{ timeUnixNano: '1764000000500000000', name: 'own', attributes: [kv('e', { boolValue: true })] }],
    };
  };
  const scope = (name: string) => ({
    scope: { name },
    schemaUrl: 'https://example.com/s',
    spans: [span(), span(), span()],
  });
  const resource = (name: string) => ({
    resource: { attributes: [kv('service.name', { stringValue: name })] },
    scopeSpans: [scope(`${name}-a`), scope(`${name}-b`)],
  });
  return encodeRequest(
    ExportTraceServiceRequest.fromObject({
      resourceSpans: [resource('r1'), resource('r2')],
    }) as unknown as OtlpTraceRequest,
  );
}

const spansOf = (req: OtlpTraceRequest): OtlpSpan[] =>
  req.resourceSpans.flatMap((rs) => rs.scopeSpans.flatMap((ss) => ss.spans));
const join = (r: { chunks: Uint8Array[]; len: number }): Buffer => Buffer.concat(r.chunks, r.len);

function extra(over: Partial<SpanExtra> = {}): SpanExtra {
  return {
    as: 'events',
    detail: 'full',
    time: { low: 0x12345678, high: 0x187654 },
    cache: {
      'cachelens.match': 'resource',
      'cachelens.prefix_cache.hits': 120,
      'cachelens.prefix_cache.hit_ratio': 0.75,
      'cachelens.window.complete': true,
    },
    scheduler: { 'cachelens.queue.waiting.max': 3, 'cachelens.preemptions': 0 },
    own: undefined,
    ...over,
  };
}

describe('splicing encoded fields into forwarded spans', () => {
  it('appends events to the chosen spans and leaves every other byte and span as it was', () => {
    const body = request();
    const before = spansOf(decodeProtobuf(body));
    const enc = new ExtraEncoder();
    const chosen = new Set([0, 4, 5, 11]);
    const adds = before.map((_, i) => (chosen.has(i) ? enc.encode(extra()) : undefined));
    const out = join(spliceSpans(body, adds, before.length));
    const after = decodeProtobuf(out);
    // Structure kept: same resources, scopes and spans in the same order.
    assert.deepEqual(
      after.resourceSpans.map((rs) =>
        rs.scopeSpans.map((ss) => [ss.scope?.name, ss.schemaUrl, ss.spans.map((s) => s.name)]),
      ),
      decodeProtobuf(body).resourceSpans.map((rs) =>
        rs.scopeSpans.map((ss) => [ss.scope?.name, ss.schemaUrl, ss.spans.map((s) => s.name)]),
      ),
    );
    spansOf(after).forEach((s, i) => {
      const orig = before[i]!;
      assert.deepEqual(attributesToJs(s.attributes), attributesToJs(orig.attributes));
      assert.equal(toHex(s.spanId), toHex(orig.spanId));
      if (!chosen.has(i)) {
        assert.equal(s.events.length, 1, `span ${i} untouched`);
        return;
      }
      assert.deepEqual(
        s.events.map((e) => e.name),
        ['own', 'cachelens.cache', 'cachelens.scheduler'],
      );
      const cache = s.events[1]!;
      const t = cache.timeUnixNano as LongLike;
      assert.deepEqual({ low: t.low >>> 0, high: t.high >>> 0 }, { low: 0x12345678, high: 0x187654 });
      assert.deepEqual(attributesToJs(cache.attributes), extra().cache);
      // Integers are int_value and fractions double_value, as the OTel JS SDK encodes them.
      assert.deepEqual(
        cache.attributes.map((a) => a.value?.value),
        ['stringValue', 'intValue', 'doubleValue', 'boolValue'],
      );
      assert.deepEqual(attributesToJs(s.events[2]!.attributes), extra().scheduler);
    });
  });

  it('the bytes of a request with nothing to add are returned as they are', () => {
    const body = request();
    const r = spliceSpans(body, new Array(12).fill(undefined), 12);
    assert.equal(r.chunks.length, 1);
    assert.equal(r.chunks[0], body);
  });

  it('two spliced requests concatenated decode as one request holding both', () => {
    const a = request();
    const b = request();
    const enc = new ExtraEncoder();
    const ra = spliceSpans(a, [enc.encode(extra())], 12);
    const rb = spliceSpans(b, [undefined, undefined, enc.encode(extra({ as: 'attributes' }))], 12);
    const merged = decodeProtobuf(Buffer.concat([...ra.chunks, ...rb.chunks]));
    assert.equal(merged.resourceSpans.length, 4);
    const spans = spansOf(merged);
    assert.equal(spans.length, 24);
    assert.equal(spans[0]!.events.length, 3);
    assert.equal(spans[14]!.events.length, 1);
    assert.equal(attributesToJs(spans[14]!.attributes)['cachelens.queue.waiting.max'], 3);
  });

  it('as: attributes, events and both; the span’s own values follow the window’s in the cache event', () => {
    const enc = new ExtraEncoder();
    const body = request();
    const own = { 'cachelens.request.cache_read.input_tokens.estimate': 12.5, 'cachelens.clock_skew_ms': -3 };
    for (const as of ['events', 'attributes', 'both'] as const) {
      const s = spansOf(decodeProtobuf(join(spliceSpans(body, [enc.encode(extra({ as, own }))], 12))))[0]!;
      const attrs = attributesToJs(s.attributes);
      assert.equal(s.events.length, as === 'attributes' ? 1 : 3, as);
      assert.equal('cachelens.preemptions' in attrs, as !== 'events', as);
      if (as !== 'events') assert.equal(attrs['cachelens.clock_skew_ms'], -3);
      if (as !== 'attributes')
        assert.deepEqual(Object.keys(attributesToJs(s.events[1]!.attributes)), [
          ...Object.keys(extra().cache),
          ...Object.keys(own),
        ]);
    }
  });

  it('numbers keep their value at the edges of int64 and double', () => {
    const enc = new ExtraEncoder();
    const cache = { big: 2 ** 60, neg: -(2 ** 40), zero: 0, tiny: 1e-9, ratio: 1 / 3 };
    const s = spansOf(decodeProtobuf(join(spliceSpans(request(), [enc.encode(extra({ cache }))], 12))))[0]!;
    const got = Object.fromEntries(s.events[1]!.attributes.map((a) => [a.key, anyValueToJs(a.value)]));
    assert.deepEqual(got, cache);
  });

  it('two spans of one window differ only in their events’ timestamps', () => {
    const enc = new ExtraEncoder();
    const shared = extra();
    const a = enc.encode(shared);
    const b = enc.encode({ ...shared, time: { low: 1, high: 2 } });
    // Same length, differing only in the 8 timestamp bytes of each event.
    assert.equal(a.length, b.length);
    let differing = 0;
    for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) differing++;
    assert.ok(differing > 0 && differing <= 16, `${differing} bytes differ`);
  });

  it('refuses a body whose spans do not match what was decoded, or that is cut short', () => {
    const body = request();
    const enc = new ExtraEncoder();
    assert.throws(() => spliceSpans(body, [enc.encode(extra())], 11), WireError);
    assert.throws(() => spliceSpans(body.subarray(0, body.length - 7), [enc.encode(extra())], 12), WireError);
  });
});
