// The latency view's hand-worked dataset (test/latencyView.test.ts checks every figure of it).
import { type LedgerRow, LedgerStore } from '../../src/store/ledgerStore.ts';
import { openDatabase } from '../../src/store/openDatabase.ts';

export const H0 = Date.UTC(2026, 10, 3, 10);

export interface Req {
  model: string;
  target: number;
  prompt: number | null;
  cached?: number;
  estimate?: number;
  ttft: number;
  queue: number;
  prefill: number;
  e2e: number;
  kv: number | null;
  waiting: number | null;
  tenant: string;
}

/**
 * llama on target 1:
 * - cold: 30 requests, prompt 1000, a measured 0 cached; TTFT 0.50 … 0.79 (step 0.01), queue 0.1,
 *   prefill 0.40 … 0.69, e2e 2.0 … 4.9 (step 0.1); KV 0.95, 6 waiting; tenant acme.
 * - warm: 25 requests, prompt 1000, an estimated 950 cached (share 0.95); TTFT 0.10 … 0.34, queue 0.02,
 *   prefill 0.050 … 0.074 (step 0.001), e2e 1.0; KV 0.3, none waiting; tenant globex.
 * - mid: 5 requests, prompt 2000, a measured 1200 (share 0.6); TTFT 0.3, queue 0.05, prefill 0.2, e2e 1.5;
 *   KV 0.7, 2 waiting; tenant acme.
 * - unknown: 2 requests without a prompt count, TTFT 1.0, no fleet state; tenant acme.
 * qwen on target 2 (too few for a headline): 5 cold (share 0), 5 warm (0.96), one at exactly 0.1, one at
 * exactly 0.9; KV exactly 0.5, 1 waiting (bucket edges); TTFT 0.4 cold, 0.1 otherwise.
 */
export function requests(): Req[] {
  const out: Req[] = [];
  for (let i = 0; i < 30; i++)
    out.push({
      model: 'llama',
      target: 1,
      prompt: 1000,
      cached: 0,
      ttft: 0.5 + i * 0.01,
      queue: 0.1,
      prefill: 0.4 + i * 0.01,
      e2e: 2 + i * 0.1,
      kv: 0.95,
      waiting: 6,
      tenant: 'acme',
    });
  for (let i = 0; i < 25; i++)
    out.push({
      model: 'llama',
      target: 1,
      prompt: 1000,
      estimate: 950,
      ttft: 0.1 + i * 0.01,
      queue: 0.02,
      prefill: 0.05 + i * 0.001,
      e2e: 1,
      kv: 0.3,
      waiting: 0,
      tenant: 'globex',
    });
  for (let i = 0; i < 5; i++)
    out.push({
      model: 'llama',
      target: 1,
      prompt: 2000,
      cached: 1200,
      ttft: 0.3,
      queue: 0.05,
      prefill: 0.2,
      e2e: 1.5,
      kv: 0.7,
      waiting: 2,
      tenant: 'acme',
    });
  for (let i = 0; i < 2; i++)
    out.push({
      model: 'llama',
      target: 1,
      prompt: null,
      ttft: 1,
      queue: 0.1,
      prefill: 0.5,
      e2e: 3,
      kv: null,
      waiting: null,
      tenant: 'acme',
    });
  const qwen = (share: number, n: number, measured: boolean) => {
    for (let i = 0; i < n; i++)
      out.push({
        model: 'qwen',
        target: 2,
        prompt: 500,
        ...(measured ? { cached: 500 * share } : { estimate: 500 * share }),
        ttft: share < 0.1 ? 0.4 : 0.1,
        queue: 0.01,
        prefill: 0.1,
        e2e: 1,
        kv: 0.5,
        waiting: 1,
        tenant: 'acme',
      });
  };
  qwen(0, 5, true);
  qwen(0.96, 5, false);
  qwen(0.1, 1, true);
  qwen(0.9, 1, false);
  return out;
}

export function ledgerRows(reqs: Req[], fromMs: number): LedgerRow[] {
  return reqs.map((r, i) => ({
    traceId: `t${i}`,
    spanId: `s${i}`,
    // Spread over two hours, so the compacted path merges hours.
    startMs: fromMs + i * 100_000,
    endMs: fromMs + i * 100_000 + r.e2e * 1000,
    spanName: 'llm_request',
    serviceName: 'vllm',
    targetId: r.target,
    instance: r.target === 1 ? '10.0.0.1:8000' : '10.0.0.2:8000',
    model: r.model,
    match: 'resource',
    promptTokens: r.prompt,
    completionTokens: 100,
    cachedTokens: r.cached ?? null,
    cachedTokensEstimate: r.estimate ?? null,
    windowComplete: true,
    latency: { ttft: r.ttft, queue: r.queue, prefill: r.prefill, e2e: r.e2e, decode: r.e2e - r.ttft },
    tenantJson: JSON.stringify({ 'tenant.id': r.tenant }),
    kvUsageStart: r.kv,
    waitingStart: r.waiting,
  }));
}

export function buildStore(path: string, reqs = requests()): void {
  const db = openDatabase(path);
  db.prepare(
    "INSERT INTO targets (id, url, instance, first_seen_ms, last_seen_ms) VALUES (1, 'http://10.0.0.1:8000/metrics', " +
      "'10.0.0.1:8000', 0, 0), (2, 'http://10.0.0.2:8000/metrics', '10.0.0.2:8000', 0, 0)",
  ).run();
  new LedgerStore(db).write(ledgerRows(reqs, H0 + 60_000), []);
  db.close();
}
