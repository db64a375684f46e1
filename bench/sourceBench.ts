// Prometheus as the source at fleet scale: N simulated vLLM servers (bench/fleetServer.ts, counters
// growing) scraped by the real Prometheus every 15 s through file_sd, and the real daemon reading them
// from Prometheus every 15 s. CPU of the daemon process only, per read and per second; Prometheus's
// query time as the daemon sees it; bytes read. Goal (issue 17): ≤ 5 % of one core for 2,000 servers.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { stringify as toYaml } from 'yaml';
import { cpuSeconds, rssMb, sleep, spawnDaemon } from './processes.ts';

async function selfMetrics(port: number): Promise<Map<string, number>> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^(cachelens_source_[a-z_]+)\{source="prometheus"\} (\S+)$/.exec(line);
    if (m) out.set(m[1]!, Number(m[2]));
  }
  return out;
}

export async function runSourceBench(servers = 2000, warmupS = 45, measureS = 90): Promise<Record<string, unknown>> {
  const dir = mkdtempSync(join(tmpdir(), 'cachelens-bench-source-'));
  const procs: ChildProcess[] = [];
  try {
    const fleet = spawn(
      process.execPath,
      ['--import', 'tsx', new URL('./fleetServer.ts', import.meta.url).pathname, String(servers)],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    procs.push(fleet);
    const { port, bodyBytes } = JSON.parse(
      await new Promise<string>((resolve) => createInterface({ input: fleet.stdout! }).once('line', resolve)),
    ) as { port: number; bodyBytes: number };
    writeFileSync(
      join(dir, 'fleet.json'),
      JSON.stringify(
        Array.from({ length: servers }, (_, i) => ({
          targets: [`127.0.0.1:${port}`],
          labels: { __metrics_path__: `/t/${i}/metrics`, pod: `vllm-${i}`, namespace: 'llm' },
        })),
      ),
    );
    const promPort = 20000 + Math.floor(Math.random() * 10000);
    writeFileSync(
      join(dir, 'prometheus.yml'),
      toYaml({
        global: { scrape_interval: '15s', scrape_timeout: '10s' },
        scrape_configs: [{ job_name: 'vllm', file_sd_configs: [{ files: [join(dir, 'fleet.json')] }] }],
      }),
    );
    const prom = spawn(
      'prometheus',
      [
        `--config.file=${join(dir, 'prometheus.yml')}`,
        `--storage.tsdb.path=${join(dir, 'tsdb')}`,
        `--web.listen-address=127.0.0.1:${promPort}`,
      ],
      { stdio: ['ignore', 'ignore', 'ignore'] },
    );
    procs.push(prom);
    const telemetryPort = promPort + 1;
    writeFileSync(
      join(dir, 'cachelens.yaml'),
      toYaml({
        storage: { path: join(dir, 'cachelens.db') },
        scrape: {
          prometheus: {
            url: `http://127.0.0.1:${promPort}`,
            interval: '15s',
            selector: '{job="vllm"}',
            instance_labels: ['namespace', 'pod'],
            backfill: '1m',
          },
        },
        receivers: { grpc: { endpoint: '127.0.0.1:0' }, http: { endpoint: '127.0.0.1:0' } },
        telemetry: { endpoint: `127.0.0.1:${telemetryPort}` },
        log: { level: 'warn' },
      }),
    );
    // Prometheus scrapes everything at least once before cachelens starts reading.
    await sleep(20_000);
    const daemon = spawnDaemon(join(dir, 'cachelens.yaml'));
    procs.push(daemon);
    await sleep(warmupS * 1000);
    const pid = daemon.pid!;
    const before = await selfMetrics(telemetryPort);
    const cpu0 = cpuSeconds(pid);
    const t0 = performance.now();
    let rssMax = 0;
    let readMaxS = 0;
    for (let s = 0; s < measureS; s++) {
      await sleep(1000);
      rssMax = Math.max(rssMax, rssMb(pid));
      if (s % 5 === 0)
        readMaxS = Math.max(
          readMaxS,
          (await selfMetrics(telemetryPort)).get('cachelens_source_read_duration_seconds') ?? 0,
        );
    }
    const cpu = cpuSeconds(pid) - cpu0;
    const wallS = (performance.now() - t0) / 1000;
    const after = await selfMetrics(telemetryPort);
    const d = (k: string) => (after.get(k) ?? 0) - (before.get(k) ?? 0);
    const reads = Math.round(wallS / 15);
    return {
      servers,
      body_bytes: bodyBytes,
      prometheus_interval: '15s',
      read_interval: '15s',
      measured_s: Number(wallS.toFixed(0)),
      reads,
      cpu_percent_of_one_core: Number(((cpu / wallS) * 100).toFixed(2)),
      cpu_ms_per_read: Number(((cpu * 1000) / reads).toFixed(0)),
      read_duration_s_max: Number(readMaxS.toFixed(2)),
      queries: d('cachelens_source_queries_total'),
      bytes_read_per_read: Math.round(d('cachelens_source_read_bytes_total') / reads),
      samples_per_read: Math.round(d('cachelens_source_samples_total') / reads),
      servers_seen: after.get('cachelens_source_servers'),
      source_up: after.get('cachelens_source_up'),
      rss_max_mb: Number(rssMax.toFixed(0)),
    };
  } finally {
    // The daemon stops first and cleanly, so that a CPU profile asked for is written.
    const daemon = procs[2];
    if (daemon && daemon.exitCode === null) {
      daemon.kill('SIGTERM');
      await Promise.race([new Promise((r) => daemon.once('exit', r)), sleep(20_000)]);
    }
    for (const p of procs.reverse()) p.kill('SIGKILL');
  }
}
