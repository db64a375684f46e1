import cron, { type ScheduledTask } from 'node-cron';
import type { Logger } from '../telemetry/logger.ts';
import type { ScrapeFailureReason } from './fetchExposition.ts';
import { scrapeTarget, type ScrapeOptions, type ScrapeResult } from './scrapeTarget.ts';
import { scrapeOffsetMs, type Target } from './target.ts';

/** What cachelens knows of each target right now; src/scrape/metrics.ts exports it as self-metrics. */
export interface TargetStatus {
  target: Target;
  offsetMs: number;
  up?: boolean;
  lastScrapeMs?: number;
  lastDurationMs?: number;
  lastSamples?: number;
  lastError?: string;
  profile?: string;
  scrapes: number;
  skipped: number;
}

interface Slot {
  status: TargetStatus;
  nextDueMs: number;
  inFlight: boolean;
  timers: Set<NodeJS.Timeout>;
}

export interface SchedulerOptions extends ScrapeOptions {
  intervalMs: number;
  /** Called on every heartbeat with the results that finished since the last one: one write round. */
  onRound: (results: ScrapeResult[]) => void;
  log: Logger;
}

const HEARTBEAT_MS = 1000;
/** Most results in one round (one write transaction). */
const MAX_ROUND = 10;

/**
 * node-cron drives a one-second heartbeat; each heartbeat plans the scrapes due within the next second
 * with sub-second timers, so every target keeps its stable offset inside the interval. A scrape still
 * running when its next is due is skipped and counted, never overlapped, and each scrape is its own
 * async task, so a slow or dead target never delays the others.
 */
export class ScrapeScheduler {
  private readonly slots = new Map<string, Slot>();
  private completed: ScrapeResult[] = [];
  private task?: ScheduledTask;
  private readonly inFlight = new Set<Promise<void>>();
  skippedTotal = 0;
  /** Failed scrapes by reason, since start. */
  readonly failures = new Map<ScrapeFailureReason, number>();
  missedTicks = 0;

  constructor(private readonly opts: SchedulerOptions) {}

  setTargets(targets: Target[], now = Date.now()): void {
    const keep = new Set(targets.map((t) => t.key));
    for (const [key, slot] of this.slots) {
      if (!keep.has(key)) {
        for (const t of slot.timers) clearTimeout(t);
        this.slots.delete(key);
      }
    }
    for (const t of targets) {
      const existing = this.slots.get(t.key);
      if (existing) {
        existing.status.target = t;
        continue;
      }
      const offsetMs = scrapeOffsetMs(t, this.opts.intervalMs);
      this.slots.set(t.key, {
        status: { target: t, offsetMs, scrapes: 0, skipped: 0 },
        nextDueMs: this.nextPhase(now, offsetMs),
        inFlight: false,
        timers: new Set(),
      });
    }
  }

  private nextPhase(fromMs: number, offsetMs: number): number {
    const i = this.opts.intervalMs;
    return Math.ceil((fromMs - offsetMs) / i) * i + offsetMs;
  }

  statuses(): TargetStatus[] {
    return [...this.slots.values()].map((s) => s.status);
  }

  start(): void {
    this.task = cron.schedule('* * * * * *', () => this.heartbeat(), {
      name: 'cachelens-scrape-heartbeat',
      logger: {
        info: (m) => this.opts.log.debug(m),
        warn: (m) => this.opts.log.debug({ cron: m }, 'cron heartbeat late'),
        error: (m) => this.opts.log.error({ err: String(m) }, 'cron heartbeat error'),
        debug: () => {},
      },
    });
    this.task.on('execution:missed', () => {
      this.missedTicks++;
    });
    this.heartbeat();
  }

  /** Plans every scrape due before the next heartbeat, and hands over the results finished since the last one. */
  heartbeat(now = Date.now()): void {
    const horizon = now + HEARTBEAT_MS;
    for (const slot of this.slots.values()) {
      // After a stall (event loop blocked, laptop asleep) jump to the next phase instead of a burst.
      if (slot.nextDueMs < now - this.opts.intervalMs) slot.nextDueMs = this.nextPhase(now, slot.status.offsetMs);
      while (slot.nextDueMs < horizon) {
        const timer = setTimeout(
          () => {
            slot.timers.delete(timer);
            this.fire(slot);
          },
          Math.max(0, slot.nextDueMs - now),
        );
        slot.timers.add(timer);
        slot.nextDueMs += this.opts.intervalMs;
      }
    }
    this.flush();
  }

  flush(): void {
    if (this.completed.length === 0) return;
    const round = this.completed;
    this.completed = [];
    this.opts.onRound(round);
  }

  private fire(slot: Slot): void {
    if (!this.slots.has(slot.status.target.key)) return;
    if (slot.inFlight) {
      slot.status.skipped++;
      this.skippedTotal++;
      this.opts.log.warn(
        { target: slot.status.target.key, skipped: slot.status.skipped },
        'scrape skipped: previous scrape of this target still running',
      );
      return;
    }
    slot.inFlight = true;
    const p = scrapeTarget(slot.status.target, this.opts).then((r) => {
      slot.inFlight = false;
      const st = slot.status;
      if (st.up !== r.up)
        this.opts.log[r.up ? 'info' : 'warn'](
          { target: st.target.key, error: r.error },
          r.up ? 'target up' : 'target down',
        );
      Object.assign(st, {
        up: r.up,
        lastScrapeMs: r.startedMs,
        lastDurationMs: r.durationMs,
        lastSamples: r.samples,
        lastError: r.error,
        profile: r.profile ?? st.profile,
      });
      st.scrapes++;
      if (r.failure) this.failures.set(r.failure, (this.failures.get(r.failure) ?? 0) + 1);
      if (this.slots.has(st.target.key)) this.completed.push(r);
      // A full round is handed over at once, not at the next heartbeat: one transaction of 200 scrapes
      // (1,000 targets every 5 s) held the event loop for ~50 ms; one of 10 for ~5 ms.
      if (this.completed.length >= MAX_ROUND) this.flush();
    });
    this.inFlight.add(p);
    void p.finally(() => this.inFlight.delete(p));
  }

  /** Stops planning, waits for scrapes in flight, and hands over their results. */
  async shutdown(): Promise<void> {
    await this.task?.destroy();
    for (const slot of this.slots.values()) for (const t of slot.timers) clearTimeout(t);
    await Promise.allSettled([...this.inFlight]);
    this.flush();
  }
}
