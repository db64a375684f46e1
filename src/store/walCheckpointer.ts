import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import type { Database } from 'better-sqlite3';
import type { Logger } from '../telemetry/logger.ts';

// SQLite checkpoints the WAL inside the commit that fills it: copying ~4 MB into the database file and
// syncing it held the event loop for up to 140 ms while 1,000 targets were scraped. Here a worker thread
// with its own connection checkpoints instead (PASSIVE: it never blocks the writer), and the daemon's
// connection never does. If the worker fails, the connection checkpoints for itself again.

const WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.sqlite);
const db = new Database(workerData.path, { timeout: 1000 });
const tick = () => {
  try {
    const [r] = db.pragma('wal_checkpoint(PASSIVE)');
    parentPort.postMessage({ checkpointed: r.checkpointed });
  } catch (err) {
    parentPort.postMessage({ error: err.message });
  }
};
const timer = setInterval(tick, workerData.intervalMs);
parentPort.on('message', (m) => {
  if (m === 'stop') {
    clearInterval(timer);
    tick();
    db.close();
    process.exit(0);
  }
});
`;

export class WalCheckpointer {
  private worker?: Worker;
  /** Pages the last checkpoint found copied back into the database file. */
  checkpointed = 0;

  constructor(
    private readonly db: Database,
    private readonly path: string,
    private readonly log: Logger,
    private readonly intervalMs = 1000,
  ) {}

  start(): void {
    const sqlite = createRequire(import.meta.url).resolve('better-sqlite3');
    const worker = new Worker(WORKER, {
      eval: true,
      workerData: { sqlite, path: this.path, intervalMs: this.intervalMs },
    });
    this.db.pragma('wal_autocheckpoint = 0');
    worker.on('message', (m: { checkpointed?: number; error?: string }) => {
      if (m.error !== undefined) {
        // BUSY while a reader holds an old snapshot is normal; the next tick tries again.
        if (!/busy|locked/i.test(m.error)) this.log.warn({ err: m.error }, 'WAL checkpoint failed; retrying');
        return;
      }
      this.checkpointed = m.checkpointed ?? 0;
    });
    worker.on('error', (err) => this.fallBack(err.message));
    worker.on('exit', (code) => {
      if (this.worker === worker && code !== 0) this.fallBack(`exited with ${code}`);
    });
    worker.unref();
    this.worker = worker;
  }

  private fallBack(why: string): void {
    this.worker = undefined;
    if (!this.db.open) return;
    this.db.pragma('wal_autocheckpoint = 1000');
    this.log.error({ err: why }, 'WAL checkpoint worker failed; the store checkpoints in its own commits again');
  }

  /** A last checkpoint, then the worker stops; before the daemon's connection closes. */
  async stop(): Promise<void> {
    const worker = this.worker;
    this.worker = undefined;
    if (!worker) return;
    const exited = new Promise((r) => worker.once('exit', r));
    worker.ref(); // held until its last checkpoint is done
    worker.postMessage('stop');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 5000).unref())]);
    await worker.terminate();
  }
}
