// A scrape body must not outlive its scrape. V8 makes a slice of 13 characters or more a view of its parent
// string, so a model name or series key cut from a body and kept in the counter state held that whole body
// (57 KB) until the next scrape: at 1,000 targets the young-generation GC copied those bodies (13 ms pauses)
// and RSS reached 330 MB. The check: after parsing, nothing but the kept lines may reach the body.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { it } from 'node:test';
import { setFlagsFromString, writeHeapSnapshot } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { demoModelState, renderVllmExposition } from '../src/demo/vllmExposition.ts';
import { normalizeBody } from '../src/scrape/scrapeTarget.ts';
import { makeTarget } from '../src/scrape/target.ts';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

it('the signals of a scrape keep no reference to its body', () => {
  const target = makeTarget('http://10.0.0.1:8000/metrics', {}, 'auto', {}, 'test');
  // A token only the body holds: the snapshot must not contain it once the body is dropped.
  const token = `unkept_${process.pid}_${Date.now()}`;
  const parse = () => {
    // First: a heap snapshot keeps only the start of a long string.
    const text = `# HELP ${token} x\n${renderVllmExposition([demoModelState('meta-llama/Llama-3.1-8B-Instruct')])}`;
    // As fetchExposition makes it: one string decoded from the bytes.
    const body = Buffer.from(text).toString('utf8');
    return normalizeBody(target, body).signals;
  };
  const signals = parse();
  assert.ok(signals.length > 10);
  assert.ok(signals.some((s) => s.model === 'meta-llama/Llama-3.1-8B-Instruct'));
  gc();
  const file = writeHeapSnapshot(join(mkdtempSync(join(tmpdir(), 'cachelens-heap-')), 'h.heapsnapshot'));
  const snapshot = readFileSync(file, 'utf8');
  // The token's own pieces are in the heap (this function's strings); the body line is not.
  assert.ok(!snapshot.includes(`# HELP ${token} x`), 'the body is still reachable after parsing');
  assert.ok(signals.length > 0); // kept alive past the snapshot
});
