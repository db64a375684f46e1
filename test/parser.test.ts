import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { parseExposition } from '../src/scrape/parseExposition.ts';
import { normalizeBody } from '../src/scrape/scrapeTarget.ts';
import { makeTarget } from '../src/scrape/target.ts';
import { aggregateSignals } from '../src/scrape/aggregateSignals.ts';
import { demoModelState, renderVllmExposition } from '../src/demo/vllmExposition.ts';

const target = makeTarget('http://127.0.0.1:8000/metrics', {}, 'auto', {}, 'test');
const signalsOf = (body: string) => {
  const r = normalizeBody(target, body);
  return { r, byKey: new Map(aggregateSignals(r.signals, []).map((a) => [`${a.model}|${a.engine}|${a.signal}`, a.value])) };
};

describe('parse-prometheus-text-format 1.1.1 on whole bodies (why it is fed one sample name at a time)', () => {
  it('collapses a histogram with several label sets into one unlabelled series without _sum/_count', () => {
    const body = renderVllmExposition([demoModelState('a'), demoModelState('b')]);
    const fams = parsePrometheusTextFormat(body) as Array<{ name: string; metrics: Array<{ labels?: object; sum?: string; count?: string }> }>;
    const ttft = fams.find((f) => f.name === 'vllm:time_to_first_token_seconds')!;
    assert.equal(ttft.metrics.length, 1);
    assert.equal(ttft.metrics[0]!.labels, undefined);
    assert.equal(ttft.metrics[0]!.count, undefined);
  });
  it('throws for a whole body on one line cut mid-way', () => {
    assert.throws(() => parsePrometheusTextFormat('vllm:num_requests_running{model_name="m"} 1\n# HELP vllm:p'));
  });
});

describe('parseExposition survives what real servers emit', () => {
  it('refuses a body over scrape.sample_limit before parsing it; unwanted families do not count', () => {
    const lines = ['# TYPE vllm:num_requests_running gauge', ...Array.from({ length: 101 }, (_, i) => `vllm:num_requests_running{engine="${i}",model_name="m"} 1`)];
    const noise = Array.from({ length: 5000 }, (_, i) => `python_gc_objects_collected_total{generation="${i}"} 1`);
    assert.throws(() => parseExposition([...lines, ...noise].join('\n') + '\n', new Set(['vllm:num_requests_running']), undefined, 100), /101 samples of the metrics cachelens reads exceed scrape\.sample_limit \(100\)/);
    assert.equal(parseExposition([...lines.slice(0, 101), ...noise].join('\n') + '\n', new Set(['vllm:num_requests_running']), undefined, 100).samples.length, 100);
  });
  it('reads counters next to their _created companion series', () => {
    const { r, byKey } = signalsOf(renderVllmExposition([demoModelState('m')], { created: true }));
    assert.equal(r.profile, 'vllm');
    assert.equal(byKey.get('m||prompt_tokens'), 1_234_567);
    assert.equal(r.signals.find((s) => s.signal === 'prompt_tokens')?.createdSeconds, 1_764_000_000.123);
  });

  it('gives the same signals for both histogram sample orders', () => {
    const a = signalsOf(renderVllmExposition([demoModelState('m')], { multiprocessOrder: false })).byKey;
    const b = signalsOf(renderVllmExposition([demoModelState('m')], { multiprocessOrder: true, created: false })).byKey;
    assert.deepEqual([...a.entries()].sort(), [...b.entries()].sort());
  });

  it('reads OpenMetrics bodies (families without _total, # EOF, exemplars)', () => {
    const body = [
      '# TYPE vllm:prompt_tokens counter',
      '# HELP vllm:prompt_tokens Number of prefill tokens processed.',
      'vllm:prompt_tokens_total{engine="0",model_name="m"} 120.0 # {trace_id="4bf92f3577b34da6"} 1.0 1700000000.0',
      'vllm:prompt_tokens_created{engine="0",model_name="m"} 1.7e+09',
      '# TYPE vllm:kv_cache_usage_perc gauge',
      'vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.5',
      '# EOF',
      'vllm:generation_tokens_total{engine="0",model_name="m"} 999',
    ].join('\n');
    const { r, byKey } = signalsOf(body);
    assert.equal(r.parseErrors, 0);
    assert.equal(byKey.get('m||prompt_tokens'), 120);
    assert.equal(byKey.get('m||kv_cache_usage'), 0.5);
    assert.equal(byKey.has('m||generation_tokens'), false, 'nothing after # EOF counts');
  });

  it('keeps NaN out of sums and parses ±Inf', () => {
    const p = parseExposition('a NaN\nb +Inf\nc -Inf\n', new Set(['a', 'b', 'c']));
    assert.ok(Number.isNaN(p.samples.find((s) => s.name === 'a')!.value));
    assert.equal(p.samples.find((s) => s.name === 'b')!.value, Infinity);
    assert.equal(p.samples.find((s) => s.name === 'c')!.value, -Infinity);
    const { byKey } = signalsOf('vllm:kv_cache_usage_perc{model_name="m",engine="0"} 0.5\nvllm:prompt_tokens_total{model_name="m",engine="0"} NaN\nvllm:prompt_tokens_total{model_name="m",engine="1"} 7\n');
    assert.equal(byKey.get('m||prompt_tokens'), 7);
  });

  it('keeps label values holding commas, slashes and escaped quotes', () => {
    const { byKey } = signalsOf('vllm:kv_cache_usage_perc{engine="0",model_name="org/model,v2 \\"beta\\" \\\\ x"} 0.25\n');
    assert.equal(byKey.get('org/model,v2 "beta" \\ x||kv_cache_usage'), 0.25);
  });

  it('drops a last line cut mid-value and counts it, keeping the rest', () => {
    const { r, byKey } = signalsOf('vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.25\nvllm:prompt_tokens_total{engine="0",model_name="m"} 12');
    assert.equal(byKey.get('m||kv_cache_usage'), 0.25);
    assert.equal(byKey.has('m||prompt_tokens'), false, '12 may be the start of 1234: not trusted');
    assert.equal(r.parseErrors, 1);
    assert.match(r.error!, /ends mid-line/);
  });

  it('a broken family does not sink the rest of the scrape', () => {
    const body = [
      '$ curl http://localhost:8000/metrics',
      'vllm:num_requests_running{engine="0",model_name="m"} 3',
      'vllm:prompt_tokens_total{engine="0",model_name="m"} 12 extra garbage here',
      'vllm:prompt_tokens_total{engine="1",model_name="m"} 30',
      'vllm:generation_tokens_total{engine="0",model_name="m} 5',
      'vllm:kv_cache_usage_perc{engine="0",model_name="m"} not-a-number',
      'vllm:kv_cache_usage_perc{engine="1",model_name="m"} 0.5',
      '...',
    ].join('\n') + '\n';
    const { r, byKey } = signalsOf(body);
    assert.equal(byKey.get('m||requests_running'), 3);
    assert.equal(byKey.get('m||kv_cache_usage'), 0.5);
    assert.ok(r.parseErrors >= 3, `parseErrors=${r.parseErrors}`);
    assert.equal(byKey.has('m||generation_tokens'), false);
  });
});
