import type protobuf from 'protobufjs';
import { ExportTraceServiceRequest, type AnyValue, type KeyValue, type LongLike, type OtlpTraceRequest } from './schema.ts';

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
  if (typeof v !== 'string' || v.length % 2 !== 0 || !HEX_RE.test(v)) throw new OtlpDecodeError(`${where}.${key}: expected a hex string, got ${JSON.stringify(v).slice(0, 60)}`);
  obj[key] = Buffer.from(v, 'hex');
}

function asArray(v: unknown, where: string): Array<Record<string, unknown>> {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw new OtlpDecodeError(`${where}: expected an array`);
  return v as Array<Record<string, unknown>>;
}

/** OTLP/JSON: lowerCamelCase keys, hex trace/span ids (not base64), int64 as number or string. */
export function decodeJson(text: string): OtlpTraceRequest {
  let obj: unknown;
  try {
    obj = JSON.parse(text);
  } catch (err) {
    throw new OtlpDecodeError(`invalid JSON: ${(err as Error).message}`);
  }
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) throw new OtlpDecodeError('invalid OTLP JSON: the body must be an ExportTraceServiceRequest object');
  const req = obj as Record<string, unknown>;
  asArray(req.resourceSpans, 'resourceSpans').forEach((rs, i) => {
    asArray(rs.scopeSpans, `resourceSpans[${i}].scopeSpans`).forEach((ss, j) => {
      asArray(ss.spans, `resourceSpans[${i}].scopeSpans[${j}].spans`).forEach((s, k) => {
        const where = `resourceSpans[${i}].scopeSpans[${j}].spans[${k}]`;
        hexField(s, 'traceId', where);
        hexField(s, 'spanId', where);
        hexField(s, 'parentSpanId', where);
        asArray(s.links, `${where}.links`).forEach((l, n) => {
          hexField(l, 'traceId', `${where}.links[${n}]`);
          hexField(l, 'spanId', `${where}.links[${n}]`);
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
}

const isZero = (b: Uint8Array): boolean => b.every((x) => x === 0);

/**
 * Drops spans that no backend can store (trace id not 16 bytes, span id not 8, or all zero), as the
 * OTLP spec's partial success allows; everything else is kept as received.
 */
export function validateRequest(req: OtlpTraceRequest): Validated {
  let spans = 0;
  let rejected = 0;
  const reasons: string[] = [];
  for (const rs of req.resourceSpans) {
    for (const ss of rs.scopeSpans) {
      const bad = ss.spans.some((s) => s.traceId.length !== 16 || s.spanId.length !== 8 || isZero(s.traceId) || isZero(s.spanId));
      if (!bad) {
        spans += ss.spans.length;
        continue;
      }
      ss.spans = ss.spans.filter((s) => {
        const ok = s.traceId.length === 16 && s.spanId.length === 8 && !isZero(s.traceId) && !isZero(s.spanId);
        if (!ok) {
          rejected++;
          if (reasons.length < 3) reasons.push(`span ${JSON.stringify(s.name)}: trace_id must be 16 bytes and span_id 8 bytes, not all zero (got ${s.traceId.length} and ${s.spanId.length})`);
        }
        return ok;
      });
      spans += ss.spans.length;
    }
  }
  return { spans, rejected, reasons };
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

export type JsAttrValue = string | number | boolean | Uint8Array | JsAttrValue[] | { [k: string]: JsAttrValue } | undefined;

/** AnyValue → the JS value the OTLP serializer maps back to the same AnyValue (see README for the limits). */
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
