import { CACHE_EVENT, COMPACT_EVENT, SCHEDULER_EVENT, type SpanExtra } from '../correlate/enricher.ts';
import type { EventAttrs } from '../correlate/windowContext.ts';
import { WIRE_I64, WIRE_LEN, WIRE_VARINT, WireWriter } from '../otlp/wire.ts';

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

/** `key` as a KeyValue's field 1, tag and length included; keys are the few cachelens writes. */
const keyFields = new Map<string, Buffer>();
function keyField(key: string): Buffer {
  let b = keyFields.get(key);
  if (!b) {
    b = Buffer.from(new WireWriter().tag(KV_KEY, WIRE_LEN).string(key).finish());
    if (keyFields.size < 256) keyFields.set(key, b);
  }
  return b;
}
/** AnyValue{double_value}: a 1-byte tag and 8 bytes. */
const ANY_DOUBLE_BYTES = 9;

/**
 * One KeyValue message body. Numbers map as the OTel JS SDK maps them: integers to int_value, the rest to double_value.
 */
function encodeKeyValue(w: WireWriter, key: string, v: string | number | boolean | bigint): void {
  if (typeof v === 'number' && !Number.isInteger(v)) {
    // A span's own estimate, once per span: written in place, no scratch writers.
    const k = keyField(key);
    w.uvarint(k.length + 2 + ANY_DOUBLE_BYTES)
      .raw(k)
      .tag(KV_VALUE, WIRE_LEN)
      .uvarint(ANY_DOUBLE_BYTES)
      .tag(ANY_DOUBLE, WIRE_I64)
      .double(v);
    return;
  }
  const any = new WireWriter();
  if (typeof v === 'string') any.tag(ANY_STRING, WIRE_LEN).string(v);
  else if (typeof v === 'bigint') any.tag(ANY_INT, WIRE_VARINT).bigint(BigInt.asUintN(64, v));
  else if (typeof v === 'boolean') any.tag(ANY_BOOL, WIRE_VARINT).uvarint(v ? 1 : 0);
  else if (Number.isInteger(v)) {
    any.tag(ANY_INT, WIRE_VARINT);
    if (v >= 0) any.uvarint(v);
    else any.bigint(BigInt(v));
  } else any.tag(ANY_DOUBLE, WIRE_I64).double(v);
  const kv = new WireWriter().raw(keyField(key)).tag(KV_VALUE, WIRE_LEN).bytes(any.finish());
  w.bytes(kv.finish());
}

/** Attributes as a run of repeated KeyValue fields numbered `field`, written to `w`. */
function encodeAttributes(w: WireWriter, attrs: EventAttrs, field: number): WireWriter {
  for (const k in attrs) encodeKeyValue(w.tag(field, WIRE_LEN), k, attrs[k]!);
  return w;
}

/** A window's attributes, encoded once and kept. */
function encodeBlock(attrs: EventAttrs, field: number): Buffer {
  return Buffer.from(encodeAttributes(new WireWriter(), attrs, field).finish());
}

interface Encoded {
  asEvent?: Buffer;
  asSpan?: Buffer;
}

const CACHE_NAME = new WireWriter().tag(EVENT_NAME, WIRE_LEN).string(CACHE_EVENT).finish();
const SCHEDULER_NAME = new WireWriter().tag(EVENT_NAME, WIRE_LEN).string(SCHEDULER_EVENT).finish();
const COMPACT_NAME = new WireWriter().tag(EVENT_NAME, WIRE_LEN).string(COMPACT_EVENT).finish();
/** The event's time_unix_nano field: tag, then 8 bytes. */
const TIME_FIELD_BYTES = 9;

/**
 * Encodes what the enricher adds to spans as protobuf fields to append to them. A window's
 * attribute blocks are shared objects, so each is encoded once and reused for every span of that
 * window; per span only the timestamps and the span's own values are written, into one buffer
 * per request.
 */
export class ExtraEncoder {
  private readonly cache = new WeakMap<EventAttrs, Encoded>();
  private readonly out = new WireWriter();
  private readonly scratch = new WireWriter();

  private block(attrs: EventAttrs, field: typeof EVENT_ATTRIBUTES | typeof SPAN_ATTRIBUTES): Buffer {
    let e = this.cache.get(attrs);
    if (!e) this.cache.set(attrs, (e = {}));
    if (field === EVENT_ATTRIBUTES) return (e.asEvent ??= encodeBlock(attrs, field));
    return (e.asSpan ??= encodeBlock(attrs, field));
  }

  /** The span's own values, in a scratch buffer valid until the next call. */
  private ownBlock(own: EventAttrs, field: number): Buffer {
    return encodeAttributes(this.scratch.reset(), own, field).finish();
  }

  private event(extra: SpanExtra, name: Uint8Array, attrs: Buffer, own: Buffer | undefined): void {
    const w = this.out;
    w.tag(SPAN_EVENTS, WIRE_LEN).uvarint(TIME_FIELD_BYTES + name.length + attrs.length + (own?.length ?? 0));
    const t = extra.time;
    if (typeof t === 'number') w.tag(EVENT_TIME, WIRE_I64).fixed64(t % 4294967296, Math.floor(t / 4294967296));
    else w.tag(EVENT_TIME, WIRE_I64).fixed64(t.low, t.high);
    w.raw(name).raw(attrs);
    if (own) w.raw(own);
  }

  private write(extra: SpanExtra): void {
    const hasOwn = extra.own !== undefined && Object.keys(extra.own).length > 0;
    if (extra.detail === 'compact') {
      // One event (or its attributes): the window's few values, then the span's own.
      if (extra.as !== 'events') {
        this.out.raw(this.block(extra.cache, SPAN_ATTRIBUTES));
        if (hasOwn) this.out.raw(this.ownBlock(extra.own!, SPAN_ATTRIBUTES));
      }
      if (extra.as !== 'attributes')
        this.event(
          extra,
          COMPACT_NAME,
          this.block(extra.cache, EVENT_ATTRIBUTES),
          hasOwn ? this.ownBlock(extra.own!, EVENT_ATTRIBUTES) : undefined,
        );
      return;
    }
    if (extra.as !== 'events') {
      this.out.raw(this.block(extra.cache, SPAN_ATTRIBUTES));
      if (hasOwn) this.out.raw(this.ownBlock(extra.own!, SPAN_ATTRIBUTES));
      this.out.raw(this.block(extra.scheduler, SPAN_ATTRIBUTES));
    }
    if (extra.as !== 'attributes') {
      this.event(
        extra,
        CACHE_NAME,
        this.block(extra.cache, EVENT_ATTRIBUTES),
        hasOwn ? this.ownBlock(extra.own!, EVENT_ATTRIBUTES) : undefined,
      );
      this.event(extra, SCHEDULER_NAME, this.block(extra.scheduler, EVENT_ATTRIBUTES), undefined);
    }
  }

  /** The bytes to append to one span: events (field 11) and/or attributes (field 9), tags included. */
  encode(extra: SpanExtra): Buffer {
    return this.encodeAll(1, new Map([[0, extra]]))[0]!;
  }

  /** The same for every span of a request, as views into one buffer; `adds[i]` is for the i-th span on the wire. */
  encodeAll(spanCount: number, extras: ReadonlyMap<number, SpanExtra>): Array<Buffer | undefined> {
    const adds = new Array<Buffer | undefined>(spanCount);
    if (!extras.size) return adds;
    const w = this.out.reset();
    const ranges: Array<[number, number, number]> = [];
    for (const [i, extra] of extras) {
      const start = w.length;
      this.write(extra);
      ranges.push([i, start, w.length]);
    }
    const all = Buffer.from(w.finish());
    for (const [i, a, b] of ranges) adds[i] = all.subarray(a, b);
    return adds;
  }
}
