import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseExposition } from '../src/scrape/parseExposition.ts';
import { ALL } from '../src/scrape/splitExposition.ts';
import { normalizeBody } from '../src/scrape/scrapeTarget.ts';
import { makeTarget } from '../src/scrape/target.ts';
import { aggregateSignals } from '../src/scrape/aggregateSignals.ts';
import { demoModelState, renderVllmExposition } from '../src/demo/vllmExposition.ts';

const target = makeTarget('http://127.0.0.1:8000/metrics', {}, 'auto', {}, 'test');
const signalsOf = (body: string) => {
  const r = normalizeBody(target, body);
  return {
    r,
    byKey: new Map(aggregateSignals(r.signals, []).map((a) => [`${a.model}|${a.engine}|${a.signal}`, a.value])),
  };
};

describe('lexSampleLine: what the held-out run found', () => {
  const one = (line: string) => parseExposition(line + '\n', ALL);
  it('reads blanks after a comma, tabs, and leading blanks (all valid text format)', () => {
    for (const line of ['a{x="1", y="2"} 1', 'a{x="1",\ty="2"} 1', '  a{x="1",y="2"} 1', '\ta{x="1",y="2"} 1']) {
      const p = one(line);
      assert.equal(p.parseErrors, 0, line);
      assert.deepEqual(p.samples, [{ name: 'a', labels: { x: '1', y: '2' }, value: 1, timestamp: undefined }], line);
    }
    // On the real path: a vLLM line written that way keeps its signal.
    const { byKey } = signalsOf('  vllm:num_requests_waiting{engine="0", model_name="m"} 4\n');
    assert.equal(byKey.get('m||requests_waiting'), 4);
  });
  it('refuses hex, binary and octal numbers, trailing words, and non-integer text-format timestamps', () => {
    for (const line of [
      'a 0x10',
      'a 0b1',
      'a 0o1',
      'a 0X1',
      'a 0x1p-3',
      'a 1_000',
      'a 12 extra garbage',
      'a 1 z',
      'a 3.14 2.72',
      'a 1 2 3',
      'a true',
    ]) {
      const p = one(line);
      assert.equal(p.samples.length, 0, line);
      assert.equal(p.parseErrors, 1, line);
    }
  });
  it('refuses bad label sets instead of reading them as data', () => {
    for (const line of [
      'a{a="1",,b="2"} 1',
      'a{="1"} 1',
      'a{b} 1',
      'a{b=} 1',
      'a{b="1",b="2"} 1',
      'a{b="1"c="2"} 1',
      "a{b='1'} 1",
      'a{,b="1"} 1',
      'a{b="1} 1',
    ]) {
      const p = one(line);
      assert.equal(p.samples.length, 0, line);
      assert.equal(p.parseErrors, 1, line);
    }
    const { r, byKey } = signalsOf(
      'vllm:num_requests_running{engine="0",,model_name="m"} 3\nvllm:num_requests_running{engine="1",model_name="m"} ' +
        '2\n',
    );
    assert.equal(byKey.get('m||requests_running'), 2);
    assert.equal(byKey.has('unknown||requests_running'), false, 'no sample lands on model "unknown"');
    assert.equal(r.parseErrors, 1);
  });
  it("accepts every spelling of Inf and NaN that Go's ParseFloat accepts", () => {
    for (const [text, value] of [
      ['inf', Infinity],
      ['INF', Infinity],
      ['+inf', Infinity],
      ['-Inf', -Infinity],
      ['Infinity', Infinity],
      ['-infinity', -Infinity],
      ['nan', NaN],
      ['NAN', NaN],
      ['NaN', NaN],
    ] as const) {
      const p = one(`a ${text}`);
      assert.equal(p.parseErrors, 0, text);
      assert.ok(Object.is(p.samples[0]!.value, value), text);
    }
    for (const text of ['+nan', 'infin', 'Inf1', 'in']) assert.equal(one(`a ${text}`).parseErrors, 1, text);
  });
  it('keeps the newest sample of a series written twice in one body', () => {
    const p = parseExposition(
      'a{x="1"} 1 2000\na{x="1"} 2 1000\na{x="2"} 5 1000\na{x="2"} 6\na{x="3"} 7 5\na{x="3"} 8 5\n',
      ALL,
    );
    assert.deepEqual(
      p.samples.map((s) => [s.labels.x, s.value]),
      [
        ['1', 1],
        ['2', 6],
        ['3', 8],
      ],
    );
    assert.equal(p.duplicateSamples, 3);
    assert.equal(p.parseErrors, 0);
  });
});

describe('parseExposition survives what real servers emit', () => {
  it('refuses a body over scrape.sample_limit before parsing it; unwanted families do not count', () => {
    const lines = [
      '# TYPE vllm:num_requests_running gauge',
      ...Array.from({ length: 101 }, (_, i) => `vllm:num_requests_running{engine="${i}",model_name="m"} 1`),
    ];
    const noise = Array.from({ length: 5000 }, (_, i) => `python_gc_objects_collected_total{generation="${i}"} 1`);
    assert.throws(
      () =>
        parseExposition([...lines, ...noise].join('\n') + '\n', new Set(['vllm:num_requests_running']), undefined, 100),
      /101 samples of the metrics cachelens reads exceed scrape\.sample_limit \(100\)/,
    );
    assert.equal(
      parseExposition(
        [...lines.slice(0, 101), ...noise].join('\n') + '\n',
        new Set(['vllm:num_requests_running']),
        undefined,
        100,
      ).samples.length,
      100,
    );
  });
  it('reads counters next to their _created companion series', () => {
    const { r, byKey } = signalsOf(renderVllmExposition([demoModelState('m')], { created: true }));
    assert.equal(r.profile, 'vllm');
    assert.equal(byKey.get('m||prompt_tokens'), 1_234_567);
    assert.equal(r.signals.find((s) => s.signal === 'prompt_tokens')?.createdSeconds, 1_764_000_000.123);
  });

  it('gives the same signals for both histogram sample orders', () => {
    const bodyA = renderVllmExposition([demoModelState('m')], { multiprocessOrder: false });
    const bodyB = renderVllmExposition([demoModelState('m')], { multiprocessOrder: true, created: false });
    // The orders really differ: multiprocess mode writes a histogram's _sum and _count before its buckets.
    const first = (body: string) => body.split('\n').find((l) => l.startsWith('vllm:time_to_first_token_seconds_'))!;
    assert.match(first(bodyA), /_bucket/);
    assert.doesNotMatch(first(bodyB), /_bucket/);
    const a = signalsOf(bodyA);
    const b = signalsOf(bodyB);
    assert.equal(a.r.parseErrors + b.r.parseErrors, 0);
    assert.ok(a.byKey.size >= 10, `${a.byKey.size} signals`);
    assert.deepEqual([...a.byKey.entries()].sort(), [...b.byKey.entries()].sort());
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
    const { byKey } = signalsOf(
      'vllm:kv_cache_usage_perc{model_name="m",engine="0"} 0.5\nvllm:prompt_tokens_total{model_name="m",engine="0"} ' +
        'NaN\nvllm:prompt_tokens_total{model_name="m",engine="1"} 7\n',
    );
    assert.equal(byKey.get('m||prompt_tokens'), 7);
  });

  it('keeps label values holding commas, slashes and escaped quotes', () => {
    const { byKey } = signalsOf(
      'vllm:kv_cache_usage_perc{engine="0",model_name="org/model,v2 \\"beta\\" \\\\ x"} 0.25\n',
    );
    assert.equal(byKey.get('org/model,v2 "beta" \\ x||kv_cache_usage'), 0.25);
  });

  it('drops a last line cut mid-value and counts it, keeping the rest', () => {
    const { r, byKey } = signalsOf(
      'vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.25\nvllm:prompt_tokens_total{engine="0",model_name="m"} ' +
        '12',
    );
    assert.equal(byKey.get('m||kv_cache_usage'), 0.25);
    assert.equal(byKey.has('m||prompt_tokens'), false, '12 may be the start of 1234: not trusted');
    assert.equal(r.parseErrors, 1);
    assert.match(r.error!, /ends mid-line/);
  });

  it('a broken family does not sink the rest of the scrape', () => {
    const body =
      [
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
    // Only engine 1's line counts: "12 extra garbage" is an error, not 12.
    assert.equal(byKey.get('m||prompt_tokens'), 30);
    // $ curl…, 12 extra garbage, model_name="m} 5, not-a-number, ...
    assert.equal(r.parseErrors, 5, r.error);
    assert.equal(byKey.has('m||generation_tokens'), false);
  });
});

describe('cachelens scrape --once --format table: values', () => {
  it('prints 100000.4 as 100000.4, not 1', async () => {
    const { formatValue } = await import('../src/cli/scrapeOnce.ts');
    assert.equal(formatValue(100000.4), '100000.4');
    assert.equal(formatValue(1_234_567.25), '1234567.3');
    assert.equal(formatValue(0.123456789), '0.123457');
    assert.equal(formatValue(0.5), '0.5');
    assert.equal(formatValue(12), '12');
    assert.equal(formatValue(0.00001234), '0.0000123400');
  });
});
