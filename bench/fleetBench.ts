import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import BetterSqlite3 from 'better-sqlite3';

const CLK_TCK = 100;
const cpuSeconds = (pid: number): number => {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK; // utime + stime
};
const rssMb = (pid: number): number =>
  Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One daemon scraping `targets` targets every 5 s from 127.0.0.1; CPU and RSS of the daemon process only. */
export async function runFleetBench(
  targets = 1000,
  warmupS = 20,
  measureS = 60,
): Promise<Record<string, number | string>> {
  const dir = mkdtempSync(join(tmpdir(), 'cachelens-bench-'));
  const server = spawn(
    process.execPath,
    ['--import', 'tsx', new URL('./fleetServer.ts', import.meta.url).pathname, String(targets)],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const first = await new Promise<string>((resolve) =>
    createInterface({ input: server.stdout! }).once('line', resolve),
  );
  const { port, bodyBytes } = JSON.parse(first) as { port: number; bodyBytes: number };
  const config = join(dir, 'cachelens.yaml');
  const urls = Array.from({ length: targets }, (_, i) => `    - url: http://127.0.0.1:${port}/t/${i}/metrics`).join(
    '\n',
  );
  writeFileSync(
    config,
    `storage:\n  path: ${join(dir, 'bench.db')}\nscrape:\n  interval: 5s\n  timeout: 4s\n  targets:\n${urls}\nlog:\n ` +
      ` level: warn\n`,
  );
  let daemon: ChildProcess | undefined;
  try {
    daemon = spawn(
      process.execPath,
      [new URL('../bin/cachelens.js', import.meta.url).pathname, 'run', '--config', config],
      { stdio: ['ignore', 'inherit', 'inherit'] },
    );
    const pid = daemon.pid!;
    await sleep(warmupS * 1000);
    const cpu0 = cpuSeconds(pid);
    const t0 = performance.now();
    let rssMax = 0;
    for (let s = 0; s < measureS; s++) {
      await sleep(1000);
      rssMax = Math.max(rssMax, rssMb(pid));
    }
    const cpuPct = ((cpuSeconds(pid) - cpu0) / ((performance.now() - t0) / 1000)) * 100;
    daemon.kill('SIGTERM');
    await new Promise((r) => daemon!.once('exit', r));
    const db = new BetterSqlite3(join(dir, 'bench.db'), { readonly: true });
    const scrapes = db.prepare('SELECT count(*) n, sum(up) up, avg(duration_ms) dur FROM scrapes').get() as {
      n: number;
      up: number;
      dur: number;
    };
    const deltas = db.prepare('SELECT count(*) FROM counter_deltas').pluck().get() as number;
    db.close();
    return {
      targets,
      interval: '5s',
      body_bytes: bodyBytes,
      measured_s: measureS,
      cpu_percent_of_one_core: Number(cpuPct.toFixed(1)),
      rss_max_mb: Number(rssMax.toFixed(0)),
      scrapes_total: scrapes.n,
      scrapes_up_ratio: Number((scrapes.up / scrapes.n).toFixed(4)),
      mean_scrape_ms: Number(scrapes.dur.toFixed(1)),
      counter_delta_rows: deltas,
      db_mb: Number((statSync(join(dir, 'bench.db')).size / 1e6).toFixed(1)),
    };
  } finally {
    daemon?.kill('SIGKILL');
    server.kill('SIGKILL');
  }
}
