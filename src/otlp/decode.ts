import type protobuf from 'protobufjs';
import {
  ExportTraceServiceRequest,
  type AnyValue,
  type KeyValue,
  type LongLike,
  type OtlpTraceRequest,
} from './schema.ts';

/** A body that is not a valid OTLP trace request; the message is sent back to the client. */
export class OtlpDecodeError extends Error {}

export function decodeProtobuf(body: Uint8Array): OtlpTraceRequest {
  try {
    return ExportTraceServiceRequest.decode(body) as unknown as OtlpTraceRequest;
  } catch (err) {
    throw new OtlpDecodeError(`invalid OTLP protobuf ExportTraceServiceRequest: ${(err as Error).message}`);
  }
}

const HEX_RE = /^[0-9a-fA-F]*$/;

function hexField(obj: Record<string, unknown>, key: string, where: string): void {
  const v = obj[key];
  if (v === undefined || v === null || v === '') return;
  if (typeof v !== 'string' || v.length % 2 !== 0 || !HEX_RE.test(v))
    throw new OtlpDecodeError(`${where}.${key}: expected a hex string, got ${JSON.stringify(v).slice(0, 60)}`);
  obj[key] = Buffer.from(v, 'hex');
}

// protobufjs' fromObject turns a bad int64 string into 0 and an unknown enum name into "unset";
// OTLP/JSON receivers (the Collector's jsonpb) reject both, and so do we, with the field's path.
const INT_RE = /^-?\d+$/;
function intField(obj: Record<string, unknown>, key: string, where: string): void {
  const v = obj[key];
  if (v === undefined || v === null) return;
  if (typeof v === 'number' ? Number.isInteger(v) : typeof v === 'string' && INT_RE.test(v)) return;
  throw new OtlpDecodeError(
    `${where}.${key}: expected an integer (number or decimal string), got ${JSON.stringify(v).slice(0, 60)}`,
  );
}

// fixed64 times and uint32 counts: a negative one is refused, as the Collector's ReadUint64/ReadUint32 do.
const UINT_RE = /^\d+$/;
function uintField(obj: Record<string, unknown>, key: string, where: string, max: bigint): void {
  const v = obj[key];
  if (v === undefined || v === null) return;
  const ok =
    typeof v === 'number'
      ? Number.isInteger(v) && v >= 0 && BigInt(v) <= max
      : typeof v === 'string' && UINT_RE.test(v) && BigInt(v) <= max;
  if (!ok)
    throw new OtlpDecodeError(
      `${where}.${key}: expected an unsigned integer (number or decimal string) up to ${max}, got ` +
        `${JSON.stringify(v).slice(0, 60)}`,
    );
}
const U32 = 0xffffffffn;
const U64 = 0xffffffffffffffffn;

// proto3 JSON writes a double as a number, or as a string: a decimal, "NaN", "Infinity" or "-Infinity".
const DOUBLE_STRING_RE = /^(?:[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|NaN|-?Infinity)$/;
function doubleField(obj: Record<string, unknown>, key: string, where: string): void {
  const v = obj[key];
  if (v === undefined || v === null || typeof v === 'number' || (typeof v === 'string' && DOUBLE_STRING_RE.test(v)))
    return;
  throw new OtlpDecodeError(
    `${where}.${key}: expected a number, or a string holding one, "NaN" or "±Infinity", got ` +
      `${JSON.stringify(v).slice(0, 60)}`,
  );
}

const checkCounts = (obj: Record<string, unknown>, where: string, keys: readonly string[]) => {
  for (const k of keys) uintField(obj, k, where, U32);
};

function enumField(obj: Record<string, unknown>, key: string, names: readonly string[], where: string): void {
  const v = obj[key];
  if (
    v === undefined ||
    v === null ||
    (typeof v === 'number' && Number.isInteger(v)) ||
    (typeof v === 'string' && names.includes(v))
  )
    return;
  throw new OtlpDecodeError(
    `${where}.${key}: expected an integer or one of ${names.join(', ')}, got ${JSON.stringify(v).slice(0, 60)}`,
  );
}

const SPAN_KINDS = [
  'SPAN_KIND_UNSPECIFIED',
  'SPAN_KIND_INTERNAL',
  'SPAN_KIND_SERVER',
  'SPAN_KIND_CLIENT',
  'SPAN_KIND_PRODUCER',
  'SPAN_KIND_CONSUMER',
] as const;
const STATUS_CODES = ['STATUS_CODE_UNSET', 'STATUS_CODE_OK', 'STATUS_CODE_ERROR'] as const;

/** intValue anywhere inside attribute values, kvlists and arrays included. */
function checkAttributes(attrs: unknown, where: string, depth = 0): void {
  if (depth > 400) throw new OtlpDecodeError(`${where}: attribute values nested deeper than 400 levels`);
  for (const [i, kv] of asArray(attrs, where).entries()) checkAnyValue(kv?.value, `${where}[${i}].value`, depth);
}
function checkAnyValue(v: unknown, where: string, depth: number): void {
  if (v === null || typeof v !== 'object') return;
  const av = v as Record<string, unknown>;
  intField(av, 'intValue', where);
  doubleField(av, 'doubleValue', where);
  const arr = av.arrayValue as Record<string, unknown> | undefined;
  if (arr && typeof arr === 'object')
    asArray(arr.values, `${where}.arrayValue.values`).forEach((x, j) =>
      checkAnyValue(x, `${where}.arrayValue.values[${j}]`, depth + 1),
    );
  const kvl = av.kvlistValue as Record<string, unknown> | undefined;
  if (kvl && typeof kvl === 'object') checkAttributes(kvl.values, `${where}.kvlistValue.values`, depth + 1);
}

function asArray(v: unknown, where: string): Array<Record<string, unknown>> {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw new OtlpDecodeError(`${where}: expected an array`);
  return v as Array<Record<string, unknown>>;
}

// JSON.parse reads every number as a double, so 1544712660123456789 would arrive as …768. The 64-bit
// fields given as bare JSON numbers are quoted first; fromObject reads a decimal string exactly. A
// key inside a JSON string has its quotes escaped, so the pattern cannot match there.
const INT64_NUMBER_RE =
  /("(?:startTimeUnixNano|endTimeUnixNano|timeUnixNano|intValue)"\s*:\s*)(-?\d{16,})(?=\s*[,}\]])/g;

/** OTLP/JSON: lowerCamelCase keys, hex trace/span ids (not base64), int64 as number or string. */
export function decodeJson(text: string): OtlpTraceRequest {
  let obj: unknown;
  try {
    obj = JSON.parse(text.replace(INT64_NUMBER_RE, '$1"$2"'));
  } catch (err) {
    throw new OtlpDecodeError(`invalid JSON: ${(err as Error).message}`);
  }
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj))
    throw new OtlpDecodeError('invalid OTLP JSON: the body must be an ExportTraceServiceRequest object');
  const req = obj as Record<string, unknown>;
  asArray(req.resourceSpans, 'resourceSpans').forEach((rs, i) => {
    if (typeof rs !== 'object' || rs === null) return;
    if (rs.resource && typeof rs.resource === 'object')
      checkAttributes((rs.resource as Record<string, unknown>).attributes, `resourceSpans[${i}].resource.attributes`);
    asArray(rs.scopeSpans, `resourceSpans[${i}].scopeSpans`).forEach((ss, j) => {
      if (typeof ss !== 'object' || ss === null) return;
      asArray(ss.spans, `resourceSpans[${i}].scopeSpans[${j}].spans`).forEach((s, k) => {
        const where = `resourceSpans[${i}].scopeSpans[${j}].spans[${k}]`;
        if (typeof s !== 'object' || s === null) return; // fromObject names it
        hexField(s, 'traceId', where);
        hexField(s, 'spanId', where);
        hexField(s, 'parentSpanId', where);
        uintField(s, 'startTimeUnixNano', where, U64);
        uintField(s, 'endTimeUnixNano', where, U64);
        checkCounts(s, where, ['droppedAttributesCount', 'droppedEventsCount', 'droppedLinksCount', 'flags']);
        enumField(s, 'kind', SPAN_KINDS, where);
        if (s.status && typeof s.status === 'object')
          enumField(s.status as Record<string, unknown>, 'code', STATUS_CODES, `${where}.status`);
        checkAttributes(s.attributes, `${where}.attributes`);
        asArray(s.events, `${where}.events`).forEach((e, n) => {
          if (typeof e !== 'object' || e === null) return;
          uintField(e, 'timeUnixNano', `${where}.events[${n}]`, U64);
          checkCounts(e, `${where}.events[${n}]`, ['droppedAttributesCount']);
          checkAttributes(e.attributes, `${where}.events[${n}].attributes`);
        });
        asArray(s.links, `${where}.links`).forEach((l, n) => {
          if (typeof l !== 'object' || l === null) return;
          hexField(l, 'traceId', `${where}.links[${n}]`);
          hexField(l, 'spanId', `${where}.links[${n}]`);
          checkCounts(l, `${where}.links[${n}]`, ['droppedAttributesCount', 'flags']);
          checkAttributes(l.attributes, `${where}.links[${n}].attributes`);
        });
      });
    });
  });
  try {
    // fromObject yields the same message shape as a protobuf decode, so one code path follows.
    return ExportTraceServiceRequest.fromObject(req) as unknown as OtlpTraceRequest;
  } catch (err) {
    throw new OtlpDecodeError(`invalid OTLP JSON: ${(err as Error).message}`);
  }
}

export function encodeRequest(req: OtlpTraceRequest): Uint8Array {
  return ExportTraceServiceRequest.encode(req as unknown as protobuf.Message).finish();
}

export interface Validated {
  spans: number;
  rejected: number;
  /** The first few reasons, for partial_success.error_message. */
  reasons: string[];
  /** Wire-order indexes of the rejected spans, for removeSpans. */
  rejectedIndexes: number[];
}

const isZero = (b: Uint8Array): boolean => b.every((x) => x === 0);
const validTraceId = (b: Uint8Array | undefined): boolean => !!b && b.length === 16 && !isZero(b);
const validSpanId = (b: Uint8Array | undefined): boolean => !!b && b.length === 8 && !isZero(b);

/** Why a backend would refuse this span's ids (the Collector's pdata checks), or undefined. */
export function spanIdProblem(s: {
  traceId: Uint8Array;
  spanId: Uint8Array;
  parentSpanId?: Uint8Array;
  links?: Array<{ traceId: Uint8Array; spanId: Uint8Array }>;
}): string | undefined {
  if (!validTraceId(s.traceId) || !validSpanId(s.spanId))
    return (
      `trace_id must be 16 bytes and span_id 8 bytes, not all zero ` +
      `(got ${s.traceId.length} and ${s.spanId.length})`
    );
  const parent = s.parentSpanId;
  if (parent && parent.length !== 0 && parent.length !== 8)
    return `parent_span_id must be empty or 8 bytes (got ${parent.length})`;
  for (const [i, l] of (s.links ?? []).entries()) {
    if (!validTraceId(l.traceId) || !validSpanId(l.spanId))
      return (
        `links[${i}] needs a 16-byte trace_id and an 8-byte span_id, not all zero ` +
        `(got ${l.traceId?.length ?? 0} and ${l.spanId?.length ?? 0})`
      );
  }
  return undefined;
}

/**
 * Drops spans that no backend can store (trace id not 16 bytes, span id not 8, or all zero; a parent
 * id neither empty nor 8 bytes; a link without valid ids), as the OTLP spec's partial success
 * allows; everything else is kept as received.
 */
export function validateRequest(req: OtlpTraceRequest): Validated {
  let spans = 0;
  let rejected = 0;
  let index = 0;
  const reasons: string[] = [];
  const rejectedIndexes: number[] = [];
  let emptiedResources = false;
  for (const rs of req.resourceSpans) {
    let emptied = false;
    for (const ss of rs.scopeSpans) {
      const bad = ss.spans.some((s) => spanIdProblem(s) !== undefined);
      if (!bad) {
        spans += ss.spans.length;
        index += ss.spans.length;
        continue;
      }
      ss.spans = ss.spans.filter((s) => {
        const problem = spanIdProblem(s);
        if (problem) {
          rejected++;
          rejectedIndexes.push(index);
          if (reasons.length < 3) reasons.push(`span ${JSON.stringify(s.name)}: ${problem}`);
        }
        index++;
        return !problem;
      });
      if (!ss.spans.length) emptied = true;
      spans += ss.spans.length;
    }
    // A scope this emptied goes, and a resource left with no scope, as removeSpans does on the wire.
    if (emptied) {
      rs.scopeSpans = rs.scopeSpans.filter((ss) => ss.spans.length > 0);
      if (!rs.scopeSpans.length) emptiedResources = true;
    }
  }
  if (emptiedResources) req.resourceSpans = req.resourceSpans.filter((rs) => rs.scopeSpans.length > 0);
  return { spans, rejected, reasons, rejectedIndexes };
}

const TWO_32 = 4294967296;

/** fixed64 nanoseconds → [seconds, nanos] exactly, without going through a lossy double. */
export function toHrTime(v: LongLike | number): [number, number] {
  if (typeof v === 'number') return [Math.floor(v / 1e9), v % 1e9];
  const ns = (BigInt(v.high >>> 0) << 32n) | BigInt(v.low >>> 0);
  return [Number(ns / 1_000_000_000n), Number(ns % 1_000_000_000n)];
}

export function nanosToMs(v: LongLike | number): number {
  if (typeof v === 'number') return v / 1e6;
  return ((v.high >>> 0) * TWO_32 + (v.low >>> 0)) / 1e6;
}

function longToNumber(v: LongLike | number): number {
  if (typeof v === 'number') return v;
  return v.unsigned ? (v.high >>> 0) * TWO_32 + (v.low >>> 0) : v.high * TWO_32 + (v.low >>> 0);
}

export type JsAttrValue =
  | string
  | number
  | boolean
  | Uint8Array
  | JsAttrValue[]
  | { [k: string]: JsAttrValue }
  | undefined;

/**
 * AnyValue → the JS value the OTLP serializer maps back to the same AnyValue (docs/architecture.md, Forwarding, says
 * what survives).
 */
export function anyValueToJs(v: AnyValue | undefined): JsAttrValue {
  if (!v) return undefined;
  switch (v.value) {
    case 'stringValue':
      return v.stringValue;
    case 'boolValue':
      return v.boolValue;
    case 'intValue':
      return longToNumber(v.intValue!);
    case 'doubleValue':
      return v.doubleValue;
    case 'bytesValue':
      return v.bytesValue;
    case 'arrayValue':
      return (v.arrayValue?.values ?? []).map(anyValueToJs);
    case 'kvlistValue': {
      const out: Record<string, JsAttrValue> = {};
      for (const kv of v.kvlistValue?.values ?? []) out[kv.key] = anyValueToJs(kv.value);
      return out;
    }
  }
  // JSON-decoded messages (toObject) carry no oneof marker.
  if (v.stringValue !== undefined) return v.stringValue;
  if (v.boolValue !== undefined) return v.boolValue;
  if (v.intValue !== undefined) return longToNumber(v.intValue);
  if (v.doubleValue !== undefined) return v.doubleValue;
  if (v.bytesValue !== undefined) return v.bytesValue;
  if (v.arrayValue !== undefined) return (v.arrayValue.values ?? []).map(anyValueToJs);
  if (v.kvlistValue !== undefined) return anyValueToJs({ value: 'kvlistValue', kvlistValue: v.kvlistValue });
  return undefined;
}

export function attributesToJs(kvs: KeyValue[]): Record<string, JsAttrValue> {
  const out: Record<string, JsAttrValue> = {};
  for (const kv of kvs) out[kv.key] = anyValueToJs(kv.value);
  return out;
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));
export function toHex(b: Uint8Array): string {
  let s = '';
  for (let i = 0; i < b.length; i++) s += HEX[b[i]!];
  return s;
}
