import { randomBytes } from 'node:crypto';
import { encodeRequest } from '../../src/otlp/decode.ts';
import { ExportTraceServiceRequest, type OtlpTraceRequest } from '../../src/otlp/schema.ts';

/** A protobuf ExportTraceServiceRequest of n spans with ~15 attributes each, and their span ids. */
export function makeRequest(
  n: number,
  opts: {
    name?: string;
    attrs?: number;
    resource?: Record<string, string>;
    /** More numeric attributes of span i (integers as intValue), such as vLLM's gen_ai.* ones. */
    more?: (i: number) => Record<string, number>;
  } = {},
): { body: Uint8Array; spanIds: string[] } {
  const traceId = randomBytes(16);
  const now = BigInt(Date.now()) * 1_000_000n;
  const spanIds: string[] = [];
  const spans = [];
  for (let i = 0; i < n; i++) {
    const spanId = randomBytes(8);
    spanIds.push(spanId.toString('hex'));
    const attributes = [];
    for (let a = 0; a < (opts.attrs ?? 15); a++)
      attributes.push({
        key: `attr.${a}`,
        value:
          a % 3 === 0
            ? { intValue: a * 1000 + i }
            : a % 3 === 1
              ? { stringValue: `value-${a}-${i}` }
              : { doubleValue: a + 0.5 },
      });
    for (const [key, v] of Object.entries(opts.more?.(i) ?? {}))
      attributes.push({ key, value: Number.isInteger(v) ? { intValue: v } : { doubleValue: v } });
    spans.push({
      traceId,
      spanId,
      name: opts.name ?? 'llm_request',
      kind: 2,
      startTimeUnixNano: String(now - 2_000_000_000n),
      endTimeUnixNano: String(now - 1_000_000_000n),
      attributes,
    });
  }
  const req = ExportTraceServiceRequest.fromObject({
    resourceSpans: [
      {
        resource: {
          attributes: Object.entries({ 'service.name': 'load', ...opts.resource }).map(([key, v]) => ({
            key,
            value: { stringValue: v },
          })),
        },
        scopeSpans: [{ scope: { name: 's' }, spans }],
      },
    ],
  });
  return { body: encodeRequest(req as unknown as OtlpTraceRequest), spanIds };
}
