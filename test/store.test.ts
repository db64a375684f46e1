import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import BetterSqlite3 from 'better-sqlite3';
import { normalizeBody, type ScrapeResult } from '../src/scrape/scrapeTarget.ts';
import { makeTarget } from '../src/scrape/target.ts';
import { openDatabase } from '../src/store/openDatabase.ts';
import { Retention } from '../src/store/retention.ts';
import { RoundWriter } from '../src/store/roundWriter.ts';
import { ScrapeStore } from '../src/store/scrapeStore.ts';
import { memoryLogger } from './support/silentLogger.ts';

const target = makeTarget('http://10.1.2.3:8000/metrics', {}, 'auto', {}, 'test');
const result = (prompt: number, tsMs: number): ScrapeResult => ({
  target,
  startedMs: tsMs,
  durationMs: 3,
  up: true,
  ...normalizeBody(
    target,
    `vllm:prompt_tokens_total{engine="0",model_name="m"} ` +
      `${prompt}\nvllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.5\n`,
  ),
});
const tmpDb = () => join(mkdtempSync(join(tmpdir(), 'cachelens-store-')), 'store.db');
const promptDeltas = (path: string) =>
  new BetterSqlite3(path, { readonly: true })
    .prepare(
      'SELECT d.ts_ms, d.delta, d.interval_ms FROM counter_deltas d JOIN series s ON s.id = d.series_id WHERE ' +
        "s.signal = 'prompt_tokens' ORDER BY d.ts_ms",
    )
    .all() as Array<{ ts_ms: number; delta: number; interval_ms: number }>;

describe('the scrape store', () => {
  it('a locked database is logged and retried: no crash, no partial round, deltas stay exact', () => {
    const path = tmpDb();
    const db = openDatabase(path, { busyTimeoutMs: 20 });
    const { log, lines } = memoryLogger();
    const writer = new RoundWriter(new ScrapeStore(db), log, path, 100);
    writer.write([result(100, 1000)]);
    const other = new BetterSqlite3(path);
    other.exec('BEGIN IMMEDIATE'); // another writer holds the lock
    assert.equal(writer.write([result(130, 2000)]), undefined);
    assert.equal(writer.write([result(150, 3000)]), undefined);
    assert.equal(writer.pendingResults, 2);
    assert.ok(lines.some((l) => String(l.msg).includes('database is locked by another writer')));
    assert.equal(
      lines.filter((l) => String(l.msg).startsWith('cannot write')).length,
      1,
      'one log line per outage, not per retry',
    );
    assert.equal(
      other.prepare('SELECT count(*) FROM scrapes').pluck().get() as number,
      1,
      'nothing of the failed rounds was written',
    );
    other.exec('ROLLBACK');
    other.close();
    writer.write([result(160, 4000)]);
    assert.equal(writer.pendingResults, 0);
    assert.deepEqual(
      promptDeltas(path).map((r) => [r.ts_ms, r.delta]),
      [
        [2000, 30],
        [3000, 20],
        [4000, 10],
      ],
    );
    db.close();
  });

  it('a full disk (SQLITE_FULL) is logged and retried, and writing resumes by itself when space returns', () => {
    const path = tmpDb();
    const db = openDatabase(path);
    const { log, lines } = memoryLogger();
    const writer = new RoundWriter(new ScrapeStore(db), log, path, 1000);
    writer.write([result(100, 1000)]);
    const pages = db.pragma('page_count', { simple: true }) as number;
    db.pragma(`max_page_count = ${pages}`); // the file may not grow: every new page fails with SQLITE_FULL
    let ts = 2000;
    for (let i = 0; i < 5000 && writer.failedWrites === 0; i++, ts += 1000) writer.write([result(100 + ts / 100, ts)]);
    assert.ok(writer.failedWrites > 0, 'the store never filled up');
    assert.ok(
      lines.some((l) => String(l.msg).includes('disk full')),
      JSON.stringify(lines.at(-1)),
    );
    db.pragma('max_page_count = 1073741823');
    writer.write([result(100 + ts / 100, ts)]);
    assert.equal(writer.pendingResults, 0);
    assert.ok(lines.some((l) => String(l.msg).includes('writable again')));
    const rows = promptDeltas(path);
    assert.equal(
      rows.reduce((a, r) => a + r.delta, 0),
      ts / 100,
      'deltas add up to the counter growth across the outage',
    );
    assert.equal(db.pragma('integrity_check', { simple: true }), 'ok');
    db.close();
  });

  it('past max_pending_results the oldest results are dropped and counters still add up', () => {
    const path = tmpDb();
    const db = openDatabase(path, { busyTimeoutMs: 20 });
    const { log } = memoryLogger();
    const writer = new RoundWriter(new ScrapeStore(db), log, path, 1);
    writer.write([result(100, 1000)]);
    const other = new BetterSqlite3(path);
    other.exec('BEGIN IMMEDIATE');
    writer.write([result(130, 2000)]);
    writer.write([result(150, 3000)]); // drops the 2000 result
    other.exec('ROLLBACK');
    other.close();
    writer.write([]);
    assert.equal(writer.droppedResults, 1);
    assert.deepEqual(
      promptDeltas(path).map((r) => [r.ts_ms, r.delta, r.interval_ms]),
      [[3000, 50, 2000]],
    );
    db.close();
  });

  it(
    'counter state survives a restart of cachelens: the ' + 'first scrape after it gives a delta, not a new baseline',
    () => {
      const path = tmpDb();
      let db = openDatabase(path);
      new ScrapeStore(db).writeRound([result(100, 1000)]);
      db.close();
      db = openDatabase(path);
      new ScrapeStore(db).writeRound([result(175, 61_000)]);
      db.close();
      assert.deepEqual(
        promptDeltas(path).map((r) => [r.delta, r.interval_ms]),
        [[75, 60_000]],
      );
    },
  );

  it('retention deletes raw rows past raw_retention and rollups past rollup_retention', async () => {
    const path = tmpDb();
    const db = openDatabase(path);
    const store = new ScrapeStore(db);
    const hour = 3600_000;
    for (let i = 0; i <= 10; i++) store.writeRound([result(100 + i, i * hour)]);
    const { log } = memoryLogger();
    const res = await new Retention(db, 3 * hour, 6 * hour, log).runOnce(10 * hour);
    assert.ok(res);
    const count = (sql: string) => db.prepare(sql).pluck().get() as number;
    assert.equal(count('SELECT min(ts_ms) FROM counter_deltas'), 7 * hour);
    assert.equal(count('SELECT min(ts_ms) FROM gauge_samples'), 7 * hour);
    assert.equal(count('SELECT min(ts_ms) FROM scrapes'), 7 * hour);
    assert.equal(count('SELECT min(minute_ms) FROM rollup_minute'), 4 * hour);
    db.close();
  });
});

describe('counter state written only when it changes (migration 008)', () => {
  const body = (prompt: number, gen: number, preempt?: number) =>
    `vllm:prompt_tokens_total{engine="0",model_name="m"} ${prompt}\n` +
    `vllm:generation_tokens_total{engine="0",model_name="m"} ${gen}\n` +
    (preempt === undefined ? '' : `vllm:num_preemptions_total{engine="0",model_name="m"} ${preempt}\n`) +
    'vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.5\n';
  const at = (tsMs: number, text: string): ScrapeResult => ({
    target,
    startedMs: tsMs,
    durationMs: 3,
    up: true,
    ...normalizeBody(target, text),
  });
  const deltas = (db: BetterSqlite3.Database, signal: string) =>
    db
      .prepare(
        'SELECT d.ts_ms, d.delta, d.interval_ms FROM counter_deltas d JOIN series s ON s.id = d.series_id ' +
          "WHERE s.signal = ? AND s.engine = '' ORDER BY d.ts_ms",
      )
      .raw()
      .all(signal);

  it('after a restart, unchanged series count from the last scrape and gone ones from when last seen', () => {
    const path = tmpDb();
    let db = openDatabase(path);
    let store = new ScrapeStore(db);
    store.writeRound([at(1000, body(100, 50, 1))]);
    store.writeRound([at(2000, body(100, 50, 1))]);
    store.writeRound([at(3000, body(100, 50))]); // preemptions gone from an up scrape
    store.writeRound([at(4000, body(100, 50))]);
    const stateTs = db
      .prepare('SELECT series_key, ts_ms, absent FROM counter_state ORDER BY series_key')
      .raw()
      .all() as Array<[string, number, number]>;
    assert.deepEqual(
      stateTs.map(([k, ts, absent]) => [k.split('{')[0], ts, absent]),
      [
        ['vllm:generation_tokens_total', 1000, 0],
        ['vllm:num_preemptions_total', 2000, 1],
        ['vllm:prompt_tokens_total', 1000, 0],
      ],
      'unchanged rows are not rewritten; the gone series is marked once, with the time it was last seen',
    );
    db.close();
    db = openDatabase(path);
    store = new ScrapeStore(db);
    store.writeRound([at(10_000, body(130, 60, 2))]);
    store.writeRound([at(70_000, body(130, 60, 2))]);
    // Intervals run from the last scrape that saw each series, as if every row had been rewritten each time.
    assert.deepEqual(deltas(db, 'prompt_tokens').slice(-2), [
      [10_000, 30, 6000],
      [70_000, 0, 60_000],
    ]);
    assert.deepEqual(deltas(db, 'generation_tokens').slice(-2), [
      [10_000, 10, 6000],
      [70_000, 0, 60_000],
    ]);
    assert.deepEqual(deltas(db, 'preemptions'), [
      [2000, 0, 1000],
      [10_000, 1, 8000],
      [70_000, 0, 60_000],
    ]);
    // Zero deltas skip the rollup upsert but the minute row still exists, with the same sums.
    const rollups = db
      .prepare(
        'SELECT r.minute_ms, r.delta_sum FROM rollup_minute r JOIN series s ON s.id = r.series_id ' +
          "WHERE s.signal = 'prompt_tokens' AND s.engine = '' ORDER BY r.minute_ms",
      )
      .raw()
      .all();
    assert.deepEqual(rollups, [
      [0, 30],
      [60_000, 0],
    ]);
    assert.equal(db.prepare('SELECT last_seen_ms FROM targets').pluck().get(), 70_000);
    db.close();
  });
});
