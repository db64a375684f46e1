import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ScrapeTimelines } from '../src/correlate/timelines.ts';
import { ExtraEncoder } from '../src/pipeline/encodeExtras.ts';
import type { FleetQueries } from '../src/store/fleetQueries.ts';
import { ExportTraceServiceRequest } from '../src/pipeline/otlp/schema.ts';
import { WireWriter } from '../src/pipeline/otlp/wire.ts';

// Only the two reads load() makes; the timeline's search is what is under test.
function timelineOf(times: number[]): ScrapeTimelines {
  const rows = times.map((ts_ms, i) => ({ id: i + 1, target_id: 1, ts_ms }));
  const q = { scrapesFromTime: () => rows, maxScrapeId: () => rows.length } as unknown as FleetQueries;
  const t = new ScrapeTimelines(q, 6 * 3600_000);
  t.load(times.at(-1)! + 1);
  return t;
}

describe('window edges', () => {
  it('a scrape at exactly the span start opens the window (epoch-sized milliseconds)', () => {
    const t0 = 1_764_600_000_000;
    const t = timelineOf([t0 - 15_000, t0, t0 + 15_000]);
    assert.equal(t.before(1, t0), t0, 'at or before: the scrape at the start itself');
    assert.equal(t.before(1, t0 - 0.5), t0 - 15_000);
    assert.equal(t.before(1, t0 + 0.25), t0);
    assert.equal(t.before(1, t0 - 15_001), undefined);
    assert.equal(t.after(1, t0), t0);
  });

  it('window times in nanoseconds are exact integers on the wire', () => {
    const from = 1_764_600_000_123;
    const enc = new ExtraEncoder();
    // The same path the enricher takes: a window block with the start and end in nanoseconds.
    const cache = { 'cachelens.window.start_unix_nano': BigInt(from) * 1_000_000n, 'cachelens.window.end_unix_nano': 1_764_600_015_123_000_001n };
    const bytes = enc.encode({ as: 'events', cache, scheduler: {}, own: undefined, time: { low: 0, high: 0 } } as never);
    // request { resource_spans(1) { scope_spans(2) { spans(2) { <the appended fields> } } } }
    const wrap = (field: number, body: Uint8Array) => new WireWriter().tag(field, 2).bytes(body).finish();
    const span = ExportTraceServiceRequest.decode(wrap(1, wrap(2, wrap(2, bytes)))) as unknown as { resourceSpans: Array<{ scopeSpans: Array<{ spans: Array<{ events: Array<{ attributes: Array<{ key: string; value: { intValue: { low: number; high: number } } }> }> }> }> }> };
    const ev = span.resourceSpans[0]!.scopeSpans[0]!.spans[0]!.events[0]!;
    const get = (k: string) => {
      const v = ev.attributes.find((a) => a.key === k)!.value.intValue;
      return (BigInt(v.high >>> 0) << 32n) | BigInt(v.low >>> 0);
    };
    assert.equal(get('cachelens.window.start_unix_nano'), 1_764_600_000_123_000_000n);
    assert.equal(get('cachelens.window.end_unix_nano'), 1_764_600_015_123_000_001n);
  });
});

