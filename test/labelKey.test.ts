// labelKey names a series in counter_state: a faster build must give the same string for every label set,
// or a restart after an upgrade would see every counter as new. The reference is the first form, kept here.
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { labelKey } from '../src/scrape/labelKey.ts';

const reference = (labels: Record<string, string>, omit?: string) =>
  Object.keys(labels)
    .filter((k) => k !== omit)
    .sort()
    .map((k) => `${k}=${JSON.stringify(labels[k])}`)
    .join(',');

it('labelKey gives the stored form for 100,000 label sets with quotes, escapes, controls and surrogates', () => {
  const chars = ['a', 'Z', '"', '\\', '\n', '\u0000', '\u001f', ' ', 'é', '\u2028', '😀', '\ud800', '\udfff', '{', ','];
  const names = ['le', 'model_name', 'engine', 'a', 'b_', 'source'];
  let seed = 1;
  const rnd = () => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed / 2147483648;
  };
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(rnd() * xs.length)]!;
  for (let i = 0; i < 100_000; i++) {
    const labels: Record<string, string> = {};
    for (let j = Math.floor(rnd() * 5); j > 0; j--) {
      let v = '';
      for (let c = Math.floor(rnd() * 6); c > 0; c--) v += pick(chars);
      labels[pick(names)] = v;
    }
    const omit = rnd() < 0.3 ? 'le' : undefined;
    assert.equal(labelKey(labels, omit), reference(labels, omit), JSON.stringify(labels));
  }
  assert.equal(labelKey({ model_name: 'm', engine: '0', le: '+Inf' }, 'le'), 'engine="0",model_name="m"');
  assert.equal(labelKey({}), '');
});
