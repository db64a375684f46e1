import type { FleetQueries } from '../store/fleetQueries.ts';

/** Lower bound: first index with arr[i] >= x. */
function lowerBound(arr: readonly number[], x: number): number {
  let lo = 0;
  let hi = arr.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (arr[mid]! < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Upper bound: first index with arr[i] > x. */
function upperBound(arr: readonly number[], x: number): number {
  let lo = 0;
  let hi = arr.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (arr[mid]! <= x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * Successful scrape times per target, kept in memory and read incrementally by scrape id, so
 * finding a span's window is a binary search instead of two queries per span. A span older than
 * what memory keeps (sent late, after a long downstream outage) is looked up in the store, so its
 * window is the one it would have had on time, as long as storage.raw_retention keeps the scrapes.
 */
export class ScrapeTimelines {
  private readonly byTarget = new Map<number, number[]>();
  private lastId = 0;
  /** Memory holds every successful scrape at or after this time. */
  private keptFromMs = -Infinity;

  constructor(
    private readonly queries: FleetQueries,
    private readonly keepMs: number,
  ) {}

  load(nowMs: number): void {
    this.byTarget.clear();
    this.keptFromMs = nowMs - this.keepMs;
    const rows = this.queries.scrapesFromTime(nowMs - this.keepMs);
    for (const r of rows) this.push(r.target_id, r.ts_ms);
    this.lastId = rows.length ? rows[rows.length - 1]!.id : this.queries.maxScrapeId();
  }

  refresh(nowMs: number): void {
    if (this.lastId === 0 && this.byTarget.size === 0) {
      this.load(nowMs);
      return;
    }
    const maxId = this.queries.maxScrapeId();
    if (maxId <= this.lastId) return;
    for (const r of this.queries.scrapesAfterId(this.lastId)) this.push(r.target_id, r.ts_ms);
    this.lastId = maxId;
    const cutoff = nowMs - this.keepMs;
    this.keptFromMs = Math.max(this.keptFromMs, cutoff);
    for (const list of this.byTarget.values()) {
      if (list.length && list[0]! < cutoff) list.splice(0, lowerBound(list, cutoff));
    }
  }

  private push(targetId: number, ts: number): void {
    let list = this.byTarget.get(targetId);
    if (!list) this.byTarget.set(targetId, (list = []));
    // Rounds commit in time order per target; insert in place if a late write arrives.
    if (!list.length || list[list.length - 1]! <= ts) list.push(ts);
    else list.splice(lowerBound(list, ts), 0, ts);
  }

  /** The last scrape at or before ms. */
  before(targetId: number, ms: number): number | undefined {
    const list = this.byTarget.get(targetId);
    // Not lowerBound(ms + ε): at epoch sizes ms + 1e-9 === ms, and a scrape at exactly the start was skipped.
    const i = list ? upperBound(list, ms) : 0;
    if (i > 0) return list![i - 1];
    // Nothing in memory at or before ms: an older scrape, pruned or never loaded, may be in the store.
    return this.queries.scrapeAtOrBefore(targetId, ms);
  }

  /** The first scrape at or after ms. */
  after(targetId: number, ms: number): number | undefined {
    // Before what memory keeps, the first scrape at or after ms may have been pruned from it.
    if (ms < this.keptFromMs) return this.queries.scrapeAtOrAfter(targetId, ms);
    const list = this.byTarget.get(targetId);
    if (!list) return undefined;
    const i = lowerBound(list, ms);
    return i < list.length ? list[i] : undefined;
  }

  latest(targetId: number): number | undefined {
    const list = this.byTarget.get(targetId);
    return list?.length ? list[list.length - 1] : undefined;
  }
}
