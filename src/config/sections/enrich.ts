import { getHeapStatistics } from 'node:v8';
import type { ConfigOf, ObjectSpec } from '../spec.ts';
import { checkSpanNames, DEFAULT_REQUEST_SPAN_NAMES } from '../spanNames.ts';

export const enrichSpec = {
  kind: 'object',
  doc: 'Fleet context added to request spans.',
  fields: {
    max_wait: {
      kind: 'duration',
      derived: true,
      doc:
        'How long a request span waits in the spool for the scrape that closes its window. Default: 2 × ' +
        'scrape.interval, or 2 × scrape.prometheus.interval if that is longer.',
    },
    lookback: {
      kind: 'duration',
      derived: true,
      doc:
        'How far back scrape timelines and gauge lookups reach in memory; older windows are read from the store. ' +
        'Default: 6h, or 4 × scrape.interval if longer.',
    },
    facts_cache_bytes: {
      kind: 'bytes',
      default: '32MiB',
      doc:
        'Memory for facts of spooled requests (about 1 KB a request span), so a request is not read and decoded ' +
        'again; past it, it is.',
    },
    as: {
      kind: 'enum',
      values: ['events', 'attributes', 'both'],
      default: 'events',
      doc: 'Span events `cachelens.cache` / `cachelens.scheduler`, the same keys as span attributes, or both.',
    },
    detail: {
      kind: 'enum',
      values: ['full', 'compact'],
      default: 'full',
      doc:
        'full: the `cachelens.cache` and `cachelens.scheduler` events (about 1 KB a span). compact: one `cachelens` ' +
        'event (or attributes) with the matched instance, hit ratio, KV and queue maxima, preemptions and the ' +
        'cached-token estimate, under 350 bytes a span (docs/span-events.md).',
    },
    span_names: {
      kind: 'stringList',
      default: [...DEFAULT_REQUEST_SPAN_NAMES],
      doc:
        'Names of request spans (exact, or `/regex/`). Default: vLLM `llm_request`, SGLang `Req <rid>` roots, TGI ' +
        'handler spans.',
    },
  },
} as const satisfies ObjectSpec;

/** max_wait and lookback are resolved from scrape.interval when not set. */
export type EnrichConfig = ConfigOf<typeof enrichSpec>;
export type EnrichAs = EnrichConfig['as'];
export type EnrichDetail = EnrichConfig['detail'];

/**
 * Defaults that follow the slowest source's interval (direct scrapes or Prometheus reads): a window
 * closes with the first sample after the span ends.
 */
export function resolveEnrich(enrich: EnrichConfig, scrapeIntervalMs: number): void {
  enrich.max_wait ??= 2 * scrapeIntervalMs;
  enrich.lookback ??= Math.max(6 * 3_600_000, 4 * scrapeIntervalMs);
}

/**
 * The facts take about 1.6 times their estimate on V8's heap (docs/performance.md), and the image caps the heap at
 * 1 GiB (--max-old-space-size, for its memory under load): a cache past a quarter of the limit could stop the
 * process with an out-of-memory error under a backlog instead of at start-up.
 */
export function checkEnrich(enrich: EnrichConfig, heapLimitBytes = getHeapStatistics().heap_size_limit): string[] {
  const problems = checkSpanNames(enrich.span_names);
  if (enrich.facts_cache_bytes > heapLimitBytes / 4)
    problems.push(
      `enrich.facts_cache_bytes: ${enrich.facts_cache_bytes} bytes is more than a quarter of this process's heap ` +
        `limit (${heapLimitBytes} bytes; raise it with NODE_OPTIONS=--max-old-space-size=MiB, or keep fewer facts)`,
    );
  return problems;
}
