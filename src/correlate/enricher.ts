import type { EnrichAs, EnrichDetail } from '../config/config.ts';
import type { LongLike, OtlpTraceRequest } from '../otlp/schema.ts';
import { nanosToMs } from '../otlp/decode.ts';
import type { FleetQueries } from '../store/fleetQueries.ts';
import type { LedgerRow, TenantRow, TraceUsageRow } from '../store/ledgerStore.ts';
import { matchSpan, normalizePeer, toMatchTarget, type Match, type MatchTarget } from './match.ts';
import type { SpanSelector } from './requestSpans.ts';
import { ScrapeTimelines } from './timelines.ts';
import { requestFacts, type RequestFacts } from './requestFacts.ts';
import { WindowContexts, type EventAttrs } from './windowContext.ts';

export interface EnrichOptions {
  maxWaitMs: number;
  as: EnrichAs;
  /** full (default): the cache and scheduler events; compact: one small event. */
  detail?: EnrichDetail;
  selector: SpanSelector;
  tenantKeys: readonly string[];
  /** How far back gauge lookups and scrape timelines reach. */
  lookbackMs: number;
  /** Per-target `match` blocks from config, by target URL. */
  targetMatch: () => ReadonlyMap<string, Record<string, string>>;
  /** Server label → span resource attribute: a span matches the server whose mapped labels it carries. */
  labelAttributes?: Readonly<Record<string, string>>;
}

/**
 * What the exporter adds to one request span: the `cachelens.cache` and `cachelens.scheduler`
 * events (or attributes, or both). `cache` and `scheduler` are the window's own objects, shared by
 * every span of that window, so the exporter can encode each once; `own` holds this span's
 * additions to the cache event.
 */
export interface SpanExtra {
  as: EnrichAs;
  /** compact: `cache` holds the compact values, written as one `cachelens` event; `scheduler` is empty. */
  detail: EnrichDetail;
  /** The events' timestamp: the span's start. */
  time: LongLike | number;
  cache: EventAttrs;
  scheduler: EventAttrs;
  own: EventAttrs | undefined;
}

export type Prepared =
  | { ready: false; retryAtMs: number }
  | {
      ready: true;
      extras: Map<number, SpanExtra>;
      ledger: LedgerRow[];
      tenants: TenantRow[];
      traceUsage: TraceUsageRow[];
      requestSpans: number;
      incomplete: number;
      byMatch: Map<string, number>;
    };

export const CACHE_EVENT = 'cachelens.cache';
export const SCHEDULER_EVENT = 'cachelens.scheduler';
export const COMPACT_EVENT = 'cachelens';
const ESTIMATE_KEY = 'cachelens.request.cache_read.input_tokens.estimate';
const COMPACT_ESTIMATE_KEY = 'cachelens.cached_estimate';
const NOTHING: EventAttrs = Object.freeze({}) as EventAttrs;
const SKEW_KEY = 'cachelens.clock_skew_ms';
/** Export batching and network time never put a span's end this far past its arrival. */
const CLOCK_SKEW_TOLERANCE_MS = 2000;

const finiteOrNull = (v: number | undefined): number | null => (v !== undefined && Number.isFinite(v) ? v : null);

/** The processor step: decides each request span's window, builds its events and its ledger row. */
export class Enricher {
  private readonly timelines: ScrapeTimelines;
  private readonly windows: WindowContexts;
  private targets: MatchTarget[] = [];
  private targetsLoadedMs = -Infinity;
  private readonly tenantKeys: Set<string>;

  constructor(
    private readonly queries: FleetQueries,
    private readonly opts: EnrichOptions,
  ) {
    this.timelines = new ScrapeTimelines(queries, opts.lookbackMs);
    this.windows = new WindowContexts(queries, this.timelines, opts.lookbackMs);
    this.tenantKeys = new Set(opts.tenantKeys);
  }

  /** Picks up scrapes committed since the last call; cheap when nothing changed. */
  refresh(nowMs: number): void {
    this.timelines.refresh(nowMs);
    if (nowMs - this.targetsLoadedMs > 2000) {
      const match = this.opts.targetMatch();
      this.targets = this.queries.targets().map((t) => toMatchTarget(t, match.get(t.url), this.opts.labelAttributes));
      this.targetsLoadedMs = nowMs;
      this.windows.clear();
    }
  }

  /** What prepare() needs from a decoded request; taken once, at admission. */
  facts(req: OtlpTraceRequest): RequestFacts {
    return requestFacts(req, this.opts.selector, this.tenantKeys);
  }

  prepare(facts: RequestFacts, peerAddress: string | null, receivedMs: number, nowMs: number): Prepared {
    const peer = normalizePeer(peerAddress);
    const mayWait = nowMs < receivedMs + this.opts.maxWaitMs;
    const extras = new Map<number, SpanExtra>();
    const ledger: LedgerRow[] = [];
    const tenants: TenantRow[] = [];
    const traceUsage: TraceUsageRow[] = [];
    const byMatch = new Map<string, number>();
    let requestSpans = 0;
    let incomplete = 0;
    const { tracesWithCount } = facts;
    const compact = this.opts.detail === 'compact';

    for (const resource of facts.resources) {
      const resourceAttrs = resource.attributes;
      let match: Match | undefined;
      for (const span of resource.spans) {
        const { traceId, usage } = span;
        const startMs = nanosToMs(span.start);
        // An end before the start is read as the start, so a window never runs backwards.
        const endMs = Math.max(startMs, nanosToMs(span.end));
        for (const key in span.tenants)
          tenants.push({
            traceId,
            key,
            value: span.tenants[key]!,
            seenMs: nowMs,
            spanStartMs: startMs,
            spanEndMs: endMs,
          });
        if (!span.request) {
          // A gateway or client span with the real count: the report credits it to the trace's request span.
          if (usage.cachedTokens !== undefined)
            traceUsage.push({
              traceId,
              cachedTokens: usage.cachedTokens,
              seenMs: nowMs,
              spanStartMs: startMs,
              spanEndMs: endMs,
            });
          continue;
        }
        requestSpans++;
        match ??= matchSpan(resourceAttrs, peer, this.targets);
        // Hosts' clocks differ from ours. A span that ends after we received it was stamped by a
        // clock running ahead: say by how much, and do not wait for a scrape that far off.
        const skewMs = endMs - receivedMs > CLOCK_SKEW_TOLERANCE_MS ? Math.round(endMs - receivedMs) : undefined;
        const models = this.modelsFor(match, usage.requestModel);
        const fleet = this.fleetFor(models);
        const found = this.windows.lookup(
          match.rule,
          match.target,
          models,
          fleet,
          startMs,
          endMs,
          mayWait && skewMs === undefined,
        );
        if (found.wait) return { ready: false, retryAtMs: Math.min(receivedMs + this.opts.maxWaitMs, nowMs + 1000) };
        const ctx = found.ctx;
        if (!ctx.complete) incomplete++;
        byMatch.set(match.rule, (byMatch.get(match.rule) ?? 0) + 1);

        let spanOwn: EventAttrs | undefined;
        let estimate: number | undefined;
        if (
          usage.cachedTokens === undefined &&
          !tracesWithCount.has(traceId) &&
          usage.promptTokens !== undefined &&
          ctx.windowCachedTokens !== undefined &&
          ctx.windowPromptTokens
        ) {
          estimate = Math.min(
            usage.promptTokens,
            (ctx.windowCachedTokens * usage.promptTokens) / ctx.windowPromptTokens,
          );
          spanOwn = { [compact ? COMPACT_ESTIMATE_KEY : ESTIMATE_KEY]: estimate };
        }
        if (skewMs !== undefined) spanOwn = { ...spanOwn, [SKEW_KEY]: skewMs };
        extras.set(span.index, {
          as: this.opts.as,
          detail: compact ? 'compact' : 'full',
          time: span.start,
          cache: compact ? ctx.compact : ctx.cache,
          scheduler: compact ? NOTHING : ctx.scheduler,
          own: spanOwn,
        });
        const serviceName = resourceAttrs['service.name'];
        ledger.push({
          traceId,
          spanId: span.spanId,
          startMs,
          endMs,
          spanName: span.name,
          serviceName: typeof serviceName === 'string' ? serviceName : null,
          targetId: match.target?.id ?? null,
          instance: match.target?.instance ?? null,
          model: models?.length === 1 ? models[0]! : (usage.requestModel ?? null),
          match: match.rule,
          promptTokens: usage.promptTokens ?? null,
          completionTokens: usage.completionTokens ?? null,
          cachedTokens: usage.cachedTokens ?? null,
          cachedTokensEstimate: estimate ?? null,
          windowComplete: ctx.complete,
          latency: usage.latency,
          tenantJson: Object.keys(span.tenants).length ? JSON.stringify(span.tenants) : null,
          kvUsageStart: finiteOrNull(ctx.kvUsageStart),
          waitingStart: finiteOrNull(ctx.waitingStart),
        });
      }
    }
    return { ready: true, extras, ledger, tenants, traceUsage, requestSpans, incomplete, byMatch };
  }

  /** vLLM's span names no model, so the matched target's model wins; the span's own model picks among several. */
  private modelsFor(match: Match, spanModel: string | undefined): string[] | null {
    const t = match.target;
    if (t) {
      if (t.models.length === 1) return t.models;
      if (spanModel && t.models.includes(spanModel)) return [spanModel];
      return t.models.length ? t.models : null;
    }
    if (spanModel && this.targets.some((x) => x.models.includes(spanModel))) return [spanModel];
    return null;
  }

  private fleetFor(models: string[] | null): MatchTarget[] {
    // Unknown model: every instance that has served anything (a never-scraped target is not fleet).
    if (!models) return this.targets.filter((t) => t.models.length > 0);
    return this.targets.filter((t) => t.models.some((m) => models.includes(m)));
  }
}
