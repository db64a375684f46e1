import {
  emptyLatencyFact,
  FAMILY_NAMES,
  LATENCY_FAMILIES,
  type LatencyFact,
  type LatencyFamily,
  mergeLatencyFact,
  UNKNOWN_BUCKET,
} from '../store/latencyRollups.ts';
import type { TargetInfo } from '../store/reportQueries.ts';
import { type Sketch, sketchCount, sketchQuantile } from '../store/sketch.ts';
import { type Dimension, ledgerKey } from './build.ts';

export const LATENCY_SCHEMA = 'cachelens.latency/v1';
/** What the sketches promise (src/store/sketch.ts): any percentile within 1 % of the true value. */
export const LATENCY_ACCURACY =
  'percentiles are nearest-rank from DDSketches with 1% relative accuracy: each is within 1% of an exact percentile';
/** Fewer requests than this in either bucket, and the headline is not drawn: a p50 of a handful says little. */
export const HEADLINE_MIN_REQUESTS = 20;
/** Mean prompt lengths within this factor of each other count as similar. */
const SIMILAR_PROMPTS = 1.5;

export interface LatencyRow {
  key: Partial<Record<Dimension, string>>;
  family: LatencyFamily;
  bucket: string;
  requests: number;
  mean_prompt_tokens: number | null;
  ttft_p50_s: number | null;
  ttft_p95_s: number | null;
  queue_p50_s: number | null;
  queue_p95_s: number | null;
  prefill_p50_s: number | null;
  e2e_p50_s: number | null;
  e2e_p95_s: number | null;
  /** Prefill seconds per 1,000 uncached prompt tokens, p50: corrects for prompt length. */
  prefill_s_per_1k_uncached_p50: number | null;
  share_measured: number;
  share_estimated: number;
}

export interface LatencyHeadline {
  model: string;
  shown: boolean;
  /** The sentence, or why it is not drawn. */
  text: string;
  warm: { requests: number; ttft_p50_s: number | null; mean_prompt_tokens: number | null };
  cold: { requests: number; ttft_p50_s: number | null; mean_prompt_tokens: number | null };
}

export interface LatencyReport {
  schema: typeof LATENCY_SCHEMA;
  generated_at: string;
  db: string;
  period: { since: string; until: string };
  group_by: Dimension[];
  buckets: Record<LatencyFamily, readonly string[]>;
  accuracy: string;
  rows: LatencyRow[];
  /** The same rows by model alone, whatever --by says: what the HTML charts draw. */
  per_model: LatencyRow[];
  headlines: LatencyHeadline[];
  notes: string[];
}

export interface LatencyInput {
  db: string;
  fromMs: number;
  toMs: number;
  by: Dimension[];
  facts: LatencyFact[];
  targets: Map<number, TargetInfo>;
  nowMs: number;
}

/** A group's running sums: a latency fact with no key of its own. */
type Acc = LatencyFact;
const newAcc = (): Acc =>
  emptyLatencyFact({ bucketMs: 0, targetId: 0, model: '', tenant: '', family: 'cache_hit', bucket: '' });
const add = (acc: Acc, f: LatencyFact) => mergeLatencyFact(acc, f);

const q = (s: Sketch, p: number) => sketchQuantile(s, p) ?? null;
const meanPrompt = (a: Acc) => (a.promptRequests ? a.promptTokens / a.promptRequests : null);
const bucketOrder = (family: LatencyFamily, bucket: string) => {
  const i = (LATENCY_FAMILIES[family] as readonly string[]).indexOf(bucket);
  return i < 0 ? 99 : i;
};
const seconds = (v: number | null) => (v === null ? '–' : `${v < 1 ? v.toFixed(3) : v.toFixed(2)} s`);

/** Warm (share ≥ 0.5) against cold (share < 0.1) TTFT per model: a correlation, never a cause. */
function headline(model: string, warm: Acc, cold: Acc): LatencyHeadline {
  const side = (a: Acc) => ({
    requests: a.requests,
    ttft_p50_s: q(a.sketches.ttft, 0.5),
    mean_prompt_tokens: meanPrompt(a),
  });
  const h = { model, warm: side(warm), cold: side(cold) };
  const warmN = sketchCount(warm.sketches.ttft);
  const coldN = sketchCount(cold.sketches.ttft);
  if (warmN < HEADLINE_MIN_REQUESTS || coldN < HEADLINE_MIN_REQUESTS)
    return {
      ...h,
      shown: false,
      text:
        `${model}: not shown: ${warmN} warm and ${coldN} cold requests with a TTFT; ` +
        `each side needs at least ${HEADLINE_MIN_REQUESTS}`,
    };
  const wp = h.warm.mean_prompt_tokens;
  const cp = h.cold.mean_prompt_tokens;
  const similar = wp !== null && cp !== null && Math.max(wp, cp) <= SIMILAR_PROMPTS * Math.min(wp, cp);
  const prompts =
    wp === null || cp === null
      ? 'prompt lengths unknown'
      : similar
        ? `at similar prompt lengths (mean ${Math.round(wp)} and ${Math.round(cp)} tokens)`
        : `at different prompt lengths (mean ${Math.round(wp)} and ${Math.round(cp)} tokens; compare prefill ` +
          'seconds per 1,000 uncached tokens instead)';
  return {
    ...h,
    shown: true,
    text:
      `${model}: warm requests (share ≥ 0.5) had TTFT p50 ${seconds(h.warm.ttft_p50_s)} against ` +
      `${seconds(h.cold.ttft_p50_s)} for cold ones (share < 0.1), ${prompts}. A correlation over ` +
      `${warm.requests + cold.requests} requests, not a measured cause.`,
  };
}

interface Group {
  key: Partial<Record<Dimension, string>>;
  family: LatencyFamily;
  bucket: string;
  acc: Acc;
}

function groupRows(facts: readonly LatencyFact[], by: readonly Dimension[], targets: Map<number, TargetInfo>) {
  const groups = new Map<string, Group>();
  for (const f of facts) {
    const key = ledgerKey(f, by, targets);
    const k = `${by.map((d) => key[d] ?? '').join('\u0000')}\u0000${f.family}\u0000${f.bucket}`;
    let g = groups.get(k);
    if (!g) groups.set(k, (g = { key, family: f.family, bucket: f.bucket, acc: newAcc() }));
    add(g.acc, f);
  }
  const rows: LatencyRow[] = [...groups.values()].map(({ key, family, bucket, acc }) => ({
    key,
    family,
    bucket,
    requests: acc.requests,
    mean_prompt_tokens: meanPrompt(acc),
    ttft_p50_s: q(acc.sketches.ttft, 0.5),
    ttft_p95_s: q(acc.sketches.ttft, 0.95),
    queue_p50_s: q(acc.sketches.queue, 0.5),
    queue_p95_s: q(acc.sketches.queue, 0.95),
    prefill_p50_s: q(acc.sketches.prefill, 0.5),
    e2e_p50_s: q(acc.sketches.e2e, 0.5),
    e2e_p95_s: q(acc.sketches.e2e, 0.95),
    prefill_s_per_1k_uncached_p50: q(acc.sketches.prefill_per_1k, 0.5),
    share_measured: acc.shareMeasured,
    share_estimated: acc.shareEstimated,
  }));
  return rows.sort((a, b) => {
    for (const d of by) {
      const x = a.key[d] ?? '';
      const y = b.key[d] ?? '';
      if (x !== y) return x < y ? -1 : 1;
    }
    if (a.family !== b.family) return FAMILY_NAMES.indexOf(a.family) - FAMILY_NAMES.indexOf(b.family);
    return bucketOrder(a.family, a.bucket) - bucketOrder(b.family, b.bucket);
  });
}

export function buildLatencyReport(input: LatencyInput): LatencyReport {
  const { by, targets } = input;
  const warm = new Map<string, Acc>();
  const cold = new Map<string, Acc>();
  let withoutFleetState = 0;
  let total = 0;
  for (const f of input.facts) {
    if (f.family !== 'cache_hit') {
      if (f.family === 'kv_usage' && f.bucket === UNKNOWN_BUCKET) withoutFleetState += f.requests;
      continue;
    }
    total += f.requests;
    const model = f.model || '(unknown)';
    const side = f.bucket === '0.5-0.9' || f.bucket === '0.9-1' ? warm : f.bucket === '0-0.1' ? cold : undefined;
    if (!side) continue;
    let a = side.get(model);
    if (!a) side.set(model, (a = newAcc()));
    add(a, f);
  }
  const rows = groupRows(input.facts, by, targets);
  const per_model = groupRows(input.facts, ['model'], targets);
  const models = [...new Set([...warm.keys(), ...cold.keys()])].sort();
  const headlines = models.map((m) => headline(m, warm.get(m) ?? newAcc(), cold.get(m) ?? newAcc()));
  const notes: string[] = [];
  if (!total) notes.push('No request spans in this period.');
  if (withoutFleetState)
    notes.push(
      `${withoutFleetState} of ${total} requests have no KV usage or queue at their window's start (matched ` +
        'fleet-wide, no scrape before the span, or recorded before cachelens kept it): bucket "unknown".',
    );
  return {
    schema: LATENCY_SCHEMA,
    generated_at: new Date(input.nowMs).toISOString(),
    db: input.db,
    period: { since: new Date(input.fromMs).toISOString(), until: new Date(input.toMs).toISOString() },
    group_by: by,
    buckets: LATENCY_FAMILIES,
    accuracy: LATENCY_ACCURACY,
    rows,
    per_model,
    headlines,
    notes,
  };
}
