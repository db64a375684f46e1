import type { Database, Statement } from 'better-sqlite3';
import { aggregateSignals, type AggregatedSignal } from '../scrape/aggregateSignals.ts';
import { childMap } from '../scrape/childMap.ts';
import { computeCounterDeltas, type CounterState } from '../scrape/counterDeltas.ts';
import type { StoredScrapes } from '../scrape/prometheusSource.ts';
import type { ScrapeResult } from '../scrape/scrapeTarget.ts';
import { MINUTE_MS } from './rollups.ts';

export interface RoundSummary {
  scrapes: number;
  deltas: number;
  gauges: number;
  resets: number;
  /**
   * Scrape intervals of a (server, model) where local cache hits + external transfers (prompt_tokens_by_source)
   * differ from prompt_tokens_cached: counted, never corrected.
   */
  cachedDisagreements: number;
}

/** The deltas of one (server, model) in one interval, by signal: does the by-source split add up? */
function cachedSplitDisagrees(deltas: ReadonlyMap<string, number>): boolean {
  const local = deltas.get('prompt_tokens_local_cache_hit');
  const external = deltas.get('prompt_tokens_external_transfer');
  const cached = deltas.get('prompt_tokens_cached');
  if (cached === undefined || (local === undefined && external === undefined)) return false;
  return Math.abs((local ?? 0) + (external ?? 0) - cached) > 0.5;
}

interface SeriesEntry {
  id: number;
  unit: string;
}

interface TargetRow {
  id: number;
  instance: string;
  labels: string;
  profile: string | null;
  /** The minute last_seen_ms was last moved to. */
  seenMinute: number;
}

/** Does a series' stored state need rewriting? Only when what a later delta is computed from changed. */
const stateChanged = (p: CounterState | undefined, st: CounterState) =>
  !p || p.absent || p.value !== st.value || p.createdSeconds !== st.createdSeconds;

/**
 * Writes scrape rounds. Counter deltas are computed inside the write transaction from the stored state,
 * and the in-memory copy of that state only advances once the transaction commits: a round that fails
 * to write (locked DB, full disk) can be retried, or dropped, without breaking the exactness of deltas.
 */
export class ScrapeStore implements StoredScrapes {
  private readonly targetIds = new Map<string, number>();
  /**
   * target id → signal → model → engine → series. Nested, not one key joined from the four: model and engine
   * are the same strings scrape after scrape (from the Prometheus source), so each map hashes them once.
   */
  private readonly seriesIds = new Map<number, Map<string, Map<string, Map<string, SeriesEntry>>>>();
  /** Series set or changed in the round being written: forgotten if it rolls back. */
  private touchedInRound: Array<{ byEngine: Map<string, SeriesEntry>; engine: string }> = [];
  /** target id → series key → last raw value. */
  private readonly state = new Map<number, Map<string, CounterState>>();
  /** target id → last successful scrape time. */
  private readonly lastUpMs = new Map<number, number>();
  /** target key → last scrape time, up or down: where a read from Prometheus continues. */
  private readonly lastScrape = new Map<string, number>();
  /** target key → its targets row as last written, and the minute of the last last_seen_ms update. */
  private readonly targetRows = new Map<string, TargetRow>();
  /** A target's labels as stored, by the labels object (one per target until file_sd changes it). */
  private readonly labelsJson = new WeakMap<object, string>();
  /** series id → the minute its counter rollup row was last written in (a zero delta adds nothing to it). */
  private readonly rollupMinute = new Map<number, number>();
  private readonly stmt: Record<string, Statement>;

  constructor(private readonly db: Database) {
    this.stmt = {
      upsertTarget: db.prepare(
        `INSERT INTO targets (url, instance, labels_json, profile, first_seen_ms, last_seen_ms) VALUES (@url,
          @instance, @labels, @profile, @ts, @ts)
         ON CONFLICT(url) DO UPDATE SET instance = excluded.instance, labels_json = excluded.labels_json,
           profile = coalesce(excluded.profile, targets.profile), last_seen_ms = excluded.last_seen_ms
         RETURNING id, profile`,
      ),
      insertScrape: db.prepare(
        'INSERT INTO scrapes (target_id, ts_ms, duration_ms, up, samples, parse_errors, profile, error) VALUES (?, ' +
          '?, ?, ?, ?, ?, ?, ?)',
      ),
      selectSeries: db.prepare('SELECT id FROM series WHERE target_id = ? AND model = ? AND engine = ? AND signal = ?'),
      insertSeries: db.prepare(
        'INSERT INTO series (target_id, model, engine, signal, kind, unit) VALUES (?, ?, ?, ?, ?, ?) RETURNING id',
      ),
      updateSeriesUnit: db.prepare('UPDATE series SET unit = ? WHERE id = ? AND unit <> ?'),
      insertDelta: db.prepare(
        'INSERT OR REPLACE INTO counter_deltas (series_id, ts_ms, interval_ms, delta, value, resets) VALUES (?, ?, ' +
          '?, ?, ?, ?)',
      ),
      insertGauge: db.prepare('INSERT OR REPLACE INTO gauge_samples (series_id, ts_ms, value) VALUES (?, ?, ?)'),
      rollupCounter: db.prepare(
        `INSERT INTO rollup_minute (series_id, minute_ms, delta_sum, resets) VALUES (?, ?, ?, ?)
         ON CONFLICT(series_id, minute_ms) DO UPDATE SET delta_sum = coalesce(delta_sum, 0) + excluded.delta_sum,
         resets = coalesce(resets, 0) + excluded.resets`,
      ),
      rollupGauge: db.prepare(
        `INSERT INTO rollup_minute (series_id, minute_ms, gauge_min, gauge_max, gauge_sum, gauge_count, gauge_last)
          VALUES (?, ?, ?, ?, ?, 1, ?)
         ON CONFLICT(series_id, minute_ms) DO UPDATE SET gauge_min = min(coalesce(gauge_min, excluded.gauge_min),
         excluded.gauge_min),
           gauge_max = max(coalesce(gauge_max, excluded.gauge_max), excluded.gauge_max),
           gauge_sum = coalesce(gauge_sum, 0) + excluded.gauge_sum,
           gauge_count = coalesce(gauge_count, 0) + 1, gauge_last = excluded.gauge_last`,
      ),
      upsertState: db.prepare(
        'INSERT OR REPLACE INTO counter_state (target_id, series_key, value, created_seconds, ts_ms, absent) ' +
          'VALUES (?, ?, ?, ?, ?, ?)',
      ),
      touchTarget: db.prepare('UPDATE targets SET last_seen_ms = max(last_seen_ms, ?) WHERE id = ?'),
    };
    this.loadState();
  }

  private loadState(): void {
    // One index lookup per target (scrapes_target_ts), not a scan of every scrape.
    const rows = this.db
      .prepare(
        `SELECT id, url, instance, labels_json AS labels, profile,
           (SELECT max(ts_ms) FROM scrapes WHERE target_id = targets.id) AS last,
           (SELECT max(ts_ms) FROM scrapes WHERE target_id = targets.id AND up = 1) AS lastUp
         FROM targets`,
      )
      .all() as Array<{
      id: number;
      url: string;
      instance: string;
      labels: string;
      profile: string | null;
      last: number | null;
      lastUp: number | null;
    }>;
    for (const row of rows) {
      this.targetIds.set(row.url, row.id);
      this.targetRows.set(row.url, { ...row, seenMinute: -1 });
      if (row.last !== null) this.lastScrape.set(row.url, row.last);
      if (row.lastUp !== null) this.lastUpMs.set(row.id, row.lastUp);
    }
    for (const row of this.db
      .prepare('SELECT target_id, series_key, value, created_seconds, ts_ms, absent FROM counter_state')
      .iterate() as Iterable<{
      target_id: number;
      series_key: string;
      value: number;
      created_seconds: number | null;
      ts_ms: number;
      absent: number;
    }>) {
      let m = this.state.get(row.target_id);
      if (!m) this.state.set(row.target_id, (m = new Map()));
      // A series in its target's last successful scrape was seen then, even if its row was last written earlier.
      const lastUp = this.lastUpMs.get(row.target_id);
      const tsMs = row.absent || lastUp === undefined ? row.ts_ms : Math.max(row.ts_ms, lastUp);
      m.set(row.series_key, {
        value: row.value,
        createdSeconds: row.created_seconds ?? undefined,
        tsMs,
        absent: row.absent === 1 || undefined,
      });
      // Retention may have deleted a target's scrape rows; its state rows still say when it was last up.
      this.lastUpMs.set(row.target_id, Math.max(this.lastUpMs.get(row.target_id) ?? 0, row.ts_ms));
    }
  }

  private seriesId(targetId: number, s: AggregatedSignal): number {
    const byEngine = childMap(childMap(childMap(this.seriesIds, targetId), s.signal), s.model);
    let cached = byEngine.get(s.engine);
    if (cached === undefined) {
      const row = (this.stmt.selectSeries!.get(targetId, s.model, s.engine, s.signal) ??
        this.stmt.insertSeries!.get(targetId, s.model, s.engine, s.signal, s.kind, s.unit)) as { id: number };
      cached = { id: row.id, unit: '' };
      byEngine.set(s.engine, cached);
      this.touchedInRound.push({ byEngine, engine: s.engine });
    }
    // The unit can change with a server upgrade (vLLM prefix counters went from blocks to tokens in 0.9.0).
    if (cached.unit !== s.unit) {
      this.stmt.updateSeriesUnit!.run(s.unit, cached.id, s.unit);
      cached.unit = s.unit;
      this.touchedInRound.push({ byEngine, engine: s.engine });
    }
    return cached.id;
  }

  /**
   * The target's id. Its row is written when it is new or its instance, labels or profile changed, and its
   * last_seen_ms moves once a minute: rewriting it on every scrape was one statement in fifty.
   */
  private targetId(r: ScrapeResult, minute: number, pending: Map<string, TargetRow>): number {
    const key = r.target.key;
    const known = pending.get(key) ?? this.targetRows.get(key);
    let labels = this.labelsJson.get(r.target.labels);
    if (labels === undefined) this.labelsJson.set(r.target.labels, (labels = JSON.stringify(r.target.labels)));
    const profile = r.profile ?? known?.profile ?? null;
    if (known && known.instance === r.target.instance && known.labels === labels && known.profile === profile) {
      if (known.seenMinute !== minute) {
        this.stmt.touchTarget!.run(r.startedMs, known.id);
        pending.set(key, { ...known, seenMinute: minute });
      }
      return known.id;
    }
    const row = this.stmt.upsertTarget!.get({
      url: key,
      instance: r.target.instance,
      labels,
      profile: r.profile ?? null,
      ts: r.startedMs,
    }) as { id: number; profile: string | null };
    pending.set(key, { id: row.id, instance: r.target.instance, labels, profile: row.profile, seenMinute: minute });
    return row.id;
  }

  /** Writes one round in one transaction: all of it or nothing. */
  writeRound(results: ScrapeResult[]): RoundSummary {
    const summary: RoundSummary = { scrapes: results.length, deltas: 0, gauges: 0, resets: 0, cachedDisagreements: 0 };
    const pendingState = new Map<number, Map<string, CounterState>>();
    const pendingUp = new Map<number, number>();
    const pendingTargetIds = new Map<string, number>();
    // Not a copy of every series id each round (20,000 for 1,000 targets): only those this round mints or updates.
    this.touchedInRound = [];
    const pendingTargetRows = new Map<string, TargetRow>();
    const pendingRollupMinute = new Map<number, number>();
    const write = this.db.transaction(() => {
      for (const r of results) {
        const minute = Math.floor(r.startedMs / MINUTE_MS) * MINUTE_MS;
        const targetId = this.targetId(r, minute, pendingTargetRows);
        pendingTargetIds.set(r.target.key, targetId);
        this.stmt.insertScrape!.run(
          targetId,
          r.startedMs,
          r.durationMs,
          r.up ? 1 : 0,
          r.samples,
          r.parseErrors,
          r.profile ?? null,
          r.error ?? null,
        );
        if (!r.up) continue;
        const prev = pendingState.get(targetId) ?? this.state.get(targetId) ?? new Map<string, CounterState>();
        const seenBefore = pendingUp.get(targetId) ?? this.lastUpMs.get(targetId);
        const { deltas, nextState } = computeCounterDeltas(r.signals, prev, r.startedMs, seenBefore);
        const aggregated = aggregateSignals(r.signals, deltas);
        const byModel = new Map<string, Map<string, number>>();
        for (const a of aggregated)
          if (a.engine === '' && a.delta !== undefined) {
            let m = byModel.get(a.model);
            if (!m) byModel.set(a.model, (m = new Map()));
            m.set(a.signal, a.delta);
          }
        for (const m of byModel.values()) if (cachedSplitDisagrees(m)) summary.cachedDisagreements++;
        for (const a of aggregated) {
          const id = this.seriesId(targetId, a);
          if (a.kind === 'gauge') {
            this.stmt.insertGauge!.run(id, r.startedMs, a.value);
            this.stmt.rollupGauge!.run(id, minute, a.value, a.value, a.value, a.value);
            summary.gauges++;
          } else if (a.delta !== undefined) {
            const resets = a.resets ?? 0;
            this.stmt.insertDelta!.run(id, r.startedMs, a.intervalMs, a.delta, a.value, resets);
            // A zero delta adds nothing to a minute row that already exists; it only has to make the row exist.
            if (
              a.delta !== 0 ||
              resets !== 0 ||
              (pendingRollupMinute.get(id) ?? this.rollupMinute.get(id)) !== minute
            ) {
              this.stmt.rollupCounter!.run(id, minute, a.delta, resets);
              pendingRollupMinute.set(id, minute);
            }
            summary.deltas++;
            if (a.engine === '') summary.resets += resets;
          }
        }
        const merged = new Map(prev);
        for (const [key, st] of nextState) {
          if (stateChanged(prev.get(key), st))
            this.stmt.upsertState!.run(targetId, key, st.value, st.createdSeconds ?? null, st.tsMs, 0);
          merged.set(key, st);
        }
        // A series gone from an up scrape keeps the time it was last seen; say so once, for a restart to read.
        for (const [key, st] of prev)
          if (!st.absent && !nextState.has(key)) {
            const gone = { ...st, absent: true };
            this.stmt.upsertState!.run(targetId, key, st.value, st.createdSeconds ?? null, st.tsMs, 1);
            merged.set(key, gone);
          }
        pendingState.set(targetId, merged);
        pendingUp.set(targetId, r.startedMs);
      }
    });
    try {
      write.immediate();
    } catch (err) {
      // Series ids minted and units set inside the rolled-back transaction do not exist: look them up again.
      for (const t of this.touchedInRound) t.byEngine.delete(t.engine);
      throw err;
    }
    for (const [id, m] of pendingState) this.state.set(id, m);
    for (const [id, ts] of pendingUp) this.lastUpMs.set(id, ts);
    for (const [url, id] of pendingTargetIds) this.targetIds.set(url, id);
    for (const [url, row] of pendingTargetRows) this.targetRows.set(url, row);
    for (const [id, minute] of pendingRollupMinute) this.rollupMinute.set(id, minute);
    for (const r of results)
      this.lastScrape.set(r.target.key, Math.max(this.lastScrape.get(r.target.key) ?? r.startedMs, r.startedMs));
    return summary;
  }

  lastScrapeMs(targetKey: string): number | undefined {
    return this.lastScrape.get(targetKey);
  }

  lastSourceScrapeMs(keyPrefix: string): number | undefined {
    let last: number | undefined;
    for (const [key, ts] of this.lastScrape)
      if (key.startsWith(keyPrefix) && (last === undefined || ts > last)) last = ts;
    return last;
  }
}
