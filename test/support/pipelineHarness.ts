import type { Database } from 'better-sqlite3';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildConfig, spanMatchingFor, type Config } from '../../src/config/config.ts';
import { TracePipeline } from '../../src/pipeline/tracePipeline.ts';
import { openDatabase } from '../../src/store/openDatabase.ts';
import { memoryLogger } from './silentLogger.ts';

export interface Harness {
  pipeline: TracePipeline;
  db: Database;
  config: Config;
  dir: string;
  grpcUrl: string;
  httpUrl: string;
  lines: Array<Record<string, unknown>>;
  close(): Promise<void>;
}

/** A TracePipeline on ephemeral loopback ports over a fresh SQLite store, as the daemon builds it. */
export async function startPipeline(
  raw: Record<string, unknown>,
  dir = mkdtempSync(join(tmpdir(), 'cachelens-pipe-')),
  db?: Database,
): Promise<Harness> {
  const { config } = buildConfig(
    {
      storage: { path: join(dir, 'store.db') },
      scrape: { targets: [] },
      ...raw,
      receivers: { grpc: { endpoint: '127.0.0.1:0' }, http: { endpoint: '127.0.0.1:0' }, ...(raw.receivers as object) },
    },
    {},
  );
  const database = db ?? openDatabase(config.storage.path);
  const { log, lines } = memoryLogger();
  const pipeline = new TracePipeline(config, spanMatchingFor(config.scrape), database, log);
  await pipeline.start();
  return {
    pipeline,
    db: database,
    config,
    dir,
    grpcUrl: `http://127.0.0.1:${pipeline.grpc!.port}`,
    httpUrl: `http://127.0.0.1:${pipeline.http!.port}/v1/traces`,
    lines,
    async close() {
      await pipeline.shutdown();
      if (!db) database.close();
    },
  };
}

export async function waitFor(cond: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
