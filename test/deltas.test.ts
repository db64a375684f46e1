import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { aggregateSignals } from '../src/scrape/aggregateSignals.ts';
import { computeCounterDeltas, type CounterState } from '../src/scrape/counterDeltas.ts';
import type { SignalSample } from '../src/scrape/types.ts';

const c = (
  value: number,
  engine = '0',
  createdSeconds?: number,
  signal: SignalSample['signal'] = 'prompt_tokens',
): SignalSample => ({
  signal,
  kind: 'counter',
  unit: 'tokens',
  model: 'm',
  engine,
  seriesKey: `vllm:${signal}_total{engine="${engine}",model_name="m"}`,
  value,
  createdSeconds,
});
const g = (value: number, engine: string, signal: SignalSample['signal'] = 'kv_cache_usage'): SignalSample => ({
  signal,
  kind: 'gauge',
  unit: 'ratio',
  model: 'm',
  engine,
  seriesKey: `${signal}{engine="${engine}"}`,
  value,
});
const state = (samples: SignalSample[], tsMs: number): Map<string, CounterState> =>
  new Map(samples.map((s) => [s.seriesKey, { value: s.value, createdSeconds: s.createdSeconds, tsMs }]));

describe('computeCounterDeltas', () => {
  it('the first scrape of a series only sets its baseline', () => {
    const r = computeCounterDeltas([c(100)], new Map(), 1000);
    assert.equal(r.deltas.length, 0);
    assert.equal(r.baselines, 1);
    assert.equal(r.nextState.get(c(100).seriesKey)?.value, 100);
  });
  it('the delta is the difference between consecutive scrapes, with its interval', () => {
    const r = computeCounterDeltas([c(130)], state([c(100)], 1000), 6000);
    assert.deepEqual(
      r.deltas.map((d) => [d.delta, d.intervalMs, d.reset]),
      [[30, 5000, false]],
    );
  });
  it('a counter that went down was reset: the delta is the new value', () => {
    const r = computeCounterDeltas([c(7)], state([c(100)], 1000), 6000);
    assert.deepEqual(
      r.deltas.map((d) => [d.delta, d.reset]),
      [[7, true]],
    );
  });
  it('a changed _created marks a reset even when the counter climbed past the old value', () => {
    const r = computeCounterDeltas([c(150, '0', 2000)], state([c(100, '0', 1000)], 1000), 6000);
    assert.deepEqual(
      r.deltas.map((d) => [d.delta, d.reset]),
      [[150, true]],
    );
  });
  it('missed scrapes give one delta over the longer interval', () => {
    const r = computeCounterDeltas([c(190)], state([c(100)], 1000), 21000);
    assert.deepEqual(
      r.deltas.map((d) => [d.delta, d.intervalMs]),
      [[90, 20000]],
    );
  });
  it('NaN never enters a delta and keeps the previous state', () => {
    const r = computeCounterDeltas([c(NaN)], state([c(100)], 1000), 6000);
    assert.equal(r.deltas.length, 0);
    assert.equal(r.nextState.size, 0);
  });
  it('a series born after the previous scrape (per _created) counts its whole value', () => {
    const r = computeCounterDeltas([c(4, '0', 5.5)], new Map(), 6000, 5000);
    assert.deepEqual(
      r.deltas.map((d) => [d.delta, d.intervalMs]),
      [[4, 1000]],
    );
    const old = computeCounterDeltas([c(4, '0', 4.0)], new Map(), 6000, 5000);
    assert.equal(old.deltas.length, 0, 'created before the last scrape: baseline');
  });
});

describe('aggregateSignals over engines', () => {
  it('sums counter deltas per series, so a reset on one engine is not a drop of the total', () => {
    const prev = state([c(100, '0'), c(1000, '1')], 1000);
    const now = [c(110, '0'), c(5, '1')];
    const { deltas } = computeCounterDeltas(now, prev, 6000);
    const agg = aggregateSignals(now, deltas);
    const total = agg.find((a) => a.engine === '')!;
    assert.deepEqual([total.value, total.delta, total.resets], [115, 15, 1]);
    assert.deepEqual(
      agg
        .filter((a) => a.engine !== '')
        .map((a) => [a.engine, a.delta])
        .sort(),
      [
        ['0', 10],
        ['1', 5],
      ],
    );
  });
  it('kv_cache_usage is the mean over engines, queue depth the sum; per-engine rows are kept', () => {
    const agg = aggregateSignals(
      [g(0.2, '0'), g(0.6, '1'), g(3, '0', 'requests_waiting'), g(4, '1', 'requests_waiting')],
      [],
    );
    const get = (signal: string, engine: string) => agg.find((a) => a.signal === signal && a.engine === engine)?.value;
    assert.ok(Math.abs(get('kv_cache_usage', '')! - 0.4) < 1e-12);
    assert.equal(get('requests_waiting', ''), 7);
    assert.equal(get('kv_cache_usage', '1'), 0.6);
  });
  it('a single-engine model gets no duplicate per-engine rows', () => {
    const agg = aggregateSignals([g(0.2, '0')], []);
    assert.deepEqual(
      agg.map((a) => a.engine),
      [''],
    );
  });
});
