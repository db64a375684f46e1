// A simulated vLLM fleet for `cachelens demo`: continuous batching with a token budget, a KV cache
// that preempts when full, and a prefix cache that lives in the free KV blocks (so KV pressure
// evicts it and the hit ratio drops). Counters follow vLLM's semantics: queries and hits in tokens,
// counted at scheduling; a restart zeroes them. Time is passed in, so the model is deterministic
// for a given seed and clock.
import type { VllmModelState } from './vllmExposition.ts';

export interface InstanceSpec {
  name: string;
  model: string;
  kvCapacityTokens: number;
  maxRunning: number;
  prefillTokensPerSec: number;
  /** Per-request decode speed with a small batch; it falls as the batch grows. */
  decodeTokensPerSec: number;
  /**
   * A KV connector to a tier shared by the model's instances (LMCache, Mooncake): prefixes of at least this
   * many tokens are stored there once prefilled, and an instance that misses locally loads them from it.
   */
  externalTierMinTokens?: number;
}

export interface SimRequest {
  id: string;
  model: string;
  tenant: string;
  instance: string;
  arrivalMs: number;
  scheduledMs?: number;
  firstTokenMs?: number;
  finishMs?: number;
  promptTokens: number;
  prefixId: string;
  prefixTokens: number;
  maxTokens: number;
  outputTarget: number;
  /** Prompt tokens found in the prefix cache at the first scheduling (vLLM's num_cached_tokens). */
  cachedTokens: number;
  /** Of those, loaded from the external tier by the KV connector. */
  externalTokens?: number;
  temperature: number;
  topP: number;
  prefillLeft: number;
  generated: number;
  decodeCarry: number;
  admitOrder: number;
}

const BLOCK = 16;
/** KV loaded over the network from a shared tier, against prefill computing it: this many times faster. */
const EXTERNAL_LOAD_SPEEDUP = 5;

export class SimInstance {
  readonly counters: VllmModelState;
  waiting: SimRequest[] = [];
  running: SimRequest[] = [];
  /** Prefix id → tokens, in least-recently-used order (Map keeps insertion order). */
  private readonly cache = new Map<string, number>();
  private cacheTokens = 0;
  private admitted = 0;
  /** While set, the server is restarting: /metrics refuses and nothing is scheduled. */
  downUntilMs = 0;

  constructor(
    readonly spec: InstanceSpec,
    nowMs: number,
    /** The model's shared external tier (prefix ids), when the instance has a KV connector. */
    private readonly externalTier?: Set<string>,
  ) {
    this.counters = SimInstance.zero(spec.model, nowMs);
  }

  private static zero(model: string, nowMs: number): VllmModelState {
    return {
      model,
      prefixCacheQueries: 0,
      prefixCacheHits: 0,
      promptTokens: 0,
      promptTokensCached: 0,
      promptTokensExternal: 0,
      externalQueries: 0,
      externalHits: 0,
      generationTokens: 0,
      preemptions: 0,
      requestsFinished: { stop: 0, length: 0, abort: 0, error: 0, repetition: 0 },
      requestsWaiting: 0,
      requestsRunning: 0,
      kvCacheUsage: 0,
      createdUnixSeconds: nowMs / 1000,
    };
  }

  get load(): number {
    return this.waiting.length + this.running.length;
  }

  kvUsedTokens(): number {
    let n = 0;
    for (const r of this.running) n += r.promptTokens - r.prefillLeft + r.generated;
    return n;
  }

  enqueue(r: SimRequest): void {
    this.waiting.push(r);
    this.counters.requestsWaiting = this.waiting.length;
  }

  /** The process dies and comes back: counters and the cache start from zero, queued work is lost. */
  restart(nowMs: number, downMs: number): SimRequest[] {
    const lost = [...this.running, ...this.waiting];
    this.running = [];
    this.waiting = [];
    this.cache.clear();
    this.cacheTokens = 0;
    Object.assign(this.counters, SimInstance.zero(this.spec.model, nowMs + downMs));
    this.downUntilMs = nowMs + downMs;
    return lost;
  }

  private touchPrefix(id: string, tokens: number): void {
    const had = this.cache.get(id);
    if (had !== undefined) {
      this.cache.delete(id);
      this.cacheTokens -= had;
    }
    this.cache.set(id, tokens);
    this.cacheTokens += tokens;
  }

  /** Cached prefixes only occupy free KV blocks: running requests evict them, oldest first. */
  private evict(): void {
    const free = Math.max(0, this.spec.kvCapacityTokens - this.kvUsedTokens());
    for (const [id, tokens] of this.cache) {
      if (this.cacheTokens <= free) break;
      this.cache.delete(id);
      this.cacheTokens -= tokens;
    }
  }

  /** Advances the engine by dtMs; returns the requests that finished. */
  step(nowMs: number, dtMs: number): SimRequest[] {
    if (nowMs < this.downUntilMs) return [];
    const c = this.counters;
    const cap = this.spec.kvCapacityTokens;
    // Admit in arrival order while the batch and the KV cache have room for the prompt.
    while (this.waiting.length && this.running.length < this.spec.maxRunning) {
      const r = this.waiting[0]!;
      if (this.kvUsedTokens() + r.promptTokens + r.generated > cap * 0.95) break;
      this.waiting.shift();
      const blocks = Math.floor(r.prefixTokens / BLOCK) * BLOCK;
      const local = this.cache.has(r.prefixId) ? blocks : 0;
      // What the local prefix cache misses, the KV connector looks up in the shared tier and loads.
      const external = !local && this.externalTier?.has(r.prefixId) ? blocks : 0;
      const hit = local + external;
      // Counted at the first scheduling only: recent vLLM keeps a preempted request's re-lookup
      // out of the prefix-cache counters, and counts its prompt tokens once.
      if (r.scheduledMs === undefined) {
        r.scheduledMs = nowMs;
        r.cachedTokens = hit;
        r.externalTokens = external;
        c.prefixCacheQueries += r.promptTokens;
        c.prefixCacheHits += local;
        c.promptTokens += r.promptTokens;
        c.promptTokensCached += hit;
        if (this.externalTier && !local) {
          c.externalQueries! += r.promptTokens;
          c.externalHits! += external;
          c.promptTokensExternal! += external;
        }
      }
      r.prefillLeft = r.promptTokens - hit;
      r.admitOrder = ++this.admitted;
      this.running.push(r);
    }
    // Prefill shares one token budget per step, first come first served.
    let budget = (this.spec.prefillTokensPerSec * dtMs) / 1000;
    for (const r of this.running) {
      if (r.prefillLeft <= 0 || budget <= 0) continue;
      const take = Math.min(r.prefillLeft, budget);
      r.prefillLeft -= take;
      budget -= take;
      if (r.prefillLeft <= 0) {
        r.prefillLeft = 0;
        this.touchPrefix(r.prefixId, r.prefixTokens);
        if (this.externalTier && r.prefixTokens >= (this.spec.externalTierMinTokens ?? Infinity))
          this.externalTier.add(r.prefixId);
        // At least the compute time of the uncached part: a cached prefix is not prefilled again, so a
        // warm request reaches its first token sooner (steps are coarser than a short prefill).
        if (r.firstTokenMs === undefined)
          r.firstTokenMs = Math.max(
            nowMs,
            (r.scheduledMs ?? nowMs) +
              // loading KV from the external tier is faster than computing it, not free
              ((r.promptTokens - r.cachedTokens + (r.externalTokens ?? 0) / EXTERNAL_LOAD_SPEEDUP) * 1000) /
                this.spec.prefillTokensPerSec,
          );
      }
    }
    // Decode: every request past prefill advances; a bigger batch makes each step slower.
    const perRequest = (this.spec.decodeTokensPerSec * dtMs) / 1000 / (1 + this.running.length / 24);
    const finished: SimRequest[] = [];
    for (const r of this.running) {
      if (r.prefillLeft > 0) continue;
      r.decodeCarry += perRequest;
      const n = Math.min(Math.floor(r.decodeCarry), r.outputTarget - r.generated);
      r.decodeCarry -= n;
      r.generated += n;
      c.generationTokens += n;
      if (r.generated >= r.outputTarget) {
        r.finishMs = Math.max(nowMs, r.firstTokenMs ?? nowMs);
        finished.push(r);
        if (r.outputTarget >= r.maxTokens) c.requestsFinished.length++;
        else c.requestsFinished.stop++;
      }
    }
    if (finished.length) this.running = this.running.filter((r) => r.finishMs === undefined);
    // KV full: preempt the newest requests (vLLM V1 recomputes them later).
    while (this.kvUsedTokens() > cap && this.running.length > 1) {
      let victim = this.running[0]!;
      for (const r of this.running) if (r.admitOrder > victim.admitOrder) victim = r;
      this.running = this.running.filter((r) => r !== victim);
      victim.prefillLeft = victim.promptTokens;
      this.waiting.unshift(victim);
      c.preemptions++;
    }
    this.evict();
    c.requestsWaiting = this.waiting.length;
    c.requestsRunning = this.running.length;
    c.kvCacheUsage = Math.min(1, this.kvUsedTokens() / cap);
    return finished;
  }
}

/** Mulberry32: small, seeded, good enough for a workload. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface TenantProfile {
  tenant: string;
  share: number;
  /** Shared prefixes (system prompts, documents) this tenant reuses, with their lengths in tokens. */
  prefixes: Array<{ id: string; tokens: number; weight: number }>;
  /** Chance that a request shares no prefix with any other. */
  uniqueShare: number;
}

export interface ModelWorkload {
  model: string;
  /** Requests per second in steady state. */
  rate: number;
}

export interface Phase {
  name: string;
  fromMs: number;
  toMs: number;
  /** Multiplies the arrival rate of these models. */
  models: string[];
  rateFactor: number;
}

export interface FleetScenario {
  instances: InstanceSpec[];
  workloads: ModelWorkload[];
  tenants: TenantProfile[];
  phases: Phase[];
  restarts: Array<{ instance: string; atMs: number; downMs: number }>;
}

/**
 * The demo fleet: two instances of a Llama model, one of a Qwen model. Over `durationMs`: steady
 * traffic, then a burst on Llama that fills the queue and the KV cache (preemptions, a colder
 * cache), recovery, and one Llama instance restarting.
 */
/** The simulation's step (the demo server ticks every 100 ms). */
const STEP_MS = 100;

export function demoScenario(durationMs: number): FleetScenario {
  const at = (f: number) => Math.round(durationMs * f);
  const llama = 'meta-llama/Llama-3.1-8B-Instruct';
  const qwen = 'Qwen/Qwen2.5-7B-Instruct';
  return {
    instances: [
      {
        name: 'vllm-0',
        model: llama,
        kvCapacityTokens: 40_000,
        maxRunning: 48,
        prefillTokensPerSec: 24_000,
        decodeTokensPerSec: 70,
        // Llama's two instances share an external KV tier (LMCache-style) for the long documents and tools.
        externalTierMinTokens: 2_000,
      },
      {
        name: 'vllm-1',
        model: llama,
        kvCapacityTokens: 40_000,
        maxRunning: 48,
        prefillTokensPerSec: 24_000,
        decodeTokensPerSec: 70,
        externalTierMinTokens: 2_000,
      },
      {
        name: 'vllm-2',
        model: qwen,
        kvCapacityTokens: 45_000,
        maxRunning: 32,
        prefillTokensPerSec: 20_000,
        decodeTokensPerSec: 80,
      },
    ],
    workloads: [
      { model: llama, rate: 4 },
      { model: qwen, rate: 1.5 },
    ],
    tenants: [
      // A chat product: one long system prompt, reused by almost every request.
      {
        tenant: 'acme',
        share: 0.45,
        prefixes: [
          { id: 'acme-system', tokens: 1_800, weight: 6 },
          { id: 'acme-tools', tokens: 2_600, weight: 2 },
        ],
        uniqueShare: 0.05,
      },
      // Retrieval over a handful of documents.
      {
        tenant: 'globex',
        share: 0.35,
        prefixes: [1, 2, 3, 4, 5, 6].map((i) => ({ id: `globex-doc-${i}`, tokens: 1_200 + 400 * i, weight: 7 - i })),
        uniqueShare: 0.2,
      },
      // Batch jobs with one-off prompts: little to reuse.
      { tenant: 'initech', share: 0.2, prefixes: [{ id: 'initech-header', tokens: 300, weight: 1 }], uniqueShare: 0.8 },
    ],
    phases: [{ name: 'burst', fromMs: at(0.3), toMs: at(0.55), models: [llama], rateFactor: 3.5 }],
    restarts: [{ instance: 'vllm-1', atMs: at(0.65), downMs: Math.min(4_000, at(0.08)) }],
  };
}

/** Drives the scenario: arrivals, routing, restarts; call step() with the wall clock. */
export class Fleet {
  readonly instances: SimInstance[];
  private readonly random: () => number;
  private lastMs: number;
  private seq = 0;
  private readonly restartsLeft: FleetScenario['restarts'];

  constructor(
    readonly scenario: FleetScenario,
    public startMs: number,
    seed = 42,
    /** When set, the script repeats every cycleMs (docker-compose runs the fleet for hours). */
    private readonly cycleMs?: number,
  ) {
    // One shared tier per model whose instances have a KV connector.
    const tiers = new Map<string, Set<string>>();
    this.instances = scenario.instances.map((s) => {
      if (s.externalTierMinTokens === undefined) return new SimInstance(s, startMs);
      let tier = tiers.get(s.model);
      if (!tier) tiers.set(s.model, (tier = new Set()));
      return new SimInstance(s, startMs, tier);
    });
    this.random = seededRandom(seed);
    this.lastMs = startMs;
    this.restartsLeft = [...scenario.restarts];
  }

  /** Starts the scenario's clock (the servers may have been bound a while before). */
  begin(nowMs: number): void {
    this.startMs = nowMs;
    this.lastMs = nowMs;
  }

  instance(name: string): SimInstance | undefined {
    return this.instances.find((i) => i.spec.name === name);
  }

  phaseAt(nowMs: number): string {
    const t = nowMs - this.startMs;
    return this.scenario.phases.find((p) => t >= p.fromMs && t < p.toMs)?.name ?? 'steady';
  }

  private rateAt(model: string, t: number): number {
    let rate = this.scenario.workloads.find((w) => w.model === model)?.rate ?? 0;
    for (const p of this.scenario.phases)
      if (t >= p.fromMs && t < p.toMs && p.models.includes(model)) rate *= p.rateFactor;
    return rate;
  }

  private pick<T extends { weight: number }>(items: T[]): T {
    let x = this.random() * items.reduce((s, i) => s + i.weight, 0);
    for (const i of items) if ((x -= i.weight) <= 0) return i;
    return items[items.length - 1]!;
  }

  private newRequest(model: string, nowMs: number): SimRequest {
    const tenant = this.pick(this.scenario.tenants.map((t) => ({ ...t, weight: t.share })));
    const id = `chatcmpl-${(++this.seq).toString(16).padStart(8, '0')}`;
    const unique = this.random() < tenant.uniqueShare;
    const prefix = unique
      ? { id: `${id}-own`, tokens: 200 + Math.floor(this.random() * 1_500) }
      : this.pick(tenant.prefixes);
    const suffix = 40 + Math.floor(this.random() * 360);
    const maxTokens = 512;
    const outputTarget = this.random() < 0.05 ? maxTokens : 20 + Math.floor(this.random() * 200);
    return {
      id,
      model,
      tenant: tenant.tenant,
      instance: '',
      arrivalMs: nowMs,
      promptTokens: prefix.tokens + suffix,
      prefixId: `${model}:${prefix.id}`,
      prefixTokens: prefix.tokens,
      maxTokens,
      outputTarget,
      cachedTokens: 0,
      temperature: 0.7,
      topP: 0.95,
      prefillLeft: 0,
      generated: 0,
      decodeCarry: 0,
      admitOrder: 0,
    };
  }

  /** Least-loaded routing among the model's live instances (no prefix-aware routing, like most fleets). */
  private route(r: SimRequest, nowMs: number): void {
    const live = this.instances.filter((i) => i.spec.model === r.model && nowMs >= i.downUntilMs);
    if (!live.length) return; // every replica is down: the client gets an error, vLLM emits no span
    let best = live[0]!;
    for (const i of live) if (i.load < best.load) best = i;
    r.instance = best.spec.name;
    best.enqueue(r);
  }

  /**
   * Advances in whole steps of STEP_MS up to nowMs (the rest waits for the next call); returns finished requests,
   * and the restarts on the way. Fixed steps make a run the same however late its caller ticks: with the step
   * length set by a loaded machine's timers (300-600 ms), queueing and preemption changed from run to run, and
   * the dashboard test's burst preempted nothing in a quarter of runs.
   */
  step(nowMs: number): { finished: SimRequest[]; restarted: string[] } {
    const finished: SimRequest[] = [];
    const restarted: string[] = [];
    while (this.lastMs + STEP_MS <= nowMs) {
      const part = this.stepOnce(this.lastMs + STEP_MS);
      finished.push(...part.finished);
      restarted.push(...part.restarted);
    }
    return { finished, restarted };
  }

  private stepOnce(nowMs: number): { finished: SimRequest[]; restarted: string[] } {
    const dt = nowMs - this.lastMs;
    if (dt <= 0) return { finished: [], restarted: [] };
    if (this.cycleMs && nowMs - this.startMs >= this.cycleMs) {
      this.startMs += this.cycleMs;
      this.restartsLeft.splice(0, this.restartsLeft.length, ...this.scenario.restarts);
    }
    const t = nowMs - this.startMs;
    const restarted: string[] = [];
    for (const r of [...this.restartsLeft]) {
      if (t < r.atMs) continue;
      this.restartsLeft.splice(this.restartsLeft.indexOf(r), 1);
      this.instance(r.instance)?.restart(nowMs, r.downMs);
      restarted.push(r.instance);
    }
    for (const w of this.scenario.workloads) {
      // Poisson arrivals, spread uniformly over the step.
      const expected = (this.rateAt(w.model, t) * dt) / 1000;
      let n = 0;
      for (let p = Math.exp(-expected), s = p, u = this.random(); u > s && n < 1000; ) {
        n++;
        p *= expected / n;
        s += p;
      }
      for (let k = 0; k < n; k++)
        this.route(this.newRequest(w.model, this.lastMs + Math.floor(this.random() * dt)), nowMs);
    }
    const finished = this.instances.flatMap((i) => i.step(nowMs, dt));
    this.lastMs = nowMs;
    return { finished, restarted };
  }
}
