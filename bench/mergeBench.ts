// One report over many stores: 10 stores (sidecars or pools, each holding its own 10 instances) of
// 3 days each, generated as the report benchmark generates its store and compacted; then the report
// over all of them, in-process and through the CLI. Goal (issue 17): ≤ 1 s.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeReport, renderReport } from '../src/cli/report.ts';
import { Compactor } from '../src/store/compaction.ts';
import { openDatabase } from '../src/store/openDatabase.ts';
import { DAY_MS, HOUR_MS } from '../src/store/rollups.ts';
import { createLogger } from '../src/telemetry/logger.ts';
import { END_MS, generate, TENANT_KEYS } from './reportBench.ts';

export async function runMergeBench(stores: number, days: number, instances: number): Promise<Record<string, unknown>> {
  const dir = join(process.env.BENCH_REPORT_DIR ?? join(tmpdir(), 'cachelens-bench-report'), 'merge');
  mkdirSync(dir, { recursive: true });
  const paths: string[] = [];
  const t0 = performance.now();
  for (let s = 0; s < stores; s++) {
    const path = join(dir, `store-${s}-${days}d-${instances}i.db`);
    paths.push(path);
    if (existsSync(`${path}.ready`)) continue;
    for (const f of [path, `${path}-wal`, `${path}-shm`]) rmSync(f, { force: true });
    generate(path, {
      days,
      instances,
      modelsPerInstance: 2,
      scrapeIntervalS: 5,
      requestsPerS: 2,
      tenants: 20,
      firstInstance: s * instances,
    });
    const db = openDatabase(path);
    await new Compactor(db, { tenantKeys: TENANT_KEYS, graceMs: 10 * 60_000, log: createLogger('warn') }).runOnce(
      END_MS + HOUR_MS,
    );
    db.pragma('wal_checkpoint(TRUNCATE)');
    db.close();
    writeFileSync(`${path}.ready`, '');
  }
  const generateSeconds = Number(((performance.now() - t0) / 1000).toFixed(1));
  const since = new Date(END_MS - days * DAY_MS).toISOString();
  const until = new Date(END_MS).toISOString();
  const results: Record<string, unknown> = {};
  for (const by of ['day', 'model', 'tenant', 'instance', 'hour']) {
    const times: number[] = [];
    let rows = 0;
    for (let i = 0; i < 5; i++) {
      const t = performance.now();
      const text = renderReport(
        makeReport({ db: paths, since, until, by, tenantKeys: TENANT_KEYS, nowMs: END_MS }),
        'table',
      );
      times.push(performance.now() - t);
      rows = text.split('\n').length;
    }
    times.sort((a, b) => a - b);
    results[`by ${by} (in-process)`] = {
      medianMs: Number(times[2]!.toFixed(1)),
      maxMs: Number(times[4]!.toFixed(1)),
      rows,
    };
  }
  const bin = new URL('../bin/cachelens.js', import.meta.url).pathname;
  for (const by of ['model', 'tenant']) {
    const times: number[] = [];
    for (let i = 0; i < 3; i++) {
      const t = performance.now();
      execFileSync(
        process.execPath,
        [
          bin,
          'report',
          '--db',
          join(dir, `store-*-${days}d-${instances}i.db`),
          '--since',
          since,
          '--until',
          until,
          '--by',
          by,
        ],
        { stdio: ['ignore', 'ignore', 'inherit'] },
      );
      times.push(performance.now() - t);
    }
    times.sort((a, b) => a - b);
    results[`by ${by} (CLI with a glob, wall)`] = { medianMs: Number(times[1]!.toFixed(0)) };
  }
  return { stores, days, instancesPerStore: instances, generateSeconds, results };
}
