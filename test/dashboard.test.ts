// The provisioned Grafana dashboard read behind a real Prometheus: deploy/prometheus.yml's jobs pointed
// at the simulated fleet and a running daemon, then every panel expression queried through Prometheus'
// HTTP API with the template variables set, after causing the events some panels need.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { status as GrpcStatus } from '@grpc/grpc-js';
import { parse as parseYaml, stringify as toYaml } from 'yaml';
import { Daemon } from '../src/cli/daemon.ts';
import { buildConfig } from '../src/config/config.ts';
import { FleetServer } from '../src/demo/fleetServer.ts';
import { demoScenario, Fleet } from '../src/demo/fleetSim.ts';
import { decodeProtobuf, encodeRequest } from '../src/otlp/decode.ts';
import { makeRequest } from './support/otlpRequests.ts';
import { OtlpSink } from './support/otlpSink.ts';
import { waitFor } from './support/pipelineHarness.ts';
import { freePort } from './support/ports.ts';
import { memoryLogger } from './support/silentLogger.ts';
import { toolSkip } from './support/systemTool.ts';

const NO_PROMETHEUS = toolSkip('prometheus', ['--version'], 'prometheus');
const ROOT = new URL('../', import.meta.url);
const dashboard = JSON.parse(readFileSync(new URL('deploy/grafana/dashboards/cachelens.json', ROOT), 'utf8')) as {
  panels: Array<{ type: string; title: string; targets?: Array<{ expr: string; legendFormat?: string }> }>;
  templating: { list: Array<{ name: string; query: { query: string }; allValue?: string }> };
};

interface PromResult {
  metric: Record<string, string>;
  value: [number, string];
}

describe('the Grafana dashboard behind a real Prometheus', { skip: NO_PROMETHEUS, timeout: 180_000 }, () => {
  const sink = new OtlpSink();
  let fleet: FleetServer;
  let daemon: Daemon;
  let prom: ChildProcess;
  let promUrl = '';
  let promLog = '';
  let otlpHttp = '';
  const model = 'meta-llama/Llama-3.1-8B-Instruct';

  const query = async (q: string): Promise<PromResult[]> => {
    const res = await fetch(`${promUrl}/api/v1/query?query=${encodeURIComponent(q)}`);
    const body = (await res.json()) as { status: string; error?: string; data: { result: PromResult[] } };
    assert.equal(body.status, 'success', `${q}: ${body.error}`);
    return body.data.result;
  };
  const withVars = (expr: string, target: string, m: string) =>
    expr.replaceAll('$target', target).replaceAll('$model', m);

  before(async () => {
    await sink.start();
    // Like the Collector: a request holding one span it cannot take is refused whole.
    sink.rejectIf = (req) =>
      req.resourceSpans.some((rs) => rs.scopeSpans.some((ss) => ss.spans.some((s) => s.name === 'poison')))
        ? { code: GrpcStatus.INVALID_ARGUMENT, message: 'invalid span' }
        : undefined;
    // A 24 s scenario: the burst on Llama runs from 7 s to 13 s.
    fleet = new FleetServer(new Fleet(demoScenario(24_000), Date.now(), 42), { host: '127.0.0.1', basePort: 0 });
    await fleet.start();
    const dir = mkdtempSync(join(tmpdir(), 'cachelens-dash-'));
    const [grpcPort, httpPort, telemetryPort, deadPort, promPort] = [
      await freePort(),
      await freePort(),
      await freePort(),
      await freePort(),
      await freePort(),
    ];
    const { config } = buildConfig(
      {
        storage: { path: join(dir, 'store.db') },
        scrape: {
          interval: '1s',
          timeout: '800ms',
          // Named as deploy/cachelens/cachelens-demo.yaml names them, plus a server that is down.
          targets: [
            ...fleet.urls.map((u) => ({ url: u.url, labels: { instance: u.instance } })),
            { url: `http://127.0.0.1:${deadPort}/metrics`, labels: { instance: 'vllm-dead' } },
          ],
        },
        receivers: { grpc: { endpoint: `127.0.0.1:${grpcPort}` }, http: { endpoint: `127.0.0.1:${httpPort}` } },
        telemetry: { endpoint: `127.0.0.1:${telemetryPort}` },
        exporter: { endpoint: sink.endpoint, retry_initial_interval: '100ms' },
        enrich: { max_wait: '2s' },
      },
      {},
    );
    daemon = new Daemon(config, memoryLogger().log);
    await daemon.start();
    otlpHttp = `http://127.0.0.1:${httpPort}/v1/traces`;

    // deploy/prometheus.yml with its jobs pointed here: cachelens at the daemon, the demo fleet at the
    // simulated fleet (its labels kept, in order); jobs for services not running here are left out.
    const deployed = parseYaml(readFileSync(new URL('deploy/prometheus.yml', ROOT), 'utf8')) as {
      global: Record<string, unknown>;
      scrape_configs: Array<{
        job_name: string;
        static_configs: Array<{ targets: string[]; labels?: Record<string, string> }>;
      }>;
    };
    const jobs = deployed.scrape_configs.filter((j) => j.job_name === 'cachelens' || j.job_name === 'vllm-demo-fleet');
    jobs.find((j) => j.job_name === 'cachelens')!.static_configs = [{ targets: [`127.0.0.1:${telemetryPort}`] }];
    const demoJob = jobs.find((j) => j.job_name === 'vllm-demo-fleet')!;
    demoJob.static_configs = demoJob.static_configs.map((c, i) => ({
      ...c,
      targets: [new URL(fleet.urls[i]!.url).host],
    }));
    assert.deepEqual(
      demoJob.static_configs.map((c) => c.labels?.target),
      fleet.urls.map((u) => u.instance),
      'the deploy config names the fleet servers as cachelens does',
    );
    const promConfig = join(dir, 'prometheus.yml');
    writeFileSync(
      promConfig,
      toYaml({
        global: { ...deployed.global, scrape_interval: '1s', evaluation_interval: '1s' },
        scrape_configs: jobs,
      }),
    );
    promUrl = `http://127.0.0.1:${promPort}`;
    prom = spawn(
      'prometheus',
      [
        `--config.file=${promConfig}`,
        `--storage.tsdb.path=${join(dir, 'tsdb')}`,
        `--web.listen-address=127.0.0.1:${promPort}`,
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    prom.stderr!.on('data', (d) => (promLog = (promLog + d).slice(-4000)));
    await waitFor(
      () => prom.exitCode === null && promLog.includes('Server is ready to receive web requests'),
      `Prometheus ready (${promLog.slice(-300)})`,
      30_000,
    );
    // The scenario's clock starts once Prometheus scrapes, so Prometheus sees the burst's counters rise.
    fleet.run(`http://127.0.0.1:${grpcPort}`);
  });

  after(async () => {
    prom?.kill('SIGTERM');
    await daemon?.shutdown();
    await fleet?.close();
    await sink.stop();
  });

  it(
    'every expression runs, names only metrics and labels ' + 'that exist, and legends name servers as cachelens does',
    async () => {
      // Prometheus has seen every counter at 0 first (known label values start at 0), so the first
      // event of each kind shows in rate() and increase().
      for (let i = 0; i < 100; i++) {
        const up = await query(
          'up{job="cachelens"} == 1 and on() count(cachelens_receiver_refused_requests_total) > 0',
        );
        if (up.length) break;
        await new Promise((r) => setTimeout(r, 200));
      }
      await new Promise((r) => setTimeout(r, 1500));
      // The events some panels need: a refused request, a span rejected for a bad parent id, a span
      // downstream refuses for good, a span whose server is down (incomplete window), and the burst.
      assert.equal(
        (
          await fetch(otlpHttp, {
            method: 'POST',
            headers: { 'content-type': 'application/x-protobuf' },
            body: Buffer.from([0xff, 0xff, 0xff]),
          })
        ).status,
        400,
      );
      const bad = decodeProtobuf(makeRequest(3).body);
      bad.resourceSpans[0]!.scopeSpans[0]!.spans[0]!.parentSpanId = Buffer.from([1, 2, 3]);
      assert.equal(
        (
          await fetch(otlpHttp, {
            method: 'POST',
            headers: { 'content-type': 'application/x-protobuf' },
            body: Buffer.from(encodeRequest(bad)),
          })
        ).status,
        200,
      );
      assert.equal(
        (
          await fetch(otlpHttp, {
            method: 'POST',
            headers: { 'content-type': 'application/x-protobuf' },
            body: Buffer.from(makeRequest(2, { name: 'poison' }).body),
          })
        ).status,
        200,
      );
      assert.equal(
        (
          await fetch(otlpHttp, {
            method: 'POST',
            headers: { 'content-type': 'application/x-protobuf' },
            body: Buffer.from(
              makeRequest(1, { name: 'llm_request', resource: { 'service.instance.id': 'vllm-dead' } }).body,
            ),
          })
        ).status,
        200,
      );

      // Request spans with vLLM's TTFT, matched to a live server, for the latency panel.
      assert.equal(
        (
          await fetch(otlpHttp, {
            method: 'POST',
            headers: { 'content-type': 'application/x-protobuf' },
            body: Buffer.from(
              makeRequest(5, {
                name: 'llm_request',
                resource: { 'service.instance.id': 'vllm-0' },
                more: (i) => ({
                  'gen_ai.latency.time_to_first_token': 0.1 * (i + 1),
                  'gen_ai.usage.prompt_tokens': 100,
                }),
              }).body,
            ),
          })
        ).status,
        200,
      );

      // Past the burst, with rate() windows of several scrapes.
      await waitFor(() => Date.now() - fleet.fleet.startMs > 15_000, 'the burst to pass', 30_000);
      const eventQueries = {
        'refused requests': 'sum(increase(cachelens_receiver_refused_requests_total{reason="invalid"}[5m]))',
        'rejected spans': 'sum(increase(cachelens_receiver_rejected_spans_total[5m]))',
        'dropped spans': 'sum(increase(cachelens_exporter_dropped_spans_total[5m]))',
        'incomplete windows': 'sum(increase(cachelens_enrich_incomplete_windows_total[5m]))',
        'request TTFT': 'sum(cachelens_request_ttft_seconds_count)',
        preemptions: 'sum(increase(vllm:num_preemptions_total{target="vllm-0"}[5m]))',
      };
      for (const [what, q] of Object.entries(eventQueries)) {
        let v = 0;
        for (let i = 0; i < 40 && v <= 0; i++) {
          v = Number((await query(q))[0]?.value[1] ?? 0);
          if (v <= 0) await new Promise((r) => setTimeout(r, 500));
        }
        assert.ok(v > 0, `${what}: ${q} = ${v}`);
      }

      // The template variables.
      const vars = Object.fromEntries(dashboard.templating.list.map((v) => [v.name, v]));
      assert.deepEqual(Object.keys(vars).sort(), ['model', 'target']);
      const targetValues = await fetch(`${promUrl}/api/v1/label/target/values?match[]=cachelens_target_up`).then(
        (r) => r.json() as Promise<{ data: string[] }>,
      );
      assert.deepEqual(targetValues.data.sort(), ['vllm-0', 'vllm-1', 'vllm-2', 'vllm-dead'], vars.target!.query.query);
      const modelValues = await fetch(
        `${promUrl}/api/v1/label/model_name/values?match[]=` +
          `${encodeURIComponent('vllm:kv_cache_usage_perc{target=~"vllm-0"}')}`,
      ).then((r) => r.json() as Promise<{ data: string[] }>);
      assert.deepEqual(modelValues.data, [model], vars.model!.query.query);

      const graphs = dashboard.panels.filter((p) => p.type !== 'row');
      let checked = 0;
      for (const p of graphs) {
        for (const t of p.targets ?? []) {
          for (const [target, m] of [
            ['.*', '.*'],
            ['vllm-0', model.replace(/[.]/g, '\\\\.')],
          ] as const) {
            const expr = withVars(t.expr, target, m);
            const result = await query(expr);
            // Every metric the expression names exists, with every label it selects or groups by.
            for (const name of new Set(
              [...expr.matchAll(/\b((?:cachelens_|vllm:|process_)[a-z_:]+)/g)].map((x) => x[1]!),
            )) {
              const labels = new Set([...expr.matchAll(/\b([a-z_]+)\s*(?:=~|!=|=)\s*"/g)].map((x) => x[1]!));
              for (const by of expr.matchAll(/\bby\s*\(([^)]*)\)/g))
                for (const l of by[1]!.split(',')) labels.add(l.trim());
              for (const l of t.legendFormat?.matchAll(/\{\{\s*([a-z_]+)\s*\}\}/g) ?? []) labels.add(l[1]!);
              labels.delete('le');
              const series = await query(`count by (__name__) ({__name__="${name}"})`);
              assert.ok(series.length > 0, `${p.title}: ${name} has no series`);
              for (const l of labels) {
                if (
                  l === 'job' ||
                  (l === 'reason' && !name.includes('refused')) ||
                  (l === 'transport' && !name.includes('receiver')) ||
                  (l === 'match' && !name.includes('enriched'))
                )
                  continue;
                const carrying = await query(`count({__name__="${name}", ${l}!=""})`);
                assert.ok(carrying.length > 0, `${p.title}: no ${name} series carries the label ${l}`);
              }
            }
            // With the variables set to one server and one model, fleet panels show that server only,
            // named as cachelens names it.
            if (target === 'vllm-0' && /target=~/.test(t.expr)) {
              assert.ok(result.length > 0, `${p.title}: no data for target vllm-0 (${expr})`);
              for (const r of result)
                if ('target' in r.metric)
                  assert.equal(r.metric.target, 'vllm-0', `${p.title}: ${JSON.stringify(r.metric)}`);
            }
            checked++;
          }
          // Legends name the server by `target`, never by Prometheus' `instance` (host:port).
          assert.doesNotMatch(
            t.legendFormat ?? '',
            /\{\{\s*instance\s*\}\}/,
            `${p.title}: legend names the scrape address`,
          );
        }
      }
      assert.ok(checked >= 2 * 20, `${checked} expressions checked`);
    },
  );
});
