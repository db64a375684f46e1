import type { Enricher } from '../correlate/enricher.ts';
import type { RequestFacts } from '../correlate/requestFacts.ts';
import { decodeProtobuf } from '../otlp/decode.ts';
import type { OtlpTraceRequest } from '../otlp/schema.ts';
import { spliceSpans } from '../otlp/splice.ts';
import { ExtraEncoder } from './encodeExtras.ts';
import { FactsCache } from './factsCache.ts';
import type { LedgerBatch } from './ledgerWriter.ts';
import type { PipelineMetrics } from './metrics.ts';
import type { SpoolRow } from './spool.ts';
import { cacheHitBucket } from '../store/latencyRollups.ts';
import type { LedgerRow } from '../store/ledgerStore.ts';

/** Spool rows remembered as observed on the TTFT histogram; cleared past this (a retry may count twice). */
const MAX_OBSERVED = 100_000;
/** Distinct model label values on the TTFT histogram before the rest are `other`. */
const MAX_MODELS = 50;

/** One spool row, enriched: its bytes with cachelens' fields spliced in. */
export interface EnrichedRow {
  chunks: Uint8Array[];
  bytes: number;
}

export type Enrichment = { ready: true; row: EnrichedRow } | { ready: false; retryAtMs: number };

/**
 * The processor over spooled requests: the enricher with its facts cache, and the rows that wait for
 * their window's closing scrape. Those rows are woken by the next scrape round, not at their retry
 * time, and the wake-up time is kept so latency can be measured from it.
 */
export class EnrichStage {
  private readonly facts: FactsCache;
  private readonly encoder = new ExtraEncoder();
  private readonly waitingForWindow = new Set<number>();
  private readonly wokenAtMs = new Map<number, number>();
  private readonly observed = new Set<number>();
  private readonly models = new Set<string>();

  constructor(
    private readonly enricher: Enricher,
    factsCacheBytes: number,
    private readonly metrics?: PipelineMetrics,
  ) {
    this.facts = new FactsCache(factsCacheBytes);
  }

  get cachedFacts(): number {
    return this.facts.size;
  }

  /**
   * Facts of a request being admitted, taken while the receiver still holds it decoded, if the cache has room for
   * them; undefined when it has none (the spooled bytes are decoded when the row's turn comes).
   */
  factsOf(req: OtlpTraceRequest, spans: number): RequestFacts | undefined {
    return this.facts.hasRoomFor(spans) ? this.enricher.facts(req) : undefined;
  }

  /** The admitted request is in the spool as row `id`: its facts are kept so its bytes need not be decoded again. */
  admitted(id: number, facts: RequestFacts | undefined): void {
    if (facts) this.facts.remember(id, facts);
  }

  refresh(nowMs: number): void {
    this.enricher.refresh(nowMs);
  }

  /**
   * Enriches one row, adding its ledger rows to `ledger`; or says when to try again. Throws when the
   * body cannot be decoded (only a damaged spool file: the receiver validated every row).
   */
  enrich(row: SpoolRow, body: Uint8Array, nowMs: number, ledger: LedgerBatch): Enrichment {
    const facts = this.facts.get(row.id, () => this.enricher.facts(decodeProtobuf(body)));
    const prepared = this.enricher.prepare(facts, row.peer, row.received_ms, nowMs);
    if (!prepared.ready) {
      this.waitingForWindow.add(row.id);
      return prepared;
    }
    const spliced = spliceSpans(body, this.encoder.encodeAll(facts.spanCount, prepared.extras), facts.spanCount);
    for (const r of prepared.ledger) ledger.rows.push(r);
    for (const t of prepared.tenants) ledger.tenants.push(t);
    for (const u of prepared.traceUsage) ledger.traceUsage.push(u);
    if (this.metrics) {
      for (const [match, n] of prepared.byMatch) this.metrics.enriched.inc({ match }, n);
      if (prepared.requestSpans) this.metrics.enrichWait.observe(Math.max(0, nowMs - row.received_ms) / 1000);
      if (prepared.incomplete) this.metrics.incomplete.inc(prepared.incomplete);
      if (!this.observed.has(row.id)) {
        // A row enriched again (its export failed and is retried) is observed once.
        if (this.observed.size >= MAX_OBSERVED) this.observed.clear();
        this.observed.add(row.id);
        for (const r of prepared.ledger) this.observeTtft(r);
      }
    }
    return { ready: true, row: { chunks: spliced.chunks, bytes: spliced.len } };
  }

  private observeTtft(r: LedgerRow): void {
    const ttft = r.latency.ttft;
    if (ttft === undefined || !Number.isFinite(ttft) || ttft < 0 || !this.metrics) return;
    const cached = r.cachedTokens ?? r.cachedTokensEstimate;
    const share = r.promptTokens && cached !== null ? Math.min(1, Math.max(0, cached / r.promptTokens)) : null;
    // Models come from the span too: past MAX_MODELS distinct names, the rest share one label value.
    let model = r.model || 'unknown';
    if (!this.models.has(model)) {
      if (this.models.size >= MAX_MODELS) model = 'other';
      else this.models.add(model);
    }
    this.metrics.ttft.observe({ model, cache_hit_bucket: cacheHitBucket(share) }, ttft);
  }

  /** A scrape round was written: the rows waiting for a window, to be made ready now. */
  wake(nowMs: number): number[] {
    const ids = [...this.waitingForWindow];
    this.waitingForWindow.clear();
    for (const id of ids) this.wokenAtMs.set(id, nowMs);
    return ids;
  }

  /** When a scrape round woke this row, if one did. */
  wokenAt(id: number): number | undefined {
    return this.wokenAtMs.get(id);
  }

  forget(ids: readonly number[]): void {
    for (const id of ids) {
      this.wokenAtMs.delete(id);
      this.waitingForWindow.delete(id);
      this.facts.forget(id);
    }
  }
}
