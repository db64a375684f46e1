// Rewrites a store's sketches in the JSON form stores held before 2026-12 (a flat array [index, count, …],
// the zero bucket under -2^31), to prove that such stores still read to the same figures.
import { openDatabase } from '../../src/store/openDatabase.ts';
import { decodeSketch } from '../../src/store/sketch.ts';

export function toLegacySketches(path: string): void {
  const db = openDatabase(path);
  db.function('to_json_sketch', (stored: string | null) => {
    if (stored === null) return null;
    const s = decodeSketch(stored);
    const flat: number[] = s.zero ? [-0x80000000, s.zero] : [];
    s.counts.forEach((n, i) => n && flat.push(s.lo + i, n));
    return JSON.stringify(flat);
  });
  const cols = ['ttft', 'queue', 'prefill', 'e2e', 'prefill_per_1k'].map((c) => `${c}_sketch`);
  db.exec(`UPDATE latency_rollup SET ${cols.map((c) => `${c} = to_json_sketch(${c})`).join(', ')}`);
  db.exec('UPDATE fleet_rollup SET kv_sketch = to_json_sketch(kv_sketch), queue_sketch = to_json_sketch(queue_sketch)');
  db.close();
}
