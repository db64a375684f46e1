// Generated bad /metrics responses: each becomes up=0 with a reason or a partial parse with the
// error counted, never a throw or a hang; and a daemon scraping the worst of them beside a healthy
// target keeps scraping the healthy one on schedule.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { scrapeTarget } from '../../src/scrape/scrapeTarget.ts';
import { makeTarget } from '../../src/scrape/target.ts';
import { demoModelState, renderVllmExposition } from '../../src/demo/vllmExposition.ts';
import { Check, DaemonProcess, seededRandom, sleep, type CaseResult } from '../lib.ts';

const FIXTURES = new URL('../../fixtures/metrics/raw/', import.meta.url).pathname;

type Respond = (res: http.ServerResponse, req: http.IncomingMessage) => void;
interface Gen {
  kind: string;
  weight: number;
  make: (rand: () => number) => Respond;
}

const text =
  (body: string | Buffer, type = 'text/plain; version=0.0.4'): Respond =>
  (res) => {
    res.writeHead(200, { 'Content-Type': type });
    res.end(body);
  };

export async function badMetrics(opts: { cases: number; soakMs: number; seed?: number }): Promise<CaseResult> {
  const check = new Check();
  const rand = seededRandom(opts.seed ?? 7);
  const captures = readdirSync(FIXTURES)
    .filter((f) => f.endsWith('.prom'))
    .map((f) => readFileSync(join(FIXTURES, f), 'utf8'));
  const good = renderVllmExposition([demoModelState('m')]);
  const millionSamples = (() => {
    const lines = ['# TYPE vllm:num_requests_running gauge'];
    for (let i = 0; i < 1_000_000; i++) lines.push(`vllm:num_requests_running{engine="${i}",model_name="m"} 1`);
    return lines.join('\n') + '\n';
  })();
  const manySeries = (() => {
    const lines = ['# TYPE vllm:num_requests_running gauge'];
    for (let i = 0; i < 200_000; i++) lines.push(`vllm:num_requests_running{engine="${i}",model_name="m"} 1`);
    return lines.join('\n') + '\n';
  })();
  const manyLabels = Array.from({ length: 5000 }, (_, i) => `l${i}="${'v'.repeat(20)}"`).join(',');
  const hugeLabels = `vllm:num_requests_running{${manyLabels},model_name="m"} 1\n`;
  const gens: Gen[] = [
    {
      kind: 'random bytes',
      weight: 25,
      make: (r) => text(Buffer.from(Array.from({ length: Math.floor(r() * 4096) }, () => Math.floor(r() * 256)))),
    },
    {
      kind: 'mutated real capture',
      weight: 40,
      make: (r) => {
        const body = Buffer.from(captures[Math.floor(r() * captures.length)]!);
        const mode = r();
        if (mode < 0.5)
          for (let k = 0; k < 1 + r() * 20; k++) body[Math.floor(r() * body.length)] = Math.floor(r() * 256);
        return text(mode >= 0.5 ? body.subarray(0, Math.floor(r() * body.length)) : body);
      },
    },
    { kind: 'huge label set (5,000 labels)', weight: 3, make: () => text(hugeLabels) },
    { kind: '1e6-sample body (34 MB)', weight: 0.05, make: () => text(millionSamples) },
    { kind: '200k series of one metric (12 MB)', weight: 0.2, make: () => text(manySeries) },
    {
      kind: 'wrong content type',
      weight: 5,
      make: (r) =>
        text(
          r() < 0.5 ? '<html><body>502 Bad Gateway</body></html>' : good,
          ['text/html', 'application/json', 'application/octet-stream'][Math.floor(r() * 3)],
        ),
    },
    {
      kind: 'redirect',
      weight: 5,
      make: (r) => (res) => {
        res.writeHead([301, 302, 307, 308][Math.floor(r() * 4)]!, {
          Location: r() < 0.5 ? '/metrics' : 'http://169.254.169.254/latest/meta-data',
        });
        res.end();
      },
    },
    {
      kind: 'HTTP error',
      weight: 5,
      make: (r) => (res) => {
        res.writeHead([401, 403, 404, 500, 503][Math.floor(r() * 5)]!);
        res.end('no');
      },
    },
    { kind: 'connection reset', weight: 5, make: () => (_res, req) => req.socket.destroy() },
    {
      kind: 'slow loris (a byte a second)',
      weight: 0.3,
      make: () => (res) => {
        res.writeHead(200, { 'Content-Type': 'text/plain' });
        let i = 0;
        const t = setInterval(() => {
          if (res.destroyed || i >= good.length) return clearInterval(t);
          res.write(good[i++]!);
        }, 1000);
        res.on('close', () => clearInterval(t));
      },
    },
  ];

  // One server; the path names the case.
  const responders = new Map<string, Respond>();
  const server = http.createServer((req, res) => {
    const r = responders.get(req.url ?? '');
    if (r) r(res, req);
    else {
      res.writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4' });
      res.end(good);
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const total = gens.reduce((n, g) => n + g.weight, 0);
  const byKind = new Map<string, { n: number; up: number; partial: number; down: number; reasons: Set<string> }>();
  let threw = 0;
  let hung = 0;
  let slowest = 0;
  const timeoutMs = 2000;
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < opts.cases; i = next++) {
      let x = rand() * total;
      const gen = gens.find((g) => (x -= g.weight) <= 0) ?? gens[0]!;
      const path = `/case/${i}`;
      responders.set(path, gen.make(rand));
      const t = makeTarget(base + path, {}, 'auto', {}, 'reliability');
      const t0 = Date.now();
      try {
        const r = await Promise.race([
          scrapeTarget(t, { timeoutMs, maxBodyBytes: 16 * 1024 * 1024, sampleLimit: 20_000 }),
          sleep(timeoutMs + 5000).then(() => 'hung' as const),
        ]);
        if (r === 'hung') hung++;
        else {
          const k = byKind.get(gen.kind) ?? { n: 0, up: 0, partial: 0, down: 0, reasons: new Set<string>() };
          k.n++;
          if (!r.up) {
            k.down++;
            if (!r.error) check.that(false, `${gen.kind}: up=0 without a reason`);
            else k.reasons.add(r.error.replace(/\d+/g, 'N').slice(0, 60));
          } else if (r.parseErrors > 0) k.partial++;
          else k.up++;
          byKind.set(gen.kind, k);
        }
      } catch {
        threw++;
      }
      slowest = Math.max(slowest, Date.now() - t0);
      responders.delete(path);
    }
  };
  await Promise.all(Array.from({ length: 16 }, worker));
  check.that(threw === 0, `${threw} scrapes threw`);
  check.that(hung === 0, `${hung} scrapes outlived their timeout`);
  check.that(slowest <= timeoutMs + 1000, `slowest scrape took ${slowest} ms with a ${timeoutMs} ms timeout`);

  // The daemon beside the worst of them: a healthy target must keep its schedule.
  const worst = {
    '/loris': gens.find((g) => g.kind.startsWith('slow loris'))!.make(rand),
    '/million': gens.find((g) => g.kind.startsWith('1e6'))!.make(rand),
    '/labels': gens.find((g) => g.kind.startsWith('huge'))!.make(rand),
    '/reset': gens.find((g) => g.kind === 'connection reset')!.make(rand),
    '/redirect': gens.find((g) => g.kind === 'redirect')!.make(rand),
  };
  for (const [p, r] of Object.entries(worst)) responders.set(p, r);
  const d = await new DaemonProcess({
    scrape: {
      interval: '1s',
      timeout: '900ms',
      targets: [
        { url: `${base}/healthy`, labels: { instance: 'healthy' } },
        ...Object.keys(worst).map((p) => ({ url: base + p, labels: { instance: p.slice(1) } })),
      ],
    },
  }).init();
  d.start();
  await d.ready();
  const t0 = Date.now();
  await sleep(opts.soakMs);
  const exit = await d.stop();
  const db = new Database(join(d.dir, 'store.db'), { readonly: true });
  const rows = db
    .prepare(
      'SELECT t.instance, sum(s.up) AS up, count(*) AS n FROM scrapes s JOIN targets t ON t.id = s.target_id WHERE ' +
        's.ts_ms >= ? GROUP BY t.instance',
    )
    .all(t0) as Array<{ instance: string; up: number; n: number }>;
  db.close();
  const healthy = rows.find((r) => r.instance === 'healthy');
  const expected = Math.floor(opts.soakMs / 1000);
  check.that(
    !!healthy && healthy.up >= expected - 2,
    `the healthy target was scraped ${healthy?.up ?? 0} times in ${expected} s beside the bad ones`,
  );
  check.that(exit === 0, `clean exit (got ${exit})`);
  server.closeAllConnections();
  server.close();
  const n = [...byKind.values()].reduce((k, v) => k + v.n, 0);
  return {
    name: 'bad /metrics input',
    load:
      `${n} generated responses (${byKind.size} kinds) through the scraper, 16 at a time; then ${expected} s of the ` +
      `daemon scraping a slow loris, a 1e6-sample body, 5,000 labels, resets and redirects beside a healthy target`,
    lost: threw + hung,
    refused:
      `${[...byKind.values()].reduce((k, v) => k + v.down, 0)} up=0 with a reason, ` +
      `${[...byKind.values()].reduce((k, v) => k + v.partial, 0)} partial parses with errors counted`,
    recovered:
      `no throw, no hang (slowest ${slowest} ms, timeout ${timeoutMs} ms); ` +
      `healthy target up ${healthy?.up ?? 0}/${expected} scrapes; others: ${rows
        .filter((r) => r.instance !== 'healthy')
        .map((r) => `${r.instance} up ${r.up}/${r.n}`)
        .join(', ')}`,
    notes: [...byKind].map(
      ([k, v]) =>
        `${k}: ${v.n} (up ${v.up}, partial ${v.partial}, down ${v.down}; e.g. ` +
        `${[...v.reasons].slice(0, 2).join(' / ') || '–'})`,
    ),
    ok: check.failures.length === 0,
    failures: check.failures,
  };
}
