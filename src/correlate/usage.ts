import type { KeyValue } from '../pipeline/otlp/schema.ts';
import { anyValueToJs } from '../pipeline/otlp/decode.ts';

// Per-request token counts, by the names instrumentations actually use (first name present wins).
const PROMPT_KEYS = ['gen_ai.usage.input_tokens', 'gen_ai.usage.prompt_tokens', 'llm.token_count.prompt'];
const COMPLETION_KEYS = ['gen_ai.usage.output_tokens', 'gen_ai.usage.completion_tokens', 'llm.token_count.completion'];
// semconv ≥1.40; OpenLLMetry legacy; OpenInference; SGLang's root span.
export const CACHED_KEYS = ['gen_ai.usage.cache_read.input_tokens', 'gen_ai.usage.cache_read_input_tokens', 'llm.token_count.prompt_details.cache_read', 'gen_ai.usage.cached_tokens'];
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

const WANTED = new Set<string>([...PROMPT_KEYS, ...COMPLETION_KEYS, ...CACHED_KEYS, ...Object.values(LATENCY_KEYS), 'gen_ai.request.model', 'gen_ai.response.model']);

function num(v: unknown): number | undefined {
  if (typeof v === 'number' && Number.isFinite(v)) return v;
  if (typeof v === 'string' && v.trim() !== '' && Number.isFinite(Number(v))) return Number(v);
  return undefined;
}

function first(found: Map<string, unknown>, keys: readonly string[]): number | undefined {
  for (const k of keys) {
    const v = num(found.get(k));
    if (v !== undefined) return v;
  }
  return undefined;
}

export function readUsage(attributes: readonly KeyValue[]): RequestUsage {
  const found = new Map<string, unknown>();
  for (const kv of attributes) if (WANTED.has(kv.key)) found.set(kv.key, anyValueToJs(kv.value));
  const latency: RequestUsage['latency'] = {};
  for (const [name, key] of Object.entries(LATENCY_KEYS) as Array<[keyof typeof LATENCY_KEYS, string]>) {
    const v = num(found.get(key));
    if (v !== undefined) latency[name] = v;
  }
  const model = found.get('gen_ai.response.model') ?? found.get('gen_ai.request.model');
  return {
    promptTokens: first(found, PROMPT_KEYS),
    completionTokens: first(found, COMPLETION_KEYS),
    cachedTokens: first(found, CACHED_KEYS),
    latency,
    requestModel: typeof model === 'string' && model ? model : undefined,
  };
}

export function hasCachedCount(attributes: readonly KeyValue[]): boolean {
  return attributes.some((kv) => CACHED_KEYS.includes(kv.key));
}
