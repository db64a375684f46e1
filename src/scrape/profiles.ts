import type { Signal, SignalKind } from './types.ts';

// A profile is data: one row maps an exposed sample name onto a signal. A renamed metric is one more row.
// Rows for the same signal are alternatives in priority order: the first name present in a scrape is used
// and the others are ignored, so coexisting old and new names are never counted twice.
// Facts: shared/research/inference-servers.md §1 (vLLM), §4 (SGLang), §5 (TGI).

export interface ProfileRow {
  signal: Signal;
  metric: string; // sample name on the wire
  kind: SignalKind;
  unit: string;
  scale?: number; // multiply raw values (percent → fraction)
  /** Values below this mean "not available" (vLLM V0 hit-rate gauges report -1 when caching is off). */
  unknownBelow?: number;
  /** The unit comes from the HELP text when it matches, e.g. blocks before vLLM 0.9.0. */
  unitFromHelp?: { pattern: RegExp; unit: string };
  /** Series whose label matches are skipped (SGLang's priority="" is the total; others are parts). */
  skipLabel?: { name: string; pattern: RegExp };
  /** Only series with this label value (one name, several signals: prompt_tokens_by_source{source}). */
  onlyLabel?: { name: string; value: string };
}

export interface Profile {
  name: string;
  description: string;
  modelLabels: string[];
  engineLabel?: string;
  rows: ProfileRow[];
  /**
   * Where the block size per engine is exposed (an info-style series with a label), so counters in
   * blocks can be turned into tokens. Without it, values in blocks stay in blocks and never enter a token sum.
   */
  blockSize?: { metric: string; label: string };
  /**
   * Detection: every `all` name present, no `none` name present, any of `any` present, or else any name with
   * `anyPrefix`.
   */
  detect: { all?: string[]; none?: string[]; any?: string[]; anyPrefix?: string };
}

const counter = (signal: Signal, metric: string, unit: string, extra: Partial<ProfileRow> = {}): ProfileRow => ({
  signal,
  metric,
  kind: 'counter',
  unit,
  ...extra,
});
const gauge = (signal: Signal, metric: string, unit: string, extra: Partial<ProfileRow> = {}): ProfileRow => ({
  signal,
  metric,
  kind: 'gauge',
  unit,
  ...extra,
});

const VLLM_COMMON: ProfileRow[] = [
  counter('prompt_tokens', 'vllm:prompt_tokens_total', 'tokens'),
  counter('generation_tokens', 'vllm:generation_tokens_total', 'tokens'),
  counter('preemptions', 'vllm:num_preemptions_total', 'preemptions'),
  counter('requests_finished', 'vllm:request_success_total', 'requests'),
  gauge('requests_waiting', 'vllm:num_requests_waiting', 'requests'),
  gauge('requests_running', 'vllm:num_requests_running', 'requests'),
];

const VLLM_V1: ProfileRow[] = [
  counter('prefix_cache_queries', 'vllm:prefix_cache_queries_total', 'tokens'),
  counter('prefix_cache_hits', 'vllm:prefix_cache_hits_total', 'tokens'),
  counter('prompt_tokens_cached', 'vllm:prompt_tokens_cached_total', 'tokens'), // since 0.16
  // since 0.16: local_cache_hit + external_kv_transfer = prompt_tokens_cached (checked, never corrected)
  counter('prompt_tokens_local_cache_hit', 'vllm:prompt_tokens_by_source_total', 'tokens', {
    onlyLabel: { name: 'source', value: 'local_cache_hit' },
  }),
  counter('prompt_tokens_external_transfer', 'vllm:prompt_tokens_by_source_total', 'tokens', {
    onlyLabel: { name: 'source', value: 'external_kv_transfer' },
  }),
  counter('prompt_tokens_local_compute', 'vllm:prompt_tokens_by_source_total', 'tokens', {
    onlyLabel: { name: 'source', value: 'local_compute' },
  }),
  // since PR #26245 (2025-10): the KV connector's cross-instance lookups
  counter('external_prefix_cache_queries', 'vllm:external_prefix_cache_queries_total', 'tokens'),
  counter('external_prefix_cache_hits', 'vllm:external_prefix_cache_hits_total', 'tokens'),
  ...VLLM_COMMON,
  gauge('kv_cache_usage', 'vllm:kv_cache_usage_perc', 'ratio'), // fraction 0-1 despite the name
];

const BLOCKS_BEFORE_0_9 = { pattern: /\bblocks\b/, unit: 'blocks' };

export const PROFILES: Profile[] = [
  {
    name: 'vllm',
    description: 'vLLM >= 0.12 (V1; prefix_cache_*, kv_cache_usage_perc; prompt_tokens_cached_total since 0.16)',
    modelLabels: ['model_name'],
    engineLabel: 'engine',
    rows: VLLM_V1,
    detect: {
      all: ['vllm:kv_cache_usage_perc'],
      none: ['vllm:gpu_cache_usage_perc', 'vllm:gpu_prefix_cache_queries_total', 'vllm:gpu_prefix_cache_hits_total'],
    },
  },
  {
    name: 'vllm-0.9',
    description: 'vLLM 0.9.2-0.11: old gpu_* and new names side by side; only the new ones are read',
    modelLabels: ['model_name'],
    engineLabel: 'engine',
    rows: VLLM_V1,
    detect: { any: ['vllm:kv_cache_usage_perc', 'vllm:prefix_cache_queries_total', 'vllm:prefix_cache_hits_total'] },
  },
  {
    name: 'vllm-v0',
    description:
      'vLLM V0 and V1 <= 0.9.1 (gpu_cache_usage_perc, gpu_prefix_cache_*; prefix counters in blocks before 0.9.0)',
    modelLabels: ['model_name'],
    engineLabel: 'engine',
    blockSize: { metric: 'vllm:cache_config_info', label: 'block_size' },
    rows: [
      counter('prefix_cache_queries', 'vllm:gpu_prefix_cache_queries_total', 'tokens', {
        unitFromHelp: BLOCKS_BEFORE_0_9,
      }),
      counter('prefix_cache_hits', 'vllm:gpu_prefix_cache_hits_total', 'tokens', { unitFromHelp: BLOCKS_BEFORE_0_9 }),
      ...VLLM_COMMON,
      gauge('kv_cache_usage', 'vllm:gpu_cache_usage_perc', 'ratio'),
      // V0 only: a block hit-rate gauge, -1 when prefix caching is off.
      gauge('cache_hit_rate', 'vllm:gpu_prefix_cache_hit_rate', 'ratio', { unknownBelow: 0 }),
    ],
    // Also the fallback for any body with vllm:* families only (histograms, a truncated capture).
    detect: { anyPrefix: 'vllm:' },
  },
  {
    name: 'sglang',
    description: 'SGLang >= 0.4 (model_name label; cache_hit_rate is a gauge, cached_tokens_total since 2025-03)',
    modelLabels: ['model_name'],
    engineLabel: 'dp_rank',
    rows: [
      counter('prompt_tokens', 'sglang:prompt_tokens_total', 'tokens', {
        skipLabel: { name: 'priority', pattern: /./ },
      }),
      counter('prompt_tokens_cached', 'sglang:cached_tokens_total', 'tokens', {
        skipLabel: { name: 'priority', pattern: /./ },
      }),
      counter('generation_tokens', 'sglang:generation_tokens_total', 'tokens', {
        skipLabel: { name: 'priority', pattern: /./ },
      }),
      counter('requests_finished', 'sglang:num_requests_total', 'requests', {
        skipLabel: { name: 'priority', pattern: /./ },
      }),
      gauge('requests_waiting', 'sglang:num_queue_reqs', 'requests', { skipLabel: { name: 'priority', pattern: /./ } }),
      gauge('requests_running', 'sglang:num_running_reqs', 'requests', {
        skipLabel: { name: 'priority', pattern: /./ },
      }),
      gauge('kv_cache_usage', 'sglang:token_usage', 'ratio'),
      gauge('cache_hit_rate', 'sglang:cache_hit_rate', 'ratio'),
    ],
    detect: {
      any: [
        'sglang:num_running_reqs',
        'sglang:num_queue_reqs',
        'sglang:prompt_tokens_total',
        'sglang:token_usage',
        'sglang:cache_hit_rate',
      ],
      none: ['sglang:num_requests_running'],
    },
  },
  {
    name: 'sglang-0.3',
    description: 'SGLang 0.3.x (Nov 2024: label name=, num_requests_running/waiting, cache_hit_rate in percent)',
    modelLabels: ['model_name', 'name'],
    rows: [
      counter('prompt_tokens', 'sglang:prompt_tokens_total', 'tokens'),
      counter('generation_tokens', 'sglang:generation_tokens_total', 'tokens'),
      gauge('requests_waiting', 'sglang:num_requests_waiting', 'requests'),
      gauge('requests_running', 'sglang:num_requests_running', 'requests'),
      gauge('kv_cache_usage', 'sglang:token_usage', 'ratio'),
      gauge('cache_hit_rate', 'sglang:cache_hit_rate', 'ratio', { scale: 0.01 }),
    ],
    detect: { all: ['sglang:num_requests_running'] },
  },
  {
    name: 'tgi',
    description:
      'Hugging Face TGI (tgi_* names, counters without _total, no model label: set labels.model_name on the target)',
    modelLabels: [],
    rows: [
      counter('requests_finished', 'tgi_request_success', 'requests'),
      counter('requests_finished', 'tgi_request_success_total', 'requests'),
      // Token counts exist only as histogram sums.
      counter('prompt_tokens', 'tgi_request_input_length_sum', 'tokens'),
      counter('generation_tokens', 'tgi_request_generated_tokens_sum', 'tokens'),
      gauge('requests_waiting', 'tgi_queue_size', 'requests'),
      gauge('requests_running', 'tgi_batch_current_size', 'requests'),
    ],
    detect: { any: ['tgi_queue_size', 'tgi_request_count', 'tgi_batch_current_size', 'tgi_request_success'] },
  },
];

export const PROFILE_BY_NAME = new Map(PROFILES.map((p) => [p.name, p]));

/** `foo_total` → `foo_created` (prometheus_client drops `_total`); histogram `_sum` → base `_created`. */
export function createdCompanion(metric: string): string | undefined {
  if (metric.endsWith('_total')) return `${metric.slice(0, -'_total'.length)}_created`;
  if (metric.endsWith('_sum')) return `${metric.slice(0, -'_sum'.length)}_created`;
  return undefined;
}

/** Every sample name any profile reads, with `_created` companions: what the splitter keeps. */
export const WANTED_SAMPLE_NAMES: ReadonlySet<string> = new Set(
  PROFILES.flatMap((p) => [
    ...p.rows.flatMap((r) => [r.metric, createdCompanion(r.metric)].filter((n): n is string => n !== undefined)),
    ...(p.blockSize ? [p.blockSize.metric] : []),
  ]),
);
export const HELP_NAMES: ReadonlySet<string> = new Set(
  PROFILES.flatMap((p) => p.rows.filter((r) => r.unitFromHelp).map((r) => r.metric.replace(/_total$/, ''))).flatMap(
    (n) => [n, `${n}_total`],
  ),
);

export function detectProfile(present: ReadonlySet<string>): Profile | undefined {
  for (const p of PROFILES) {
    const { all = [], none = [], any = [], anyPrefix } = p.detect;
    if (!all.every((n) => present.has(n)) || none.some((n) => present.has(n))) continue;
    if (any.length > 0 && !any.some((n) => present.has(n))) continue;
    if (anyPrefix !== undefined && ![...present].some((n) => n.startsWith(anyPrefix))) continue;
    return p;
  }
  return undefined;
}

/** The names a read from Prometheus asks for: what the profiles read, and what detection looks at. */
export const SOURCE_SAMPLE_NAMES: readonly string[] = [
  ...new Set([
    ...WANTED_SAMPLE_NAMES,
    ...PROFILES.flatMap((p) => [...(p.detect.all ?? []), ...(p.detect.none ?? []), ...(p.detect.any ?? [])]),
  ]),
].sort();

/** The family of servers a name belongs to, to tell a server that exposes two kinds' names. */
export function serverKind(name: string): string | undefined {
  if (name.startsWith('vllm:')) return 'vllm';
  if (name.startsWith('sglang:')) return 'sglang';
  if (name.startsWith('tgi_')) return 'tgi';
  return undefined;
}
