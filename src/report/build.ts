import {
  addNullable,
  cachedTokensOf,
  DAY_MS,
  HOUR_MS,
  MINUTE_MS,
  type FleetFact,
  type LedgerFact,
} from '../store/rollups.ts';
import type { TargetInfo } from '../store/reportQueries.ts';
import { mergeSketch, newSketch, sketchQuantile, type Sketch } from '../store/sketch.ts';
import { instancePriceAt, modelPriceAt, type Prices } from './prices.ts';

export const DIMENSIONS = ['model', 'instance', 'day', 'hour', 'tenant'] as const;
export type Dimension = (typeof DIMENSIONS)[number];

export const REPORT_SCHEMA = 'cachelens.report/v1';

/** One report row's figures; null where the figure is unknown or does not apply (never a made-up 0). */
export interface Figures {
  requests: number | null;
  prompt_tokens: number | null;
  cached_prompt_tokens: number | null;
  cached_measured_tokens: number | null;
  cached_allocated_tokens: number | null;
  /** Of the cached tokens: local prefix-cache hits, and KV transferred from an external tier (KV connector). */
  local_cached_prompt_tokens: number | null;
  external_cached_prompt_tokens: number | null;
  cache_hit_ratio: number | null;
  /** The KV connector's cross-instance lookups: external hits / external queries. */
  external_hit_ratio: number | null;
  generation_tokens: number | null;
  preemptions: number | null;
  kv_cache_usage_mean: number | null;
  kv_cache_usage_p95: number | null;
  queue_depth_mean: number | null;
  queue_depth_p95: number | null;
  cost_without_cache: number | null;
  cost_with_cache: number | null;
  savings: number | null;
}

export type RowSource = 'fleet' | 'tenant' | 'unattributed';

export interface ReportRow extends Figures {
  key: Partial<Record<Dimension, string>>;
  /** fleet rows: exact scrape deltas; tenant rows: how their cached tokens were found. */
  source: RowSource;
  basis: 'exact' | 'measured' | 'allocated' | 'mixed' | 'none' | 'remainder';
  /**
   * How local and external cached tokens were found: exact (the fleet's counters), allocated (a tenant's
   * cached tokens split as its model's fleet split them in the same bucket), null where unknown.
   */
  cached_split_basis: 'exact' | 'allocated' | 'remainder' | null;
}

export interface SeriesPoint {
  t: string;
  model: string;
  cache_hit_ratio: number | null;
  kv_cache_usage_mean: number | null;
  queue_depth_mean: number | null;
  local_cached_prompt_tokens: number | null;
  external_cached_prompt_tokens: number | null;
}

export interface Report {
  schema: typeof REPORT_SCHEMA;
  generated_at: string;
  db: string;
  period: { since: string; until: string };
  group_by: Dimension[];
  currency: string | null;
  prices_file: string | null;
  rows: ReportRow[];
  totals: ReportRow;
  reconciliation: {
    fleet_cached_prompt_tokens: number | null;
    tenant_measured: number;
    tenant_allocated: number;
    unattributed: number | null;
  } | null;
  series: { bucket: 'minute' | 'hour' | 'day'; points: SeriesPoint[] };
  savings_by_model: Array<{ model: string; savings: number | null }>;
  savings_by_tenant: Array<{ tenant: string; savings: number | null }>;
  notes: string[];
}

export interface BuildInput {
  db: string;
  fromMs: number;
  toMs: number;
  by: Dimension[];
  bucketMs: number;
  fleet: FleetFact[];
  ledger: LedgerFact[];
  /** Models whose prefix-cache hits were in blocks with no known block size. */
  hitsInBlocks?: string[];
  targets: Map<number, TargetInfo>;
  prices: Prices | null;
  nowMs: number;
}

const UNKNOWN_MODEL = '(unknown)';
const NO_INSTANCE = '(fleet)';
const NO_TENANT = '(none)';
export const UNATTRIBUTED = 'unattributed';

const iso = (ms: number) => new Date(ms).toISOString();
const dayOf = (ms: number) => iso(Math.floor(ms / DAY_MS) * DAY_MS).slice(0, 10);
const hourOf = (ms: number) => `${iso(Math.floor(ms / HOUR_MS) * HOUR_MS).slice(0, 13)}:00Z`;

/**
 * The cached prompt tokens of a fleet fact: `prompt_tokens_cached` where exposed, else prefix-cache hits; never both.
 */
export function fleetCached(f: FleetFact): number | null {
  const c = f.counters;
  return cachedTokensOf(c.prompt_tokens_cached, c.prefix_cache_hits, c.external_prefix_cache_hits);
}

/**
 * Local and external cached tokens of a fleet fact: vllm:prompt_tokens_by_source where exposed, else the
 * KV connector's hits as the external part (the rest local); null for both where the server exposes neither.
 */
export function fleetCachedSplit(f: FleetFact): { local: number | null; external: number | null } {
  const c = f.counters;
  const external = c.prompt_tokens_external_transfer ?? c.external_prefix_cache_hits;
  if (external === null) return { local: c.prompt_tokens_local_cache_hit, external: null };
  const cached = fleetCached(f);
  return {
    local: c.prompt_tokens_local_cache_hit ?? (cached === null ? null : Math.max(0, cached - external)),
    external,
  };
}

interface Cost {
  without: number;
  with: number;
}

/** Costs of token counts under a per-1M-token model price. Prompt tokens include the cached ones. */
function tokenCost(
  p: { input: number; cachedInput: number; externalCachedInput: number; output: number },
  prompt: number,
  cached: number,
  gen: number,
  external: number,
): Cost {
  const ext = Math.min(external, cached);
  return {
    without: (prompt * p.input + gen * p.output) / 1e6,
    with:
      ((prompt - cached) * p.input + (cached - ext) * p.cachedInput + ext * p.externalCachedInput + gen * p.output) /
      1e6,
  };
}

/**
 * Prices each fact. A GPU-hour instance price wins over a model price: the instance's cost for the
 * bucket (minutes it reported × GPUs × price) is spread over the tokens it actually processed (prompt
 * tokens not served from cache, plus generated tokens); without the cache it would have processed the
 * cached tokens too, at the same cost per token.
 */
class Pricer {
  private readonly perToken = new Map<string, { costPerToken: number; idleShare: number } | null>();
  readonly unpricedModels = new Set<string>();

  constructor(
    private readonly prices: Prices,
    targets: Map<number, TargetInfo>,
    fleet: readonly FleetFact[],
  ) {
    const byTargetBucket = new Map<string, FleetFact[]>();
    for (const f of fleet) {
      const k = `${f.targetId}\u0000${f.bucketMs}`;
      const list = byTargetBucket.get(k);
      if (list) list.push(f);
      else byTargetBucket.set(k, [f]);
    }
    for (const [k, facts] of byTargetBucket) {
      const first = facts[0]!;
      const instance = targets.get(first.targetId)?.instance;
      const p = instance === undefined ? undefined : instancePriceAt(prices, instance, first.bucketMs);
      if (!p) {
        this.perToken.set(k, null);
        continue;
      }
      const minutes = Math.max(...facts.map((f) => f.minutes));
      const cost = (p.gpuHour * p.gpus * minutes) / 60;
      const processed = facts.reduce(
        (s, f) =>
          s + processedTokens(f.counters.prompt_tokens ?? 0, fleetCached(f) ?? 0, f.counters.generation_tokens ?? 0),
        0,
      );
      this.perToken.set(
        k,
        processed > 0
          ? { costPerToken: cost / processed, idleShare: 0 }
          : { costPerToken: 0, idleShare: cost / facts.length },
      );
    }
  }

  fleet(f: FleetFact): Cost | null {
    const prompt = f.counters.prompt_tokens ?? 0;
    const cached = fleetCached(f) ?? 0;
    const gen = f.counters.generation_tokens ?? 0;
    return this.price(f.targetId, f.model, f.bucketMs, prompt, cached, gen, true, fleetCachedSplit(f).external ?? 0);
  }

  ledger(l: LedgerFact, external: number): Cost | null {
    return this.price(
      l.targetId,
      l.model,
      l.bucketMs,
      l.promptTokens,
      l.cachedMeasured + l.cachedAllocated,
      l.completionTokens,
      false,
      external,
    );
  }

  private price(
    targetId: number,
    model: string,
    bucketMs: number,
    prompt: number,
    cached: number,
    gen: number,
    idle: boolean,
    external: number,
  ): Cost | null {
    const gpu = this.perToken.get(`${targetId}\u0000${bucketMs}`);
    if (gpu) {
      const extra = idle ? gpu.idleShare : 0;
      return {
        without: gpu.costPerToken * (prompt + gen) + extra,
        with: gpu.costPerToken * processedTokens(prompt, cached, gen) + extra,
      };
    }
    const p = model ? modelPriceAt(this.prices, model, bucketMs) : undefined;
    if (!p) {
      if (prompt || gen) this.unpricedModels.add(model || UNKNOWN_MODEL);
      return null;
    }
    return tokenCost(p, prompt, cached, gen, external);
  }
}

const processedTokens = (prompt: number, cached: number, gen: number) => Math.max(0, prompt - cached) + gen;

/** Running sums for one row. */
class Acc {
  requests: number | null = null;
  prompt: number | null = null;
  cached: number | null = null;
  promptWithCached = 0;
  measured = 0;
  allocated = 0;
  gen: number | null = null;
  preemptions: number | null = null;
  kvSum = 0;
  kvCount = 0;
  kvSketch: Sketch = newSketch();
  queueSum = 0;
  queueCount = 0;
  queueSketch: Sketch = newSketch();
  costWithout: number | null = null;
  costWith: number | null = null;
  local: number | null = null;
  external: number | null = null;
  extQueries: number | null = null;
  extHits: number | null = null;

  addFleet(f: FleetFact, cost: Cost | null): void {
    const c = f.counters;
    const split = fleetCachedSplit(f);
    this.local = addNullable(this.local, split.local);
    this.external = addNullable(this.external, split.external);
    this.extQueries = addNullable(this.extQueries, c.external_prefix_cache_queries);
    this.extHits = addNullable(this.extHits, c.external_prefix_cache_hits);
    this.requests = addNullable(this.requests, c.requests);
    this.prompt = addNullable(this.prompt, c.prompt_tokens);
    const cached = fleetCached(f);
    if (cached !== null) {
      this.cached = addNullable(this.cached, cached);
      this.promptWithCached += c.prompt_tokens ?? 0;
    }
    this.gen = addNullable(this.gen, c.generation_tokens);
    this.preemptions = addNullable(this.preemptions, c.preemptions);
    this.kvSum += f.kv.sum;
    this.kvCount += f.kv.count;
    mergeSketch(this.kvSketch, f.kv.sketch);
    this.queueSum += f.queue.sum;
    this.queueCount += f.queue.count;
    mergeSketch(this.queueSketch, f.queue.sketch);
    this.addCost(cost);
  }

  /** `externalShare`: the fleet's external share of its cached tokens for the fact's model and bucket. */
  addLedger(l: LedgerFact, cost: Cost | null, externalShare: number | null): void {
    if (externalShare !== null) {
      const cached = l.cachedMeasured + l.cachedAllocated;
      this.local = (this.local ?? 0) + cached * (1 - externalShare);
      this.external = (this.external ?? 0) + cached * externalShare;
    }
    this.requests = (this.requests ?? 0) + l.requests;
    this.prompt = (this.prompt ?? 0) + l.promptTokens;
    this.gen = (this.gen ?? 0) + l.completionTokens;
    this.measured += l.cachedMeasured;
    this.allocated += l.cachedAllocated;
    this.cached = (this.cached ?? 0) + l.cachedMeasured + l.cachedAllocated;
    this.promptWithCached += l.promptTokens;
    this.addCost(cost);
  }

  private addCost(cost: Cost | null): void {
    if (!cost) return;
    this.costWithout = (this.costWithout ?? 0) + cost.without;
    this.costWith = (this.costWith ?? 0) + cost.with;
  }

  figures(priced: boolean): Figures {
    return {
      requests: this.requests,
      prompt_tokens: this.prompt,
      cached_prompt_tokens: this.cached,
      cached_measured_tokens: null,
      cached_allocated_tokens: null,
      local_cached_prompt_tokens: this.local,
      external_cached_prompt_tokens: this.external,
      cache_hit_ratio: this.cached !== null && this.promptWithCached > 0 ? this.cached / this.promptWithCached : null,
      external_hit_ratio:
        this.extHits !== null && this.extQueries !== null && this.extQueries > 0
          ? this.extHits / this.extQueries
          : null,
      generation_tokens: this.gen,
      preemptions: this.preemptions,
      kv_cache_usage_mean: this.kvCount ? this.kvSum / this.kvCount : null,
      kv_cache_usage_p95: sketchQuantile(this.kvSketch, 0.95) ?? null,
      queue_depth_mean: this.queueCount ? this.queueSum / this.queueCount : null,
      queue_depth_p95: sketchQuantile(this.queueSketch, 0.95) ?? null,
      cost_without_cache: priced ? this.costWithout : null,
      cost_with_cache: priced ? this.costWith : null,
      savings: priced && this.costWithout !== null && this.costWith !== null ? this.costWithout - this.costWith : null,
    };
  }
}

const sub = (a: number | null, b: number | null) => (a === null && b === null ? null : (a ?? 0) - (b ?? 0));

function fleetKey(
  f: FleetFact,
  dims: readonly Dimension[],
  targets: Map<number, TargetInfo>,
): Partial<Record<Dimension, string>> {
  const key: Partial<Record<Dimension, string>> = {};
  for (const d of dims) {
    if (d === 'model') key.model = f.model || UNKNOWN_MODEL;
    else if (d === 'instance') key.instance = targets.get(f.targetId)?.instance ?? NO_INSTANCE;
    else if (d === 'day') key.day = dayOf(f.bucketMs);
    else if (d === 'hour') key.hour = hourOf(f.bucketMs);
  }
  return key;
}

export function ledgerKey(
  l: Pick<LedgerFact, 'bucketMs' | 'targetId' | 'model' | 'tenant'>,
  dims: readonly Dimension[],
  targets: Map<number, TargetInfo>,
): Partial<Record<Dimension, string>> {
  const key: Partial<Record<Dimension, string>> = {};
  for (const d of dims) {
    if (d === 'model') key.model = l.model || UNKNOWN_MODEL;
    else if (d === 'instance') key.instance = (l.targetId && targets.get(l.targetId)?.instance) || NO_INSTANCE;
    else if (d === 'day') key.day = dayOf(l.bucketMs);
    else if (d === 'hour') key.hour = hourOf(l.bucketMs);
    else key.tenant = l.tenant || NO_TENANT;
  }
  return key;
}

const keyString = (key: Partial<Record<Dimension, string>>, dims: readonly Dimension[]) =>
  dims.map((d) => key[d] ?? '').join('\u0000');

function group<T>(
  items: readonly T[],
  keyOf: (x: T) => Partial<Record<Dimension, string>>,
  dims: readonly Dimension[],
): Map<string, { key: Partial<Record<Dimension, string>>; items: T[] }> {
  const out = new Map<string, { key: Partial<Record<Dimension, string>>; items: T[] }>();
  for (const x of items) {
    const key = keyOf(x);
    const k = keyString(key, dims);
    const g = out.get(k);
    if (g) g.items.push(x);
    else out.set(k, { key, items: [x] });
  }
  return out;
}

function basisOf(measured: number, allocated: number): ReportRow['basis'] {
  if (measured > 0 && allocated > 0) return 'mixed';
  if (measured > 0) return 'measured';
  if (allocated > 0) return 'allocated';
  return 'none';
}

const compareKeys = (dims: readonly Dimension[]) => (a: ReportRow, b: ReportRow) => {
  for (const d of dims) {
    const x = a.key[d] ?? '';
    const y = b.key[d] ?? '';
    // unattributed sorts last within its group
    if (d === 'tenant' && (x === UNATTRIBUTED) !== (y === UNATTRIBUTED)) return x === UNATTRIBUTED ? 1 : -1;
    if (x !== y) return x < y ? -1 : 1;
  }
  return 0;
};

export function buildReport(input: BuildInput): Report {
  const { by, targets, prices } = input;
  const priced = prices !== null;
  const pricer = prices ? new Pricer(prices, targets, input.fleet) : null;
  const fleetCost = new Map<FleetFact, Cost | null>(input.fleet.map((f) => [f, pricer ? pricer.fleet(f) : null]));
  const notes: string[] = [];

  // A tenant's cached tokens split local/external as its model's fleet split them in the same bucket.
  const fleetSplit = new Map<string, { cached: number; external: number }>();
  for (const f of input.fleet) {
    const { external } = fleetCachedSplit(f);
    const cached = fleetCached(f);
    if (external === null || cached === null) continue;
    const k = `${f.bucketMs}\u0000${f.model}`;
    const have = fleetSplit.get(k) ?? { cached: 0, external: 0 };
    have.cached += cached;
    have.external += external;
    fleetSplit.set(k, have);
  }
  const externalShare = (l: LedgerFact): number | null => {
    const s = fleetSplit.get(`${l.bucketMs}\u0000${l.model}`);
    return s && s.cached > 0 ? Math.min(1, s.external / s.cached) : null;
  };
  // Each fact is priced once; rows, remainders and charts all read these.
  const ledgerCost = new Map<LedgerFact, Cost | null>(
    input.ledger.map((l) => [
      l,
      pricer ? pricer.ledger(l, (l.cachedMeasured + l.cachedAllocated) * (externalShare(l) ?? 0)) : null,
    ]),
  );
  const ledgerAcc = (facts: readonly LedgerFact[], into = new Acc()) => {
    for (const l of facts) into.addLedger(l, ledgerCost.get(l) ?? null, externalShare(l));
    return into;
  };
  const fleetAcc = (facts: readonly FleetFact[]) => {
    const a = new Acc();
    for (const f of facts) a.addFleet(f, fleetCost.get(f) ?? null);
    return a;
  };
  const fleetRow = (key: Partial<Record<Dimension, string>>, a: Acc): ReportRow => {
    const figures = a.figures(priced);
    return {
      key,
      source: 'fleet',
      basis: 'exact',
      cached_split_basis: figures.external_cached_prompt_tokens === null ? null : 'exact',
      ...figures,
    };
  };

  const totalsAcc = fleetAcc(input.fleet);
  const totals = fleetRow({}, totalsAcc);
  const rows: ReportRow[] = [];
  let reconciliation: Report['reconciliation'] = null;

  if (!by.includes('tenant')) {
    for (const g of group(input.fleet, (f) => fleetKey(f, by, targets), by).values())
      rows.push(fleetRow(g.key, fleetAcc(g.items)));
  } else {
    // Tenant rows come from the ledger; per group of the other dimensions, what the fleet counted and
    // no tenant's requests account for is the `unattributed` row, so every column reconciles.
    const others = by.filter((d) => d !== 'tenant');
    const fleetGroups = group(input.fleet, (f) => fleetKey(f, others, targets), others);
    const tenantGroups = group(input.ledger, (l) => ledgerKey(l, by, targets), by);
    const claimed = new Map<string, { key: Partial<Record<Dimension, string>>; acc: Acc }>();
    let measured = 0;
    let allocated = 0;
    for (const g of tenantGroups.values()) {
      const a = ledgerAcc(g.items);
      measured += a.measured;
      allocated += a.allocated;
      const figures = a.figures(priced);
      rows.push({
        key: g.key,
        source: 'tenant',
        basis: basisOf(a.measured, a.allocated),
        cached_split_basis: figures.external_cached_prompt_tokens === null ? null : 'allocated',
        ...figures,
        cached_measured_tokens: a.measured,
        cached_allocated_tokens: a.allocated,
        preemptions: null,
      });
      const otherKey: Partial<Record<Dimension, string>> = {};
      for (const d of others) otherKey[d] = g.key[d];
      const ok = keyString(otherKey, others);
      const c = claimed.get(ok) ?? { key: otherKey, acc: new Acc() };
      ledgerAcc(g.items, c.acc);
      claimed.set(ok, c);
    }
    for (const k of new Set([...fleetGroups.keys(), ...claimed.keys()])) {
      const f = fleetGroups.get(k);
      const fa = f ? fleetAcc(f.items).figures(priced) : fleetRow({}, new Acc());
      const t = claimed.get(k)?.acc.figures(priced);
      const key = { ...(f?.key ?? claimed.get(k)!.key), tenant: UNATTRIBUTED };
      rows.push({
        key,
        source: 'unattributed',
        basis: 'remainder',
        cached_split_basis: fa.external_cached_prompt_tokens === null ? null : 'remainder',
        requests: sub(fa.requests, t?.requests ?? null),
        prompt_tokens: sub(fa.prompt_tokens, t?.prompt_tokens ?? null),
        cached_prompt_tokens: sub(fa.cached_prompt_tokens, t?.cached_prompt_tokens ?? null),
        cached_measured_tokens: null,
        cached_allocated_tokens: null,
        local_cached_prompt_tokens:
          fa.local_cached_prompt_tokens === null
            ? null
            : sub(fa.local_cached_prompt_tokens, t?.local_cached_prompt_tokens ?? null),
        external_cached_prompt_tokens:
          fa.external_cached_prompt_tokens === null
            ? null
            : sub(fa.external_cached_prompt_tokens, t?.external_cached_prompt_tokens ?? null),
        cache_hit_ratio: null,
        external_hit_ratio: null,
        generation_tokens: sub(fa.generation_tokens, t?.generation_tokens ?? null),
        preemptions: fa.preemptions,
        kv_cache_usage_mean: null,
        kv_cache_usage_p95: null,
        queue_depth_mean: null,
        queue_depth_p95: null,
        cost_without_cache: priced ? sub(fa.cost_without_cache, t?.cost_without_cache ?? null) : null,
        cost_with_cache: priced ? sub(fa.cost_with_cache, t?.cost_with_cache ?? null) : null,
        savings: priced ? sub(fa.savings, t?.savings ?? null) : null,
      });
    }
    const unattributed =
      totals.cached_prompt_tokens === null ? null : totals.cached_prompt_tokens - measured - allocated;
    reconciliation = {
      fleet_cached_prompt_tokens: totals.cached_prompt_tokens,
      tenant_measured: measured,
      tenant_allocated: allocated,
      unattributed,
    };
    if (!input.ledger.length && input.fleet.length)
      notes.push(
        "No request spans in the ledger for this period: every token is unattributed. Point the inference servers' " +
          'OTLP traces at cachelens (docs/architecture.md, The trace pipeline) and list tenant attributes under ' +
          'ledger.tenant_attributes.',
      );
    if (unattributed !== null && unattributed < 0)
      notes.push(
        'Tenants were credited more cached tokens than the fleet counted (a negative unattributed figure): allocated ' +
          'estimates from overlapping windows overshoot; measured counts do not.',
      );
  }
  rows.sort(compareKeys(by));
  totals.basis = 'exact';

  // Chart data: per model and bucket, from the fleet.
  const series: SeriesPoint[] = [];
  for (const g of group(input.fleet, (f) => ({ hour: String(f.bucketMs), model: f.model || UNKNOWN_MODEL }), [
    'hour',
    'model',
  ]).values()) {
    const fig = fleetAcc(g.items).figures(false);
    series.push({
      t: iso(Number(g.key.hour)),
      model: g.key.model!,
      cache_hit_ratio: fig.cache_hit_ratio,
      kv_cache_usage_mean: fig.kv_cache_usage_mean,
      queue_depth_mean: fig.queue_depth_mean,
      local_cached_prompt_tokens: fig.local_cached_prompt_tokens,
      external_cached_prompt_tokens: fig.external_cached_prompt_tokens,
    });
  }
  series.sort((a, b) => (a.t === b.t ? (a.model < b.model ? -1 : 1) : a.t < b.t ? -1 : 1));
  const savingsByModel = [...group(input.fleet, (f) => ({ model: f.model || UNKNOWN_MODEL }), ['model']).values()]
    .map((g) => ({ model: g.key.model!, savings: fleetAcc(g.items).figures(priced).savings }))
    .sort((a, b) => (b.savings ?? 0) - (a.savings ?? 0));
  const savingsByTenant = [...group(input.ledger, (l) => ({ tenant: l.tenant || NO_TENANT }), ['tenant']).values()]
    .map((g) => ({ tenant: g.key.tenant!, savings: ledgerAcc(g.items).figures(priced).savings }))
    .sort((a, b) => (b.savings ?? 0) - (a.savings ?? 0));

  if (!input.fleet.length && !input.ledger.length) {
    notes.push(
      `No data between ${iso(input.fromMs)} and ${iso(input.toMs)} in ${input.db}. Widen --since, or check that the ` +
        `daemon is scraping (cachelens scrape --once lists what each target exposes).`,
    );
  }
  if (!prices)
    notes.push(
      'No prices: the cost columns are left out. Pass --prices prices.yaml with per-model token prices or ' +
        'per-instance GPU-hour prices (docs/reports.md, Prices).',
    );
  else if (pricer!.unpricedModels.size)
    notes.push(
      `No price matches ${[...pricer!.unpricedModels].sort().join(', ')}: their tokens are left out of the cost ` +
        `columns. Add a models: entry whose match covers them in ${prices.file}.`,
    );
  const resets = input.fleet.reduce((s, f) => s + f.resets, 0);
  if (resets)
    notes.push(
      `${resets} counter reset${resets === 1 ? '' : 's'} (server restarts) in the period; deltas across them are ` +
        `exact.`,
    );
  const viaHits = new Set(
    input.fleet
      .filter((f) => f.counters.prompt_tokens_cached === null && f.counters.prefix_cache_hits !== null)
      .map((f) => f.model),
  );
  if (input.hitsInBlocks?.length)
    notes.push(
      `Prefix-cache hits of ${input.hitsInBlocks.join(', ')} are counted in blocks (vLLM before 0.9) and no block ` +
        `size was exposed (vllm:cache_config_info): they are left out of the token and cache figures, not added to ` +
        `tokens.`,
    );
  if (viaHits.size)
    notes.push(
      `Cached prompt tokens for ${[...viaHits].sort().join(', ')} come from prefix-cache hits (the server exposes no ` +
        `cached-prompt-token counter).`,
    );

  return {
    schema: REPORT_SCHEMA,
    generated_at: iso(input.nowMs),
    db: input.db,
    period: { since: iso(input.fromMs), until: iso(input.toMs) },
    group_by: by,
    currency: prices?.currency ?? null,
    prices_file: prices?.file ?? null,
    rows,
    totals,
    reconciliation,
    series: {
      bucket: input.bucketMs === MINUTE_MS ? 'minute' : input.bucketMs === HOUR_MS ? 'hour' : 'day',
      points: series,
    },
    savings_by_model: savingsByModel,
    savings_by_tenant: savingsByTenant,
    notes,
  };
}
