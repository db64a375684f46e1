import type { Signal } from '../scrape/types.ts';
import type { FleetQueries, WindowSignals } from '../store/fleetQueries.ts';
import { cachedTokensOf } from '../store/rollups.ts';
import type { MatchRule, MatchTarget } from './match.ts';
import type { ScrapeTimelines } from './timelines.ts';

/** Attribute values; a bigint is an int64 that a double cannot hold (nanosecond times). */
export type EventAttrs = Record<string, string | number | boolean | bigint>;

/** What the fleet did over one window; shared by every span that falls in the same window. */
export interface WindowContext {
  complete: boolean;
  cache: EventAttrs;
  scheduler: EventAttrs;
  /** enrich.detail: compact: the few values that say cold cache, full KV cache, long queue, preemptions. */
  compact: EventAttrs;
  /** Window totals behind the per-request cached-token estimate. */
  windowPromptTokens?: number;
  windowCachedTokens?: number;
  /** The matched instance at the window's start, for the ledger (the latency view's buckets). */
  kvUsageStart?: number;
  waitingStart?: number;
}

export type WindowLookup = { wait: true } | { wait: false; ctx: WindowContext };

const ratio = (hits: number | undefined, queries: number | undefined): number | undefined =>
  hits !== undefined && queries !== undefined && queries > 0 ? hits / queries : undefined;

function put(attrs: EventAttrs, key: string, v: number | string | boolean | bigint | undefined): void {
  // An unknown value is left out, never written as 0.
  if (v !== undefined && !(typeof v === 'number' && !Number.isFinite(v))) attrs[key] = v;
}

// Epoch nanoseconds pass 2^53, so ms × 1e6 in a double is not exact; the integer part is scaled as a bigint.
const msToNanos = (ms: number): bigint => {
  const whole = Math.floor(ms);
  return BigInt(whole) * 1_000_000n + BigInt(Math.round((ms - whole) * 1e6));
};

/**
 * Finds a span's window (last scrape at or before its start → first scrape at or after its end)
 * and the fleet's numbers over it, cached per window so spans sharing one cost one computation.
 */
export class WindowContexts {
  private readonly cache = new Map<string, WindowContext>();

  constructor(
    private readonly queries: FleetQueries,
    private readonly timelines: ScrapeTimelines,
    private readonly lookbackMs: number,
  ) {}

  clear(): void {
    this.cache.clear();
  }

  lookup(
    rule: MatchRule,
    target: MatchTarget | undefined,
    models: string[] | null,
    fleet: readonly MatchTarget[],
    startMs: number,
    endMs: number,
    mayWait: boolean,
  ): WindowLookup {
    let from: number | undefined;
    let to: number | undefined;
    let hasStart: boolean;
    let complete: boolean;
    if (target) {
      const a = this.timelines.before(target.id, startMs);
      const b = this.timelines.after(target.id, endMs);
      if (b === undefined && mayWait) return { wait: true };
      from = a ?? this.timelines.after(target.id, startMs);
      to = b ?? this.timelines.latest(target.id);
      hasStart = a !== undefined;
      complete = a !== undefined && b !== undefined;
    } else {
      let a: number | undefined;
      let b: number | undefined;
      let allClosed = fleet.length > 0;
      for (const t of fleet) {
        const ta = this.timelines.before(t.id, startMs);
        const tb = this.timelines.after(t.id, endMs);
        if (ta !== undefined && (a === undefined || ta < a)) a = ta;
        if (tb === undefined) allClosed = false;
        else if (b === undefined || tb > b) b = tb;
      }
      // With no instance to wait for (no targets scraped yet), waiting cannot help.
      if (!allClosed && mayWait && fleet.length) return { wait: true };
      from = a ?? Math.min(...fleet.map((t) => this.timelines.after(t.id, startMs) ?? Infinity));
      to = b ?? Math.max(...fleet.map((t) => this.timelines.latest(t.id) ?? -Infinity));
      if (!Number.isFinite(from)) from = undefined;
      if (!Number.isFinite(to)) to = undefined;
      hasStart = a !== undefined;
      complete = a !== undefined && allClosed;
    }
    const fleetIds = fleet.map((t) => t.id).join(',');
    const modelKey = models?.join('\u0000') ?? '*';
    const key = `${rule}|${target?.id ?? ''}|${modelKey}|${fleetIds}|${from}|${to}|${hasStart}|${complete}`;
    let ctx = this.cache.get(key);
    if (!ctx) {
      if (this.cache.size > 50_000) this.cache.clear();
      ctx = this.compute(rule, target, models, fleet, from, to, hasStart, complete);
      this.cache.set(key, ctx);
    }
    return { wait: false, ctx };
  }

  private compute(
    rule: MatchRule,
    target: MatchTarget | undefined,
    models: string[] | null,
    fleet: readonly MatchTarget[],
    from: number | undefined,
    to: number | undefined,
    hasStart: boolean,
    complete: boolean,
  ): WindowContext {
    const cache: EventAttrs = {};
    const scheduler: EventAttrs = {};
    put(cache, 'cachelens.match', rule);
    put(cache, 'cachelens.instance', target?.instance);
    put(cache, 'cachelens.model', models?.length === 1 ? models[0] : undefined);
    put(cache, 'cachelens.window.start_unix_nano', from !== undefined ? msToNanos(from) : undefined);
    put(cache, 'cachelens.window.end_unix_nano', to !== undefined ? msToNanos(to) : undefined);
    put(cache, 'cachelens.window.complete', complete);
    const compact: EventAttrs = {};
    put(compact, 'cachelens.match', rule);
    put(compact, 'cachelens.instance', target?.instance);
    if (from === undefined || to === undefined) return { complete, cache, scheduler, compact };

    const empty: WindowSignals = { counters: {}, gaugeStart: {}, gaugeMax: {} };
    const inst = target ? this.queries.windowSignals([target.id], models, from, to) : empty;
    const fl = fleet.length
      ? this.queries.windowSignals(
          fleet.map((t) => t.id),
          models,
          from,
          to,
        )
      : empty;
    const c = (s: Signal): number | undefined => inst.counters[s];
    const startGauge = (s: Signal): number | undefined => (hasStart ? inst.gaugeStart[s] : undefined);

    put(cache, 'cachelens.prefix_cache.queries', c('prefix_cache_queries'));
    put(cache, 'cachelens.prefix_cache.hits', c('prefix_cache_hits'));
    put(cache, 'cachelens.prefix_cache.hit_ratio', ratio(c('prefix_cache_hits'), c('prefix_cache_queries')));
    put(cache, 'cachelens.prompt_tokens', c('prompt_tokens'));
    put(cache, 'cachelens.prompt_tokens.cached', c('prompt_tokens_cached'));
    // Tiered KV caches: where the cached tokens came from, and the KV connector's own lookups.
    put(cache, 'cachelens.prompt_tokens.cached.local', c('prompt_tokens_local_cache_hit'));
    put(cache, 'cachelens.prompt_tokens.cached.external', c('prompt_tokens_external_transfer'));
    put(cache, 'cachelens.prefix_cache.external.queries', c('external_prefix_cache_queries'));
    put(cache, 'cachelens.prefix_cache.external.hits', c('external_prefix_cache_hits'));
    put(cache, 'cachelens.kv_cache.usage.start', startGauge('kv_cache_usage'));
    put(cache, 'cachelens.kv_cache.usage.max', inst.gaugeMax.kv_cache_usage);
    put(
      cache,
      'cachelens.fleet.prefix_cache.hit_ratio',
      ratio(fl.counters.prefix_cache_hits, fl.counters.prefix_cache_queries),
    );
    put(cache, 'cachelens.fleet.kv_cache.usage.max', fl.gaugeMax.kv_cache_usage);
    put(cache, 'cachelens.fleet.instances', fleet.length);

    put(scheduler, 'cachelens.queue.waiting.start', startGauge('requests_waiting'));
    put(scheduler, 'cachelens.queue.waiting.max', inst.gaugeMax.requests_waiting);
    put(scheduler, 'cachelens.requests.running.start', startGauge('requests_running'));
    put(scheduler, 'cachelens.preemptions', c('preemptions'));
    if (fleet.length)
      put(
        scheduler,
        'cachelens.fleet.queue.waiting.start',
        this.queries.gaugeSumAt(
          fleet.map((t) => t.id),
          models,
          'requests_waiting',
          from,
          this.lookbackMs,
        ),
      );
    put(scheduler, 'cachelens.fleet.preemptions', fl.counters.preemptions);

    const own = target ? inst : fl;
    // The matched instance's values; fleet-wide when the span matched no instance.
    put(compact, 'cachelens.hit_ratio', ratio(own.counters.prefix_cache_hits, own.counters.prefix_cache_queries));
    put(compact, 'cachelens.kv_max', own.gaugeMax.kv_cache_usage);
    put(compact, 'cachelens.waiting_max', own.gaugeMax.requests_waiting);
    put(compact, 'cachelens.preemptions', own.counters.preemptions);
    put(
      compact,
      'cachelens.external_share',
      ratio(own.counters.prompt_tokens_external_transfer, own.counters.prompt_tokens_cached),
    );
    // The reports' source (cachedTokensOf), so vLLM 0.12–0.15 and SGLang without cached_tokens_total get an
    // estimate too.
    return {
      complete,
      cache,
      scheduler,
      compact,
      windowPromptTokens: own.counters.prompt_tokens,
      windowCachedTokens:
        cachedTokensOf(
          own.counters.prompt_tokens_cached,
          own.counters.prefix_cache_hits,
          own.counters.external_prefix_cache_hits,
        ) ?? undefined,
      kvUsageStart: startGauge('kv_cache_usage'),
      waitingStart: startGauge('requests_waiting'),
    };
  }
}
