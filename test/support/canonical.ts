import { toHex } from '../../src/otlp/decode.ts';
import type { AnyValue, KeyValue, LongLike, OtlpTraceRequest } from '../../src/otlp/schema.ts';

// A field-by-field canonical form of decoded OTLP, with proto3 defaults made explicit, so
// "what the client sent" and "what downstream received" can be diffed path by path.

const long = (v: LongLike | number | undefined): string => {
  if (v === undefined) return '0';
  if (typeof v === 'number') return String(v);
  const u = (BigInt(v.high >>> 0) << 32n) | BigInt(v.low >>> 0);
  return String(v.unsigned ? u : BigInt.asIntN(64, u));
};

export function canonValue(v: AnyValue | undefined): unknown {
  if (!v) return { empty: true };
  const has = (k: keyof AnyValue): boolean => (v.value ? v.value === k : v[k] !== undefined && v[k] !== null);
  if (has('stringValue')) return { string: v.stringValue };
  if (has('boolValue')) return { bool: v.boolValue };
  if (has('intValue')) return { int: long(v.intValue) };
  if (has('doubleValue')) return { double: v.doubleValue };
  if (has('bytesValue')) return { bytes: toHex(v.bytesValue!) };
  if (has('arrayValue')) return { array: (v.arrayValue?.values ?? []).map(canonValue) };
  if (has('kvlistValue')) return { kvlist: canonAttrs(v.kvlistValue?.values ?? []) };
  return { empty: true };
}

export const canonAttrs = (kvs: readonly KeyValue[]): Array<[string, unknown]> =>
  kvs.map((kv) => [kv.key, canonValue(kv.value)]);

export interface CanonSpan {
  [field: string]: unknown;
}

/** One entry per span, keyed by span id, carrying its resource and scope. */
export function canonicalSpans(reqs: readonly OtlpTraceRequest[]): Map<string, CanonSpan> {
  const out = new Map<string, CanonSpan>();
  for (const req of reqs)
    for (const rs of req.resourceSpans)
      for (const ss of rs.scopeSpans)
        for (const s of ss.spans) {
          out.set(toHex(s.spanId), {
            'resource.attributes': canonAttrs(rs.resource?.attributes ?? []),
            'resource.dropped_attributes_count': rs.resource?.droppedAttributesCount ?? 0,
            'resource.schema_url': rs.schemaUrl ?? '',
            'scope.name': ss.scope?.name ?? '',
            'scope.version': ss.scope?.version ?? '',
            'scope.attributes': canonAttrs(ss.scope?.attributes ?? []),
            'scope.dropped_attributes_count': ss.scope?.droppedAttributesCount ?? 0,
            'scope.schema_url': ss.schemaUrl ?? '',
            trace_id: toHex(s.traceId),
            span_id: toHex(s.spanId),
            trace_state: s.traceState ?? '',
            parent_span_id: toHex(s.parentSpanId ?? new Uint8Array()),
            flags: s.flags ?? 0,
            name: s.name,
            kind: s.kind ?? 0,
            start_time_unix_nano: long(s.startTimeUnixNano),
            end_time_unix_nano: long(s.endTimeUnixNano),
            attributes: canonAttrs(s.attributes),
            dropped_attributes_count: s.droppedAttributesCount ?? 0,
            events: s.events.map((e) => ({
              time_unix_nano: long(e.timeUnixNano),
              name: e.name,
              attributes: canonAttrs(e.attributes),
              dropped_attributes_count: e.droppedAttributesCount ?? 0,
            })),
            dropped_events_count: s.droppedEventsCount ?? 0,
            links: s.links.map((l) => ({
              trace_id: toHex(l.traceId),
              span_id: toHex(l.spanId),
              trace_state: l.traceState ?? '',
              attributes: canonAttrs(l.attributes),
              dropped_attributes_count: l.droppedAttributesCount ?? 0,
              flags: l.flags ?? 0,
            })),
            dropped_links_count: s.droppedLinksCount ?? 0,
            'status.code': s.status?.code ?? 0,
            'status.message': s.status?.message ?? '',
          });
        }
  return out;
}

/** Paths whose values differ ("name", "attributes", …), with both sides. */
export function diffSpan(sent: CanonSpan, got: CanonSpan): Array<{ field: string; sent: unknown; got: unknown }> {
  const diffs: Array<{ field: string; sent: unknown; got: unknown }> = [];
  for (const field of new Set([...Object.keys(sent), ...Object.keys(got)])) {
    if (JSON.stringify(sent[field]) !== JSON.stringify(got[field]))
      diffs.push({ field, sent: sent[field], got: got[field] });
  }
  return diffs;
}
