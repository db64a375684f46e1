import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { listMigrations } from '../src/store/migrate.ts';
import { MetricsServer } from './support/metricsServer.ts';
import { demoModelState, renderVllmExposition } from '../src/demo/vllmExposition.ts';

const BIN = new URL('../bin/cachelens.js', import.meta.url).pathname;
const run = async (args: string[], env: NodeJS.ProcessEnv = {}) => {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [BIN, ...args], {
      env: { PATH: process.env.PATH, ...env },
      cwd: mkdtempSync(join(tmpdir(), 'cachelens-cli-')),
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
};

describe('cachelens CLI', () => {
  const server = new MetricsServer();
  before(async () => {
    await server.start();
    server.serve('/metrics', () =>
      renderVllmExposition([
        demoModelState('llama-3-8b', 1, '0'),
        demoModelState('llama-3-8b', 2, '1'),
        demoModelState('qwen', 1, '0'),
      ]),
    );
  });
  after(() => server.stop());

  it(
    'scrape --once --format json prints {target, instance, ' + 'model, signal, kind, value} rows, engines combined',
    async () => {
      const { code, stdout } = await run(['scrape', '--once', '--format', 'json', '--target', server.url('/metrics')]);
      assert.equal(code, 0);
      const rows = JSON.parse(stdout) as Array<Record<string, unknown>>;
      const get = (model: string, signal: string) => rows.find((r) => r.model === model && r.signal === signal);
      assert.deepEqual(get('llama-3-8b', 'prompt_tokens'), {
        target: server.url('/metrics'),
        instance: `127.0.0.1:${server.port}`,
        model: 'llama-3-8b',
        signal: 'prompt_tokens',
        kind: 'counter',
        value: 1_234_567 * 3,
      });
      assert.equal(get('llama-3-8b', 'requests_finished')!.value, (1000 + 200 + 3 + 1) * 3);
      assert.equal(get('llama-3-8b', 'kv_cache_usage')!.value, 0.4375);
      assert.equal(get('qwen', 'requests_waiting')!.value, 4);
      assert.equal(new Set(rows.map((r) => r.model)).size, 2);
    },
  );

  it('scrape --once prints a table by default', async () => {
    const { code, stdout } = await run(['scrape', '--once', '--target', server.url('/metrics')]);
    assert.equal(code, 0);
    assert.match(stdout, /^target\s+profile\s+model\s+signal\s+kind\s+value/);
    assert.match(stdout, /vllm\s+qwen\s+prefix_cache_hits\s+counter\s+654321/);
  });

  it('scrape --once exits non-zero with a clear message when every target failed', async () => {
    const { code, stderr } = await run(['scrape', '--once', '--target', 'http://127.0.0.1:9/metrics']);
    assert.equal(code, 1);
    assert.match(stderr, /127\.0\.0\.1:9\/metrics: down: ECONNREFUSED/);
    assert.match(stderr, /all 1 target\(s\) failed/);
  });

  it('check-config prints the effective config, or the errors naming each key, without a stack trace', async () => {
    const ok = await run(['check-config'], { CACHELENS_SCRAPE_INTERVAL: '15s' });
    assert.equal(ok.code, 0);
    assert.match(ok.stdout, /interval: 15s/);
    assert.match(ok.stdout, /url: http:\/\/127\.0\.0\.1:8000\/metrics/);
    // Values derived from other keys are resolved in config and shown: 2 × and the 6 h floor of 4 × interval.
    assert.match(ok.stdout, /max_wait: 30s/);
    assert.match(ok.stdout, /lookback: 6h/);
    assert.match(ok.stdout, /facts_cache_bytes: 32MiB/);
    assert.match(ok.stdout, /path: (?:\.\/)?cachelens-spool\.db/);
    const dir = mkdtempSync(join(tmpdir(), 'cachelens-cli-'));
    writeFileSync(
      join(dir, 'bad.yaml'),
      'scrape:\n  interval: 5 sec\n  bearer_token: topsecret\nstorage:\n  raw_retension: 1h\n',
    );
    const bad = await run(['check-config', '--config', join(dir, 'bad.yaml')]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /scrape\.interval: "5 sec" is not a duration like 5s or 1m/);
    assert.match(bad.stderr, /storage\.raw_retension: unknown key; did you mean storage\.raw_retention\?/);
    assert.doesNotMatch(bad.stderr, /at .*\.ts:\d+/);
  });

  it('check-config never prints secrets', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cachelens-cli-'));
    writeFileSync(
      join(dir, 'c.yaml'),
      'scrape:\n  bearer_token: topsecret\n  targets:\n    - url: http://a:1/metrics\n      basic_auth: {username: ' +
        'u, password: hunter2}\n',
    );
    const { code, stdout } = await run(['check-config', '--config', join(dir, 'c.yaml')]);
    assert.equal(code, 0);
    assert.doesNotMatch(stdout, /topsecret|hunter2/);
    assert.match(stdout, /\[redacted\]/);
  });

  it('migrate applies the schema and is a no-op the second time', async () => {
    const db = join(mkdtempSync(join(tmpdir(), 'cachelens-cli-')), 'm.db');
    const first = (await run(['migrate', '--db', db])).stdout;
    for (const m of listMigrations())
      assert.match(first, new RegExp(`applied ${String(m.version).padStart(3, '0')}_${m.name}`));
    assert.match(
      (await run(['migrate', '--db', db])).stdout,
      new RegExp(`up to date \\(version ${listMigrations().length}\\)`),
    );
  });

  it('an unknown command gets usage, not a stack trace', async () => {
    const { code, stderr } = await run(['frobnicate']);
    assert.equal(code, 2);
    assert.match(stderr, /unknown command "frobnicate"/);
  });
});
