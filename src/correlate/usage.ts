import type { KeyValue } from '../otlp/schema.ts';
import { anyValueToJs } from '../otlp/decode.ts';

// Per-request token counts, by the names instrumentations actually use (first name present wins).
const PROMPT_KEYS = ['gen_ai.usage.input_tokens', 'gen_ai.usage.prompt_tokens', 'llm.token_count.prompt'];
const COMPLETION_KEYS = ['gen_ai.usage.output_tokens', 'gen_ai.usage.completion_tokens', 'llm.token_count.completion'];
// semconv ≥1.40; OpenLLMetry legacy; OpenInference; SGLang's root span.
export const CACHED_KEYS = [
  'gen_ai.usage.cache_read.input_tokens',
  'gen_ai.usage.cache_read_input_tokens',
  'llm.token_count.prompt_details.cache_read',
  'gen_ai.usage.cached_tokens',
];
const LATENCY_KEYS = {
  ttft: 'gen_ai.latency.time_to_first_token',
  e2e: 'gen_ai.latency.e2e',
  queue: 'gen_ai.latency.time_in_queue',
  prefill: 'gen_ai.latency.time_in_model_prefill',
  decode: 'gen_ai.latency.time_in_model_decode',
  inference: 'gen_ai.latency.time_in_model_inference',
} as const;

export interface RequestUsage {
  promptTokens?: number;
  completionTokens?: number;
  cachedTokens?: number;
  latency: Partial<Record<keyof typeof LATENCY_KEYS, number>>;
  requestModel?: string;
}

type Field = 'promptTokens' | 'completionTokens' | 'cachedTokens' | keyof typeof LATENCY_KEYS | 'requestModel';
/** Each wanted key: which field it fills and its rank among that field's names (lower wins). */
const WANTED = new Map<string, readonly [Field, number]>();
const want = (keys: readonly string[], field: Field) => keys.forEach((k, rank) => WANTED.set(k, [field, rank]));
want(PROMPT_KEYS, 'promptTokens');
want(COMPLETION_KEYS, 'completionTokens');
want(CACHED_KEYS, 'cachedTokens');
for (const [field, key] of Object.entries(LATENCY_KEYS) as Array<[keyof typeof LATENCY_KEYS, string]>)
  want([key], field);
want(['gen_ai.response.model', 'gen_ai.request.model'], 'requestModel');
const CACHED = new Set(CACHED_KEYS);

function num(v: unknown): number | undefined {
  if (typeof v === 'number' && Number.isFinite(v)) return v;
  if (typeof v === 'string' && v.trim() !== '' && Number.isFinite(Number(v))) return Number(v);
  return undefined;
}

/** One pass over a span's attributes (this runs for every request span received). `keep` may intern the model name. */
export function readUsage(attributes: readonly KeyValue[], keep: (s: string) => string = (s) => s): RequestUsage {
  const usage: RequestUsage = { latency: {} };
  let ranks: Partial<Record<Field, number>> | undefined;
  for (const kv of attributes) {
    const w = WANTED.get(kv.key);
    if (!w) continue;
    const [field, rank] = w;
    if ((ranks?.[field] ?? Infinity) <= rank) continue;
    const raw = anyValueToJs(kv.value);
    if (field === 'requestModel') {
      if (typeof raw !== 'string' || !raw) continue;
      usage.requestModel = keep(raw);
    } else {
      const v = num(raw);
      if (v === undefined) continue;
      if (field === 'promptTokens' || field === 'completionTokens' || field === 'cachedTokens') usage[field] = v;
      else usage.latency[field] = v;
    }
    (ranks ??= {})[field] = rank;
  }
  return usage;
}

export function hasCachedCount(attributes: readonly KeyValue[]): boolean {
  for (const kv of attributes) if (CACHED.has(kv.key)) return true;
  return false;
}
