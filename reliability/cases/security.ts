// Security defaults, each checked against the running daemon or the source, plus the TLS and HTML
// escaping tests from the unit suite run by name.
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import http from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Client, credentials, Metadata } from '@grpc/grpc-js';
import { buildConfig } from '../../src/config/config.ts';
import { BIN, Check, DaemonProcess, makeRequest, OtlpSink, sleep, type CaseResult } from '../lib.ts';

const ROOT = new URL('../../', import.meta.url).pathname;

const canConnect = (host: string, port: number) =>
  new Promise<boolean>((resolve) => {
    const s = connect({ host, port, timeout: 1000 }, () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
    s.on('timeout', () => {
      s.destroy();
      resolve(false);
    });
  });

// Every ${…} inside SQL handed to better-sqlite3 must be one of these reviewed constants or
// placeholder lists; values always go through bound parameters.
const SQL_INTERPOLATIONS = new Set([
  'tPh',
  'mClause',
  'HOUR_MS',
  'table',
  'm.version',
  'FLEET_COLS',
  'LEDGER_COLS',
  "Array(4 + FACT_COUNTERS.length + 8).fill('?').join(', ')",
  'tenant.sql',
  "perTarget ? 'coalesce(l.target_id, 0)' : '0'",
  "opts.fsync ? 'FULL' : 'NORMAL'",
  // src/store/mergedStores.ts and compaction.ts: the alias of an attached store (or main), `s0`, `s1`, …
  // made from its position, never from input (the file path itself is a bound parameter of ATTACH).
  'schema',
  's',
  // src/store/latencyRollups.ts: the column list, its placeholders, and ledgerRowsSql's WITH clause (constants and
  // the tenant expression above, whose values are bound parameters).
  'LATENCY_COLS',
  'LATENCY_PLACEHOLDERS',
  'ledgerRows',
  // … and the table a level lives in: 'latency_week' or 'latency_rollup', chosen by a constant prefix.
  'tableOf(level)',
]);

function sqlInterpolations(): Array<{ file: string; expr: string }> {
  const out: Array<{ file: string; expr: string }> = [];
  const walk = (dir: string) => {
    for (const f of readdirSync(dir)) {
      const p = join(dir, f);
      if (statSync(p).isDirectory()) walk(p);
      else if (p.endsWith('.ts')) {
        const text = readFileSync(p, 'utf8');
        // The formatter may break a chain over lines: join it before comparing.
        for (const m of text.matchAll(/\.(?:prepare|exec|pragma)\(\s*`([^`]*)`/g))
          for (const e of m[1]!.matchAll(/\$\{([^}]*(?:\{[^}]*\}[^}]*)*)\}/g))
            out.push({ file: p.slice(ROOT.length), expr: e[1]!.replace(/\s*\n\s*/g, '').trim() });
      }
    }
  };
  walk(join(ROOT, 'src'));
  return out;
}

export async function security(): Promise<CaseResult> {
  const check = new Check();
  const notes: string[] = [];

  // 1. Loopback by default.
  const { config: defaults } = buildConfig({}, {});
  const endpoints = [defaults.receivers.grpc.endpoint, defaults.receivers.http.endpoint, defaults.telemetry.endpoint];
  check.that(
    endpoints.every((e) => e.startsWith('127.0.0.1:')),
    `default endpoints are loopback: ${endpoints.join(', ')}`,
  );
  const external = Object.values(networkInterfaces())
    .flat()
    .find((i) => i && i.family === 'IPv4' && !i.internal)?.address;
  const defaultPortsFree =
    !(await canConnect('127.0.0.1', 4317)) &&
    !(await canConnect('127.0.0.1', 4318)) &&
    !(await canConnect('127.0.0.1', 9464));
  if (defaultPortsFree) {
    const d = await new DaemonProcess({}).init();
    // Rewrite the config without endpoints, so the built-in defaults are what binds.
    const { writeFileSync } = await import('node:fs');
    writeFileSync(
      d.configPath,
      `storage: {path: ${join(d.dir, 'store.db')}}\nscrape: {targets: []}\nlog: {level: warn}\n`,
    );
    d.start();
    let up = false;
    for (let i = 0; i < 100 && !(up = await canConnect('127.0.0.1', 4317)); i++) await sleep(100);
    check.that(up, 'the daemon listens on 127.0.0.1:4317 by default');
    if (external) {
      const reachable = await Promise.all([4317, 4318, 9464].map((p) => canConnect(external, p)));
      check.that(
        reachable.every((r) => !r),
        `nothing answers on ${external} (a non-loopback address): ${reachable}`,
      );
      notes.push(`defaults bind 127.0.0.1 only: 4317, 4318 and 9464 refuse connections on ${external}`);
    } else notes.push('no non-loopback IPv4 address on this machine: checked the bound defaults only');
    await d.stop();
  } else notes.push('ports 4317/4318/9464 are taken on this machine: checked the config defaults only');

  // 2. Auth on every listener, and 3. no secret in logs, /metrics or check-config.
  const secrets = { receiver: 'rcv-SECRET-4f9a', exporterHeader: 'exp-SECRET-77b1', scrapeToken: 'scr-SECRET-0c2e' };
  const target = http.createServer((_req, res) => {
    res.writeHead(401);
    res.end('no');
  });
  await new Promise<void>((r) => target.listen(0, '127.0.0.1', () => r()));
  const sink = await new OtlpSink().start();
  const d = await new DaemonProcess({
    log: { level: 'debug' },
    receivers: { bearer_token: secrets.receiver },
    exporter: { endpoint: sink.endpoint, headers: { 'x-api-key': secrets.exporterHeader } },
    scrape: {
      interval: '1s',
      timeout: '500ms',
      bearer_token: secrets.scrapeToken,
      targets: [{ url: `http://127.0.0.1:${(target.address() as AddressInfo).port}/metrics` }],
    },
  }).init();
  d.start();
  await d.ready();
  const body = Buffer.from(makeRequest(2).body);
  const httpCode = (auth?: string) =>
    fetch(d.httpUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/x-protobuf', ...(auth ? { authorization: auth } : {}) },
      body,
    }).then((r) => r.status);
  const grpcCode = (auth?: string) =>
    new Promise<number>((resolve) => {
      const c = new Client(d.grpcAddr, credentials.createInsecure());
      const md = new Metadata();
      if (auth) md.set('authorization', auth);
      c.makeUnaryRequest(
        '/opentelemetry.proto.collector.trace.v1.TraceService/Export',
        (b: Buffer) => b,
        (b: Buffer) => b,
        body,
        md,
        (err) => {
          c.close();
          resolve(err ? err.code : 0);
        },
      );
    });
  const answers = {
    httpNone: await httpCode(),
    httpWrong: await httpCode('Bearer nope'),
    httpRight: await httpCode(`Bearer ${secrets.receiver}`),
    grpcNone: await grpcCode(),
    grpcWrong: await grpcCode('Bearer nope'),
    grpcRight: await grpcCode(`Bearer ${secrets.receiver}`),
  };
  check.that(
    answers.httpNone === 401 && answers.httpWrong === 401 && answers.httpRight === 200,
    `HTTP: 401 without or with a wrong token, 200 with it ` +
      `(${answers.httpNone}/${answers.httpWrong}/${answers.httpRight})`,
  );
  check.that(
    answers.grpcNone === 16 && answers.grpcWrong === 16 && answers.grpcRight === 0,
    `gRPC: UNAUTHENTICATED without or with a wrong token, OK with it ` +
      `(${answers.grpcNone}/${answers.grpcWrong}/${answers.grpcRight})`,
  );
  await sleep(2500); // a few failing scrapes with the scrape token, exports with the header
  const metricsText = await fetch(`http://127.0.0.1:${d.telemetryPort}/metrics`).then((r) => r.text());
  const { stdout: effective } = await promisify(execFile)(process.execPath, [
    BIN,
    'check-config',
    '--config',
    d.configPath,
  ]);
  await d.stop();
  const logs = d.current!.stderr.join('\n');
  for (const [what, text] of [
    ['logs (debug level)', logs],
    ['/metrics', metricsText],
    ['check-config', effective],
  ] as const) {
    const leaked = Object.entries(secrets)
      .filter(([, v]) => text.includes(v))
      .map(([k]) => k);
    check.that(leaked.length === 0, `${what} contain ${leaked.join(', ')}`);
  }
  check.that(logs.split('\n').length > 5, 'the daemon logged (so the secret check read something)');
  notes.push(
    `bearer auth enforced on both listeners; ${logs.split('\n').length} debug log lines, /metrics and check-config ` +
      `hold none of the 3 secrets`,
  );
  await sink.stop();
  target.close();

  // 4. SQL always parameterized.
  const interps = sqlInterpolations();
  const unreviewed = interps.filter((i) => !SQL_INTERPOLATIONS.has(i.expr));
  check.that(
    unreviewed.length === 0,
    `SQL built from unreviewed interpolations: ${unreviewed.map((u) => `${u.file}: \${${u.expr}}`).join('; ')}`,
  );
  notes.push(
    `${interps.length} interpolations in SQL text across src/, all reviewed constants or placeholder lists; every ` +
      `value is a bound parameter`,
  );

  // 5. TLS with a test CA, and hostile names in the HTML report: the unit tests that prove them.
  const run = async (file: string, pattern: string) => {
    try {
      const { stdout } = await promisify(execFile)(
        process.execPath,
        ['--import', 'tsx', '--test', '--test-reporter=tap', '--test-name-pattern', pattern, file],
        { cwd: ROOT, timeout: 120_000 },
      );
      const pass = Number(/^# pass (\d+)/m.exec(stdout)?.[1] ?? 0);
      const fail = Number(/^# fail (\d+)/m.exec(stdout)?.[1] ?? 0);
      return { pass, fail };
    } catch (err) {
      const stdout = (err as { stdout?: string }).stdout ?? '';
      return {
        pass: Number(/^# pass (\d+)/m.exec(stdout)?.[1] ?? 0),
        fail: Math.max(1, Number(/^# fail (\d+)/m.exec(stdout)?.[1] ?? 1)),
      };
    }
  };
  const tls = await run('test/tls.test.ts', '.');
  check.that(
    tls.pass > 0 && tls.fail === 0,
    `TLS tests (test CA, receivers and targets): ${tls.pass} pass, ${tls.fail} fail`,
  );
  const html = await run('test/reportHtml.test.ts', 'hostile');
  check.that(html.pass > 0 && html.fail === 0, `hostile-name HTML test: ${html.pass} pass, ${html.fail} fail`);
  notes.push(
    `test/tls.test.ts (${tls.pass} tests with a CA made by openssl) and the hostile-name report test (${html.pass}) ` +
      `pass`,
  );

  return {
    name: 'security defaults',
    load:
      'loopback defaults, bearer auth on gRPC and HTTP, 3 secrets against logs / metrics / check-config, SQL ' +
      'interpolation audit, TLS and HTML-escaping tests',
    lost: 0,
    refused: `unauthenticated: HTTP ${answers.httpNone}, gRPC code ${answers.grpcNone}`,
    recovered: '–',
    notes,
    ok: check.failures.length === 0,
    failures: check.failures,
  };
}
