import { randomBytes, randomFillSync } from 'node:crypto';
import { encodeRequest } from '../src/otlp/decode.ts';
import { ExportTraceServiceRequest, type OtlpTraceRequest } from '../src/otlp/schema.ts';

/**
 * Request bodies as a vLLM fleet sends them: every span an `llm_request` (kind SERVER) of its own
 * trace, with a parent from the caller's traceparent and the 15 attributes vLLM sets (V1's 13 and
 * V0's response model and num_sequences; shared/research/inference-servers.md §2). Built once, then
 * each body gets fresh trace and span ids and times ending just before now, so the ledger sees
 * distinct keys at the rate it would in production and windows are current.
 */
export class VllmLoad {
  private readonly template: Buffer;
  private readonly idOffsets: Array<[number, number]> = [];
  private readonly timeOffsets: number[] = [];
  private readonly baseNs: bigint;

  constructor(spans: number, resource: Record<string, string>) {
    this.baseNs = BigInt(Date.now()) * 1_000_000n;
    const list = [];
    const ids: Buffer[] = [];
    for (let i = 0; i < spans; i++) {
      const traceId = randomBytes(16);
      const spanId = randomBytes(8);
      ids.push(traceId, spanId);
      const prompt = 200 + ((i * 7919) % 3800);
      const ttft = 0.05 + (i % 10) / 100;
      const attrs: Record<string, { intValue: number } | { doubleValue: number } | { stringValue: string }> = {
        'gen_ai.request.id': { stringValue: `chatcmpl-${randomBytes(16).toString('hex')}` },
        'gen_ai.response.model': { stringValue: 'llama' },
        'gen_ai.request.top_p': { doubleValue: 0.95 },
        'gen_ai.request.max_tokens': { intValue: 512 },
        'gen_ai.request.temperature': { doubleValue: 0.7 },
        'gen_ai.request.n': { intValue: 1 },
        'gen_ai.usage.num_sequences': { intValue: 1 },
        'gen_ai.usage.prompt_tokens': { intValue: prompt },
        'gen_ai.usage.completion_tokens': { intValue: 64 + (i % 448) },
        'gen_ai.latency.time_in_queue': { doubleValue: 0.002 + (i % 5) / 1000 },
        'gen_ai.latency.time_to_first_token': { doubleValue: ttft },
        'gen_ai.latency.time_in_model_prefill': { doubleValue: ttft - 0.01 },
        'gen_ai.latency.time_in_model_decode': { doubleValue: 1.2 },
        'gen_ai.latency.time_in_model_inference': { doubleValue: ttft + 1.19 },
        'gen_ai.latency.e2e': { doubleValue: ttft + 1.21 },
      };
      list.push({
        traceId,
        spanId,
        parentSpanId: randomBytes(8),
        name: 'llm_request',
        kind: 2,
        // distinct per span, so each time field can be found in the encoding below
        startTimeUnixNano: String(this.baseNs - 2_000_000_000n + BigInt(i * 1000)),
        endTimeUnixNano: String(this.baseNs - 500_000_000n + BigInt(i * 1000)),
        attributes: Object.entries(attrs).map(([key, value]) => ({ key, value })),
      });
    }
    const req = ExportTraceServiceRequest.fromObject({
      resourceSpans: [
        {
          resource: {
            attributes: Object.entries({ 'service.name': 'vllm', ...resource }).map(([key, v]) => ({
              key,
              value: { stringValue: v },
            })),
          },
          scopeSpans: [{ scope: { name: 'vllm.llm_engine' }, spans: list }],
        },
      ],
    });
    this.template = Buffer.from(encodeRequest(req as unknown as OtlpTraceRequest));
    const find = (needle: Buffer) => {
      const at = this.template.indexOf(needle);
      if (at < 0) throw new Error('template: field not found');
      return at;
    };
    for (const id of ids) this.idOffsets.push([find(id), id.length]);
    const le = Buffer.alloc(8);
    for (let i = 0; i < spans; i++) {
      for (const t of [this.baseNs - 2_000_000_000n, this.baseNs - 500_000_000n]) {
        le.writeBigUInt64LE(t + BigInt(i * 1000));
        this.timeOffsets.push(find(le));
      }
    }
  }

  /** The span ids of a body from next(), hex, in wire order. */
  spanIds(body: Uint8Array): string[] {
    const out: string[] = [];
    for (let i = 1; i < this.idOffsets.length; i += 2) {
      const [at, len] = this.idOffsets[i]!;
      out.push(Buffer.from(body.subarray(at, at + len)).toString('hex'));
    }
    return out;
  }

  /** A body with fresh ids and times: the spans ended 0.5 s ago and took 1.5 s. */
  next(): Buffer<ArrayBuffer> {
    const body = Buffer.from(this.template) as Buffer<ArrayBuffer>;
    for (const [at, len] of this.idOffsets) randomFillSync(body, at, len);
    const delta = BigInt(Date.now()) * 1_000_000n - this.baseNs;
    for (const at of this.timeOffsets) body.writeBigUInt64LE(body.readBigUInt64LE(at) + delta, at);
    return body;
  }
}
