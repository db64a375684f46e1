// What enrichment adds to each request span on the wire, per enrich.detail and enrich.as: the real
// Enricher over a real store (two scrapes of a vLLM server with a KV connector, so every compact value is
// present), the benchmark's vLLM spans (bench/vllmLoad.ts), spliced as the exporter splices them.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { EnrichAs, EnrichDetail } from '../src/config/config.ts';
import { DEFAULT_REQUEST_SPAN_NAMES } from '../src/config/spanNames.ts';
import { Enricher } from '../src/correlate/enricher.ts';
import { compileSpanSelector } from '../src/correlate/requestSpans.ts';
import { demoModelState, renderVllmExposition } from '../src/demo/vllmExposition.ts';
import { decodeProtobuf } from '../src/otlp/decode.ts';
import { spliceSpans } from '../src/otlp/splice.ts';
import { ExtraEncoder } from '../src/pipeline/encodeExtras.ts';
import { normalizeBody } from '../src/scrape/scrapeTarget.ts';
import { makeTarget } from '../src/scrape/target.ts';
import { FleetQueries } from '../src/store/fleetQueries.ts';
import { openDatabase } from '../src/store/openDatabase.ts';
import { ScrapeStore } from '../src/store/scrapeStore.ts';
import { VllmLoad } from './vllmLoad.ts';

export interface AddedBytes {
  detail: EnrichDetail;
  as: EnrichAs;
  /** Bytes added per request span, the mean over the batch. */
  bytes_per_span: number;
  /** The vLLM span as received, for scale. */
  span_bytes: number;
  /** What the first span carries after splicing: its events' names and keys, and its cachelens attributes. */
  first: { events: Array<{ name: string; keys: string[] }>; attributes: string[] };
}

export function measureAddedBytes(spans = 512): AddedBytes[] {
  const db = openDatabase(join(mkdtempSync(join(tmpdir(), 'cachelens-bytes-')), 'store.db'));
  const store = new ScrapeStore(db);
  const target = makeTarget('http://10.0.0.1:8000/metrics', { instance: 'vllm-a' }, 'auto', {}, 'a');
  const nowMs = Date.now();
  const load = new VllmLoad(spans, { 'service.instance.id': 'vllm-a' });
  const body = load.next();
  // A busy server with an external tier: hit ratio, KV, queue, preemptions and an external share all set.
  for (const [i, ts] of [nowMs - 5000, nowMs + 1000].entries())
    store.writeRound([
      {
        target,
        startedMs: ts,
        durationMs: 1,
        up: true,
        ...normalizeBody(
          target,
          renderVllmExposition(
            [
              {
                ...demoModelState('meta-llama/Llama-3.1-8B-Instruct'),
                promptTokens: 100_000 + i * 50_000,
                promptTokensCached: 60_000 + i * 30_000,
                promptTokensExternal: 10_000 + i * 8_000,
                prefixCacheQueries: 100_000 + i * 50_000,
                prefixCacheHits: 50_000 + i * 22_000,
                externalQueries: 40_000 + i * 20_000,
                externalHits: 10_000 + i * 8_000,
                preemptions: 3 + i * 2,
                requestsWaiting: 7,
                kvCacheUsage: 0.93,
              },
            ],
            { histograms: false },
          ),
        ),
      },
    ]);
  const out: AddedBytes[] = [];
  for (const detail of ['full', 'compact'] as const)
    for (const as of ['events', 'attributes'] as const) {
      const enricher = new Enricher(new FleetQueries(db), {
        maxWaitMs: 0,
        as,
        detail,
        selector: compileSpanSelector(DEFAULT_REQUEST_SPAN_NAMES),
        tenantKeys: [],
        lookbackMs: 3_600_000,
        targetMatch: () => new Map(),
      });
      enricher.refresh(nowMs + 2000);
      const facts = enricher.facts(decodeProtobuf(body));
      const p = enricher.prepare(facts, null, nowMs, nowMs + 2000);
      if (!p.ready || p.extras.size !== spans) throw new Error('span bytes: every span must be enriched');
      const spliced = spliceSpans(body, new ExtraEncoder().encodeAll(facts.spanCount, p.extras), facts.spanCount);
      const span = decodeProtobuf(Buffer.concat(spliced.chunks, spliced.len)).resourceSpans[0]!.scopeSpans[0]!
        .spans[0]!;
      out.push({
        detail,
        as,
        bytes_per_span: Math.round((spliced.len - body.length) / spans),
        span_bytes: Math.round(body.length / spans),
        first: {
          events: span.events.map((e) => ({ name: e.name, keys: e.attributes.map((a) => a.key) })),
          attributes: span.attributes.map((a) => a.key).filter((k) => k.startsWith('cachelens.')),
        },
      });
    }
  db.close();
  return out;
}
