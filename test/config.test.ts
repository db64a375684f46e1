import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { buildConfig, ConfigError, loadConfig } from '../src/config/config.ts';
import { parseDurationMs } from '../src/config/units.ts';
import { checkEnrich } from '../src/config/sections/enrich.ts';
import { getHeapStatistics } from 'node:v8';

const problems = (raw: unknown, env: NodeJS.ProcessEnv = {}): string[] => {
  try {
    buildConfig(raw, env);
    return [];
  } catch (err) {
    assert.ok(err instanceof ConfigError);
    return err.problems;
  }
};

describe('config', () => {
  it('every key has a default: no file scrapes vLLM on 127.0.0.1:8000', () => {
    const { config } = buildConfig({}, {});
    assert.equal(config.scrape.targets[0]!.url, 'http://127.0.0.1:8000/metrics');
    assert.equal(config.storage.path, './cachelens.db');
    assert.equal(config.scrape.interval, 5000);
    assert.equal(config.scrape.timeout, 4000);
    assert.equal(config.scrape.max_body_bytes, 16 * 1024 * 1024);
    assert.equal(config.storage.raw_retention, 48 * 3600_000);
    assert.equal(config.storage.rollup_retention, 400 * 86_400_000);
    assert.deepEqual(config.scrape.file_sd, []);
  });
  it('names the key and the fault', () => {
    assert.deepEqual(problems({ scrape: { interval: '5 sec' } }), [
      'scrape.interval: "5 sec" is not a duration like 5s or 1m',
    ]);
  });
  it('a facts cache past a quarter of the heap limit is refused at start, naming the limit', () => {
    const heapLimit = getHeapStatistics().heap_size_limit;
    const [problem] = problems({ enrich: { facts_cache_bytes: String(Math.ceil(heapLimit / 4) + 1024) } });
    assert.match(problem ?? '', /^enrich\.facts_cache_bytes: .* quarter of this process's heap limit/);
    assert.deepEqual(problems({ enrich: { facts_cache_bytes: String(Math.floor(heapLimit / 4)) } }), []);
    assert.deepEqual(checkEnrich(buildConfig({}, {}).config.enrich, 1024 ** 3), [], 'the default fits a 1 GiB heap');
  });
  it('an unknown key is an error with the nearest valid name', () => {
    assert.deepEqual(problems({ scrape: { intervl: '5s' } }), [
      'scrape.intervl: unknown key; did you mean scrape.interval?',
    ]);
    assert.match(
      problems({ scrape: { targets: [{ url: 'http://a/metrics', lables: {} }] } })[0]!,
      /scrape\.targets\[0\]\.lables: unknown key; did you mean scrape\.targets\[0\]\.labels\?/,
    );
  });
  it('map keys follow what they name: label names, attribute keys (service.name), header names (x-api-key)', () => {
    const { config } = buildConfig(
      {
        scrape: {
          targets: [
            {
              url: 'http://a/metrics',
              labels: { instance: 'a' },
              match: { 'service.name': 'vllm', 'k8s.pod.name': 'p' },
            },
          ],
        },
        exporter: { headers: { 'x-api-key': 's3cret' } },
      },
      {},
    );
    assert.deepEqual(config.scrape.targets[0]!.match, { 'service.name': 'vllm', 'k8s.pod.name': 'p' });
    assert.deepEqual(config.exporter.headers, { 'x-api-key': 's3cret' });
    assert.deepEqual(
      problems({ scrape: { targets: [{ url: 'http://a/metrics', labels: { 'service.name': 'x' } }] } }),
      ['scrape.targets[0].labels.service.name: is not a valid label name'],
    );
    assert.deepEqual(problems({ exporter: { headers: { 'bad header': 'x' } } }), [
      'exporter.headers.bad header: is not a valid header name',
    ]);
  });
  it('the timeout must be shorter than the interval', () => {
    assert.match(
      problems({ scrape: { interval: '5s', timeout: '5s' } })[0]!,
      /scrape\.timeout: .* must be shorter than scrape\.interval/,
    );
  });
  it('rejects a target URL that is not http(s)', () => {
    assert.match(
      problems({ scrape: { targets: [{ url: 'ftp://x/metrics' }] } })[0]!,
      /scrape\.targets\[0\]\.url: scheme ftp: is not http or https/,
    );
  });
  it('environment overrides the common keys', () => {
    const { config, envApplied } = buildConfig(
      { scrape: { interval: '10s' } },
      {
        CACHELENS_SCRAPE_INTERVAL: '15s',
        CACHELENS_STORAGE_PATH: '/tmp/x.db',
        CACHELENS_SCRAPE_TARGETS: 'http://a:1/metrics,http://b:2/metrics',
      },
    );
    assert.equal(config.scrape.interval, 15000);
    assert.equal(config.storage.path, '/tmp/x.db');
    assert.deepEqual(
      config.scrape.targets.map((t) => t.url),
      ['http://a:1/metrics', 'http://b:2/metrics'],
    );
    assert.equal(envApplied.length, 3);
  });
  it('reads YAML from --config, and says when the file is not YAML', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cachelens-config-'));
    writeFileSync(
      join(dir, 'ok.yaml'),
      'storage:\n  path: /tmp/a.db\nscrape:\n  targets:\n    - url: http://10.0.0.7:8000/metrics\n      labels: ' +
        '{model_name: llama}\n',
    );
    const { config } = loadConfig(join(dir, 'ok.yaml'), {});
    assert.deepEqual(config.scrape.targets[0]!.labels, { model_name: 'llama' });
    writeFileSync(join(dir, 'bad.yaml'), 'scrape: [unclosed\n');
    assert.throws(() => loadConfig(join(dir, 'bad.yaml'), {}), /is not valid YAML/);
  });
  it('parses compound durations', () => {
    assert.equal(parseDurationMs('1m30s'), 90_000);
    assert.equal(parseDurationMs('5 sec'), undefined);
  });
});

describe('the default spool path', () => {
  it('follows the store file name, so two daemons with stores in one folder never share a spool', () => {
    const spoolOf = (path: string) => buildConfig({ storage: { path } }, {}).config.spool.path;
    assert.equal(spoolOf('/data/cachelens.db'), '/data/cachelens-spool.db', 'the default store keeps its spool name');
    assert.equal(spoolOf('/data/ha-a.db'), '/data/ha-a-spool.db');
    assert.notEqual(spoolOf('/data/ha-a.db'), spoolOf('/data/ha-b.db'));
    assert.equal(spoolOf(':memory:'), ':memory:');
    assert.equal(
      buildConfig({ storage: { path: '/data/a.db' }, spool: { path: '/q/s.db' } }, {}).config.spool.path,
      '/q/s.db',
    );
  });
});
