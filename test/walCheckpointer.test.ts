// The WAL is checkpointed by a worker thread, not inside the daemon's commits (a checkpoint there held the
// event loop for up to 140 ms); if the worker cannot run, the store checkpoints for itself again.
import assert from 'node:assert/strict';
import { mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { openDatabase } from '../src/store/openDatabase.ts';
import { WalCheckpointer } from '../src/store/walCheckpointer.ts';
import { memoryLogger } from './support/silentLogger.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('WAL checkpoints', () => {
  it('run in a worker: the connection never checkpoints, and the WAL is copied back all the same', async () => {
    const path = join(mkdtempSync(join(tmpdir(), 'cachelens-wal-')), 'store.db');
    const db = openDatabase(path);
    const cp = new WalCheckpointer(db, path, memoryLogger().log, 50);
    cp.start();
    assert.equal(db.pragma('wal_autocheckpoint', { simple: true }), 0);
    db.exec('CREATE TABLE t (x BLOB)');
    const insert = db.prepare('INSERT INTO t VALUES (randomblob(4000))');
    // 3,000 pages in 30 commits: past the 1,000 pages at which SQLite would checkpoint inside a commit.
    for (let c = 0; c < 30; c++)
      db.transaction(() => {
        for (let i = 0; i < 100; i++) insert.run();
      })();
    for (let i = 0; i < 100 && cp.checkpointed < 1000; i++) await sleep(50);
    assert.ok(cp.checkpointed >= 1000, `checkpointed ${cp.checkpointed} pages`);
    await cp.stop();
    assert.ok(statSync(path).size > 10_000_000, 'the rows reached the database file');
    assert.equal(db.prepare('SELECT count(*) FROM t').pluck().get(), 3000);
    db.close();
  });

  it('falls back to checkpoints in the commits when the worker cannot open the store', async () => {
    const path = join(mkdtempSync(join(tmpdir(), 'cachelens-wal-')), 'store.db');
    const db = openDatabase(path);
    const { log, lines } = memoryLogger();
    const cp = new WalCheckpointer(db, join(path, 'not-a-dir', 'x.db'), log, 50);
    cp.start();
    for (let i = 0; i < 100 && db.pragma('wal_autocheckpoint', { simple: true }) === 0; i++) await sleep(20);
    assert.equal(db.pragma('wal_autocheckpoint', { simple: true }), 1000);
    assert.ok(lines.some((l) => /checkpoint worker failed/.test(String(l.msg))));
    await cp.stop();
    db.close();
  });
});
