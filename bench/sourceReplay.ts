// The source's cost on a quiet machine: `record` reads a running Prometheus (BENCH_PROM_URL) through a
// proxy that keeps every answer; `replay` serves the kept answers to the same reads in order, with
// Prometheus stopped, and prints CPU per read and per part. For iterating on the source's cost; the
// `source` bench is the end-to-end figure.
//   node --import tsx bench/sourceReplay.ts record DIR [reads]
//   node --import tsx bench/sourceReplay.ts replay DIR
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildConfig } from '../src/config/config.ts';
import { PrometheusSource } from '../src/scrape/prometheusSource.ts';
import { openDatabase } from '../src/store/openDatabase.ts';
import { ScrapeStore } from '../src/store/scrapeStore.ts';
import { createLogger } from '../src/telemetry/logger.ts';

const [mode, dir, readsArg] = process.argv.slice(2);
if (!dir || (mode !== 'record' && mode !== 'replay')) throw new Error('usage: sourceReplay.ts record|replay DIR');
const upstream = new URL(process.env.BENCH_PROM_URL ?? 'http://127.0.0.1:39124');
mkdirSync(dir, { recursive: true });

interface Kept {
  path: string;
  headers: Record<string, string>;
  file: string;
}
const kept: Kept[] = mode === 'replay' ? JSON.parse(readFileSync(join(dir, 'index.json'), 'utf8')) : [];
const nows: number[] = mode === 'replay' ? JSON.parse(readFileSync(join(dir, 'nows.json'), 'utf8')) : [];
let served = 0;
const proxy = http.createServer((req, res) => {
  if (mode === 'replay') {
    const k = kept[served++]!;
    res.writeHead(200, k.headers);
    res.end(readFileSync(join(dir, k.file)));
    return;
  }
  const up = http.request(
    { host: upstream.hostname, port: upstream.port, path: req.url, method: req.method, headers: req.headers },
    (upRes) => {
      const chunks: Buffer[] = [];
      upRes.on('data', (c: Buffer) => chunks.push(c));
      upRes.on('end', () => {
        const body = Buffer.concat(chunks);
        const file = `${kept.length}.body`;
        writeFileSync(join(dir, file), body);
        const headers: Record<string, string> = {};
        for (const h of ['content-type', 'content-encoding'])
          if (upRes.headers[h]) headers[h] = String(upRes.headers[h]);
        kept.push({ path: req.url ?? '', headers, file });
        res.writeHead(upRes.statusCode ?? 502, headers);
        res.end(body);
      });
    },
  );
  req.pipe(up);
});
await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
const port = (proxy.address() as { port: number }).port;

// A replay runs several passes, each on a new store, so later passes show warm JIT.
const passes = mode === 'replay' ? Number(process.env.PASSES ?? 3) : 1;
for (let pass = 0; pass < passes; pass++) {
  served = 0;
  const { config } = buildConfig({
    storage: { path: join(mkdtempSync(join(tmpdir(), 'cachelens-replay-')), 'c.db') },
    scrape: {
      prometheus: {
        url: `http://127.0.0.1:${port}`,
        interval: '15s',
        selector: '{job="vllm"}',
        instance_labels: ['namespace', 'pod'],
        backfill: '1m',
      },
    },
  });
  const store = new ScrapeStore(openDatabase(config.storage.path));
  const cpuMs = () => {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1000;
  };
  const parts: Record<string, number> = {};
  const time = <T>(name: string, f: () => T): T => {
    const t = cpuMs();
    try {
      return f();
    } finally {
      parts[name] = (parts[name] ?? 0) + cpuMs() - t;
    }
  };
  let readIndex = 0;
  const source = new PrometheusSource({
    cfg: config.scrape.prometheus!,
    log: createLogger('warn'),
    store,
    onRound: (results) => time('write', () => store.writeRound(results)),
    now: () => (mode === 'replay' ? nows[readIndex]! : Date.now()),
  });
  const s = source as unknown as Record<string, (...a: unknown[]) => unknown>;
  for (const m of ['collect', 'toResults']) {
    const orig = s[m]!.bind(source);
    s[m] = (...a: unknown[]) => time(m, () => orig(...a));
  }
  const reads = mode === 'replay' ? nows.length : Number(readsArg ?? 7);
  const recordedNows: number[] = [];
  const rows: Array<Record<string, number>> = [];
  for (readIndex = 0; readIndex < reads; readIndex++) {
    for (const k of Object.keys(parts)) delete parts[k];
    recordedNows.push(Date.now());
    const c0 = cpuMs();
    await source.read();
    const total = cpuMs() - c0;
    const named = Object.values(parts).reduce((a, b) => a + b, 0);
    const row = { read: readIndex, total, ...parts, other: total - named, samples: source.status.samples };
    rows.push(Object.fromEntries(Object.entries(row).map(([k, v]) => [k, Math.round(v)])));
    console.log(JSON.stringify(rows.at(-1)));
    if (mode === 'record' && readIndex < reads - 1) await new Promise((r) => setTimeout(r, 15_000));
  }
  if (source.status.lastError) console.error('last read failed:', source.status.lastError);
  if (mode === 'record') {
    writeFileSync(join(dir, 'index.json'), JSON.stringify(kept));
    writeFileSync(join(dir, 'nows.json'), JSON.stringify(recordedNows));
  } else {
    // Steady state: every read after the first (which backfills).
    const steady = rows.slice(1);
    const mean = (k: string) => Math.round(steady.reduce((a, r) => a + (r[k] ?? 0), 0) / steady.length);
    console.log(
      JSON.stringify({
        steady_mean: Object.fromEntries(['total', 'collect', 'toResults', 'write', 'other'].map((k) => [k, mean(k)])),
      }),
    );
  }
}
proxy.close();
process.exit(0);
