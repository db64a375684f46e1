import assert from 'node:assert/strict';
import { mkdtempSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import BetterSqlite3 from 'better-sqlite3';
import { buildConfig } from '../src/config/config.ts';
import { Daemon } from '../src/cli/daemon.ts';
import { ScrapeScheduler } from '../src/scrape/scheduler.ts';
import { makeTarget } from '../src/scrape/target.ts';
import { MetricsServer } from './support/metricsServer.ts';
import { waitFor } from './support/pipelineHarness.ts';
import { memoryLogger } from './support/silentLogger.ts';

const body = (prompt: number, hits: number, kv: number) =>
  [
    '# HELP vllm:prompt_tokens_total Number of prefill tokens processed.',
    '# TYPE vllm:prompt_tokens_total counter',
    `vllm:prompt_tokens_total{engine="0",model_name="llama"} ${prompt}.0`,
    '# TYPE vllm:prefix_cache_hits_total counter',
    `vllm:prefix_cache_hits_total{engine="0",model_name="llama"} ${hits}.0`,
    '# TYPE vllm:kv_cache_usage_perc gauge',
    `vllm:kv_cache_usage_perc{engine="0",model_name="llama"} ${kv}`,
  ].join('\n') + '\n';

describe('the daemon scrapes a real HTTP fleet on a schedule and stores exact deltas', () => {
  const server = new MetricsServer();
  const dir = mkdtempSync(join(tmpdir(), 'cachelens-sched-'));
  const dbPath = join(dir, 'store.db');
  const sdPath = join(dir, 'targets.json');
  let requestsA = 0;
  // Request n gets script[n]: baseline, +30, a reset to 7, a failed scrape (missed), then 20.
  const scriptA: Array<number | 'fail'> = [100, 130, 7, 'fail', 20];
  const { log, lines } = memoryLogger();
  let daemon: Daemon;

  before(async () => {
    await server.start();
    server.route('/a', (_req, res) => {
      const step = scriptA[Math.min(requestsA++, scriptA.length - 1)]!;
      if (step === 'fail') {
        res.statusCode = 500;
        res.end('boom');
      } else res.end(body(step, Math.floor(step / 2), 0.25));
    });
    server.serve('/gzip', () => body(1000, 10, 0.5), { gzip: true });
    server.route('/slow', () => {}); // never answers
    server.route('/500', (_req, res) => {
      res.statusCode = 500;
      res.end('internal error');
    });
    server.serve('/garbage', () => '\u0000\u0001<html><body>Bad Gateway</body></html>\n\u00ff\u00fe', {
      contentType: 'text/html',
    });
    server.serve('/huge', () => `# ${'x'.repeat(200_000)}\n`);
    server.route('/auth', (req, res) => {
      if (req.headers.authorization !== 'Bearer s3cret') {
        res.statusCode = 401;
        res.end();
      } else res.end(body(5, 1, 0.1));
    });
    server.serve('/discovered', () => body(50, 5, 0.75));
    writeFileSync(sdPath, JSON.stringify([{ targets: [], labels: {} }]));
    const { config } = buildConfig(
      {
        storage: { path: dbPath },
        receivers: { grpc: { endpoint: '127.0.0.1:0' }, http: { endpoint: '127.0.0.1:0' } },
        telemetry: { endpoint: '127.0.0.1:0' },
        scrape: {
          interval: '1s',
          timeout: '400ms',
          max_body_bytes: '64KiB',
          file_sd: [sdPath],
          targets: [
            { url: server.url('/a'), labels: { team: 'x' } },
            { url: server.url('/gzip') },
            { url: server.url('/slow') },
            { url: server.url('/500') },
            { url: server.url('/garbage') },
            { url: server.url('/huge') },
            { url: server.url('/auth'), bearer_token: 's3cret' },
            { url: 'http://127.0.0.1:9/metrics' }, // nothing listens on the discard port
          ],
        },
      },
      {},
    );
    daemon = new Daemon(config, log);
    await daemon.start();
    await waitFor(() => requestsA >= scriptA.length, 'five scrapes of /a');
    // A file_sd edit (atomic rename, as config management does) adds a target without a restart.
    writeFileSync(
      `${sdPath}.tmp`,
      JSON.stringify([
        { targets: [`127.0.0.1:${server.port}`], labels: { __metrics_path__: '/discovered', model_name: 'ignored' } },
      ]),
    );
    renameSync(`${sdPath}.tmp`, sdPath);
    await waitFor(
      () => server.requests.filter((r) => r.path === '/discovered').length >= 2,
      'two scrapes of the discovered target',
    );
    await daemon.shutdown();
    if (process.env.DEBUG_TEST) console.log(lines.filter((l) => (l.level as number) >= 40));
  });
  after(() => server.stop());

  const db = () => new BetterSqlite3(dbPath, { readonly: true });
  const deltas = (path: string, signal: string) =>
    db()
      .prepare(
        `SELECT d.delta, d.interval_ms, d.resets FROM counter_deltas d JOIN series s ON s.id = d.series_id
          JOIN targets t ON t.id = s.target_id
         WHERE t.url = ? AND s.signal = ? AND s.engine = '' ORDER BY d.ts_ms`,
      )
      .all(server.url(path), signal) as Array<{ delta: number; interval_ms: number; resets: number }>;
  const lastScrape = (url: string) =>
    db()
      .prepare(
        'SELECT s.up, s.error FROM scrapes s JOIN targets t ON t.id = s.target_id WHERE t.url = ? ORDER BY s.ts_ms ' +
          'DESC LIMIT 1',
      )
      .get(url) as { up: number; error: string | null };

  it(
    'stores deltas between successful scrapes: +30, a reset counted as its new value, and one delta over the missed ' +
      'scrape',
    () => {
      const rows = deltas('/a', 'prompt_tokens').slice(0, 3);
      assert.deepEqual(
        rows.map((r) => [r.delta, r.resets]),
        [
          [30, 0],
          [7, 1],
          [13, 0],
        ],
      );
      assert.ok(rows[0]!.interval_ms >= 900 && rows[0]!.interval_ms <= 1100, `interval ${rows[0]!.interval_ms}`);
      assert.ok(rows[2]!.interval_ms >= 1900 && rows[2]!.interval_ms <= 2100, `gap interval ${rows[2]!.interval_ms}`);
      assert.deepEqual(
        deltas('/a', 'prefix_cache_hits')
          .slice(0, 3)
          .map((r) => r.delta),
        [15, 3, 7],
      );
    },
  );

  it('stores gauges as samples, and the target with its labels', () => {
    const g = db()
      .prepare(
        'SELECT count(*) n, min(value) lo, max(value) hi FROM gauge_samples gs JOIN series s ON s.id = gs.series_id ' +
          "WHERE s.signal = 'kv_cache_usage' AND s.model = 'llama' " +
          'AND s.target_id = (SELECT id FROM targets WHERE url = ?)',
      )
      .get(server.url('/a')) as { n: number; lo: number; hi: number };
    assert.ok(g.n >= 4);
    assert.deepEqual([g.lo, g.hi], [0.25, 0.25]);
    const t = db()
      .prepare('SELECT instance, labels_json, profile FROM targets WHERE url = ?')
      .get(server.url('/a')) as { instance: string; labels_json: string; profile: string };
    assert.equal(t.instance, `127.0.0.1:${server.port}`);
    assert.deepEqual(JSON.parse(t.labels_json), { team: 'x', instance: `127.0.0.1:${server.port}` });
    assert.equal(t.profile, 'vllm');
  });

  it('rolls deltas up per minute', () => {
    const sum = db()
      .prepare(
        'SELECT sum(r.delta_sum) s FROM rollup_minute r JOIN series s ON s.id = r.series_id WHERE s.signal = ' +
          "'prompt_tokens' AND s.engine = '' AND s.target_id = (SELECT id FROM targets WHERE url = ?)",
      )
      .get(server.url('/a')) as { s: number };
    const raw = deltas('/a', 'prompt_tokens').reduce((a, r) => a + r.delta, 0);
    assert.equal(sum.s, raw);
  });

  it('accepts gzip and sends bearer auth', () => {
    assert.equal(lastScrape(server.url('/gzip')).up, 1);
    assert.equal(lastScrape(server.url('/auth')).up, 1);
    assert.match(String(server.requests.find((r) => r.path === '/a')?.headers.accept), /text\/plain;version=0\.0\.4/);
  });

  it('marks broken targets up=0 with the reason, and carries on with the others', () => {
    const cases: Array<[string, RegExp]> = [
      [server.url('/slow'), /timed out after 400ms/],
      [server.url('/500'), /HTTP 500/],
      [server.url('/garbage'), /not a Prometheus text exposition \(Content-Type: text\/html\)/],
      [server.url('/huge'), /exceeds 65536 bytes/],
      ['http://127.0.0.1:9/metrics', /ECONNREFUSED/],
    ];
    for (const [url, reason] of cases) {
      const s = lastScrape(url);
      assert.equal(s.up, 0, url);
      assert.match(s.error ?? '', reason, url);
    }
    assert.ok(lines.some((l) => l.msg === 'target down' && l.target === server.url('/slow')));
  });

  it('a slow target never delays the others: each healthy target was scraped about once a second', () => {
    const n = db()
      .prepare('SELECT count(*) FROM scrapes s JOIN targets t ON t.id = s.target_id WHERE t.url = ?')
      .pluck()
      .get(server.url('/gzip')) as number;
    const slow = db()
      .prepare('SELECT count(*) FROM scrapes s JOIN targets t ON t.id = s.target_id WHERE t.url = ?')
      .pluck()
      .get(server.url('/slow')) as number;
    assert.ok(n >= 5, `gzip scrapes ${n}`);
    assert.ok(Math.abs(n - slow) <= 1, `gzip ${n} vs slow ${slow}`);
  });

  it('picks up a file_sd edit without a restart', () => {
    const rows = deltas('/discovered', 'prompt_tokens');
    const t = db().prepare('SELECT labels_json FROM targets WHERE url = ?').get(server.url('/discovered')) as {
      labels_json: string;
    };
    assert.deepEqual(JSON.parse(t.labels_json), { model_name: 'ignored', instance: `127.0.0.1:${server.port}` });
    assert.ok(rows.length >= 1 && rows.every((r) => r.delta === 0));
  });
});

describe('ScrapeScheduler', () => {
  it('skips and counts a scrape still running when its next is due, never overlapping', async () => {
    const server = await new MetricsServer().start();
    let concurrent = 0;
    let maxConcurrent = 0;
    server.route('/slow', (_req, res) => {
      concurrent++;
      maxConcurrent = Math.max(maxConcurrent, concurrent);
      setTimeout(() => {
        concurrent--;
        res.end(body(1, 1, 0.1));
      }, 2300);
    });
    const { log } = memoryLogger();
    // Bypasses config validation on purpose: a timeout longer than the interval forces the overlap.
    const s = new ScrapeScheduler({ intervalMs: 1000, timeoutMs: 5000, maxBodyBytes: 1 << 20, log, onRound: () => {} });
    s.setTargets([makeTarget(server.url('/slow'), {}, 'auto', {}, 'test')]);
    s.start();
    await new Promise((r) => setTimeout(r, 3500));
    await s.shutdown();
    await server.stop();
    assert.equal(maxConcurrent, 1);
    assert.ok(s.skippedTotal >= 2, `skipped ${s.skippedTotal}`);
    assert.equal(s.statuses()[0]!.skipped, s.skippedTotal);
  });

  it('spreads targets over the interval with stable offsets', () => {
    const { log } = memoryLogger();
    const s = new ScrapeScheduler({ intervalMs: 5000, timeoutMs: 4000, maxBodyBytes: 1, log, onRound: () => {} });
    const targets = Array.from({ length: 200 }, (_, i) =>
      makeTarget(`http://10.0.${i >> 8}.${i & 255}:8000/metrics`, {}, 'auto', {}, 't'),
    );
    s.setTargets(targets);
    const offsets = s.statuses().map((st) => st.offsetMs);
    const again = new ScrapeScheduler({ intervalMs: 5000, timeoutMs: 4000, maxBodyBytes: 1, log, onRound: () => {} });
    again.setTargets([...targets].reverse());
    assert.deepEqual(
      new Map(again.statuses().map((st) => [st.target.key, st.offsetMs])),
      new Map(s.statuses().map((st) => [st.target.key, st.offsetMs])),
    );
    const perSecond = [0, 0, 0, 0, 0];
    for (const o of offsets) perSecond[Math.floor(o / 1000)]!++;
    for (const n of perSecond) assert.ok(n > 20 && n < 60, `uneven spread ${perSecond}`);
  });
});
