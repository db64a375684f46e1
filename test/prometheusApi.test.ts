// What cachelens does with the answers a Prometheus-compatible API can give besides data: a query
// refused for its size (Thanos, Mimir and VictoriaMetrics limit raw selectors; Prometheus 2.42 does
// not), warnings, errors, a slow or absent server, a server with two kinds' names, and one that vanishes.
// A real HTTP server on 127.0.0.1 answers with the API's JSON from a small sample set.
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, it } from 'node:test';
import { buildConfig } from '../src/config/config.ts';
import { parseApiValue } from '../src/scrape/prometheusApi.ts';
import { CREATED_GROUPS, PrometheusSource } from '../src/scrape/prometheusSource.ts';
import type { ScrapeResult } from '../src/scrape/scrapeTarget.ts';
import { openDatabase } from '../src/store/openDatabase.ts';
import { ScrapeStore } from '../src/store/scrapeStore.ts';
import { memoryLogger } from './support/silentLogger.ts';

interface Series {
  metric: Record<string, string>;
  values: Array<[number, number]>; // [ms, value]
}

/** An API server over `series`; `answer` may replace the answer to any query. */
async function fakeApi(
  series: () => Series[],
  answer?: (rangeMs: number, url: URL) => { status: number; body: string } | undefined,
) {
  const seen: string[] = [];
  const queries: string[] = [];
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '', 'http://x');
    seen.push(url.pathname);
    if (url.searchParams.has('query')) queries.push(url.searchParams.get('query')!);
    if (url.pathname === '/api/v1/metadata') {
      res.end(JSON.stringify({ status: 'success', data: {} }));
      return;
    }
    const q = url.searchParams.get('query') ?? '';
    const rangeMs = Number(/\[(\d+)ms\]$/.exec(q)?.[1]);
    const atMs = Number(url.searchParams.get('time')) * 1000;
    const custom = answer?.(rangeMs, url);
    if (custom) {
      res.statusCode = custom.status;
      res.end(custom.body);
      return;
    }
    if (q.startsWith('changes(')) {
      // `changes({__name__=~"x_created",…}[Nms]) > 0 or …`: the series of those names whose value changed.
      const result = [...q.matchAll(/changes\(\{__name__=~"([^"]*)"[^}]*\}\[(\d+)ms\]\) > 0/g)].flatMap(
        ([, name, range]) =>
          series()
            .filter((s) => s.metric.__name__ === name)
            .map((s) => {
              const vs = s.values.filter(([t]) => t > atMs - Number(range) && t <= atMs).map(([, v]) => v);
              const { __name__: _, ...metric } = s.metric;
              return { metric, value: [atMs / 1000, String(vs.filter((v, i) => i > 0 && v !== vs[i - 1]).length)] };
            })
            .filter((r) => r.value[1] !== '0'),
      );
      res.setHeader('Content-Type', 'application/json');
      res.end(JSON.stringify({ status: 'success', data: { resultType: 'vector', result } }));
      return;
    }
    const names = new RegExp(`^(${/__name__=~"([^"]*)"/.exec(q)![1]!.replace(/\\\\/g, '\\')})$`);
    const result = series()
      .filter((s) => names.test(s.metric.__name__!))
      .map((s) => ({
        metric: s.metric,
        values: s.values.filter(([t]) => t > atMs - rangeMs && t <= atMs).map(([t, v]) => [t / 1000, String(v)]),
      }))
      .filter((s) => s.values.length);
    res.setHeader('Content-Type', 'application/json');
    res.end(JSON.stringify({ status: 'success', data: { resultType: 'matrix', result } }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  let closed = false;
  const api = {
    url: `http://127.0.0.1:${port}`,
    seen,
    queries,
    close: () =>
      new Promise<void>((r) => {
        if (closed) return r();
        closed = true;
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
  open.push(api);
  return api;
}

/** `n` samples a second apart from `fromMs`, the i-th with value `f(i)`. */
const everySecond = (fromMs: number, n: number, f: (i: number) => number): Array<[number, number]> =>
  Array.from({ length: n }, (_, i) => [fromMs + i * 1000, f(i)]);

/** A vLLM server's series, scraped by Prometheus every second from `fromMs` for `n` seconds. */
function vllmSeries(instance: string, fromMs: number, n: number, extra: Record<string, string> = {}): Series[] {
  const at = (f: (i: number) => number) => everySecond(fromMs, n, f);
  const m = (name: string, more: Record<string, string> = {}) => ({
    __name__: name,
    instance,
    job: 'vllm',
    model_name: 'llama',
    engine: '0',
    ...extra,
    ...more,
  });
  return [
    { metric: { __name__: 'up', instance, job: 'vllm' }, values: at(() => 1) },
    { metric: m('vllm:prompt_tokens_total'), values: at((i) => 1000 + 100 * i) },
    { metric: m('vllm:prefix_cache_queries_total'), values: at((i) => 1000 + 100 * i) },
    { metric: m('vllm:prefix_cache_hits_total'), values: at((i) => 500 + 40 * i) },
    { metric: m('vllm:kv_cache_usage_perc'), values: at((i) => i / 100) },
    { metric: m('vllm:num_requests_waiting'), values: at((i) => i % 3) },
  ];
}

function sourceFor(url: string, extra: Record<string, unknown> = {}) {
  const cfg = buildConfig(
    { scrape: { prometheus: { url, interval: '2s', timeout: '1s', backfill: '1m', ...extra } } },
    {},
  ).config.scrape.prometheus!;
  const db = openDatabase(join(mkdtempSync(join(tmpdir(), 'cachelens-promapi-')), 'store.db'));
  const store = new ScrapeStore(db);
  const rounds: ScrapeResult[][] = [];
  const { log, lines } = memoryLogger();
  let now = Date.now();
  const source = new PrometheusSource({
    cfg,
    log,
    store,
    onRound: (r) => {
      rounds.push(r);
      store.writeRound(r);
    },
    now: () => now,
  });
  return { source, db, rounds, lines, setNow: (ms: number) => (now = ms) };
}

const deltaSum = (db: ReturnType<typeof openDatabase>, signal: string) =>
  db
    .prepare(
      `SELECT coalesce(sum(d.delta), 0) FROM counter_deltas d JOIN series s ON s.id = d.series_id
       WHERE s.signal = ? AND s.engine = ''`,
    )
    .pluck()
    .get(signal) as number;

const open: Array<{ close: () => Promise<void> }> = [];
// A failed assertion must not leave a server keeping the test process alive.
afterEach(async () => {
  for (const api of open.splice(0)) await api.close();
});

describe('reading from a Prometheus-compatible API', () => {
  it('a query refused for its size is split in time until it fits, and nothing is lost or doubled', async () => {
    const t0 = Date.now() - 40_000;
    let scraped = 40;
    const api = await fakeApi(
      () => vllmSeries('10.0.0.1:8000', t0, scraped),
      (rangeMs, url) =>
        rangeMs > 6000 || url.searchParams.get('query')!.startsWith('changes(')
          ? {
              status: 422,
              body: JSON.stringify({
                status: 'error',
                errorType: 'execution',
                error: 'expanding series: the query exceeded the maximum number of samples (limit: 100)',
              }),
            }
          : undefined,
    );
    const { source, db, lines, setNow } = sourceFor(api.url);
    await source.read();
    assert.equal(source.status.up, true, source.status.lastError);
    assert.ok(source.status.queries >= 8, `read in parts: ${source.status.queries} queries`);
    assert.equal(lines.filter((l) => String(l.msg).includes('refused a query for its size')).length, 1);
    // 40 scrapes: the first is the baseline, 39 deltas of 100 tokens.
    assert.equal(deltaSum(db, 'prompt_tokens'), 3900);
    assert.equal(db.prepare('SELECT count(*) FROM scrapes').pluck().get(), 40);
    await source.read();
    assert.equal(deltaSum(db, 'prompt_tokens'), 3900, 'a second read over the same samples adds nothing');
    // Ten scrapes later, asking which _created times changed is refused too: they are read raw instead.
    scraped = 50;
    setNow(t0 + 50_000);
    await source.read();
    assert.equal(source.status.up, true, source.status.lastError);
    assert.equal(deltaSum(db, 'prompt_tokens'), 4900);
    await api.close();
  });

  it('errors, warnings, an absent server: a clear failure reason, logged once, and the read retried', async () => {
    let mode: 'error' | 'html' | 'warn' | 'ok' | 'slow' = 'error';
    const t0 = Date.now() - 10_000;
    const api = await fakeApi(
      () => vllmSeries('10.0.0.1:8000', t0, 10),
      () => {
        if (mode === 'error')
          return {
            status: 400,
            body: JSON.stringify({ status: 'error', errorType: 'bad_data', error: 'parse error' }),
          };
        if (mode === 'html') return { status: 502, body: '<html>Bad Gateway</html>' };
        if (mode === 'warn')
          return {
            status: 200,
            body: JSON.stringify({
              status: 'success',
              warnings: ['partial response: one store unreachable'],
              data: { resultType: 'matrix', result: [] },
            }),
          };
        return undefined;
      },
    );
    const { source, db, lines } = sourceFor(api.url);
    await source.read();
    await source.read();
    assert.equal(source.status.up, false);
    assert.equal(source.failures.get('api_error'), 2);
    assert.match(source.status.lastError!, /bad_data: parse error/);
    assert.equal(lines.filter((l) => String(l.msg).startsWith('cannot read from Prometheus')).length, 1);
    mode = 'html';
    await source.read();
    assert.equal(source.failures.get('http_status'), 1);
    mode = 'warn';
    await source.read();
    await source.read();
    assert.equal(source.status.up, true);
    assert.equal(lines.filter((l) => String(l.msg).includes('answered with a warning')).length, 1);
    mode = 'ok';
    await source.read();
    assert.equal(db.prepare('SELECT count(*) FROM scrapes').pluck().get(), 10, 'nothing was skipped by the failures');
    assert.equal(lines.filter((l) => String(l.msg).includes('reading from Prometheus again')).length, 1);
    await api.close();
    await source.read();
    assert.equal(source.failures.get('connect'), 1, 'nothing listens any more');
  });

  it('a server showing two kinds of names is logged once; a server that vanishes is down, then forgotten', async () => {
    const t0 = Date.now() - 20_000;
    let series = [
      ...vllmSeries('10.0.0.1:8000', t0, 20),
      // Still scraped 21 minutes on: the API answers up to each query's time.
      ...vllmSeries('10.0.0.2:8000', t0, 21 * 60),
      {
        metric: { __name__: 'sglang:num_running_reqs', instance: '10.0.0.2:8000', job: 'vllm', model_name: 'x' },
        values: [[t0, 1]] as Array<[number, number]>,
      },
    ];
    const api = await fakeApi(() => series);
    const { source, db, lines, setNow } = sourceFor(api.url);
    await source.read();
    await source.read();
    assert.equal(lines.filter((l) => String(l.msg).includes('two kinds of inference server')).length, 1);
    // 10.0.0.1 vanishes from Prometheus (scaled down, or its series went stale).
    series = series.filter((s) => s.metric.instance !== '10.0.0.1:8000');
    const now = Date.now();
    setNow(now + 60_000);
    await source.read();
    const down = db
      .prepare(
        `SELECT s.up, s.error FROM scrapes s JOIN targets t ON t.id = s.target_id
         WHERE t.instance = '10.0.0.1:8000' ORDER BY s.ts_ms DESC LIMIT 1`,
      )
      .get() as { up: number; error: string };
    assert.equal(down.up, 0);
    assert.match(down.error, /no samples in Prometheus since .* \(stale or gone\)/);
    assert.deepEqual(
      source.statuses().map((s) => [s.target.instance, s.up]),
      [
        ['10.0.0.1:8000', false],
        ['10.0.0.2:8000', true],
      ],
    );
    setNow(now + 20 * 60_000);
    await source.read();
    assert.deepEqual(
      source.statuses().map((s) => s.target.instance),
      ['10.0.0.2:8000'],
      'forgotten after it stayed gone',
    );
    await api.close();
  });

  it('series that come and go or change order between reads still map to their own server and series', async () => {
    // The source reuses what it worked out for a series while the answers list the same series in the same
    // order; here each read's answer differs from the last: reversed, a server and a series (a second engine,
    // its labels differing from a neighbour's only in one value) added at the front and the middle.
    const t0 = Date.now() - 40_000;
    const a = vllmSeries('10.0.0.1:8000', t0, 30);
    const b = vllmSeries('10.0.0.2:8000', t0, 30);
    const c = vllmSeries('10.0.0.3:8000', t0 + 10_000, 20);
    const engine1: Series = {
      metric: { ...a[1]!.metric, engine: '1' },
      values: everySecond(t0 + 10_000, 20, (i) => 5000 + 10 * i),
    };
    // The same name and labels less one: where the series with that label was expected, it must not fit.
    const { engine: _, ...noEngine } = a[1]!.metric;
    const fewer: Series = {
      metric: noEngine,
      values: everySecond(t0 + 10_000, 20, (i) => 7000 + i),
    };
    let phase = 1;
    const api = await fakeApi(() => {
      if (phase === 1) return [...a, ...b];
      if (phase === 2) return [...c, ...[...b].reverse(), a[0]!, engine1, a[1]!, fewer, ...a.slice(2)];
      return [a[0]!, engine1, fewer, ...a.slice(1), ...b, ...c];
    });
    const { source, db, setNow } = sourceFor(api.url);
    for (phase = 1; phase <= 3; phase++) {
      setNow(t0 + phase * 10_000 - 500);
      await source.read();
      assert.equal(source.status.up, true, source.status.lastError);
    }
    setNow(t0 + 30_000);
    await source.read();
    const byInstance = Object.fromEntries(
      (
        db
          .prepare(
            `SELECT t.instance, sum(d.delta) AS delta FROM counter_deltas d JOIN series s ON s.id = d.series_id
             JOIN targets t ON t.id = s.target_id WHERE s.signal = 'prompt_tokens' AND s.engine = ''
             GROUP BY t.instance`,
          )
          .all() as Array<{ instance: string; delta: number }>
      ).map((r) => [r.instance, r.delta]),
    );
    // 29 intervals of 100 tokens; on 10.0.0.1, once they have a baseline, engine 1 adds 19 of 10 and the series
    // without an engine 19 of 1; 10.0.0.3 has 19.
    assert.deepEqual(byInstance, { '10.0.0.1:8000': 2900 + 190 + 19, '10.0.0.2:8000': 2900, '10.0.0.3:8000': 1900 });
    assert.equal(
      db.prepare(`SELECT count(*) FROM counter_state WHERE series_key LIKE 'vllm:prompt_tokens_total%'`).pluck().get(),
      5,
      'one counter state per series: three on 10.0.0.1, one on each other server',
    );
    await api.close();
  });

  it('reads _created times again only for a change or a new series, and misses no reset', async () => {
    const t0 = Date.now() - 60_000;
    const a = vllmSeries('10.0.0.1:8000', t0, 40);
    const b = vllmSeries('10.0.0.2:8000', t0, 40);
    // Scrape `from` on for `n` scrapes, `f` given the scrape's number.
    const at = (from: number, n: number, f: (i: number) => number) =>
      everySecond(t0 + from * 1000, n, (i) => f(from + i));
    const createdOf = (s: Series, values: Array<[number, number]>): Series => ({
      metric: { ...s.metric, __name__: 'vllm:prompt_tokens_created' },
      values,
    });
    // 10.0.0.1 restarts at its 21st scrape, the first of a read, and has counted past its old value by then: only
    // _created shows it, against the time cached at the scrape before.
    a[1]!.values = at(0, 40, (i) => (i < 21 ? 1000 + 100 * i : 5000 + 100 * (i - 21)));
    const aCreated = createdOf(
      a[1]!,
      at(0, 40, (i) => (i < 21 ? 1_700_000_000 : 1_700_000_999)),
    );
    // 10.0.0.2 starts serving a second model at its 30th scrape: a series born then counts all of its value.
    const born: Series = {
      metric: { ...b[1]!.metric, model_name: 'mistral' },
      values: at(30, 10, (i) => 50 + 10 * (i - 30)),
    };
    const series = [
      ...a,
      aCreated,
      ...b,
      createdOf(
        b[1]!,
        at(0, 40, () => 1_700_000_000),
      ),
      born,
      createdOf(
        born,
        at(30, 10, () => (t0 + 29_500) / 1000),
      ),
    ];
    const api = await fakeApi(() => series);
    const { source, db, setNow } = sourceFor(api.url);
    for (let s = 5; s <= 40; s += 5) {
      setNow(t0 + s * 1000 + 500);
      await source.read();
      assert.equal(source.status.up, true, source.status.lastError);
    }
    const sums = db
      .prepare(
        `SELECT t.instance, s.model, sum(d.delta) AS delta, sum(d.resets) AS resets FROM counter_deltas d
         JOIN series s ON s.id = d.series_id JOIN targets t ON t.id = s.target_id
         WHERE s.signal = 'prompt_tokens' AND s.engine = '' GROUP BY 1, 2 ORDER BY 1, 2`,
      )
      .all();
    assert.deepEqual(sums, [
      // 20 intervals of 100, the restart counted as its new value (5,000, a reset), then 18 of 100.
      { instance: '10.0.0.1:8000', model: 'llama', delta: 2000 + 5000 + 1800, resets: 1 },
      { instance: '10.0.0.2:8000', model: 'llama', delta: 3900, resets: 0 },
      // Born after the scrape before: its first value (50) counts, then 9 of 10.
      { instance: '10.0.0.2:8000', model: 'mistral', delta: 140, resets: 0 },
    ]);
    const rawCreated = api.queries.filter((q) => q.includes('_created') && !q.startsWith('changes('));
    // One query per group of created names each time: at first, after the restart, and for the new series.
    const n = CREATED_GROUPS.length;
    assert.equal(rawCreated.length, 3 * n, rawCreated.join('\n'));
    assert.match(rawCreated[n]!, /instance=~"10\\\\.0\\\\.0\\\\.1:8000"/, 'only the server that restarted');
    assert.match(rawCreated[2 * n]!, /instance=~"10\\\\.0\\\\.0\\\\.2:8000"/, 'only the server with a new series');
    assert.equal(api.queries.filter((q) => q.startsWith('changes(')).length, 7, 'every read after the first checks');
    await api.close();
  });

  it('reads the values the API writes: decimals, NaN and infinities', () => {
    assert.equal(parseApiValue('1.5e3'), 1500);
    assert.ok(Number.isNaN(parseApiValue('NaN')));
    assert.equal(parseApiValue('+Inf'), Number.POSITIVE_INFINITY);
    assert.equal(parseApiValue('-Inf'), Number.NEGATIVE_INFINITY);
  });
});
