export type SignalKind = 'counter' | 'gauge';

export const COUNTER_SIGNALS = [
  'prefix_cache_queries',
  'prefix_cache_hits',
  'prompt_tokens',
  'prompt_tokens_cached',
  'generation_tokens',
  'preemptions',
  'requests_finished',
  // Tiered KV caches (vLLM's KV connector: LMCache, NIXL, Mooncake, offloading): prompt tokens by where
  // their KV came from, and the connector's cross-instance lookups, in tokens.
  'prompt_tokens_local_cache_hit',
  'prompt_tokens_external_transfer',
  'prompt_tokens_local_compute',
  'external_prefix_cache_queries',
  'external_prefix_cache_hits',
  // Prefix counters in blocks with no block size to convert them (vLLM before 0.9 without cache_config_info):
  // kept apart under their own names, so they never enter a token sum or a ratio with tokens.
  'prefix_cache_queries_blocks',
  'prefix_cache_hits_blocks',
] as const;
export const GAUGE_SIGNALS = ['requests_waiting', 'requests_running', 'kv_cache_usage', 'cache_hit_rate'] as const;
export type Signal = (typeof COUNTER_SIGNALS)[number] | (typeof GAUGE_SIGNALS)[number];

/** Gauges that are a share of one engine's pool take the mean over engines; everything else sums. */
export const MEAN_SIGNALS: ReadonlySet<Signal> = new Set<Signal>(['kv_cache_usage', 'cache_hit_rate']);

/** One exposed sample, as parsed. */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
  /** As written in the body, when it has one; only compared within that body. */
  timestamp?: number;
  /**
   * `labelKey(labels)` and `name{key}`, when the reader already knows them: the Prometheus source hands the
   * same strings every read, so every map keyed by them hashes each once, not once per scrape.
   */
  key?: string;
  seriesKey?: string;
}

/** One exposed series mapped onto a signal; `seriesKey` is the raw identity used for counter deltas. */
export interface SignalSample {
  signal: Signal;
  kind: SignalKind;
  unit: string;
  model: string;
  engine: string;
  seriesKey: string;
  value: number;
  /** Unix seconds from the `_created` companion, when the server exposes it. */
  createdSeconds?: number;
}
