import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Daemon } from '../src/cli/daemon.ts';
import { buildConfig } from '../src/config/config.ts';
import { MetricsServer } from './support/metricsServer.ts';
import { makeRequest } from './support/otlpRequests.ts';
import { OtlpSink } from './support/otlpSink.ts';
import { waitFor } from './support/pipelineHarness.ts';
import { memoryLogger } from './support/silentLogger.ts';
import { toolSkip } from './support/systemTool.ts';
import { demoModelState, renderVllmExposition } from '../src/demo/vllmExposition.ts';

const NO_PROMTOOL = toolSkip('promtool', ['--version'], 'prometheus');

const REQUIRED = [
  'cachelens_receiver_accepted_spans_total',
  'cachelens_receiver_refused_requests_total',
  'cachelens_exporter_sent_spans_total',
  'cachelens_exporter_send_failed_spans_total',
  'cachelens_spool_spans',
  'cachelens_spool_bytes',
  'cachelens_spans_enriched_total',
  'cachelens_enrich_wait_seconds',
  'cachelens_request_ttft_seconds',
  'cachelens_cached_tokens_split_mismatch_total',
  'cachelens_target_up',
  'cachelens_scrape_duration_seconds',
  'cachelens_scrapes_skipped_total',
  'cachelens_scrape_failures_total',
  'process_cpu_seconds_total',
  'process_resident_memory_bytes',
];

describe('self-telemetry: /metrics, /healthz, /readyz', () => {
  const fleet = new MetricsServer();
  const sink = new OtlpSink();
  let daemon: Daemon;
  let base: string;
  let httpUrl: string;

  before(async () => {
    await fleet.start();
    await sink.start();
    fleet.serve('/ok', () => renderVllmExposition([demoModelState('llama')], { histograms: false }));
    fleet.route('/down', (_req, res) => {
      res.statusCode = 503;
      res.end('loading');
    });
    const { config } = buildConfig(
      {
        storage: { path: join(mkdtempSync(join(tmpdir(), 'cachelens-tel-')), 'store.db') },
        scrape: {
          interval: '1s',
          timeout: '500ms',
          targets: [
            { url: fleet.url('/ok'), labels: { instance: 'vllm-ok' } },
            { url: fleet.url('/down'), labels: { instance: 'vllm-down' } },
          ],
        },
        receivers: {
          grpc: { endpoint: '127.0.0.1:0' },
          http: { endpoint: '127.0.0.1:0' },
          bearer_token: 's3cret-token-value',
        },
        telemetry: { endpoint: '127.0.0.1:0' },
        exporter: { endpoint: sink.endpoint, retry_initial_interval: '100ms' },
        spool: { max_bytes: '256KiB', high_water_percent: 50 },
        enrich: { max_wait: '1s' },
      },
      {},
    );
    daemon = new Daemon(config, memoryLogger().log);
    await daemon.start();
    base = `http://127.0.0.1:${daemon.telemetry!.port}`;
    httpUrl = `http://127.0.0.1:${daemon.pipeline!.http!.port}/v1/traces`;
    await waitFor(
      () => daemon.scheduler!.statuses().every((s) => s.up !== undefined),
      'a scrape of each target',
      10_000,
    );
  });
  after(async () => {
    await daemon.shutdown();
    await sink.stop();
    await fleet.stop();
  });

  const post = (body: Uint8Array) =>
    fetch(httpUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/x-protobuf', authorization: 'Bearer s3cret-token-value' },
      body: Buffer.from(body),
    });

  it('serves every named metric, and promtool check metrics passes', async (t) => {
    // vLLM's TTFT on each; no prompt count, so no cached share: bucket "unknown"
    const more = (i: number) => ({ 'gen_ai.latency.time_to_first_token': i < 15 ? 0.3 : 3 });
    assert.equal((await post(makeRequest(20, { name: 'llm_request', more }).body)).status, 200);
    await waitFor(() => sink.spans().length >= 20, 'spans downstream');
    const res = await fetch(`${base}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    for (const name of REQUIRED) assert.match(text, new RegExp(`^# TYPE ${name} `, 'm'), name);
    // Prometheus gives cachelens itself `instance` and `job`: no self-metric may carry either.
    assert.deepEqual(
      text.split('\n').filter((l) => /^[a-z_]+\{[^}]*\b(?:instance|job)="/.test(l)),
      [],
    );
    assert.match(text, /^cachelens_target_up\{target="vllm-ok"\} 1$/m);
    assert.match(text, /^cachelens_target_up\{target="vllm-down"\} 0$/m);
    // The down target's failures, by reason; the other reasons are exported at 0.
    assert.match(text, /^cachelens_scrape_failures_total\{reason="(?:connect|http_status)"\} [1-9]\d*$/m);
    assert.match(text, /^cachelens_scrape_failures_total\{reason="sample_limit"\} 0$/m);
    assert.match(text, /^cachelens_receiver_accepted_spans_total\{transport="http"\} 20$/m);
    assert.match(text, /^cachelens_exporter_sent_spans_total 20$/m);
    assert.match(text, /^cachelens_spans_enriched_total\{match="fleet"\} 20$/m);
    assert.match(text, /^cachelens_enrich_wait_seconds_count 1$/m);
    // Matched fleet-wide with no model on the span: model "unknown". 15 at 0.3 s, 5 at 3 s.
    assert.match(
      text,
      /^cachelens_request_ttft_seconds_bucket\{le="0.5",model="unknown",cache_hit_bucket="unknown"\} 15$/m,
    );
    assert.match(text, /^cachelens_request_ttft_seconds_count\{model="unknown",cache_hit_bucket="unknown"\} 20$/m);
    assert.doesNotMatch(text, /s3cret-token-value/, 'no secret in /metrics');
    if (NO_PROMTOOL) return t.skip(NO_PROMTOOL);
    const check = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    assert.ok(
      !check.error,
      `promtool not found (Debian package prometheus; .ci/run installs it): ${check.error?.message}`,
    );
    assert.equal(check.status, 0, `promtool check metrics:\n${check.stdout}${check.stderr}`);
    assert.equal((check.stdout + check.stderr).trim(), '', 'no lint findings');
  });

  it('the promtool check can fail: it rejects a broken exposition', { skip: NO_PROMTOOL }, () => {
    const check = spawnSync('promtool', ['check', 'metrics'], {
      input: '# TYPE x_total counter\nx_total{a="1"} one\n',
      encoding: 'utf8',
    });
    assert.notEqual(check.status, 0);
  });

  it('/healthz is live; /readyz is ready, and says why not once the spool passes its high-water mark', async () => {
    const health = await fetch(`${base}/healthz`);
    assert.equal(health.status, 200);
    assert.deepEqual(await health.json(), { status: 'ok' });
    const ready = await fetch(`${base}/readyz`);
    assert.equal(ready.status, 200, await ready.clone().text());
    assert.deepEqual(await ready.json(), { status: 'ready' });

    // Downstream refuses (retryable): spans pile up in the spool past 50 % of its 256 KiB.
    sink.failAll = { code: 14, message: 'downstream unavailable' };
    for (let i = 0; i < 40 && daemon.pipeline!.spool.bytes <= 128 * 1024; i++)
      await post(makeRequest(50, { attrs: 10 }).body);
    assert.ok(daemon.pipeline!.spool.bytes > 128 * 1024, `spool at ${daemon.pipeline!.spool.bytes} bytes`);
    const notReady = await fetch(`${base}/readyz`);
    assert.equal(notReady.status, 503);
    const body = (await notReady.json()) as { status: string; problems: Record<string, string> };
    assert.equal(body.status, 'not ready');
    assert.deepEqual(Object.keys(body.problems), ['spool']);
    assert.match(body.problems.spool!, /above 50% of spool\.max_bytes/);
    const metrics = await (await fetch(`${base}/metrics`)).text();
    const spoolBytes = Number(/^cachelens_spool_bytes (\d+)$/m.exec(metrics)?.[1]);
    assert.equal(spoolBytes, daemon.pipeline!.spool.bytes);

    // Downstream back: the backlog drains and readiness returns by itself.
    sink.failAll = undefined;
    await waitFor(() => daemon.pipeline!.spool.bytes === 0, 'the spool drains', 15_000);
    assert.equal((await fetch(`${base}/readyz`)).status, 200);
    assert.equal((await fetch(`${base}/nope`)).status, 404);
    assert.equal((await fetch(`${base}/metrics`, { method: 'POST' })).status, 405);
  });
});
