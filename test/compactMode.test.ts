// enrich.detail: compact: one small `cachelens` event (or attributes) instead of the two full events,
// at most 350 bytes a request span on the wire, measured on the benchmark's vLLM spans.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { measureAddedBytes } from '../bench/spanBytes.ts';
import { buildConfig } from '../src/config/config.ts';
import { ConfigError } from '../src/config/validate.ts';

describe('compact mode', () => {
  const measured = measureAddedBytes(64);
  const of = (detail: string, as: string) => measured.find((m) => m.detail === detail && m.as === as)!;

  it('adds at most 350 bytes a span, as events or as attributes; full mode adds about 1.2 KB', () => {
    assert.ok(of('compact', 'events').bytes_per_span <= 350, JSON.stringify(measured));
    assert.ok(of('compact', 'attributes').bytes_per_span <= 350, JSON.stringify(measured));
    // the check can fail: full mode is far past it
    assert.ok(of('full', 'events').bytes_per_span > 900, JSON.stringify(measured));
    assert.ok(of('compact', 'attributes').bytes_per_span < of('compact', 'events').bytes_per_span);
  });

  it('writes one `cachelens` event, or the same keys as attributes, with exactly the compact values', () => {
    const keys = [
      'cachelens.match',
      'cachelens.instance',
      'cachelens.hit_ratio',
      'cachelens.kv_max',
      'cachelens.waiting_max',
      'cachelens.preemptions',
      'cachelens.external_share',
      'cachelens.cached_estimate',
    ];
    assert.deepEqual(of('compact', 'events').first, { events: [{ name: 'cachelens', keys }], attributes: [] });
    assert.deepEqual(of('compact', 'attributes').first, { events: [], attributes: keys });
    assert.deepEqual(
      of('full', 'events').first.events.map((e) => e.name),
      ['cachelens.cache', 'cachelens.scheduler'],
    );
  });

  it('enrich.detail is full by default, takes compact, and names its values when given another', () => {
    assert.equal(buildConfig({}, {}).config.enrich.detail, 'full');
    assert.equal(buildConfig({ enrich: { detail: 'compact' } }, {}).config.enrich.detail, 'compact');
    assert.throws(
      () => buildConfig({ enrich: { detail: 'tiny' } }, {}),
      (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        assert.match(err.message, /enrich\.detail.*full.*compact/s);
        return true;
      },
    );
  });
});
