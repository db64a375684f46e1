// cachelens and Prometheus scraping the same fleet, one after the other, in one run (issue 20): N vLLM
// targets (bench/fleetServer.ts, its own process) listed in one file_sd file, the same interval and
// timeout for both. CPU (user+system from /proc) and RSS (sampled each second) of each scraper's process
// only; cachelens's event-loop delay from its own /metrics (prom-client's monitorEventLoopDelay).
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import BetterSqlite3 from 'better-sqlite3';
import { stringify as toYaml } from 'yaml';
import { cpuSeconds, rssMb, sleep, spawnDaemon } from './processes.ts';

const exited = (p: ChildProcess) =>
  p.exitCode !== null || p.signalCode !== null ? Promise.resolve() : new Promise((r) => p.once('exit', r));

async function stop(p: ChildProcess): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return;
  p.kill('SIGTERM');
  await Promise.race([exited(p), sleep(15_000)]);
  p.kill('SIGKILL');
  await exited(p);
}

interface Measured {
  cpu_percent_of_one_core: number;
  rss_max_mb: number;
  measured_s: number;
}

/** CPU and max RSS of `pid` over `measureS` after `warmupS`. */
async function measure(pid: number, warmupS: number, measureS: number): Promise<Measured> {
  await sleep(warmupS * 1000);
  const cpu0 = cpuSeconds(pid);
  const t0 = performance.now();
  let rssMax = 0;
  for (let s = 0; s < measureS; s++) {
    await sleep(1000);
    rssMax = Math.max(rssMax, rssMb(pid));
  }
  const wallS = (performance.now() - t0) / 1000;
  return {
    cpu_percent_of_one_core: Number((((cpuSeconds(pid) - cpu0) / wallS) * 100).toFixed(1)),
    rss_max_mb: Number(rssMax.toFixed(0)),
    measured_s: Number(wallS.toFixed(0)),
  };
}

async function metricValue(port: number, name: string): Promise<number | undefined> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : undefined;
}

async function runCachelens(dir: string, sd: string, warmupS: number, measureS: number) {
  const telemetryPort = 20000 + Math.floor(Math.random() * 10000);
  const config = join(dir, 'cachelens.yaml');
  writeFileSync(
    config,
    toYaml({
      storage: { path: join(dir, 'bench.db') },
      scrape: { interval: '5s', timeout: '4s', targets: [], file_sd: [sd] },
      receivers: { grpc: { endpoint: '127.0.0.1:0' }, http: { endpoint: '127.0.0.1:0' } },
      telemetry: { endpoint: `127.0.0.1:${telemetryPort}` },
      log: { level: 'warn' },
    }),
  );
  const daemon = spawnDaemon(config);
  try {
    const startMs = Date.now();
    // The window's event-loop max: prom-client resets its monitor at each collection.
    const loopMax = setTimeout(
      () => metricValue(telemetryPort, 'nodejs_eventloop_lag_max_seconds').catch(() => undefined),
      warmupS * 1000 - 500,
    );
    const m = await measure(daemon.pid!, warmupS, measureS);
    clearTimeout(loopMax);
    const eventLoopMaxS = await metricValue(telemetryPort, 'nodejs_eventloop_lag_max_seconds');
    // Where the RSS is at the end: V8's heap (used and reserved) and memory outside it (Buffers).
    const mb = async (name: string) => Number((((await metricValue(telemetryPort, name)) ?? 0) / 2 ** 20).toFixed(0));
    const memory = {
      heap_used_mb: await mb('nodejs_heap_size_used_bytes'),
      heap_total_mb: await mb('nodejs_heap_size_total_bytes'),
      external_mb: await mb('nodejs_external_memory_bytes'),
    };
    await stop(daemon);
    const db = new BetterSqlite3(join(dir, 'bench.db'), { readonly: true });
    const s = db
      .prepare(
        'SELECT count(*) n, sum(up) up, avg(duration_ms) dur, max(duration_ms) dmax FROM scrapes WHERE ts_ms >= ?',
      )
      .get(startMs + warmupS * 1000) as { n: number; up: number; dur: number; dmax: number };
    db.close();
    return {
      ...m,
      event_loop_delay_max_ms: eventLoopMaxS === undefined ? null : Number((eventLoopMaxS * 1000).toFixed(1)),
      memory_at_end: memory,
      scrapes: s.n,
      scrapes_up_ratio: Number((s.up / s.n).toFixed(4)),
      mean_scrape_ms: Number(s.dur.toFixed(2)),
      max_scrape_ms: Number(s.dmax.toFixed(1)),
    };
  } finally {
    await stop(daemon);
  }
}

async function runPrometheus(dir: string, sd: string, warmupS: number, measureS: number) {
  const port = 20000 + Math.floor(Math.random() * 10000);
  writeFileSync(
    join(dir, 'prometheus.yml'),
    toYaml({
      global: { scrape_interval: '5s', scrape_timeout: '4s' },
      scrape_configs: [{ job_name: 'vllm', file_sd_configs: [{ files: [sd] }] }],
    }),
  );
  const prom = spawn(
    'prometheus',
    [
      `--config.file=${join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(dir, 'tsdb')}`,
      `--web.listen-address=127.0.0.1:${port}`,
    ],
    { stdio: ['ignore', 'ignore', 'ignore'] },
  );
  try {
    const m = await measure(prom.pid!, warmupS, measureS);
    const q = async (expr: string) => {
      const r = (await (
        await fetch(`http://127.0.0.1:${port}/api/v1/query?query=${encodeURIComponent(expr)}`)
      ).json()) as {
        data: { result: Array<{ value: [number, string] }> };
      };
      return Number(r.data.result[0]?.value[1] ?? Number.NaN);
    };
    const window = `${m.measured_s}s`;
    const up = await q(`avg(avg_over_time(up{job="vllm"}[${window}]))`);
    const scrapes = await q(`sum(count_over_time(up{job="vllm"}[${window}]))`);
    const meanS = await q(`avg(avg_over_time(scrape_duration_seconds{job="vllm"}[${window}]))`);
    const tsdb = (await (await fetch(`http://127.0.0.1:${port}/api/v1/status/tsdb`)).json()) as {
      data: { headStats: { numSeries: number } };
    };
    return {
      ...m,
      scrapes,
      scrapes_up_ratio: Number(up.toFixed(4)),
      mean_scrape_ms: Number((meanS * 1000).toFixed(2)),
      head_series: tsdb.data.headStats.numSeries,
    };
  } finally {
    await stop(prom);
  }
}

/** Both scrapers over `targets` targets every 5 s; the fleet process serves them throughout. */
export async function runFleetBench(targets = 1000, warmupS = 20, measureS = 60): Promise<Record<string, unknown>> {
  const dir = mkdtempSync(join(tmpdir(), 'cachelens-bench-fleet-'));
  const server = spawn(
    process.execPath,
    ['--import', 'tsx', new URL('./fleetServer.ts', import.meta.url).pathname, String(targets)],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  try {
    const { port, bodyBytes, gzipBytes } = JSON.parse(
      await new Promise<string>((resolve) => createInterface({ input: server.stdout! }).once('line', resolve)),
    ) as { port: number; bodyBytes: number; gzipBytes: number };
    const sd = join(dir, 'fleet.json');
    writeFileSync(
      sd,
      JSON.stringify(
        Array.from({ length: targets }, (_, i) => ({
          targets: [`127.0.0.1:${port}`],
          labels: { __metrics_path__: `/t/${i}/metrics`, pod: `vllm-${i}` },
        })),
      ),
    );
    const load = loadavg()[0]!;
    const cachelens = await runCachelens(dir, sd, warmupS, measureS);
    // BENCH_FLEET_ONLY=cachelens: skip Prometheus while working on cachelens's side.
    const body = { body_bytes: bodyBytes, gzip_bytes: gzipBytes || null };
    if (process.env.BENCH_FLEET_ONLY === 'cachelens') return { targets, ...body, cachelens };
    const prometheus = await runPrometheus(dir, sd, warmupS, measureS);
    return {
      targets,
      interval: '5s',
      timeout: '4s',
      ...body,
      warmup_s: warmupS,
      load_average_1m_before: Number(load.toFixed(2)),
      cachelens,
      prometheus,
      cpu_ratio: Number((cachelens.cpu_percent_of_one_core / prometheus.cpu_percent_of_one_core).toFixed(2)),
      rss_ratio: Number((cachelens.rss_max_mb / prometheus.rss_max_mb).toFixed(2)),
    };
  } finally {
    await stop(server);
  }
}
