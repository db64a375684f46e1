import { CACHE_EVENT, SCHEDULER_EVENT, type SpanExtra } from '../correlate/enricher.ts';
import type { EventAttrs } from '../correlate/windowContext.ts';
import { WIRE_I64, WIRE_LEN, WIRE_VARINT, WireWriter } from './otlp/wire.ts';

// Field numbers from opentelemetry-proto (trace.proto, common.proto).
const SPAN_ATTRIBUTES = 9;
const SPAN_EVENTS = 11;
const EVENT_TIME = 1;
const EVENT_NAME = 2;
const EVENT_ATTRIBUTES = 3;
const KV_KEY = 1;
const KV_VALUE = 2;
const ANY_STRING = 1;
const ANY_BOOL = 2;
const ANY_INT = 3;
const ANY_DOUBLE = 4;

/** One KeyValue message body. Numbers map as the OTel JS SDK maps them: integers to int_value, the rest to double_value. */
function encodeKeyValue(key: string, v: string | number | boolean): Buffer {
  const any = new WireWriter();
  if (typeof v === 'string') any.tag(ANY_STRING, WIRE_LEN).string(v);
  else if (typeof v === 'boolean') any.tag(ANY_BOOL, WIRE_VARINT).uvarint(v ? 1 : 0);
  else if (Number.isInteger(v)) {
    any.tag(ANY_INT, WIRE_VARINT);
    if (v >= 0) any.uvarint(v);
    else any.bigint(BigInt(v));
  } else any.tag(ANY_DOUBLE, WIRE_I64).double(v);
  return new WireWriter().tag(KV_KEY, WIRE_LEN).string(key).tag(KV_VALUE, WIRE_LEN).bytes(any.finish()).finish();
}

/** Attributes as a run of repeated KeyValue fields numbered `field`. */
function encodeAttributes(attrs: EventAttrs, field: number): Buffer {
  const w = new WireWriter();
  for (const [k, v] of Object.entries(attrs)) w.tag(field, WIRE_LEN).bytes(encodeKeyValue(k, v));
  return Buffer.from(w.finish());
}

interface Encoded {
  asEvent?: Buffer;
  asSpan?: Buffer;
}

/**
 * Encodes what the enricher adds to a span as protobuf fields to append to it. The window's
 * attribute blocks are shared objects, so each is encoded once and reused for every span of
 * that window; only the timestamp and the span's own values are written per span.
 */
export class ExtraEncoder {
  private readonly cache = new WeakMap<EventAttrs, Encoded>();

  private block(attrs: EventAttrs, field: typeof EVENT_ATTRIBUTES | typeof SPAN_ATTRIBUTES): Buffer {
    let e = this.cache.get(attrs);
    if (!e) this.cache.set(attrs, (e = {}));
    if (field === EVENT_ATTRIBUTES) return (e.asEvent ??= encodeAttributes(attrs, field));
    return (e.asSpan ??= encodeAttributes(attrs, field));
  }

  private event(w: WireWriter, name: string, extra: SpanExtra, blocks: Buffer[]): void {
    const body = new WireWriter();
    const t = extra.time;
    if (typeof t === 'number') body.tag(EVENT_TIME, WIRE_I64).fixed64(t % 4294967296, Math.floor(t / 4294967296));
    else body.tag(EVENT_TIME, WIRE_I64).fixed64(t.low, t.high);
    body.tag(EVENT_NAME, WIRE_LEN).string(name);
    for (const b of blocks) body.raw(b);
    w.tag(SPAN_EVENTS, WIRE_LEN).bytes(body.finish());
  }

  /** The bytes to append to the span: events (field 11) and/or attributes (field 9), tags included. */
  encode(extra: SpanExtra): Buffer {
    const w = new WireWriter();
    const own = extra.own && Object.keys(extra.own).length ? extra.own : undefined;
    if (extra.as !== 'events') {
      w.raw(this.block(extra.cache, SPAN_ATTRIBUTES));
      if (own) w.raw(encodeAttributes(own, SPAN_ATTRIBUTES));
      w.raw(this.block(extra.scheduler, SPAN_ATTRIBUTES));
    }
    if (extra.as !== 'attributes') {
      const cacheBlocks = [this.block(extra.cache, EVENT_ATTRIBUTES)];
      if (own) cacheBlocks.push(encodeAttributes(own, EVENT_ATTRIBUTES));
      this.event(w, CACHE_EVENT, extra, cacheBlocks);
      this.event(w, SCHEDULER_EVENT, extra, [this.block(extra.scheduler, EVENT_ATTRIBUTES)]);
    }
    return Buffer.from(w.finish());
  }
}
