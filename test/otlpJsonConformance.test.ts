// OTLP/JSON read as the OpenTelemetry Collector's pdata reads it. Field-level cases re-typed from the
// Collector's own JSON tests (test/conformance/otlp-json-cases.json cites each), each placed in the
// trace field of that type; plus opentelemetry-proto's examples/trace.json, read whole.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { decodeJson, OtlpDecodeError, toHex } from '../src/otlp/decode.ts';
import type { OtlpSpan } from '../src/otlp/schema.ts';

interface Case {
  id: string;
  source: string;
  field: string;
  json: string;
  expect: { value: string | number } | { error: true };
}
const { cases } = JSON.parse(readFileSync(new URL('./conformance/otlp-json-cases.json', import.meta.url), 'utf8')) as {
  cases: Case[];
};

const TRACE = '0102030405060708090a0b0c0d0e0f10';
const SPAN = '0102030405060708';

/** A request whose one span carries the value in the named field; the JSON text is kept as written. */
function requestWith(field: string, js: string): string {
  const f: Record<string, string> = {
    traceId: `"traceId":${js},"spanId":"${SPAN}"`,
    spanId: `"traceId":"${TRACE}","spanId":${js}`,
    parentSpanId: `"traceId":"${TRACE}","spanId":"${SPAN}","parentSpanId":${js}`,
    'link.traceId': `"traceId":"${TRACE}","spanId":"${SPAN}","links":[{"traceId":${js},"spanId":"${SPAN}"}]`,
    startTimeUnixNano: `"traceId":"${TRACE}","spanId":"${SPAN}","startTimeUnixNano":${js}`,
    'event.timeUnixNano': `"traceId":"${TRACE}","spanId":"${SPAN}","events":[{"name":"e","timeUnixNano":${js}}]`,
    droppedAttributesCount: `"traceId":"${TRACE}","spanId":"${SPAN}","droppedAttributesCount":${js}`,
    kind: `"traceId":"${TRACE}","spanId":"${SPAN}","kind":${js}`,
    'status.code': `"traceId":"${TRACE}","spanId":"${SPAN}","status":{"code":${js}}`,
    intValue: `"traceId":"${TRACE}","spanId":"${SPAN}","attributes":[{"key":"k","value":{"intValue":${js}}}]`,
    doubleValue: `"traceId":"${TRACE}","spanId":"${SPAN}","attributes":[{"key":"k","value":{"doubleValue":${js}}}]`,
    bytesValue: `"traceId":"${TRACE}","spanId":"${SPAN}","attributes":[{"key":"k","value":{"bytesValue":${js}}}]`,
  };
  if (!f[field]) throw new Error(`no placement for ${field}`);
  return `{"resourceSpans":[{"scopeSpans":[{"spans":[{"name":"x",${f[field]}}]}]}]}`;
}

const u64 = (v: unknown) => {
  if (typeof v === 'number') return String(v);
  const l = v as { low: number; high: number };
  return String((BigInt(l.high >>> 0) << 32n) | BigInt(l.low >>> 0));
};
const num = (v: number) => (Number.isNaN(v) ? 'NaN' : v === Infinity ? 'Infinity' : v === -Infinity ? '-Infinity' : v);

function readBack(span: OtlpSpan, field: string): string | number {
  switch (field) {
    case 'traceId':
      return toHex(span.traceId);
    case 'spanId':
      return toHex(span.spanId);
    case 'parentSpanId':
      return toHex(span.parentSpanId);
    case 'link.traceId':
      return toHex(span.links[0]!.traceId);
    case 'startTimeUnixNano':
      return u64(span.startTimeUnixNano);
    case 'event.timeUnixNano':
      return u64(span.events[0]!.timeUnixNano);
    case 'droppedAttributesCount':
      return span.droppedAttributesCount;
    case 'kind':
      return span.kind;
    case 'status.code':
      return span.status!.code;
    case 'intValue':
      return String(BigInt.asIntN(64, BigInt(u64(span.attributes[0]!.value!.intValue))));
    case 'doubleValue':
      return num(span.attributes[0]!.value!.doubleValue!);
    case 'bytesValue':
      return Buffer.from(span.attributes[0]!.value!.bytesValue!).toString('base64');
  }
  throw new Error(field);
}

describe('OTLP/JSON: the Collector pdata JSON cases', () => {
  it('covers every field type the trace request has', () => {
    assert.ok(cases.length >= 50, `${cases.length} cases`);
    for (const f of [
      'intValue',
      'startTimeUnixNano',
      'droppedAttributesCount',
      'doubleValue',
      'kind',
      'bytesValue',
      'traceId',
      'parentSpanId',
    ])
      assert.ok(
        cases.some((c) => c.field === f),
        f,
      );
  });
  for (const c of cases) {
    it(c.id, () => {
      const text = requestWith(c.field, c.json);
      if ('error' in c.expect) {
        assert.throws(() => decodeJson(text), OtlpDecodeError, `${c.source}: ${c.json} must be refused`);
        return;
      }
      const span = decodeJson(text).resourceSpans[0]!.scopeSpans[0]!.spans[0]!;
      assert.equal(readBack(span, c.field), c.expect.value, c.source);
    });
  }
});

describe('OTLP/JSON: opentelemetry-proto examples/trace.json', () => {
  it('is read field for field', () => {
    // open-telemetry/opentelemetry-proto@ac2c4b5d1f3a examples/trace.json, copied unchanged.
    const req = decodeJson(
      readFileSync(new URL('./conformance/opentelemetry-proto-examples-trace.json', import.meta.url), 'utf8'),
    );
    const rs = req.resourceSpans[0]!;
    assert.deepEqual(
      rs.resource!.attributes.map((a) => [a.key, a.value!.stringValue]),
      [['service.name', 'my.service']],
    );
    const ss = rs.scopeSpans[0]!;
    assert.equal(ss.scope!.name, 'my.library');
    assert.equal(ss.scope!.version, '1.0.0');
    const s = ss.spans[0]!;
    assert.equal(toHex(s.traceId), '5b8efff798038103d269b633813fc60c');
    assert.equal(toHex(s.spanId), 'eee19b7ec3c1b174');
    assert.equal(toHex(s.parentSpanId), 'eee19b7ec3c1b173');
    assert.equal(s.name, "I'm a server span");
    assert.equal(u64(s.startTimeUnixNano), '1544712660000000000');
    assert.equal(u64(s.endTimeUnixNano), '1544712661000000000');
    assert.equal(s.kind, 2);
    assert.deepEqual(
      s.attributes.map((a) => [a.key, a.value!.stringValue]),
      [['my.span.attr', 'some value']],
    );
  });
});
