import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type BetterSqlite3 from 'better-sqlite3';
import { MIGRATIONS_DIR } from '../src/store/migrate.ts';
import { openDatabase } from '../src/store/openDatabase.ts';
import { LedgerStore, type LedgerRow } from '../src/store/ledgerStore.ts';

const SPANS = 512;

function batch(t0: number): LedgerRow[] {
  return Array.from({ length: SPANS }, (_, i) => ({
    traceId: randomBytes(16).toString('hex'),
    spanId: randomBytes(8).toString('hex'),
    startMs: t0 + i * 0.7,
    endMs: t0 + i * 0.7 + 1500,
    spanName: 'llm_request',
    serviceName: 'vllm',
    targetId: 1,
    instance: 'vllm-a:8000',
    model: 'llama',
    match: 'resource',
    promptTokens: 800,
    completionTokens: 120,
    cachedTokens: null,
    cachedTokensEstimate: 400.5,
    windowComplete: true,
    latency: { ttft: 0.1, e2e: 1.5, queue: 0.01, prefill: 0.09, decode: 1.4, inference: 1.49 },
    tenantJson: null,
    kvUsageStart: null,
    waitingStart: null,
  }));
}

/**
 * Request-ledger inserts, one transaction per 512-span request, every span its own trace (as vLLM
 * sends them): the table keyed by time (migration 004, through LedgerStore) against the same rows
 * under migration 002's (trace_id, span_id) key, which put each row on a random B-tree page.
 */
export function runLedgerBench(batches: number): Record<string, { us_per_row_cpu: number; rows: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'cachelens-bench-ledger-'));
  const measure = (write: (rows: LedgerRow[]) => void) => {
    const all = Array.from({ length: batches }, (_, b) => batch(1.7e12 + b * 400));
    const c0 = process.cpuUsage();
    for (const rows of all) write(rows);
    const c = process.cpuUsage(c0);
    return { us_per_row_cpu: +((c.user + c.system) / (batches * SPANS)).toFixed(2), rows: batches * SPANS };
  };
  const seedTarget = (db: BetterSqlite3.Database) =>
    db
      .prepare(
        "INSERT INTO targets (id, url, instance, first_seen_ms, last_seen_ms) VALUES (1, 'http://x', 'vllm-a:8000', " +
          '0, 0)',
      )
      .run();

  const db = openDatabase(join(dir, 'time.db'));
  seedTarget(db);
  const store = new LedgerStore(db);
  const timeKey = measure((rows) => store.write(rows, []));
  db.close();

  const old = openDatabase(join(dir, 'trace.db'), { migrate: false });
  old.exec(readFileSync(join(MIGRATIONS_DIR, '001_scrape_store.sql'), 'utf8'));
  old.exec(readFileSync(join(MIGRATIONS_DIR, '002_request_ledger.sql'), 'utf8'));
  seedTarget(old);
  const ins =
    old.prepare(`INSERT OR REPLACE INTO request_ledger (trace_id, span_id, start_ms, end_ms, span_name, service_name,
      target_id, instance, model, match,
    prompt_tokens, completion_tokens, cached_tokens, cached_tokens_estimate, window_complete,
    latency_ttft_s, latency_e2e_s, latency_queue_s, latency_prefill_s, latency_decode_s, latency_inference_s,
    tenant_json) VALUES (${Array(22).fill('?').join(', ')})`);
  const traceKey = measure(
    old.transaction((rows: LedgerRow[]) => {
      for (const r of rows) {
        const l = r.latency;
        ins.run(
          r.traceId,
          r.spanId,
          r.startMs,
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
        );
      }
    }),
  );
  old.close();
  rmSync(dir, { recursive: true, force: true });
  return { time_key_migration_004: timeKey, trace_key_migration_002: traceKey };
}
