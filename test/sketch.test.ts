// The DDSketch behind every percentile in the reports: 1 % relative accuracy, merges that equal adding
// every value to one sketch, and a stored form that reads back exactly, old JSON rows included.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  addToSketch,
  decodeSketch,
  encodeSketch,
  mergeSketch,
  newSketch,
  type Sketch,
  sketchCount,
  sketchQuantile,
} from '../src/store/sketch.ts';

/** A fixed pseudo-random sequence (mulberry32): the same values on every run. */
function random(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function exactQuantile(sorted: number[], q: number): number {
  return sorted[Math.max(1, Math.ceil(q * sorted.length)) - 1]!;
}

function sketchOf(values: number[]): Sketch {
  const s = newSketch();
  for (const v of values) addToSketch(s, v);
  return s;
}

const same = (a: Sketch, b: Sketch) => {
  assert.equal(sketchCount(a), sketchCount(b));
  for (const q of [0, 0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 1]) assert.equal(sketchQuantile(a, q), sketchQuantile(b, q));
};

describe('sketch', () => {
  it('gives every percentile within 1 % of the exact one, over six decades and zeros', () => {
    const r = random(7);
    // Log-uniform from 1 ms to 1,000 s, and a tenth exact zeros (an empty queue).
    const values = Array.from({ length: 20_000 }, () => (r() < 0.1 ? 0 : 10 ** (r() * 6 - 3)));
    const s = sketchOf(values);
    const sorted = [...values].sort((a, b) => a - b);
    for (const q of [0.01, 0.05, 0.1, 0.11, 0.5, 0.9, 0.95, 0.99, 0.999, 1]) {
      const exact = exactQuantile(sorted, q);
      const got = sketchQuantile(s, q)!;
      if (exact === 0) assert.equal(got, 0, `q=${q}`);
      else assert.ok(Math.abs(got - exact) <= 0.01 * exact, `q=${q}: ${got} against ${exact}`);
    }
    assert.equal(sketchCount(s), 20_000);
    assert.equal(sketchQuantile(newSketch(), 0.5), undefined);
  });

  it('merges to the sketch of all the values, in any order and across far-apart ranges', () => {
    const r = random(11);
    const parts = [
      Array.from({ length: 500 }, () => 0.001 + r() * 0.01),
      Array.from({ length: 500 }, () => 100 + r() * 900),
      [0, 0, 1e-9],
      Array.from({ length: 500 }, () => 0.5 + r()),
    ];
    const all = sketchOf(parts.flat());
    const merged = newSketch();
    for (const p of parts.reverse()) mergeSketch(merged, sketchOf(p));
    same(merged, all);
    assert.equal(sketchQuantile(merged, 0.001), 0, 'values below 1e-6 read back as 0');
  });

  it('reads back its stored form exactly, counts past 2^31 included', () => {
    const r = random(3);
    const s = sketchOf(Array.from({ length: 3_000 }, () => (r() < 0.05 ? 0 : r() * 30)));
    addToSketch(s, 2.5, 3e9);
    addToSketch(s, 0, 5e9);
    const stored = encodeSketch(s)!;
    assert.ok(/^![0-o]+$/.test(stored), 'printable ASCII');
    same(decodeSketch(stored), s);
    // Decoding adds into the sketch given: two stored rows read into one are their merge.
    const twice = decodeSketch(stored, decodeSketch(stored));
    const merged = newSketch();
    mergeSketch(merged, s);
    mergeSketch(merged, s);
    same(twice, merged);
    assert.equal(encodeSketch(newSketch()), null);
    assert.equal(sketchCount(decodeSketch(null)), 0);
  });

  it('is several times smaller stored than the JSON form it replaces', () => {
    const r = random(5);
    const s = sketchOf(Array.from({ length: 5_000 }, () => 0.02 * Math.exp(r() * 3)));
    const flat: number[] = [];
    s.counts.forEach((n, i) => n && flat.push(s.lo + i, n));
    assert.ok(encodeSketch(s)!.length * 3 < JSON.stringify(flat).length);
  });

  it('reads the JSON form older stores hold, and merges it with binary rows', () => {
    // [index, count, …] with the zero bucket under -2^31, as written before the binary form.
    const legacy = JSON.stringify([-2147483648, 4, 35, 2, -12, 1, 0, 3]);
    const s = decodeSketch(legacy);
    assert.equal(sketchCount(s), 10);
    assert.equal(sketchQuantile(s, 0.4), 0);
    // Bucket 0 holds values in (1/γ, 1]: it reads back as 2/(γ+1), just under 1.
    assert.ok(Math.abs(sketchQuantile(s, 0.7)! - 0.99) < 0.001);
    // Bucket 35: (γ^34, γ^35], about 2.0.
    assert.ok(Math.abs(sketchQuantile(s, 1)! - 2.0) < 0.02);
    const mixed = decodeSketch(encodeSketch(s), decodeSketch(legacy));
    assert.equal(sketchCount(mixed), 20);
    assert.equal(sketchQuantile(mixed, 0.4), 0);
  });

  it('refuses a stored form it does not know, a bad digit and a truncated form', () => {
    assert.throws(() => decodeSketch('{"a":1}'), /unknown sketch encoding/);
    const stored = encodeSketch(sketchOf([1, 2, 3]))!;
    assert.throws(() => decodeSketch(`${stored.slice(0, 4)} ${stored.slice(5)}`), /bad sketch digit at 4/);
    assert.throws(() => decodeSketch(stored.slice(0, 3)), /truncated sketch/);
  });
});
