// A DDSketch (Masson et al., VLDB 2019) with 1% relative accuracy: log-spaced buckets, so sketches of
// hours merge into days by adding counts, and a p95 over 30 days never needs the raw samples.
// Values below ZERO_BELOW (idle KV cache, empty queue) share one bucket and read back as 0.

const ALPHA = 0.01;
const GAMMA = (1 + ALPHA) / (1 - ALPHA);
const LOG_GAMMA = Math.log(GAMMA);
const ZERO_BELOW = 1e-6;
const ZERO = -0x80000000;

/** Bucket index → count. Stored as a flat JSON array [index, count, …]: parses far faster than an object. */
export type Sketch = Map<number, number>;

export function newSketch(): Sketch {
  return new Map();
}

export function addToSketch(s: Sketch, value: number, count = 1): void {
  const key = value < ZERO_BELOW ? ZERO : Math.ceil(Math.log(value) / LOG_GAMMA);
  s.set(key, (s.get(key) ?? 0) + count);
}

export function mergeSketch(into: Sketch, from: Sketch): void {
  for (const [k, n] of from) into.set(k, (into.get(k) ?? 0) + n);
}

export function sketchCount(s: Sketch): number {
  let n = 0;
  for (const c of s.values()) n += c;
  return n;
}

/** The q-quantile (nearest rank), within 1% of the true value; undefined for an empty sketch. */
export function sketchQuantile(s: Sketch, q: number): number | undefined {
  const total = sketchCount(s);
  if (total === 0) return undefined;
  const rank = Math.max(1, Math.ceil(q * total));
  const buckets = [...s.entries()].sort((a, b) => a[0] - b[0]);
  let seen = 0;
  for (const [idx, n] of buckets) {
    seen += n;
    if (seen >= rank) return idx === ZERO ? 0 : (2 * GAMMA ** idx) / (GAMMA + 1);
  }
  return undefined;
}

export function encodeSketch(s: Sketch): string | null {
  if (!s.size) return null;
  const flat: number[] = [];
  for (const [k, n] of s) flat.push(k, n);
  return JSON.stringify(flat);
}

export function decodeSketch(text: string | null | undefined, into: Sketch = newSketch()): Sketch {
  if (!text) return into;
  const flat = JSON.parse(text) as number[];
  for (let i = 0; i < flat.length; i += 2) into.set(flat[i]!, (into.get(flat[i]!) ?? 0) + flat[i + 1]!);
  return into;
}
