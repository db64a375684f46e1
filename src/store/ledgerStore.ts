import type { Database, Statement } from 'better-sqlite3';

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
}

export interface TenantRow {
  traceId: string;
  key: string;
  value: string;
  seenMs: number;
}

export interface TraceUsageRow {
  traceId: string;
  cachedTokens: number;
  seenMs: number;
}

const HOUR_MS = 3_600_000;

/** Writes the request ledger; a re-exported batch (after a crash) replaces its rows instead of doubling them. */
export class LedgerStore {
  private readonly upsert: Statement;
  private readonly tenant: Statement;
  private readonly usage: Statement;
  private readonly hourDone: Statement;
  private readonly markDirty: Statement;
  private readonly traceHours: Statement;

  constructor(private readonly db: Database) {
    this.upsert = db.prepare(`INSERT OR REPLACE INTO request_ledger (trace_id, span_id, start_ms, end_ms, span_name, service_name, target_id, instance, model, match,
      prompt_tokens, completion_tokens, cached_tokens, cached_tokens_estimate, window_complete,
      latency_ttft_s, latency_e2e_s, latency_queue_s, latency_prefill_s, latency_decode_s, latency_inference_s, tenant_json)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`);
    this.tenant = db.prepare('INSERT OR IGNORE INTO trace_tenants (trace_id, key, value, seen_ms) VALUES (?, ?, ?, ?)');
    this.usage = db.prepare('INSERT OR REPLACE INTO trace_usage (trace_id, cached_tokens, seen_ms) VALUES (?, ?, ?)');
    this.hourDone = db.prepare("SELECT done_until_ms FROM compaction WHERE level = 'hour'").pluck();
    this.markDirty = db.prepare('INSERT OR IGNORE INTO compaction_dirty (bucket_ms) VALUES (?)');
    this.traceHours = db.prepare(`SELECT DISTINCT CAST(start_ms / ${HOUR_MS} AS INTEGER) * ${HOUR_MS} FROM request_ledger WHERE trace_id = ? AND start_ms < ?`).pluck();
  }

  write(rows: readonly LedgerRow[], tenants: readonly TenantRow[], traceUsage: readonly TraceUsageRow[] = []): void {
    if (!rows.length && !tenants.length && !traceUsage.length) return;
    this.db.transaction(() => {
      // Rows for hours the compactor already aggregated (a spool that drained late) mark those hours
      // for a redo; until then reports read them raw.
      const done = (this.hourDone.get() as number | undefined) ?? -Infinity;
      for (const r of rows) if (r.startMs < done) this.markDirty.run(Math.floor(r.startMs / HOUR_MS) * HOUR_MS);
      const lateTrace = (traceId: string) => {
        if (done > -Infinity) for (const h of this.traceHours.all(traceId, done) as number[]) this.markDirty.run(h);
      };
      for (const u of traceUsage) if (this.usage.run(u.traceId, u.cachedTokens, u.seenMs).changes) lateTrace(u.traceId);
      for (const r of rows) {
        const l = r.latency;
        this.upsert.run(r.traceId, r.spanId, r.startMs, r.endMs, r.spanName, r.serviceName, r.targetId, r.instance, r.model, r.match,
          r.promptTokens, r.completionTokens, r.cachedTokens, r.cachedTokensEstimate, r.windowComplete ? 1 : 0,
          l.ttft ?? null, l.e2e ?? null, l.queue ?? null, l.prefill ?? null, l.decode ?? null, l.inference ?? null, r.tenantJson);
      }
      for (const t of tenants) if (this.tenant.run(t.traceId, t.key, t.value, t.seenMs).changes) lateTrace(t.traceId);
    })();
  }
}
