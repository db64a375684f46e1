import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import BetterSqlite3 from 'better-sqlite3';
import { listMigrations, migrate } from '../src/store/migrate.ts';
import { openDatabase } from '../src/store/openDatabase.ts';

describe('migrations', () => {
  it('apply in order on an empty DB, and a second run is a no-op', () => {
    const path = join(mkdtempSync(join(tmpdir(), 'cachelens-mig-')), 'a.db');
    const db = new BetterSqlite3(path);
    const first = migrate(db);
    assert.equal(first.length, listMigrations().length);
    assert.equal(db.pragma('user_version', { simple: true }), listMigrations().length);
    const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").pluck().all();
    for (const t of ['counter_deltas', 'counter_state', 'gauge_samples', 'rollup_minute', 'scrapes', 'series', 'targets']) assert.ok(tables.includes(t), t);
    const schemaBefore = db.prepare('SELECT sql FROM sqlite_master ORDER BY name').pluck().all();
    assert.deepEqual(migrate(db), []);
    assert.deepEqual(db.prepare('SELECT sql FROM sqlite_master ORDER BY name').pluck().all(), schemaBefore);
    db.close();
  });
  it('the store opens in WAL mode', () => {
    const path = join(mkdtempSync(join(tmpdir(), 'cachelens-mig-')), 'b.db');
    const db = openDatabase(path);
    assert.equal(db.pragma('journal_mode', { simple: true }), 'wal');
    db.close();
  });
  it('refuses a DB from a newer cachelens', () => {
    const db = new BetterSqlite3(':memory:');
    db.pragma('user_version = 999');
    assert.throws(() => migrate(db), /newer than this cachelens/);
  });
});
