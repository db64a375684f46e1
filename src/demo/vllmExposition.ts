// Renders a vLLM (main @ 7cfb97e3) /metrics body the way prometheus_client prints it, from the
// catalogue in shared/research/inference-servers.md §1.2. Used by `cachelens demo`, benchmarks and tests.

export interface VllmModelState {
  model: string;
  engine?: string;
  prefixCacheQueries: number;
  prefixCacheHits: number;
  promptTokens: number;
  /** Cached prompt tokens, local and external (vllm:prompt_tokens_cached_total). */
  promptTokensCached: number;
  /** Of those, KV transferred from an external tier by a KV connector (source="external_kv_transfer"). */
  promptTokensExternal?: number;
  /** The KV connector's cross-instance lookups and hits, in tokens. */
  externalQueries?: number;
  externalHits?: number;
  generationTokens: number;
  preemptions: number;
  requestsFinished: { stop: number; length: number; abort: number; error: number; repetition: number };
  requestsWaiting: number;
  requestsRunning: number;
  kvCacheUsage: number;
  createdUnixSeconds: number;
}

const ONE_TWO_FIVE = (max: number): number[] => {
  const out: number[] = [];
  for (let e = 1; ; e *= 10) {
    for (const m of [1, 2, 5]) {
      if (m * e > max) return out;
      out.push(m * e);
    }
  }
};

const HISTOGRAMS: Array<{ name: string; help: string; buckets: number[] }> = [
  { name: 'vllm:request_prompt_tokens', help: 'Number of prefill tokens processed.', buckets: ONE_TWO_FIVE(32768) },
  {
    name: 'vllm:request_generation_tokens',
    help: 'Number of generation tokens processed.',
    buckets: ONE_TWO_FIVE(32768),
  },
  {
    name: 'vllm:iteration_tokens_total',
    help: 'Histogram of number of tokens per engine_step.',
    buckets: [1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384],
  },
  {
    name: 'vllm:request_max_num_generation_tokens',
    help: 'Histogram of maximum number of requested generation tokens.',
    buckets: ONE_TWO_FIVE(32768),
  },
  { name: 'vllm:request_params_n', help: 'Histogram of the n request parameter.', buckets: [1, 2, 5, 10, 20] },
  {
    name: 'vllm:request_params_max_tokens',
    help: 'Histogram of the max_tokens request parameter.',
    buckets: ONE_TWO_FIVE(32768),
  },
  {
    name: 'vllm:time_to_first_token_seconds',
    help: 'Histogram of time to first token in seconds.',
    buckets: [
      0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80, 160, 640, 2560,
    ],
  },
  {
    name: 'vllm:inter_token_latency_seconds',
    help: 'Histogram of inter-token latency in seconds.',
    buckets: [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80],
  },
  {
    name: 'vllm:request_time_per_output_token_seconds',
    help: 'Histogram of time_per_output_token_seconds per request.',
    buckets: [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80],
  },
  ...[
    'e2e_request_latency_seconds',
    'request_queue_time_seconds',
    'request_inference_time_seconds',
    'request_prefill_time_seconds',
    'request_decode_time_seconds',
  ].map((n) => ({
    name: `vllm:${n}`,
    help: `Histogram of ${n.replace(/_/g, ' ')}.`,
    buckets: [0.3, 0.5, 0.8, 1, 1.5, 2, 2.5, 5, 10, 15, 20, 30, 40, 50, 60, 120, 240, 480, 960, 1920, 7680],
  })),
  {
    name: 'vllm:request_prefill_kv_computed_tokens',
    help: 'Histogram of new KV tokens computed during prefill (excluding cached tokens).',
    buckets: ONE_TWO_FIVE(32768),
  },
];

// Only with --kv-cache-metrics; included in the "full" body of the benchmark.
const KV_BLOCK_HISTOGRAMS = [
  'kv_block_lifetime_seconds',
  'kv_block_idle_before_evict_seconds',
  'kv_block_reuse_gap_seconds',
].map((n) => ({
  name: `vllm:${n}`,
  help: `Histogram of ${n.replace(/_/g, ' ')}.`,
  buckets: [
    0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800, 3600,
  ],
}));

// prometheus_client prints floats with Python repr: integers get a trailing ".0".
const py = (v: number): string => {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  if (Number.isInteger(v) && Math.abs(v) < 1e16) return `${v}.0`;
  return String(v);
};

function labels(m: VllmModelState, extra: Record<string, string> = {}): string {
  const all: Record<string, string> = { ...extra, engine: m.engine ?? '0', model_name: m.model };
  return Object.keys(all)
    .sort()
    .map((k) => `${k}="${all[k]}"`)
    .join(',');
}

export interface RenderOptions {
  created?: boolean; // single-process prometheus_client emits _created; multiprocess does not
  multiprocessOrder?: boolean; // _sum, _bucket..., _count
  histograms?: boolean;
  kvBlockHistograms?: boolean;
  /**
   * vLLM 0.12–0.15 expose no cached-prompt-token counters (prompt_tokens_cached, prompt_tokens_by_source): false
   * renders that.
   */
  cachedCounters?: boolean;
}

export function renderVllmExposition(models: VllmModelState[], opts: RenderOptions = {}): string {
  const created = opts.created ?? true;
  const out: string[] = [];
  const family = (
    name: string,
    type: string,
    help: string,
    rows: Array<[Record<string, string>, number, VllmModelState]>,
  ) => {
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [extra, v, m] of rows) out.push(`${name}{${labels(m, extra)}} ${py(v)}`);
  };
  const counter = (base: string, help: string, pick: (m: VllmModelState) => number) => {
    family(
      `${base}_total`,
      'counter',
      help,
      models.map((m) => [{}, pick(m), m]),
    );
    if (created)
      family(
        `${base}_created`,
        'gauge',
        help,
        models.map((m) => [{}, m.createdUnixSeconds, m]),
      );
  };
  family(
    'vllm:num_requests_running',
    'gauge',
    'Number of requests in model execution batches.',
    models.map((m) => [{}, m.requestsRunning, m]),
  );
  family(
    'vllm:num_requests_waiting',
    'gauge',
    'Number of requests waiting to be processed.',
    models.map((m) => [{}, m.requestsWaiting, m]),
  );
  family(
    'vllm:kv_cache_usage_perc',
    'gauge',
    'KV-cache usage. 1 means 100 percent usage.',
    models.map((m) => [{}, m.kvCacheUsage, m]),
  );
  counter(
    'vllm:prefix_cache_queries',
    'Prefix cache queries, in terms of number of queried tokens.',
    (m) => m.prefixCacheQueries,
  );
  counter(
    'vllm:prefix_cache_hits',
    'Prefix cache hits, in terms of number of cached tokens.',
    (m) => m.prefixCacheHits,
  );
  counter(
    'vllm:external_prefix_cache_queries',
    'External prefix cache queries from KV connector cross-instance cache sharing, in terms of number of queried ' +
      'tokens.',
    (m) => m.externalQueries ?? 0,
  );
  counter(
    'vllm:external_prefix_cache_hits',
    'External prefix cache hits from KV connector cross-instance cache sharing, in terms of number of cached tokens.',
    (m) => m.externalHits ?? 0,
  );
  counter('vllm:mm_cache_queries', 'Multi-modal cache queries, in terms of number of queried items.', () => 0);
  counter('vllm:mm_cache_hits', 'Multi-modal cache hits, in terms of number of cached items.', () => 0);
  counter('vllm:num_preemptions', 'Cumulative number of preemption from the engine.', (m) => m.preemptions);
  counter('vllm:prompt_tokens', 'Number of prefill tokens processed.', (m) => m.promptTokens);
  const bySource = (m: VllmModelState): Array<[Record<string, string>, number, VllmModelState]> => [
    [{ source: 'local_compute' }, m.promptTokens - m.promptTokensCached, m],
    [{ source: 'local_cache_hit' }, m.promptTokensCached - (m.promptTokensExternal ?? 0), m],
    [{ source: 'external_kv_transfer' }, m.promptTokensExternal ?? 0, m],
  ];
  if (opts.cachedCounters ?? true) {
    family(
      'vllm:prompt_tokens_by_source_total',
      'counter',
      'Number of prompt tokens by source.',
      models.flatMap(bySource),
    );
    counter(
      'vllm:prompt_tokens_cached',
      'Number of cached prompt tokens (local + external).',
      (m) => m.promptTokensCached,
    );
  }
  counter('vllm:generation_tokens', 'Number of generation tokens processed.', (m) => m.generationTokens);
  const reasons = ['stop', 'length', 'abort', 'error', 'repetition'] as const;
  family(
    'vllm:request_success_total',
    'counter',
    'Count of successfully processed requests.',
    models.flatMap((m) =>
      reasons.map((r): [Record<string, string>, number, VllmModelState] => [
        { finished_reason: r },
        m.requestsFinished[r],
        m,
      ]),
    ),
  );
  if (created)
    family(
      'vllm:request_success_created',
      'gauge',
      'Count of successfully processed requests.',
      models.flatMap((m) =>
        reasons.map((r): [Record<string, string>, number, VllmModelState] => [
          { finished_reason: r },
          m.createdUnixSeconds,
          m,
        ]),
      ),
    );
  if (opts.histograms ?? true) {
    for (const h of opts.kvBlockHistograms ? [...HISTOGRAMS, ...KV_BLOCK_HISTOGRAMS] : HISTOGRAMS) {
      out.push(`# HELP ${h.name} ${h.help}`, `# TYPE ${h.name} histogram`);
      for (const m of models) {
        const n = Math.max(1, Math.round(m.requestsFinished.stop + m.requestsFinished.length));
        const buckets = h.buckets.map(
          (le, i) =>
            `${h.name}_bucket{${labels(m, { le: py(le) })}} ${py(Math.round((n * (i + 1)) / (h.buckets.length + 1)))}`,
        );
        const inf = `${h.name}_bucket{${labels(m, { le: '+Inf' })}} ${py(n)}`;
        const count = `${h.name}_count{${labels(m)}} ${py(n)}`;
        const sum = `${h.name}_sum{${labels(m)}} ${py(n * 1.7)}`;
        if (opts.multiprocessOrder) out.push(sum, ...buckets, inf, count);
        else out.push(...buckets, inf, count, sum);
      }
      if (created) {
        out.push(`# HELP ${h.name}_created ${h.help}`, `# TYPE ${h.name}_created gauge`);
        for (const m of models) out.push(`${h.name}_created{${labels(m)}} ${py(m.createdUnixSeconds)}`);
      }
    }
  }
  family('vllm:cache_config_info', 'gauge', 'Information of the LLMEngine CacheConfig', []);
  out.push(
    `vllm:cache_config_info{block_size="16",cache_dtype="auto",enable_prefix_caching="True",` +
      `engine="0",gpu_memory_utilization="0.9",num_gpu_blocks="27910"} 1.0`,
  );
  return out.join('\n') + '\n';
}

export function demoModelState(model: string, scale = 1, engine = '0'): VllmModelState {
  return {
    model,
    engine,
    prefixCacheQueries: 1_234_567 * scale,
    prefixCacheHits: 654_321 * scale,
    promptTokens: 1_234_567 * scale,
    promptTokensCached: 654_320 * scale,
    generationTokens: 345_678 * scale,
    preemptions: 12 * scale,
    requestsFinished: { stop: 1000 * scale, length: 200 * scale, abort: 3 * scale, error: 1 * scale, repetition: 0 },
    requestsWaiting: 4,
    requestsRunning: 17,
    kvCacheUsage: 0.4375,
    createdUnixSeconds: 1_764_000_000.123,
  };
}
