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

/** Writes the request ledger; a re-exported batch (after a crash) replaces its rows instead of doubling them. */
export class LedgerStore {
  private readonly upsert: Statement;
  private readonly tenant: Statement;

  constructor(private readonly db: Database) {
    this.upsert = db.prepare(`INSERT OR REPLACE INTO request_ledger (trace_id, span_id, start_ms, end_ms, span_name, service_name, target_id, instance, model, match,
      prompt_tokens, completion_tokens, cached_tokens, cached_tokens_estimate, window_complete,
      latency_ttft_s, latency_e2e_s, latency_queue_s, latency_prefill_s, latency_decode_s, latency_inference_s, tenant_json)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`);
    this.tenant = db.prepare('INSERT OR IGNORE INTO trace_tenants (trace_id, key, value, seen_ms) VALUES (?, ?, ?, ?)');
  }

  write(rows: readonly LedgerRow[], tenants: readonly TenantRow[]): void {
    if (!rows.length && !tenants.length) return;
    this.db.transaction(() => {
      for (const r of rows) {
        const l = r.latency;
        this.upsert.run(r.traceId, r.spanId, r.startMs, r.endMs, r.spanName, r.serviceName, r.targetId, r.instance, r.model, r.match,
          r.promptTokens, r.completionTokens, r.cachedTokens, r.cachedTokensEstimate, r.windowComplete ? 1 : 0,
          l.ttft ?? null, l.e2e ?? null, l.queue ?? null, l.prefill ?? null, l.decode ?? null, l.inference ?? null, r.tenantJson);
      }
      for (const t of tenants) this.tenant.run(t.traceId, t.key, t.value, t.seenMs);
    })();
  }
}
