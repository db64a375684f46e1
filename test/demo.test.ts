import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import Database from 'better-sqlite3';
import { demoScenario, Fleet } from '../src/demo/fleetSim.ts';

const BIN = new URL('../bin/cachelens.js', import.meta.url).pathname;

describe('simulated fleet', () => {
  it('runs the same however late it is ticked: a loaded machine does not change queueing or preemptions', () => {
    const counters = (ticks: (t: number) => number) => {
      const fleet = new Fleet(demoScenario(24_000), 0, 42);
      for (let t = 0; t < 16_000; t = ticks(t)) fleet.step(t);
      fleet.step(16_000);
      return fleet.instances.map((i) => ({ ...i.counters }));
    };
    const even = counters((t) => t + 100);
    // Ticks 100-600 ms apart, as timers fire on a busy event loop.
    let r = 7;
    const late = counters((t) => {
      r = (r * 48271) % 2147483647;
      return t + 100 + (r % 500);
    });
    assert.ok(even[0]!.preemptions > 0, 'the burst preempts on vllm-0');
    assert.deepEqual(late, even);
  });

  // Stepped with a synthetic clock: deterministic for the seed.
  const run = (durationMs: number) => {
    const fleet = new Fleet(demoScenario(durationMs), 0, 7);
    const scenario = fleet.scenario;
    const seen = {
      maxWaiting: new Map<string, number>(),
      maxKv: new Map<string, number>(),
      preemptionsInBurst: 0,
      finished: 0,
      restartedAt: -1,
      /** Requests finished before the first burst: their cached share and prefill time. */
      prefills: [] as Array<{ share: number; ms: number }>,
    };
    let beforeRestart = 0;
    for (let t = 100; t <= durationMs; t += 100) {
      const { finished, restarted } = fleet.step(t);
      seen.finished += finished.length;
      for (const f of finished) {
        if (t < scenario.phases[0]!.fromMs)
          seen.prefills.push({ share: f.cachedTokens / f.promptTokens, ms: f.firstTokenMs! - f.scheduledMs! });
        assert.ok(
          f.cachedTokens <= f.promptTokens &&
            f.finishMs! >= f.firstTokenMs! &&
            f.firstTokenMs! >= f.scheduledMs! &&
            f.scheduledMs! >= f.arrivalMs,
          'request timeline in order',
        );
      }
      if (restarted.includes('vllm-1')) seen.restartedAt = t;
      const v1 = fleet.instance('vllm-1')!.counters;
      if (seen.restartedAt < 0) beforeRestart = v1.promptTokens;
      for (const i of fleet.instances) {
        const c = i.counters;
        assert.ok(
          c.prefixCacheHits <= c.prefixCacheQueries && c.promptTokensCached <= c.promptTokens,
          `${i.spec.name}: hits within queries`,
        );
        assert.ok(c.kvCacheUsage >= 0 && c.kvCacheUsage <= 1);
        const phase = fleet.phaseAt(t);
        // Steady traffic before the first burst; after it, the queue the burst built drains in the steady phase.
        const beforeBurst = phase === 'steady' && t < scenario.phases[0]!.fromMs;
        const key = `${i.spec.name}/${beforeBurst ? 'steady-before-burst' : phase}`;
        seen.maxWaiting.set(key, Math.max(seen.maxWaiting.get(key) ?? 0, c.requestsWaiting));
        seen.maxKv.set(key, Math.max(seen.maxKv.get(key) ?? 0, c.kvCacheUsage));
      }
    }
    return { fleet, scenario, seen, beforeRestart };
  };

  it(
    'steady traffic before the burst stays unqueued; the burst builds a queue, fills the KV cache and preempts; the ' +
      'restart zeroes counters',
    () => {
      const { fleet, scenario, seen, beforeRestart } = run(45_000);
      for (const i of ['vllm-0', 'vllm-1', 'vllm-2'])
        assert.equal(seen.maxWaiting.get(`${i}/steady-before-burst`), 0, `${i}: nothing waits under steady traffic`);
      assert.ok(
        (seen.maxKv.get('vllm-0/burst') ?? 0) > 0.9,
        `burst fills vllm-0's KV cache (max ${seen.maxKv.get('vllm-0/burst')})`,
      );
      assert.ok(
        Math.max(seen.maxWaiting.get('vllm-0/burst') ?? 0, seen.maxWaiting.get('vllm-1/burst') ?? 0) >= 3,
        'the burst queues requests',
      );
      assert.equal(seen.maxWaiting.get('vllm-2/burst'), 0, 'the other model is not affected by the burst');
      assert.ok(fleet.instance('vllm-0')!.counters.preemptions > 0, 'KV pressure preempts');
      assert.ok(seen.restartedAt >= scenario.restarts[0]!.atMs, 'vllm-1 restarted on schedule');
      const v1 = fleet.instance('vllm-1')!.counters;
      assert.ok(
        v1.promptTokens < beforeRestart,
        `vllm-1's counters started again from 0 (${v1.promptTokens} < ${beforeRestart})`,
      );
      assert.ok(v1.createdUnixSeconds * 1000 > scenario.restarts[0]!.atMs, '_created moves with the restart');
      const v0 = fleet.instance('vllm-0')!.counters;
      const ratio = v0.prefixCacheHits / v0.prefixCacheQueries;
      assert.ok(ratio > 0.2 && ratio < 0.95, `a plausible prefix-cache hit ratio (${ratio.toFixed(2)})`);
      assert.ok(seen.finished > 200, `${seen.finished} requests finished`);
    },
  );

  it('a cached prefix is not prefilled again: warm requests reach their first token sooner', () => {
    const { seen } = run(45_000);
    const median = (pick: (share: number) => boolean) => {
      const xs = seen.prefills
        .filter((p) => pick(p.share))
        .map((p) => p.ms)
        .sort((a, b) => a - b);
      return { n: xs.length, p50: xs[Math.floor(xs.length / 2)] ?? NaN };
    };
    const warm = median((s) => s >= 0.5);
    const cold = median((s) => s < 0.1);
    assert.ok(warm.n >= 10 && cold.n >= 10, `${warm.n} warm and ${cold.n} cold requests before the burst`);
    // Prompts are 240–2,100 tokens either way; 24,000 tokens/s of prefill: cold ~10–90 ms.
    assert.ok(cold.p50 > 0, 'a prefill takes time');
    assert.ok(warm.p50 < cold.p50 / 2, `warm prefill p50 ${warm.p50} ms against cold ${cold.p50} ms`);
  });

  it('repeats its script when given a cycle (docker-compose runs it for hours)', () => {
    const fleet = new Fleet(demoScenario(20_000), 0, 1, 20_000);
    let restarts = 0;
    for (let t = 100; t <= 60_000; t += 100) restarts += fleet.step(t).restarted.length;
    assert.equal(restarts, 3);
  });
});

describe('cachelens demo', () => {
  it(
    'runs the fleet through the real daemon: every request ' + 'span comes back enriched, and the reports reconcile',
    async () => {
      const dir = mkdtempSync(join(tmpdir(), 'cachelens-demo-test-'));
      const { stdout } = await promisify(execFile)(process.execPath, [BIN, 'demo', '--duration', '20s', '--dir', dir], {
        timeout: 90_000,
      });
      const summary = new RegExp(
        String.raw`(\d+) requests finished; downstream received (\d+) spans, ` +
          String.raw`(\d+) llm_request spans enriched \((\d+) matched by resource\)`,
      );
      const m = summary.exec(stdout);
      assert.ok(m, `summary line in:\n${stdout}`);
      const [requests, received, enriched, byResource] = m.slice(1).map(Number) as [number, number, number, number];
      assert.ok(requests > 50, `${requests} requests`);
      assert.equal(received, 2 * requests, 'every llm_request and its gateway span arrived downstream');
      assert.equal(enriched, requests);
      assert.equal(byResource, requests, 'each span matched its instance by service.instance.id');
      for (const title of ['a warm cache', 'a long queue and a full KV cache', 'a cold cache (vllm-1 just restarted)'])
        assert.ok(stdout.includes(title), `shows ${title}`);
      for (const name of ['meta-llama/Llama-3.1-8B-Instruct', 'Qwen/Qwen2.5-7B-Instruct', 'acme', 'globex', 'initech'])
        assert.ok(stdout.includes(name), `report names ${name}`);
      assert.match(stdout, /1 counter reset/);
      // Llama's two instances share an external KV tier: its cached tokens split local / external
      assert.match(stdout, /local cached +external cached +ext hit %/);
      assert.match(stdout, /meta-llama\/Llama-3\.1-8B-Instruct +\d+ +[\d.]+k? +[\d.]+k? +[\d.]+k? +[1-9][\d.]*k? /);
      assert.match(stdout, /Latency by cache-hit share \(cachelens report --view latency --by model\)/);
      assert.match(stdout, /Llama-3\.1-8B-Instruct +cache-hit share +0\.5-0\.9/);
      assert.match(stdout, /Llama-3\.1-8B-Instruct: (warm requests \(share ≥ 0\.5\) had TTFT p50|not shown: )/);
      // The store it leaves behind agrees with what was printed.
      const db = new Database(join(dir, 'cachelens.db'), { readonly: true });
      assert.equal(
        db
          .prepare("SELECT count(*) FROM request_ledger WHERE span_name = 'llm_request' AND model IS NOT NULL")
          .pluck()
          .get(),
        requests,
      );
      assert.equal(
        db.prepare("SELECT count(DISTINCT value) FROM trace_tenants WHERE key = 'tenant.id'").pluck().get(),
        3,
        'tenants found on the gateway spans',
      );
      assert.ok(
        (db.prepare('SELECT count(*) FROM scrapes WHERE up = 0').pluck().get() as number) >= 1,
        'the restart shows as failed scrapes',
      );
      db.close();
    },
  );

  it('--fleet-only serves three vLLM /metrics ports until SIGTERM', async () => {
    const port = 20_000 + Math.floor(Math.random() * 20_000);
    const child = spawn(process.execPath, [BIN, 'demo', '--fleet-only', '--listen', `127.0.0.1:${port}`], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    try {
      await new Promise<void>((resolve, reject) => {
        child.stdout!.on('data', (b: Buffer) => b.toString().includes('simulated fleet running') && resolve());
        child.once('exit', (code) => reject(new Error(`exited ${code}`)));
      });
      for (let i = 0; i < 3; i++) {
        const res = await fetch(`http://127.0.0.1:${port + i}/metrics`);
        assert.equal(res.status, 200);
        assert.match(await res.text(), /^vllm:prefix_cache_queries_total\{engine="0",model_name="[^"]+"\} /m);
      }
    } finally {
      child.kill('SIGTERM');
    }
    const code = await new Promise((r) => child.once('exit', r));
    assert.equal(code, 0);
  });
});
