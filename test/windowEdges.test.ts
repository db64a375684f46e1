import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ScrapeTimelines } from '../src/correlate/timelines.ts';
import { ExtraEncoder } from '../src/pipeline/encodeExtras.ts';
import type { FleetQueries } from '../src/store/fleetQueries.ts';
import { ExportTraceServiceRequest } from '../src/otlp/schema.ts';
import { WireWriter } from '../src/otlp/wire.ts';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Enricher } from '../src/correlate/enricher.ts';
import { DEFAULT_REQUEST_SPAN_NAMES } from '../src/config/spanNames.ts';
import { compileSpanSelector } from '../src/correlate/requestSpans.ts';
import { demoModelState, renderVllmExposition } from '../src/demo/vllmExposition.ts';
import type { OtlpTraceRequest } from '../src/otlp/schema.ts';
import { normalizeBody } from '../src/scrape/scrapeTarget.ts';
import { makeTarget } from '../src/scrape/target.ts';
import { FleetQueries as StoreQueries } from '../src/store/fleetQueries.ts';
import { LedgerStore } from '../src/store/ledgerStore.ts';
import { openDatabase } from '../src/store/openDatabase.ts';
import { ScrapeStore } from '../src/store/scrapeStore.ts';

// The store's reads, over a list; the timeline's search is what is under test.
function timelineOf(times: number[]): ScrapeTimelines {
  const rows = times.map((ts_ms, i) => ({ id: i + 1, target_id: 1, ts_ms }));
  const q = {
    scrapesFromTime: () => rows,
    maxScrapeId: () => rows.length,
    scrapeAtOrBefore: (_t: number, ms: number) => rows.filter((r) => r.ts_ms <= ms).at(-1)?.ts_ms,
    scrapeAtOrAfter: (_t: number, ms: number) => rows.find((r) => r.ts_ms >= ms)?.ts_ms,
  } as unknown as FleetQueries;
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
    const cache = {
      'cachelens.window.start_unix_nano': BigInt(from) * 1_000_000n,
      'cachelens.window.end_unix_nano': 1_764_600_015_123_000_001n,
    };
    const bytes = enc.encode({
      as: 'events',
      cache,
      scheduler: {},
      own: undefined,
      time: { low: 0, high: 0 },
    } as never);
    // request { resource_spans(1) { scope_spans(2) { spans(2) { <the appended fields> } } } }
    const wrap = (field: number, body: Uint8Array) => new WireWriter().tag(field, 2).bytes(body).finish();
    const span = ExportTraceServiceRequest.decode(wrap(1, wrap(2, wrap(2, bytes)))) as unknown as {
      resourceSpans: Array<{
        scopeSpans: Array<{
          spans: Array<{
            events: Array<{ attributes: Array<{ key: string; value: { intValue: { low: number; high: number } } }> }>;
          }>;
        }>;
      }>;
    };
    const ev = span.resourceSpans[0]!.scopeSpans[0]!.spans[0]!.events[0]!;
    const get = (k: string) => {
      const v = ev.attributes.find((a) => a.key === k)!.value.intValue;
      return (BigInt(v.high >>> 0) << 32n) | BigInt(v.low >>> 0);
    };
    assert.equal(get('cachelens.window.start_unix_nano'), 1_764_600_000_123_000_000n);
    assert.equal(get('cachelens.window.end_unix_nano'), 1_764_600_015_123_000_001n);
  });
});

describe('a span enriched late gets the same values as on time', () => {
  it(
    'after an outage longer than the timelines keep, its window comes from the store; a retry never makes the ledger ' +
      'poorer',
    () => {
      const dir = mkdtempSync(join(tmpdir(), 'cachelens-late-'));
      const db = openDatabase(join(dir, 'store.db'));
      const store = new ScrapeStore(db);
      const target = makeTarget('http://10.0.0.9:8000/metrics', { instance: 'vllm-a' }, 'auto', {}, 'late');
      const t0 = Date.UTC(2026, 10, 30, 1, 0, 0);
      for (let i = 0; i <= 4; i++) {
        const m = {
          ...demoModelState('llama'),
          promptTokens: 1000 * (i + 1),
          prefixCacheHits: 300 * (i + 1),
          prefixCacheQueries: 900 * (i + 1),
          promptTokensCached: 250 * (i + 1),
          requestsWaiting: i,
          kvCacheUsage: i / 10,
        };
        store.writeRound([
          {
            target,
            startedMs: t0 + i * 15_000,
            durationMs: 1,
            up: true,
            ...normalizeBody(target, renderVllmExposition([m], { histograms: false })),
          },
        ]);
      }
      const start = BigInt(t0 + 20_000) * 1_000_000n;
      const req = ExportTraceServiceRequest.fromObject({
        resourceSpans: [
          {
            resource: { attributes: [{ key: 'service.instance.id', value: { stringValue: 'vllm-a' } }] },
            scopeSpans: [
              {
                spans: [
                  {
                    traceId: Buffer.alloc(16, 1),
                    spanId: Buffer.alloc(8, 2),
                    name: 'llm_request',
                    startTimeUnixNano: String(start),
                    endTimeUnixNano: String(start + 25_000_000_000n),
                    attributes: [{ key: 'gen_ai.usage.prompt_tokens', value: { intValue: 500 } }],
                  },
                ],
              },
            ],
          },
        ],
      }) as unknown as OtlpTraceRequest;
      const enricherAt = (nowMs: number) => {
        const e = new Enricher(new StoreQueries(db), {
          maxWaitMs: 4000,
          as: 'events',
          selector: compileSpanSelector(DEFAULT_REQUEST_SPAN_NAMES),
          tenantKeys: [],
          lookbackMs: 6 * 3600_000,
          targetMatch: () => new Map(),
        });
        e.refresh(nowMs);
        const p = e.prepare(e.facts(req), null, t0 + 46_000, nowMs);
        assert.ok(p.ready);
        return p;
      };
      const onTime = enricherAt(t0 + 60_000);
      // Seven hours of outage later: the scrapes the window needs are no longer in memory.
      const lateNow = t0 + 7 * 3600_000;
      store.writeRound([
        {
          target,
          startedMs: lateNow - 1000,
          durationMs: 1,
          up: true,
          ...normalizeBody(
            target,
            renderVllmExposition([{ ...demoModelState('llama'), promptTokens: 99_999 }], { histograms: false }),
          ),
        },
      ]);
      const late = enricherAt(lateNow);
      const extra = (p: typeof onTime) => (p.ready ? p.extras.get(0)! : undefined)!;
      assert.equal(extra(onTime).cache['cachelens.window.complete'], true);
      assert.deepEqual(extra(late).cache, extra(onTime).cache);
      assert.deepEqual(extra(late).scheduler, extra(onTime).scheduler);
      assert.deepEqual(extra(late).own, extra(onTime).own);

      // The ledger: a retry that found only an incomplete window does not replace the complete row.
      const ledger = new LedgerStore(db);
      const row = onTime.ready ? onTime.ledger[0]! : undefined!;
      ledger.write([row], []);
      ledger.write([{ ...row, windowComplete: false, cachedTokensEstimate: null, instance: null }], []);
      const stored = db
        .prepare('SELECT window_complete, instance, cached_tokens_estimate FROM request_ledger')
        .get() as Record<string, unknown>;
      assert.deepEqual(stored, {
        window_complete: 1,
        instance: 'vllm-a',
        cached_tokens_estimate: row.cachedTokensEstimate,
      });
      // A replay with a complete window still replaces it.
      ledger.write([{ ...row, promptTokens: 501 }], []);
      assert.equal(db.prepare('SELECT prompt_tokens FROM request_ledger').pluck().get(), 501);
      db.close();
    },
  );
});
