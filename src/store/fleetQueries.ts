import type { Database, Statement } from 'better-sqlite3';
import type { Signal } from '../scrape/types.ts';

export interface StoredTarget {
  id: number;
  url: string;
  instance: string;
  labels: Record<string, string>;
  /** Models seen in this target's combined (engine '') series. */
  models: string[];
}

/** Per-signal numbers over a window: counter deltas summed, gauges at the start and their max. */
export interface WindowSignals {
  counters: Partial<Record<Signal, number>>;
  gaugeStart: Partial<Record<Signal, number>>;
  gaugeMax: Partial<Record<Signal, number>>;
}

/** Read-only queries over the scrape store that the correlator needs. */
export class FleetQueries {
  private readonly st: Record<string, Statement>;

  constructor(private readonly db: Database) {
    this.st = {
      targets: db.prepare('SELECT id, url, instance, labels_json FROM targets'),
      models: db.prepare("SELECT DISTINCT target_id, model FROM series WHERE engine = ''"),
      scrapesSince: db.prepare('SELECT target_id, ts_ms FROM scrapes WHERE up = 1 AND id > ? ORDER BY id'),
      maxScrapeId: db.prepare('SELECT coalesce(max(id), 0) FROM scrapes').pluck(),
      scrapesFrom: db.prepare('SELECT id, target_id, ts_ms FROM scrapes WHERE up = 1 AND ts_ms >= ? ORDER BY id'),
      scrapeAtOrBefore: db
        .prepare('SELECT max(ts_ms) FROM scrapes WHERE target_id = ? AND up = 1 AND ts_ms <= ?')
        .pluck(),
      scrapeAtOrAfter: db
        .prepare('SELECT min(ts_ms) FROM scrapes WHERE target_id = ? AND up = 1 AND ts_ms >= ?')
        .pluck(),
    };
  }

  targets(): StoredTarget[] {
    const models = new Map<number, string[]>();
    for (const r of this.st.models!.all() as Array<{ target_id: number; model: string }>) {
      const list = models.get(r.target_id) ?? [];
      list.push(r.model);
      models.set(r.target_id, list);
    }
    return (this.st.targets!.all() as Array<{ id: number; url: string; instance: string; labels_json: string }>).map(
      (r) => ({
        id: r.id,
        url: r.url,
        instance: r.instance,
        labels: JSON.parse(r.labels_json) as Record<string, string>,
        models: models.get(r.id) ?? [],
      }),
    );
  }

  /** Successful scrapes with id > afterId, oldest first; the correlator keeps them as per-target timelines. */
  scrapesAfterId(afterId: number): Array<{ target_id: number; ts_ms: number }> {
    return this.st.scrapesSince!.all(afterId) as Array<{ target_id: number; ts_ms: number }>;
  }

  scrapesFromTime(fromMs: number): Array<{ id: number; target_id: number; ts_ms: number }> {
    return this.st.scrapesFrom!.all(fromMs) as Array<{ id: number; target_id: number; ts_ms: number }>;
  }

  /**
   * The last successful scrape of a target at or before ms, from the store (for windows older than the timelines keep).
   */
  scrapeAtOrBefore(targetId: number, ms: number): number | undefined {
    return (this.st.scrapeAtOrBefore!.get(targetId, ms) as number | null) ?? undefined;
  }

  /** The first successful scrape of a target at or after ms, from the store. */
  scrapeAtOrAfter(targetId: number, ms: number): number | undefined {
    return (this.st.scrapeAtOrAfter!.get(targetId, ms) as number | null) ?? undefined;
  }

  maxScrapeId(): number {
    return this.st.maxScrapeId!.get() as number;
  }

  /**
   * Counter deltas with ts in (fromMs, toMs], gauge samples at fromMs and their max over [fromMs, toMs],
   * for the combined series of the given targets and models.
   */
  windowSignals(
    targetIds: readonly number[],
    models: readonly string[] | null,
    fromMs: number,
    toMs: number,
  ): WindowSignals {
    const tPh = targetIds.map(() => '?').join(',');
    const mClause = models ? ` AND s.model IN (${models.map(() => '?').join(',')})` : '';
    const params = [...targetIds, ...(models ?? [])];
    const out: WindowSignals = { counters: {}, gaugeStart: {}, gaugeMax: {} };
    const counters = this.db
      // Counters in blocks (older stores) never enter a window's token figures.
      .prepare(
        `SELECT s.signal, sum(d.delta) AS v FROM counter_deltas d JOIN series s ON s.id = d.series_id WHERE ` +
          `s.target_id IN (${tPh}) AND s.engine = '' AND s.unit <> 'blocks'${mClause} AND d.ts_ms > ?
            AND d.ts_ms <= ? ` +
          `GROUP BY s.signal`,
      )
      .all(...params, fromMs, toMs) as Array<{ signal: Signal; v: number }>;
    for (const r of counters) out.counters[r.signal] = r.v;
    const gauges = this.db
      .prepare(
        `SELECT s.signal, s.target_id, g.ts_ms, g.value FROM gauge_samples g JOIN series s ON s.id = g.series_id ` +
          `WHERE s.target_id IN (${tPh}) AND s.engine = ''${mClause} AND g.ts_ms >= ? AND g.ts_ms <= ?`,
      )
      .all(...params, fromMs, toMs) as Array<{ signal: Signal; target_id: number; ts_ms: number; value: number }>;
    for (const r of gauges) {
      if (Number.isNaN(r.value)) continue;
      if (r.ts_ms === fromMs) out.gaugeStart[r.signal] = (out.gaugeStart[r.signal] ?? 0) + r.value;
      out.gaugeMax[r.signal] = Math.max(out.gaugeMax[r.signal] ?? -Infinity, r.value);
    }
    return out;
  }

  /** Each target's latest gauge sample at or before atMs (within lookbackMs), summed over targets. */
  gaugeSumAt(
    targetIds: readonly number[],
    models: readonly string[] | null,
    signal: Signal,
    atMs: number,
    lookbackMs: number,
  ): number | undefined {
    const tPh = targetIds.map(() => '?').join(',');
    const mClause = models ? ` AND s.model IN (${models.map(() => '?').join(',')})` : '';
    const row = this.db
      .prepare(
        `SELECT sum(v) AS total, count(*) AS n FROM (
           SELECT (SELECT g.value FROM gauge_samples g WHERE g.series_id = s.id AND g.ts_ms <= ? AND g.ts_ms >= ?
           ORDER BY g.ts_ms DESC LIMIT 1) AS v
           FROM series s WHERE s.target_id IN (${tPh}) AND s.engine = '' AND s.signal = ?${mClause}
         ) WHERE v IS NOT NULL`,
      )
      .get(atMs, atMs - lookbackMs, ...targetIds, signal, ...(models ?? [])) as { total: number | null; n: number };
    return row.n ? (row.total ?? undefined) : undefined;
  }
}
