import type { PrometheusSourceConfig } from '../config/config.ts';
import type { Logger } from '../telemetry/logger.ts';
import { labelKey } from './labelKey.ts';
import { normalizeSamples } from './normalize.ts';
import {
  PrometheusApi,
  parseApiValue,
  type QueryAnswer,
  type RawSeries,
  SourceError,
  type SourceFailureReason,
} from './prometheusApi.ts';
import {
  createdCompanion,
  detectProfile,
  HELP_NAMES,
  type Profile,
  SOURCE_SAMPLE_NAMES,
  serverKind,
} from './profiles.ts';
import type { TargetStatus } from './scheduler.ts';
import type { ScrapeResult } from './scrapeTarget.ts';
import type { Target } from './target.ts';
import type { Sample } from './types.ts';

/**
 * What the source needs of the store it writes through (Prometheus's scrape package writes through an
 * Appender the same way): the time of the last scrape stored for a server, so a read continues after
 * it and never writes a sample twice.
 */
export interface StoredScrapes {
  lastScrapeMs(targetKey: string): number | undefined;
  /** The newest scrape stored for any server of this source (where a restarted daemon resumes). */
  lastSourceScrapeMs(keyPrefix: string): number | undefined;
}

export interface PrometheusSourceOptions {
  cfg: PrometheusSourceConfig;
  log: Logger;
  store: StoredScrapes;
  /** Called after each read with its results in time order: one write round, as the scheduler's. */
  onRound: (results: ScrapeResult[]) => void;
  now?: () => number;
}

/** Per-read facts for cachelens_source_* self-metrics and /readyz. */
export interface SourceStatus {
  up?: boolean;
  lastReadMs?: number;
  lastDurationMs?: number;
  lastError?: string;
  servers: number;
  queries: number;
  bytes: number;
  samples: number;
}

/** The scheme of the keys of servers read from Prometheus: not a URL anything can fetch, and no host to match. */
export const SOURCE_KEY_PREFIX = 'prometheus:';
const SCRAPE_META = ['up', 'scrape_duration_seconds', 'scrape_samples_scraped'];
const NAME_GROUP_SIZE = 12;
/** The `_created` companions of the counters the profiles read: a third of the series, and they rarely change. */
const COMPANIONS: ReadonlySet<string> = new Set(
  SOURCE_SAMPLE_NAMES.map(createdCompanion).filter(
    (n): n is string => n !== undefined && SOURCE_SAMPLE_NAMES.includes(n),
  ),
);
const HAS_COMPANION: ReadonlySet<string> = new Set(
  SOURCE_SAMPLE_NAMES.filter((n) => COMPANIONS.has(createdCompanion(n) ?? '')),
);
const groups = (names: string[]): string[][] => {
  const out: string[][] = [];
  while (names.length) out.push(names.splice(0, NAME_GROUP_SIZE));
  return out;
};
/** The names every read asks for. */
export const NAME_GROUPS: string[][] = groups([
  ...SCRAPE_META,
  ...SOURCE_SAMPLE_NAMES.filter((n) => !COMPANIONS.has(n)),
]);
/** The `_created` names, read raw only for servers whose created times are not known to be unchanged. */
export const CREATED_GROUPS: string[][] = groups([...COMPANIONS]);
/** Created times known for longer than this are read again rather than checked for changes. */
const CREATED_CHECK_MS = 10 * 60_000;
/** Fewer servers than this to read created times of: ask for them by their instance labels. */
const CREATED_BY_SERVER_MAX = 64;
/** A server with no sample for this long is down; after this long again it is forgotten (scaled down). */
const STALE_MS = 5 * 60_000;

/** Plans of series not seen for this many reads are dropped. */
const PLAN_READS = 20;

/** What one series read from Prometheus maps to: worked out once, and the same objects every read after. */
interface SeriesPlan {
  target: Target;
  name: string;
  /** Its labels without __name__. */
  labels: Record<string, string>;
  key: string;
  seriesKey: string;
  meta: boolean;
  /** A counter with a `_created` companion. */
  hasCompanion: boolean;
  /** The server read that last counted it, so a series read in two parts counts once. */
  countedIn?: ServerRead;
  /** How many labels it has, __name__ included. */
  size: number;
  /** The read that last saw it, to forget series gone for PLAN_READS reads. */
  lastRead: number;
  /** The series after it in the last answer: answers come sorted, so this is nearly always the next one. */
  next?: SeriesPlan;
}

const regexQuote = (v: string) => v.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Is this the series the plan was made for? Comparing strings costs less than hashing a key built of them. */
function planFits(plan: SeriesPlan, metric: Record<string, string>): boolean {
  let n = 0;
  for (const k in metric) {
    if (k === '__name__') {
      if (metric[k] !== plan.name) return false;
    } else if (plan.labels[k] !== metric[k]) return false;
    n++;
  }
  return n === plan.size;
}

interface ServerRead {
  target: Target;
  /** The newest sample time stored (or handed over) for the server: older samples are skipped. */
  after: number;
  /** sample time → the samples of that scrape */
  scrapes: Map<number, Sample[]>;
  meta: Map<number, { up?: number; durationS?: number; samples?: number }>;
  /** Counter series with a `_created` companion in this read: more than when created times were read is a new one. */
  counters: number;
}

/** A server's `_created` samples as last read, the time of that scrape, and its count of such counters then. */
interface CreatedTimes {
  samples: Sample[];
  atMs: number;
  counters: number;
}

/**
 * Reads the fleet's counters from Prometheus: every raw sample of the names the profiles know, for every
 * server the selector matches, with the timestamps Prometheus stored, in one range-selector query per
 * read (split when the server refuses it for its size). Each (server, sample time) becomes one scrape
 * result, normalized by the same profiles as a direct scrape, so deltas, windows and reports work unchanged.
 */
export class PrometheusSource {
  readonly status: SourceStatus = { servers: 0, queries: 0, bytes: 0, samples: 0 };
  readonly failures = new Map<SourceFailureReason, number>();
  private readonly api: PrometheusApi;
  private readonly now: () => number;
  private timer?: NodeJS.Timeout;
  private reading?: Promise<void>;
  private stopped = false;
  /** Reads go back to here: the end of the last read less the ingestion overlap. */
  private watermarkMs?: number;
  private readonly profiles = new Map<string, Profile>();
  private readonly servers = new Map<string, { target: Target; lastSeenMs: number; status: TargetStatus }>();
  private readonly warned = new Set<string>();
  private readonly targetByValues = new Map<string, Target>();
  /**
   * By the series' label names and values as Prometheus sends them. A read's keys are then the same strings
   * as the last read's, so the maps of counter state and created times hash each once, not once a read:
   * working out 70,000 series a read was a fifth of its CPU.
   */
  private readonly plans = new Map<string, SeriesPlan>();
  private readNo = 0;
  /**
   * Per server. A read asks Prometheus which `_created` series changed since these were read, and reads
   * only those servers' again; the rest are handed on with every scrape as a direct scrape would see them.
   */
  private readonly createdTimes = new Map<string, CreatedTimes>();
  /** A server's instance label values, by its key. */
  private readonly instanceValues = new Map<string, string[]>();
  /** The newest sample time handed to onRound per server. */
  private readonly handedMs = new Map<string, number>();
  private help = new Map<string, string>();
  private helpReadMs = -Infinity;
  private outage?: string;
  /** This read had an answer with warnings (Thanos or Mimir answering without one of its stores). */
  private partial = false;

  constructor(private readonly opts: PrometheusSourceOptions) {
    this.api = new PrometheusApi(opts.cfg);
    this.now = opts.now ?? Date.now;
  }

  /** Samples may become visible after their timestamp (a scrape commits when it ends; remote storage lags). */
  private get overlapMs(): number {
    return this.opts.cfg.overlap;
  }

  start(): void {
    const loop = () => {
      if (this.stopped) return;
      this.reading = this.read().finally(() => {
        this.reading = undefined;
        if (!this.stopped) this.timer = setTimeout(loop, this.opts.cfg.interval);
      });
    };
    loop();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.reading;
  }

  /** One read: every sample stored since the last one, in steps of at most max_range. Never throws. */
  async read(): Promise<void> {
    const t0 = performance.now();
    const endMs = this.now();
    this.readNo++;
    const { cfg, log } = this.opts;
    try {
      await this.refreshHelp(endMs);
      this.partial = false;
      let from = this.resumeFrom(endMs);
      while (from < endMs && !this.stopped) {
        const to = Math.min(endMs, from + cfg.max_range);
        // A few queries of a dozen names each: each answer is folded in and dropped before the next, so
        // memory holds one answer, not every series of the fleet at once.
        const reads = new Map<string, ServerRead>();
        for (const names of NAME_GROUPS)
          await this.fetchRange(from, to, names, (series) => this.collect(series, reads));
        await this.readCreated(from, to, reads);
        const results = this.toResults(reads, to);
        if (results.length) this.opts.onRound(results);
        from = to;
      }
      // A partial answer (warnings) may lack samples Prometheus holds: the next read asks again from the same
      // place, and what this one wrote is skipped by time.
      if (!this.partial) this.watermarkMs = endMs - this.overlapMs;
      if (this.readNo % PLAN_READS === 0)
        for (const [id, plan] of this.plans) if (plan.lastRead <= this.readNo - PLAN_READS) this.forgetPlan(id, plan);
      if (this.outage) log.info({ source: 'prometheus', url: cfg.url }, 'reading from Prometheus again');
      this.outage = undefined;
      this.status.up = true;
      this.status.lastError = undefined;
    } catch (err) {
      const e = err instanceof SourceError ? err : new SourceError((err as Error).message, 'unexpected');
      this.failures.set(e.reason, (this.failures.get(e.reason) ?? 0) + 1);
      this.status.up = false;
      this.status.lastError = e.message;
      // Once per outage, not once per read: the next read retries from the same watermark.
      if (this.outage !== e.reason)
        log.error(
          { source: 'prometheus', url: cfg.url, reason: e.reason, err: e.message },
          'cannot read from Prometheus; retrying every interval, and catching up from the last stored sample',
        );
      this.outage = e.reason;
    } finally {
      this.status.lastReadMs = endMs;
      this.status.lastDurationMs = performance.now() - t0;
      this.status.servers = this.servers.size;
    }
  }

  private resumeFrom(endMs: number): number {
    if (this.watermarkMs !== undefined) return this.watermarkMs;
    const stored = this.opts.store.lastSourceScrapeMs(SOURCE_KEY_PREFIX);
    return stored !== undefined ? Math.min(endMs - 1, stored - this.overlapMs) : endMs - this.opts.cfg.backfill;
  }

  private matchers(names: readonly string[], extra = ''): string {
    const sel = this.opts.cfg.selector
      .trim()
      .replace(/^\{|\}$/g, '')
      .trim();
    const nameRe = names.map(regexQuote).join('|');
    return `{__name__=~"${nameRe}"${sel ? `,${sel}` : ''}${extra}}`;
  }

  /** Matchers that select these servers by their instance labels (and maybe a few more, dropped as read). */
  private serverMatchers(keys: ReadonlySet<string>): string {
    let out = '';
    const names = this.opts.cfg.instance_labels;
    for (const [i, name] of names.entries()) {
      const values = new Set([...keys].map((k) => this.instanceValues.get(k)?.[i] ?? ''));
      const re = [...values].map(regexQuote).join('|');
      out += `,${name}=~"${re.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
    }
    return out;
  }

  /**
   * The `_created` samples of this step's scrapes. A server whose created times are cached and unchanged in
   * Prometheus since (no change in a window reaching back to the cached scrape) gets the cached samples; the
   * others (new, a new counter series, a change, or cached too long ago) are read raw.
   */
  private async readCreated(fromMs: number, toMs: number, reads: Map<string, ServerRead>): Promise<void> {
    const stale = new Set<string>();
    let oldest = Number.POSITIVE_INFINITY;
    for (const [key, read] of reads) {
      if (!read.scrapes.size) continue;
      const known = this.createdTimes.get(key);
      if (!known || read.counters > known.counters || toMs - known.atMs > CREATED_CHECK_MS) stale.add(key);
      else oldest = Math.min(oldest, known.atMs);
    }
    if (oldest !== Number.POSITIVE_INFINITY) {
      // One `changes` per name: over several names at once Prometheus 2 drops __name__ and refuses the duplicates.
      const rangeMs = Math.ceil(toMs - oldest) + 1000;
      const expr = CREATED_GROUPS.flat()
        .map((n) => `changes(${this.matchers([n])}[${rangeMs}ms]) > 0`)
        .join(' or ');
      try {
        const answer = await this.api.query(expr, toMs, 'vector');
        this.noteAnswer(answer);
        for (const s of answer.series) {
          const target = this.serverOf(s.metric);
          if (target && reads.get(target.key)?.scrapes.size) stale.add(target.key);
        }
      } catch (err) {
        if (!(err instanceof SourceError) || err.reason !== 'too_many_samples') throw err;
        // Refused for its size: read every server's raw, which splits until it fits.
        for (const [key, read] of reads) if (read.scrapes.size) stale.add(key);
      }
    }
    if (stale.size) {
      const extra = stale.size <= CREATED_BY_SERVER_MAX ? this.serverMatchers(stale) : '';
      for (const names of CREATED_GROUPS)
        await this.fetchRange(fromMs, toMs, names, (series) => this.collect(series, reads, stale), extra);
    }
    for (const [key, read] of reads) {
      if (!read.scrapes.size) continue;
      const latest = Math.max(...read.scrapes.keys());
      if (stale.has(key)) {
        const samples = read.scrapes.get(latest)!.filter((s) => COMPANIONS.has(s.name));
        this.createdTimes.set(key, { samples, atMs: latest, counters: read.counters });
        continue;
      }
      const known = this.createdTimes.get(key)!;
      for (const list of read.scrapes.values()) for (const c of known.samples) list.push(c);
      known.atMs = Math.max(known.atMs, latest);
    }
  }

  private noteAnswer(answer: QueryAnswer): void {
    this.status.queries++;
    this.status.bytes += answer.bytes;
    for (const w of answer.warnings) {
      this.partial = true;
      this.warnOnce(`warning:${w}`, { warning: w }, 'Prometheus answered with a warning');
    }
  }

  /**
   * Every sample in (fromMs, toMs]. A query refused for its size is split in time, down to one interval,
   * then by names; the parts are merged, so a scrape's families still meet in one result.
   */
  private async fetchRange(
    fromMs: number,
    toMs: number,
    names: readonly string[],
    sink: (series: RawSeries[]) => void,
    extra = '',
  ): Promise<void> {
    const rangeMs = Math.max(1, Math.round(toMs - fromMs));
    try {
      const answer = await this.api.query(`${this.matchers(names, extra)}[${rangeMs}ms]`, toMs);
      this.noteAnswer(answer);
      // A range selector is closed at its start in Prometheus 2 and open in 3: keep (from, to] either way.
      const fromS = fromMs / 1000;
      for (const s of answer.series) s.values = s.values.filter(([t]) => t > fromS);
      sink(answer.series);
    } catch (err) {
      if (!(err instanceof SourceError) || err.reason !== 'too_many_samples') throw err;
      if (rangeMs > this.opts.cfg.interval) {
        const mid = fromMs + rangeMs / 2;
        this.warnOnce('split-time', { range_ms: rangeMs }, 'Prometheus refused a query for its size; reading in parts');
        await this.fetchRange(fromMs, mid, names, sink, extra);
        await this.fetchRange(mid, toMs, names, sink, extra);
        return;
      }
      if (names.length > 1) {
        const half = Math.ceil(names.length / 2);
        await this.fetchRange(fromMs, toMs, names.slice(0, half), sink, extra);
        await this.fetchRange(fromMs, toMs, names.slice(half), sink, extra);
        return;
      }
      throw err;
    }
  }

  private serverOf(labels: Record<string, string>): ServerRead['target'] | undefined {
    const names = this.opts.cfg.instance_labels;
    // One lookup per series by the label values alone: building the URL-shaped key for 70,000 series a read
    // cost more than reading their samples.
    let raw = '';
    for (const n of names) raw += `${labels[n] ?? ''}\u0000`;
    const cached = this.targetByValues.get(raw);
    if (cached) return cached;
    const values = names.map((n) => labels[n] ?? '');
    if (values.every((v) => v === '')) return undefined;
    const key = `${SOURCE_KEY_PREFIX}//?${new URLSearchParams(names.map((n, i) => [n, values[i]!]))}`;
    const instance = values.join('/');
    const own: Record<string, string> = {};
    names.forEach((n, i) => {
      own[n] = values[i]!;
    });
    if (labels.job !== undefined) own.job = labels.job;
    const target: Target = this.servers.get(key)?.target ?? {
      url: new URL(key),
      key,
      instance,
      labels: { ...own, instance },
      profile: 'auto',
      auth: {},
      source: 'prometheus',
    };
    this.targetByValues.set(raw, target);
    this.instanceValues.set(key, values);
    return target;
  }

  private forgetPlan(id: string, plan: SeriesPlan): void {
    this.plans.delete(id);
    // Another plan's `next` may still point here: it must not fit any series again.
    plan.size = -1;
  }

  private planOf(metric: Record<string, string>, expected: SeriesPlan | undefined): SeriesPlan | undefined {
    if (expected && planFits(expected, metric)) {
      expected.lastRead = this.readNo;
      return expected;
    }
    // Label names are never array indices, so for-in walks them in the order the answer gives them.
    let id = '';
    for (const k in metric) id += `${k}\u0001${metric[k]}\u0000`;
    let plan = this.plans.get(id);
    if (!plan) {
      const target = this.serverOf(metric);
      if (!target) return undefined;
      const { __name__: name = '', ...labels } = metric;
      const key = labelKey(labels);
      const meta = SCRAPE_META.includes(name);
      const size = Object.keys(metric).length;
      const hasCompanion = HAS_COMPANION.has(name);
      plan = { target, name, labels, key, seriesKey: `${name}{${key}}`, meta, hasCompanion, size, lastRead: 0 };
      this.plans.set(id, plan);
    }
    plan.lastRead = this.readNo;
    return plan;
  }

  /**
   * Folds one answer into the read, keeping only samples newer than what is stored for each server (and only
   * the servers in `only`, when given).
   */
  private collect(series: RawSeries[], reads: Map<string, ServerRead>, only?: ReadonlySet<string>): void {
    let samples = 0;
    let prev: SeriesPlan | undefined;
    for (const s of series) {
      const plan = this.planOf(s.metric, prev?.next);
      if (prev && plan) prev.next = plan;
      prev = plan;
      if (!plan) {
        this.warnOnce(
          'no-instance',
          { labels: this.opts.cfg.instance_labels },
          'series without any of scrape.prometheus.instance_labels are skipped',
        );
        continue;
      }
      const { target, name, meta } = plan;
      if (only && !only.has(target.key)) continue;
      let read = reads.get(target.key);
      if (!read) {
        // Results handed over but not yet written (a locked store keeps them queued) count as stored.
        const after = Math.max(
          this.opts.store.lastScrapeMs(target.key) ?? Number.NEGATIVE_INFINITY,
          this.handedMs.get(target.key) ?? Number.NEGATIVE_INFINITY,
        );
        reads.set(target.key, (read = { target, after, scrapes: new Map(), meta: new Map(), counters: 0 }));
      }
      if (plan.hasCompanion && plan.countedIn !== read) {
        plan.countedIn = read;
        read.counters++;
      }
      for (const [t, v] of s.values) {
        const ts = Math.round(t * 1000);
        if (ts <= read.after) continue;
        const value = parseApiValue(v);
        if (meta) {
          const m = read.meta.get(ts) ?? {};
          if (name === 'up') m.up = value;
          else if (name === 'scrape_duration_seconds') m.durationS = value;
          else m.samples = value;
          read.meta.set(ts, m);
          continue;
        }
        let list = read.scrapes.get(ts);
        if (!list) read.scrapes.set(ts, (list = []));
        list.push({ name, labels: plan.labels, value, key: plan.key, seriesKey: plan.seriesKey });
        samples++;
      }
    }
    this.status.samples += samples;
  }

  private toResults(reads: ReadonlyMap<string, ServerRead>, readEndMs: number): ScrapeResult[] {
    const out: ScrapeResult[] = [];
    for (const read of reads.values()) out.push(...this.serverResults(read));
    out.push(...this.vanished(reads, readEndMs));
    return out.sort((a, b) => a.startedMs - b.startedMs);
  }

  private serverResults(read: ServerRead): ScrapeResult[] {
    const { target, after } = read;
    const profile = this.profileOf(read);
    // `up` comes in the first query of a read, and Prometheus stores a scrape's samples at once: a time with
    // samples but no `up` was stored between two queries of this read, so it waits whole for the next read.
    // (A server without any `up` series, federated or remote-written, is read as it comes.)
    const hasUp = [...read.meta.values()].some((m) => m.up !== undefined);
    const times = [...new Set([...read.scrapes.keys(), ...read.meta.keys()])]
      .filter((t) => t > after && (!hasUp || read.meta.get(t)?.up !== undefined))
      .sort((a, b) => a - b);
    const out: ScrapeResult[] = [];
    for (const ts of times) {
      const meta = read.meta.get(ts);
      const list = read.scrapes.get(ts) ?? [];
      const durationMs = meta?.durationS !== undefined && Number.isFinite(meta.durationS) ? meta.durationS * 1000 : 0;
      if (meta?.up === 0) {
        out.push({
          target,
          startedMs: ts,
          durationMs,
          up: false,
          error: 'Prometheus could not scrape the server at this time (up=0)',
          samples: 0,
          parseErrors: 0,
          signals: [],
        });
        continue;
      }
      out.push({
        target,
        startedMs: ts,
        durationMs,
        up: true,
        error: profile ? undefined : 'no vLLM, SGLang or TGI metric families among its series in Prometheus',
        samples: meta?.samples ?? list.length,
        parseErrors: 0,
        profile: profile?.name,
        signals: profile ? normalizeSamples(profile, list, this.help, target.labels) : [],
      });
    }
    this.track(target, out);
    if (out.length) this.handedMs.set(target.key, out.at(-1)!.startedMs);
    return out;
  }

  /** The server's profile, from the names it has shown so far; a server showing two kinds' names is logged once. */
  private profileOf(read: ServerRead): Profile | undefined {
    const present = new Set<string>();
    for (const list of read.scrapes.values()) for (const s of list) present.add(s.name);
    const kinds = new Set([...present].map(serverKind).filter(Boolean));
    if (kinds.size > 1)
      this.warnOnce(
        `mixed:${read.target.key}`,
        { server: read.target.instance, kinds: [...kinds] },
        'a server shows the names of two kinds of inference server; scrape.prometheus.instance_labels may not ' +
          'tell them apart. The first profile that fits is used',
      );
    // A profile, once detected, stays until the names say otherwise (an upgrade).
    const detected = present.size ? detectProfile(present) : undefined;
    if (detected) this.profiles.set(read.target.key, detected);
    return this.profiles.get(read.target.key);
  }

  private track(target: Target, results: ScrapeResult[]): void {
    const last = results.at(-1);
    let entry = this.servers.get(target.key);
    if (!entry) {
      entry = { target, lastSeenMs: 0, status: { target, offsetMs: 0, scrapes: 0, skipped: 0 } };
      this.servers.set(target.key, entry);
    }
    if (!last) return;
    entry.lastSeenMs = Math.max(entry.lastSeenMs, last.startedMs);
    Object.assign(entry.status, {
      up: last.up,
      lastScrapeMs: last.startedMs,
      lastDurationMs: last.durationMs,
      lastSamples: last.samples,
      lastError: last.error,
      profile: last.profile,
    });
    entry.status.scrapes += results.length;
  }

  /**
   * Servers seen before with no sample since: their series went stale or vanished, so they are down. One down
   * result per read, once no late sample can still arrive; forgotten after a further STALE_MS.
   */
  private vanished(reads: ReadonlyMap<string, ServerRead>, readEndMs: number): ScrapeResult[] {
    const out: ScrapeResult[] = [];
    const downAt = readEndMs - this.overlapMs;
    const forgotten = new Set<string>();
    for (const [key, entry] of this.servers) {
      if (reads.get(key)?.scrapes.size || reads.get(key)?.meta.size) continue;
      if (entry.lastSeenMs >= downAt - this.opts.cfg.interval) continue;
      if (entry.lastSeenMs < readEndMs - 2 * STALE_MS) {
        this.servers.delete(key);
        this.profiles.delete(key);
        this.handedMs.delete(key);
        this.createdTimes.delete(key);
        this.instanceValues.delete(key);
        forgotten.add(key);
        continue;
      }
      if (Math.max(this.opts.store.lastScrapeMs(key) ?? 0, this.handedMs.get(key) ?? 0) >= downAt) continue;
      this.handedMs.set(key, downAt);
      const result: ScrapeResult = {
        target: entry.target,
        startedMs: downAt,
        durationMs: 0,
        up: false,
        error: `no samples in Prometheus since ${new Date(entry.lastSeenMs).toISOString()} (stale or gone)`,
        samples: 0,
        parseErrors: 0,
        signals: [],
      };
      Object.assign(entry.status, { up: false, lastError: result.error });
      out.push(result);
    }
    // One pass for every server forgotten, not one per server: a scaled-down pool forgets hundreds at once.
    if (forgotten.size) {
      for (const [raw, t] of this.targetByValues) if (forgotten.has(t.key)) this.targetByValues.delete(raw);
      for (const [id, plan] of this.plans) if (forgotten.has(plan.target.key)) this.forgetPlan(id, plan);
    }
    return out;
  }

  /** HELP texts the profiles read (vLLM before 0.9 counted prefix hits in blocks), refreshed hourly. */
  private async refreshHelp(nowMs: number): Promise<void> {
    if (nowMs - this.helpReadMs < 3_600_000) return;
    this.helpReadMs = nowMs;
    const help = new Map<string, string>();
    for (const name of HELP_NAMES) {
      const text = await this.api.help(name).catch(() => undefined);
      if (text) help.set(name, text);
    }
    this.help = help;
  }

  private warnOnce(key: string, fields: Record<string, unknown>, msg: string): void {
    if (this.warned.has(key)) return;
    this.warned.add(key);
    this.opts.log.warn({ source: 'prometheus', ...fields }, msg);
  }

  /** Per-server statuses, shaped as the scheduler's, for cachelens_target_up and friends. */
  statuses(): TargetStatus[] {
    return [...this.servers.values()].map((s) => s.status);
  }
}
