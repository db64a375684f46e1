import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { attributesToJs, toHex, toHrTime } from '../src/otlp/decode.ts';
import type { OtlpSpan, OtlpTraceRequest } from '../src/otlp/schema.ts';

// Span.flags bits from trace.proto: W3C trace flags in the low byte, then the two is-remote bits.
const IS_REMOTE = 0x200;

function traceState(s: string): { serialize(): string } | undefined {
  return s ? ({ serialize: () => s } as never) : undefined;
}

function toReadable(span: OtlpSpan, resource: unknown, scope: unknown): ReadableSpan {
  const traceId = toHex(span.traceId);
  const ctx = {
    traceId,
    spanId: toHex(span.spanId),
    traceFlags: span.flags & 0xff,
    traceState: traceState(span.traceState),
  };
  const attributes = attributesToJs(span.attributes);
  const events = span.events.map((e) => ({
    name: e.name,
    time: toHrTime(e.timeUnixNano),
    attributes: attributesToJs(e.attributes),
    droppedAttributesCount: e.droppedAttributesCount,
  }));
  return {
    name: span.name,
    // OTLP kinds are the API's + 1; UNSPECIFIED has no API value, so it stays unset.
    kind: span.kind ? span.kind - 1 : undefined,
    spanContext: () => ctx,
    parentSpanContext: span.parentSpanId.length
      ? {
          traceId,
          spanId: toHex(span.parentSpanId),
          traceFlags: ctx.traceFlags,
          isRemote: (span.flags & IS_REMOTE) !== 0,
        }
      : undefined,
    startTime: toHrTime(span.startTimeUnixNano),
    endTime: toHrTime(span.endTimeUnixNano),
    duration: [0, 0],
    ended: true,
    status: { code: span.status?.code ?? 0, message: span.status?.message || undefined },
    attributes,
    links: span.links.map((l) => ({
      context: {
        traceId: toHex(l.traceId),
        spanId: toHex(l.spanId),
        traceFlags: l.flags & 0xff,
        isRemote: (l.flags & IS_REMOTE) !== 0,
        traceState: traceState(l.traceState),
      },
      attributes: attributesToJs(l.attributes),
      droppedAttributesCount: l.droppedAttributesCount,
    })),
    events,
    resource: resource as ReadableSpan['resource'],
    instrumentationScope: scope as ReadableSpan['instrumentationScope'],
    droppedAttributesCount: span.droppedAttributesCount,
    droppedEventsCount: span.droppedEventsCount,
    droppedLinksCount: span.droppedLinksCount,
  } as unknown as ReadableSpan;
}

/**
 * Decoded OTLP → the SDK's ReadableSpan, which is what OTLPTraceExporter serializes. cachelens
 * forwarded this way until it switched to splicing encoded bytes; the benchmark keeps it as the
 * reference that switch is measured against. One resource
 * and one scope object per received group: the serializer groups spans by object identity, so
 * the request's ResourceSpans/ScopeSpans structure is kept.
 */
export function toReadableSpans(req: OtlpTraceRequest, out: ReadableSpan[] = []): ReadableSpan[] {
  for (const rs of req.resourceSpans) {
    const resource = {
      attributes: attributesToJs(rs.resource?.attributes ?? []),
      schemaUrl: rs.schemaUrl || undefined,
    };
    for (const ss of rs.scopeSpans) {
      const s = ss.scope;
      const scope = {
        name: s?.name ?? '',
        version: s?.version || undefined,
        schemaUrl: ss.schemaUrl || undefined,
        attributes: s?.attributes?.length ? attributesToJs(s.attributes) : undefined,
        droppedAttributesCount: s?.droppedAttributesCount || undefined,
      };
      for (const span of ss.spans) out.push(toReadable(span, resource, scope));
    }
  }
  return out;
}
