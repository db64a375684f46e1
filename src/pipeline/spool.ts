import BetterSqlite3, { type Database, type Statement } from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { migrate } from '../store/migrate.ts';

export const SPOOL_MIGRATIONS = fileURLToPath(new URL('../../migrations/spool', import.meta.url));

/** Refusal the receivers turn into 503 + Retry-After / UNAVAILABLE + RetryInfo, which OTLP clients retry. */
export class SpoolFullError extends Error {
  constructor(
    message: string,
    readonly retryAfterMs: number,
  ) {
    super(message);
  }
}

export interface SpoolRow {
  id: number;
  received_ms: number;
  not_before_ms: number;
  attempts: number;
  spans: number;
  bytes: number;
  peer: string | null;
}

interface PendingAppend {
  body: Uint8Array;
  spans: number;
  peer: string | null;
  notBeforeMs: number;
  resolve: (id: number) => void;
  reject: (err: Error) => void;
}

export interface SpoolOptions {
  maxBytes: number;
  /** fsync every commit (synchronous=FULL): an acknowledged span survives an OS crash, not only a process crash. */
  fsync: boolean;
}

/**
 * The durable queue between receivers and exporter, in SQLite. Appends arriving in the same
 * event-loop turn share one transaction (group commit), so the fsync cost is paid once per turn.
 */
export class Spool {
  readonly db: Database;
  private usedBytes = 0;
  private pendingBytes = 0;
  private pending: PendingAppend[] = [];
  private flushScheduled = false;
  private readonly insert: Statement;
  private readonly insertBody: Statement;
  private readonly deleteBody: Statement;
  private readonly selectReady: Statement;
  private readonly selectBody: Statement;
  private readonly deleteOne: Statement;
  private readonly postponeOne: Statement;
  private readonly syncNormal: Statement;
  private readonly syncFull: Statement;

  constructor(
    readonly path: string,
    private readonly opts: SpoolOptions,
  ) {
    if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
    try {
      this.db = new BetterSqlite3(path, { timeout: 1000 });
    } catch (err) {
      throw new Error(`cannot open spool ${path}: ${(err as Error).message}`);
    }
    this.db.pragma('journal_mode = WAL');
    this.db.pragma(`synchronous = ${opts.fsync ? 'FULL' : 'NORMAL'}`);
    migrate(this.db, SPOOL_MIGRATIONS);
    this.usedBytes = (this.db.prepare('SELECT coalesce(sum(bytes), 0) AS b FROM spool').get() as { b: number }).b;
    this.insert = this.db.prepare(
      'INSERT INTO spool (received_ms, not_before_ms, spans, bytes, peer) VALUES (?, ?, ?, ?, ?)',
    );
    this.insertBody = this.db.prepare('INSERT INTO spool_body (id, body) VALUES (?, ?)');
    this.selectReady = this.db.prepare(
      'SELECT id, received_ms, not_before_ms, attempts, spans, bytes, peer FROM spool WHERE not_before_ms <= ? ORDER ' +
        'BY id LIMIT ?',
    );
    this.selectBody = this.db.prepare('SELECT body FROM spool_body WHERE id = ?').pluck();
    this.deleteOne = this.db.prepare('DELETE FROM spool WHERE id = ? RETURNING bytes').pluck();
    this.deleteBody = this.db.prepare('DELETE FROM spool_body WHERE id = ?');
    this.postponeOne = this.db.prepare('UPDATE spool SET not_before_ms = ?, attempts = attempts + ? WHERE id = ?');
    this.syncNormal = this.db.prepare('PRAGMA synchronous = NORMAL');
    this.syncFull = this.db.prepare('PRAGMA synchronous = FULL');
  }

  get bytes(): number {
    return this.usedBytes + this.pendingBytes;
  }

  get maxBytes(): number {
    return this.opts.maxBytes;
  }

  /** Resolves with the row id once the row is committed; throws SpoolFullError before queuing when over the bound. */
  append(body: Uint8Array, spans: number, peer: string | null, notBeforeMs: number): Promise<number> {
    if (this.bytes + body.length > this.opts.maxBytes) {
      return Promise.reject(
        new SpoolFullError(
          `spool full (${this.bytes} of ${this.opts.maxBytes} bytes; downstream slower than intake)`,
          5000,
        ),
      );
    }
    this.pendingBytes += body.length;
    const p = new Promise<number>((resolve, reject) =>
      this.pending.push({ body, spans, peer, notBeforeMs, resolve, reject }),
    );
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
    return p;
  }

  /** Commits every queued append in one transaction. */
  flush(): void {
    this.flushScheduled = false;
    const batch = this.pending;
    if (!batch.length) return;
    this.pending = [];
    const now = Date.now();
    const bytes = batch.reduce((n, a) => n + a.body.length, 0);
    let ids: number[];
    try {
      ids = this.db
        .transaction(() =>
          batch.map((a) => {
            const id = Number(this.insert.run(now, a.notBeforeMs, a.spans, a.body.length, a.peer).lastInsertRowid);
            this.insertBody.run(id, a.body);
            return id;
          }),
        )
        .immediate();
    } catch (err) {
      this.pendingBytes -= bytes;
      const e = err as Error & { code?: string };
      // A full disk or a locked file is a retryable refusal: nothing was acknowledged, the client resends.
      const refusal = new SpoolFullError(`spool write failed (${e.code ?? 'error'}): ${e.message}`, 5000);
      for (const a of batch) a.reject(refusal);
      return;
    }
    this.pendingBytes -= bytes;
    this.usedBytes += bytes;
    batch.forEach((a, i) => a.resolve(ids[i]!));
  }

  /**
   * Replaces a row by its parts in one durable transaction (the export stage bisects a request that
   * downstream refused). The parts keep the row's receipt time and peer, so they match the same windows.
   */
  split(row: SpoolRow, parts: ReadonlyArray<{ body: Uint8Array; spans: number }>): number[] {
    const ids = this.db
      .transaction(() => {
        const out = parts.map((p) => {
          const id = Number(this.insert.run(row.received_ms, 0, p.spans, p.body.length, row.peer).lastInsertRowid);
          this.insertBody.run(id, p.body);
          return id;
        });
        const b = this.deleteOne.get(row.id) as number | undefined;
        this.deleteBody.run(row.id);
        return { out, b };
      })
      .immediate();
    for (const p of parts) this.usedBytes += p.body.length;
    if (ids.b !== undefined) this.usedBytes -= ids.b;
    return ids.out;
  }

  ready(nowMs: number, limit: number): SpoolRow[] {
    return this.selectReady.all(nowMs, limit) as SpoolRow[];
  }

  body(id: number): Uint8Array | undefined {
    return this.selectBody.get(id) as Buffer | undefined;
  }

  /** Deletes rows downstream acknowledged (or rejected for good); returns how many existed. */
  delete(ids: readonly number[]): number {
    let n = 0;
    this.withoutFsync(() => {
      for (const id of ids) {
        const b = this.deleteOne.get(id) as number | undefined;
        this.deleteBody.run(id);
        if (b !== undefined) {
          this.usedBytes -= b;
          n++;
        }
      }
    });
    return n;
  }

  postpone(ids: readonly number[], notBeforeMs: number, countAttempt: boolean): void {
    this.postponeEach(
      ids.map((id) => [id, notBeforeMs]),
      countAttempt,
    );
  }

  /** Each row to its own time, in one transaction. */
  postponeEach(rows: ReadonlyArray<readonly [id: number, notBeforeMs: number]>, countAttempt: boolean): void {
    if (!rows.length) return;
    this.withoutFsync(() => {
      for (const [id, notBeforeMs] of rows) this.postponeOne.run(notBeforeMs, countAttempt ? 1 : 0, id);
    });
  }

  /**
   * A commit that need not survive an OS crash: losing a delete re-sends rows (duplicates are
   * allowed), losing a postpone retries them early. An fsync cost about 0.25 ms per call here, for
   * a write nobody waits on. The next append's fsync covers these WAL frames too.
   */
  private withoutFsync(fn: () => void): void {
    if (!this.opts.fsync) {
      this.db.transaction(fn)();
      return;
    }
    this.syncNormal.run();
    try {
      this.db.transaction(fn)();
    } finally {
      this.syncFull.run();
    }
  }

  counts(): { rows: number; spans: number } {
    return this.db.prepare('SELECT count(*) AS rows, coalesce(sum(spans), 0) AS spans FROM spool').get() as {
      rows: number;
      spans: number;
    };
  }

  close(): void {
    this.flush();
    this.db.close();
  }
}
