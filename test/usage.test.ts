import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { hasCachedCount, readUsage } from '../src/correlate/usage.ts';
import type { KeyValue } from '../src/otlp/schema.ts';

const kv = (key: string, value: KeyValue['value']): KeyValue => ({ key, value }) as KeyValue;
const int = (n: number) => ({ value: 'intValue', intValue: n }) as unknown as KeyValue['value'];
const str = (s: string) => ({ value: 'stringValue', stringValue: s }) as unknown as KeyValue['value'];
const dbl = (n: number) => ({ value: 'doubleValue', doubleValue: n }) as unknown as KeyValue['value'];

describe('usage attributes of a request span', () => {
  it('the semconv name wins over legacy and vendor names whatever the order; an unusable value gives way', () => {
    const u = readUsage([
      kv('llm.token_count.prompt', int(3)),
      kv('gen_ai.usage.prompt_tokens', int(2)),
      kv('gen_ai.usage.input_tokens', int(1)),
      kv('gen_ai.usage.output_tokens', str('n/a')),
      kv('gen_ai.usage.completion_tokens', str(' 40 ')),
      kv('gen_ai.usage.cached_tokens', int(7)),
      kv('gen_ai.usage.cache_read.input_tokens', dbl(Number.NaN)),
      kv('gen_ai.latency.time_to_first_token', dbl(0.25)),
      kv('gen_ai.latency.e2e', str('1.5')),
      kv('gen_ai.request.model', str('requested')),
      kv('gen_ai.response.model', str('served')),
      kv('unrelated', int(9)),
    ]);
    assert.deepEqual(u, {
      promptTokens: 1,
      completionTokens: 40,
      cachedTokens: 7,
      latency: { ttft: 0.25, e2e: 1.5 },
      requestModel: 'served',
    });
  });
  it('nothing known: no fields, an empty latency', () => {
    assert.deepEqual(readUsage([kv('gen_ai.request.model', str('')), kv('x', int(1))]), { latency: {} });
    assert.equal(hasCachedCount([kv('x', int(1))]), false);
    assert.equal(hasCachedCount([kv('llm.token_count.prompt_details.cache_read', int(1))]), true);
  });
});
