import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import BetterSqlite3 from 'better-sqlite3';
import { listMigrations, migrate } from '../src/store/migrate.ts';
import { openDatabase } from '../src/store/openDatabase.ts';
import { SPOOL_MIGRATIONS, Spool } from '../src/pipeline/spool.ts';

describe('migrations', () => {
  it('apply in order on an empty DB, and a second run is a no-op', () => {
    const path = join(mkdtempSync(join(tmpdir(), 'cachelens-mig-')), 'a.db');
    const db = new BetterSqlite3(path);
    const first = migrate(db);
    assert.equal(first.length, listMigrations().length);
    assert.equal(db.pragma('user_version', { simple: true }), listMigrations().length);
    const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").pluck().all();
    for (const t of [
      'counter_deltas',
      'counter_state',
      'gauge_samples',
      'rollup_minute',
      'scrapes',
      'series',
      'targets',
    ])
      assert.ok(tables.includes(t), t);
    const schemaBefore = db.prepare('SELECT sql FROM sqlite_master ORDER BY name').pluck().all();
    assert.deepEqual(migrate(db), []);
    assert.deepEqual(db.prepare('SELECT sql FROM sqlite_master ORDER BY name').pluck().all(), schemaBefore);
    db.close();
  });
  it('004 re-keys the request ledger by time and keeps every row and the tenants view', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cachelens-mig-'));
    const upTo3 = join(dir, 'three');
    mkdirSync(upTo3);
    for (const m of listMigrations().slice(0, 3))
      writeFileSync(join(upTo3, `${String(m.version).padStart(3, '0')}_${m.name}.sql`), m.sql);
    const db = new BetterSqlite3(join(dir, 'c.db'));
    migrate(db, upTo3);
    const insert = db.prepare(
      'INSERT INTO request_ledger (trace_id, span_id, start_ms, end_ms, span_name, match, prompt_tokens, ' +
        'window_complete, tenant_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
    );
    insert.run('t2', 's2', 2000.5, 2100, 'llm_request', 'fleet', 20, 0, null);
    insert.run('t1', 's1', 1000.25, 1100, 'llm_request', 'resource', 10, 1, '{"tenant.id":"acme"}');
    db.prepare(
      "INSERT INTO trace_tenants VALUES ('t1', 'tenant.id', 'gateway', 1), ('t2', 'tenant.id', 'globex', 1)",
    ).run();
    const before = db.prepare('SELECT * FROM request_ledger ORDER BY start_ms').all();
    assert.equal(migrate(db).length, listMigrations().length - 3);
    // Later migrations add columns (005: fleet state at the window's start, NULL on old rows).
    assert.deepEqual(
      db
        .prepare('SELECT * FROM request_ledger ORDER BY start_ms')
        .all()
        .map((r) => {
          const { kv_usage_start, waiting_start, ...rest } = r as Record<string, unknown>;
          assert.deepEqual([kv_usage_start, waiting_start], [null, null]);
          return rest;
        }),
      before.map((r) => ({ ...(r as object) })),
    );
    assert.deepEqual(db.prepare('SELECT trace_id, value FROM request_ledger_tenants ORDER BY trace_id').raw().all(), [
      ['t1', 'acme'],
      ['t2', 'globex'],
    ]);
    const plan = db.prepare('EXPLAIN QUERY PLAN SELECT * FROM request_ledger WHERE start_ms >= 1500').all() as Array<{
      detail: string;
    }>;
    assert.match(plan.map((p) => p.detail).join(' '), /SEARCH request_ledger USING PRIMARY KEY \(start_ms>\?\)/);
    // a replayed span (same start and ids) replaces its row
    db.prepare(
      'INSERT OR REPLACE INTO request_ledger (start_ms, trace_id, span_id, end_ms, span_name, match, ' +
        "window_complete) VALUES (1000.25, 't1', 's1', 1100, 'llm_request', 'resource', 1)",
    ).run();
    assert.equal(db.prepare('SELECT count(*) FROM request_ledger').pluck().get(), 2);
    db.close();
  });
  it('spool 002 moves bodies to their own table and keeps every queued row', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cachelens-mig-'));
    const v1 = join(dir, 'v1');
    mkdirSync(v1);
    writeFileSync(join(v1, '001_spool.sql'), listMigrations(SPOOL_MIGRATIONS)[0]!.sql);
    const path = join(dir, 'spool.db');
    const db = new BetterSqlite3(path);
    migrate(db, v1);
    db.prepare(
      'INSERT INTO spool (received_ms, not_before_ms, attempts, spans, bytes, peer, body) VALUES (1, 2, 3, 4, 5, ?, ?)',
    ).run('10.0.0.1', Buffer.from('hello'));
    db.close();
    const spool = new Spool(path, { maxBytes: 1 << 20, fsync: true });
    assert.deepEqual(spool.ready(10, 10), [
      { id: 1, received_ms: 1, not_before_ms: 2, attempts: 3, spans: 4, bytes: 5, peer: '10.0.0.1' },
    ]);
    assert.equal(Buffer.from(spool.body(1)!).toString(), 'hello');
    assert.equal(spool.bytes, 5);
    const id = await spool.append(Buffer.from('next'), 1, null, 0);
    assert.equal(Buffer.from(spool.body(id)!).toString(), 'next');
    assert.equal(spool.delete([1, id]), 2);
    assert.equal(spool.db.prepare('SELECT count(*) FROM spool_body').pluck().get(), 0, 'bodies go with their rows');
    assert.equal(spool.db.pragma('synchronous', { simple: true }), 2, 'FULL again after a delete without fsync');
    spool.close();
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
