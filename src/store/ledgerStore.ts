import type { Database, Statement } from 'better-sqlite3';
import { HOUR_MS } from './rollups.ts';

export interface LedgerRow {
  traceId: string;
  spanId: string;
  startMs: number;
  endMs: number;
  spanName: string;
  serviceName: string | null;
  targetId: number | null;
  instance: string | null;
  model: string | null;
  match: string;
  promptTokens: number | null;
  completionTokens: number | null;
  cachedTokens: number | null;
  cachedTokensEstimate: number | null;
  windowComplete: boolean;
  latency: Partial<Record<'ttft' | 'e2e' | 'queue' | 'prefill' | 'decode' | 'inference', number>>;
  tenantJson: string | null;
  /** The matched instance's KV usage (0–1) and requests waiting at the start of the request's window. */
  kvUsageStart: number | null;
  waitingStart: number | null;
}

/** The span that carried a trace-level fact: its times say which hours the fact may change. */
export interface CarrierSpan {
  spanStartMs: number;
  spanEndMs: number;
}

export interface TenantRow extends CarrierSpan {
  traceId: string;
  key: string;
  value: string;
  seenMs: number;
}

export interface TraceUsageRow extends CarrierSpan {
  traceId: string;
  cachedTokens: number;
  seenMs: number;
}

/**
 * How far outside its carrier span (a gateway or client span) a trace's request spans may start: the
 * carrier encloses them but hosts' clocks differ. Below storage.compaction_delay's default (10 min),
 * so a fact that arrives on time never marks an hour for a redo.
 */
export const CARRIER_SLACK_MS = 5 * 60_000;
const MAX_CARRIER_MS = 24 * HOUR_MS;

/** Writes the request ledger; a re-exported batch (after a crash) replaces its rows instead of doubling them. */
export class LedgerStore {
  private readonly upsert: Statement;
  private readonly tenant: Statement;
  private readonly usage: Statement;
  private readonly hourDone: Statement;
  private readonly markDirty: Statement;

  constructor(private readonly db: Database) {
    // A replay (the same span sent again) replaces its row, except that a row found with an incomplete
    // window never replaces one that had its complete window: a retry never makes the ledger poorer.
    this.upsert =
      db.prepare(`INSERT INTO request_ledger (start_ms, trace_id, span_id, end_ms, span_name, service_name, target_id,
        instance, model, match,
      prompt_tokens, completion_tokens, cached_tokens, cached_tokens_estimate, window_complete,
      latency_ttft_s, latency_e2e_s, latency_queue_s, latency_prefill_s, latency_decode_s, latency_inference_s,
      tenant_json, kv_usage_start, waiting_start)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
      ON CONFLICT (start_ms, trace_id, span_id) DO UPDATE SET end_ms = excluded.end_ms, span_name = excluded.span_name,
        service_name = excluded.service_name, target_id = excluded.target_id, instance = excluded.instance,
        model = excluded.model,
        match = excluded.match, prompt_tokens = excluded.prompt_tokens, completion_tokens = excluded.completion_tokens,
        cached_tokens = excluded.cached_tokens, cached_tokens_estimate = excluded.cached_tokens_estimate,
        window_complete = excluded.window_complete,
        latency_ttft_s = excluded.latency_ttft_s, latency_e2e_s = excluded.latency_e2e_s,
        latency_queue_s = excluded.latency_queue_s,
        latency_prefill_s = excluded.latency_prefill_s, latency_decode_s = excluded.latency_decode_s,
        latency_inference_s = excluded.latency_inference_s,
        tenant_json = excluded.tenant_json, kv_usage_start = excluded.kv_usage_start,
        waiting_start = excluded.waiting_start
      WHERE excluded.window_complete >= request_ledger.window_complete`);
    this.tenant = db.prepare('INSERT OR IGNORE INTO trace_tenants (trace_id, key, value, seen_ms) VALUES (?, ?, ?, ?)');
    this.usage = db.prepare('INSERT OR REPLACE INTO trace_usage (trace_id, cached_tokens, seen_ms) VALUES (?, ?, ?)');
    this.hourDone = db.prepare("SELECT done_until_ms FROM compaction WHERE level = 'hour'").pluck();
    this.markDirty = db.prepare('INSERT OR IGNORE INTO compaction_dirty (bucket_ms) VALUES (?)');
  }

  write(rows: readonly LedgerRow[], tenants: readonly TenantRow[], traceUsage: readonly TraceUsageRow[] = []): void {
    if (!rows.length && !tenants.length && !traceUsage.length) return;
    this.db.transaction(() => {
      // Rows for hours the compactor already aggregated (a spool that drained late) mark those hours
      // for a redo; until then reports read them raw.
      const done = (this.hourDone.get() as number | undefined) ?? -Infinity;
      for (const r of rows) if (r.startMs < done) this.markDirty.run(Math.floor(r.startMs / HOUR_MS) * HOUR_MS);
      // A new tenant or count for a trace changes the hours its request spans started in. The ledger is
      // not indexed by trace (that index cost a random page write per row), so those hours are
      // taken from the carrier span's own times, at most a day of them (a start of 0 is not 50 years).
      const lateTrace = (c: CarrierSpan) => {
        const to = Math.min(done - 1, c.spanEndMs + CARRIER_SLACK_MS);
        for (
          let h = Math.floor(Math.max(c.spanStartMs - CARRIER_SLACK_MS, to - MAX_CARRIER_MS) / HOUR_MS) * HOUR_MS;
          h <= to;
          h += HOUR_MS
        )
          this.markDirty.run(h);
      };
      for (const u of traceUsage) if (this.usage.run(u.traceId, u.cachedTokens, u.seenMs).changes) lateTrace(u);
      for (const r of rows) {
        const l = r.latency;
        this.upsert.run(
          r.startMs,
          r.traceId,
          r.spanId,
          r.endMs,
          r.spanName,
          r.serviceName,
          r.targetId,
          r.instance,
          r.model,
          r.match,
          r.promptTokens,
          r.completionTokens,
          r.cachedTokens,
          r.cachedTokensEstimate,
          r.windowComplete ? 1 : 0,
          l.ttft ?? null,
          l.e2e ?? null,
          l.queue ?? null,
          l.prefill ?? null,
          l.decode ?? null,
          l.inference ?? null,
          r.tenantJson,
          r.kvUsageStart,
          r.waitingStart,
        );
      }
      for (const t of tenants) if (this.tenant.run(t.traceId, t.key, t.value, t.seenMs).changes) lateTrace(t);
    })();
  }
}
