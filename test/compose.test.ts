// docker-compose.yml cannot run here (no Docker daemon, no GPU), so this checks what would break it:
// the YAML, every mounted file, pinned images, and that ports and endpoints agree across services.
import assert from 'node:assert/strict';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Registry } from 'prom-client';
import { parse as parseYaml } from 'yaml';
import { loadConfig, type Config } from '../src/config/config.ts';
import { demoModelState, renderVllmExposition } from '../src/demo/vllmExposition.ts';
import { registerScrapeMetrics } from '../src/scrape/metrics.ts';
import { registerProcessMetrics } from '../src/telemetry/telemetryServer.ts';
import { PipelineMetrics, registerSpoolMetrics } from '../src/pipeline/metrics.ts';
import { IMAGE_ENV, IMAGE_NODE_FLAGS } from '../bench/processes.ts';

const ROOT = new URL('..', import.meta.url).pathname;
const read = (p: string) => readFileSync(join(ROOT, p), 'utf8');

interface Service {
  image?: string;
  build?: unknown;
  profiles?: string[];
  command?: string[];
  environment?: Record<string, string>;
  ports?: string[];
  expose?: string[];
  volumes?: string[];
  depends_on?: string[];
  networks?: { default?: { aliases?: string[] } };
}
const compose = parseYaml(read('docker-compose.yml'), { merge: true }) as {
  services: Record<string, Service>;
  volumes: Record<string, unknown>;
};
const services = compose.services;

/** host:port of a URL or a bare endpoint. */
function hostPort(endpoint: string): { host: string; port: number } {
  const u = new URL(endpoint.includes('://') ? endpoint : `tcp://${endpoint}`);
  return { host: u.hostname, port: Number(u.port) };
}
const flag = (cmd: string[] | undefined, name: string): string | undefined => {
  const i = cmd?.indexOf(name) ?? -1;
  return i >= 0 ? cmd![i + 1] : undefined;
};
/** A bind mount's host path, when the mount names the container path. */
const mountOf = (svc: Service, containerPath: string): string => {
  const m = svc.volumes?.find((v) => v.split(':')[1] === containerPath);
  assert.ok(m, `a mount at ${containerPath}`);
  return m.split(':')[0]!;
};
/** Services that answer to a hostname: their name plus network aliases, in each profile. */
const hostnamesIn = (profile: string): Set<string> =>
  new Set(
    Object.entries(services)
      .filter(([, s]) => !s.profiles || s.profiles.includes(profile))
      .flatMap(([name, s]) => [name, ...(s.networks?.default?.aliases ?? [])]),
  );

const cachelensFor: Record<string, string> = { gpu: 'cachelens', demo: 'cachelens-demo' };
const configOf = (svcName: string): { config: Config; file: string } => {
  const svc = services[svcName]!;
  const inContainer = flag(svc.command, '--config')!;
  const file = mountOf(svc, inContainer);
  return { config: loadConfig(join(ROOT, file), {}).config, file };
};

describe('docker-compose.yml', () => {
  it('parses, pins every image, and mounts only files that exist', () => {
    assert.ok(Object.keys(services).length >= 8);
    for (const [name, s] of Object.entries(services)) {
      assert.ok(s.image, `${name}: has an image`);
      const tag = s.image.split(':')[1];
      assert.ok(tag && tag !== 'latest' && /\d/.test(tag), `${name}: image ${s.image} is pinned to a version`);
      if (s.build) assert.ok(existsSync(join(ROOT, String(s.build), 'Dockerfile')), `${name}: Dockerfile exists`);
      for (const v of s.volumes ?? []) {
        const src = v.split(':')[0]!;
        if (src.startsWith('./')) assert.ok(existsSync(join(ROOT, src)), `${name}: mounted ${src} exists`);
        else assert.ok(src in compose.volumes, `${name}: named volume ${src} is declared`);
      }
    }
    // The Dockerfile copies what the CLI needs at run time.
    const dockerfile = read('Dockerfile');
    for (const p of ['bin', 'src', 'migrations', 'package-lock.json', 'tsconfig.build.json', 'dist'])
      assert.match(dockerfile, new RegExp(`COPY .*\\b${p.replace('.', '\\.')}\\b`), `Dockerfile copies ${p}`);
    // The image runs the compiled dist/, built by npm ci's prepare script, without dev dependencies.
    assert.match(dockerfile, /RUN npm ci[^\n]*&& npm prune --omit=dev/);
    assert.match(dockerfile, /COPY --from=build \/app\/dist dist/);
    // The benchmarks run the daemon with the image's Node flags, so their figures are the image's.
    const entry = /^ENTRYPOINT (\[.*\])$/m.exec(dockerfile);
    assert.ok(entry, 'Dockerfile has an exec-form ENTRYPOINT');
    assert.deepEqual(JSON.parse(entry[1]!), ['node', ...IMAGE_NODE_FLAGS, 'bin/cachelens.js']);
    assert.match(dockerfile, /^ENV MALLOC_ARENA_MAX=2$/m);
    // The benches and the reliability harness run the daemon with the image's environment too.
    for (const [k, v] of Object.entries(IMAGE_ENV)) assert.match(dockerfile, new RegExp(`^ENV ${k}=${v}$`, 'm'));
  });

  it(
    'runs vLLM only in the gpu profile and the simulated ' + 'fleet only in the demo profile, each with one cachelens',
    () => {
      assert.deepEqual(services.vllm!.profiles, ['gpu']);
      assert.deepEqual(services.fleet!.profiles, ['demo']);
      for (const [profile, name] of Object.entries(cachelensFor)) {
        assert.deepEqual(services[name]!.profiles, [profile]);
        assert.ok(hostnamesIn(profile).has('cachelens'), `${profile}: something answers to "cachelens"`);
      }
      for (const shared of ['otel-collector', 'jaeger', 'prometheus', 'grafana'])
        assert.equal(services[shared]!.profiles, undefined, `${shared} runs in both profiles`);
      // Host ports are published once per profile.
      for (const profile of ['gpu', 'demo']) {
        const published = Object.values(services)
          .filter((s) => !s.profiles || s.profiles.includes(profile))
          .flatMap((s) => (s.ports ?? []).map((p) => p.split(':')[0]));
        assert.equal(
          new Set(published).size,
          published.length,
          `${profile}: no host port published twice (${published.join(', ')})`,
        );
      }
    },
  );

  it('vLLM sends traces to cachelens, which scrapes vLLM, matches its spans, and forwards to the Collector', () => {
    const vllm = services.vllm!;
    assert.ok(vllm.command!.includes('--enable-prefix-caching'));
    assert.ok(vllm.environment!.OTEL_SERVICE_NAME, 'vLLM sets OTEL_SERVICE_NAME (it sets no service.name itself)');
    const { config } = configOf('cachelens');
    const traces = hostPort(flag(vllm.command, '--otlp-traces-endpoint')!);
    assert.equal(traces.host, 'cachelens');
    assert.equal(traces.port, hostPort(config.receivers.grpc.endpoint).port, 'vLLM exports to the gRPC receiver port');
    assert.equal(
      hostPort(config.receivers.grpc.endpoint).host,
      '0.0.0.0',
      'the receiver listens beyond loopback inside the container',
    );
    const target = config.scrape.targets.map((t) => hostPort(t.url));
    assert.deepEqual(target, [{ host: 'vllm', port: Number(flag(vllm.command, '--port')) }]);
    assert.deepEqual(
      config.scrape.targets[0]!.match,
      { 'service.name': vllm.environment!.OTEL_SERVICE_NAME },
      'spans match the target by the service name vLLM is given',
    );
  });

  it('the simulated fleet serves the ports cachelens scrapes and sends its spans to cachelens', () => {
    const fleet = services.fleet!;
    const { config } = configOf('cachelens-demo');
    const listen = hostPort(flag(fleet.command, '--listen')!);
    const ports = [listen.port, listen.port + 1, listen.port + 2];
    assert.deepEqual(
      config.scrape.targets.map((t) => hostPort(t.url)),
      ports.map((port) => ({ host: 'fleet', port })),
    );
    assert.deepEqual(fleet.expose?.map(Number), ports);
    // The fleet's spans name service.instance.id vllm-0..2 (src/demo/fleetServer.ts): the targets' instance labels.
    assert.deepEqual(
      config.scrape.targets.map((t) => t.labels.instance),
      ['vllm-0', 'vllm-1', 'vllm-2'],
    );
    const otlp = hostPort(flag(fleet.command, '--otlp')!);
    assert.equal(otlp.host, 'cachelens');
    assert.equal(otlp.port, hostPort(config.receivers.grpc.endpoint).port);
  });

  it('cachelens → Collector → Jaeger, and Prometheus and Grafana point at the right ports', () => {
    const collector = parseYaml(read(mountOf(services['otel-collector']!, '/etc/otelcol/config.yaml'))) as {
      receivers: { otlp: { protocols: { grpc: { endpoint: string } } } };
      exporters: Record<string, { endpoint: string }>;
      service: {
        pipelines: { traces: { receivers: string[]; exporters: string[] } };
        telemetry: { metrics: { readers: Array<{ pull: { exporter: { prometheus: { port: number } } } }> } };
      };
    };
    assert.deepEqual(services['otel-collector']!.command, ['--config=/etc/otelcol/config.yaml']);
    const collectorGrpc = hostPort(collector.receivers.otlp.protocols.grpc.endpoint).port;
    for (const name of Object.values(cachelensFor)) {
      const { config, file } = configOf(name);
      const exp = hostPort(config.exporter.endpoint!);
      assert.deepEqual(
        exp,
        { host: 'otel-collector', port: collectorGrpc },
        `${file}: exporter.endpoint is the Collector's OTLP/gRPC receiver`,
      );
      assert.equal(config.exporter.insecure, true, `${file}: plain-text gRPC inside the compose network`);
      assert.equal(hostPort(config.telemetry.endpoint).port, 9464);
      assert.ok(
        services[name]!.ports!.includes(
          `${hostPort(config.receivers.grpc.endpoint).port}:${hostPort(config.receivers.grpc.endpoint).port}`,
        ),
      );
      assert.equal(
        config.storage.path.startsWith('/var/lib/cachelens/'),
        true,
        `${file}: the DB lives on the cachelens-data volume`,
      );
      assert.ok(services[name]!.volumes!.some((v) => v.startsWith('cachelens-data:/var/lib/cachelens')));
    }
    const traces = collector.service.pipelines.traces;
    for (const e of traces.exporters) {
      const { host, port } = hostPort(collector.exporters[e]!.endpoint);
      assert.equal(host, 'jaeger');
      assert.equal(port, 4317, 'Jaeger v2 takes OTLP/gRPC on 4317');
    }
    assert.ok(traces.receivers.includes('otlp'));

    const prom = parseYaml(read(mountOf(services.prometheus!, '/etc/prometheus/prometheus.yml'))) as {
      scrape_configs: Array<{ job_name: string; static_configs: Array<{ targets: string[] }> }>;
    };
    const job = (name: string) =>
      prom.scrape_configs
        .find((j) => j.job_name === name)!
        .static_configs.flatMap((c) => c.targets)
        .map((t) => hostPort(t));
    assert.deepEqual(job('cachelens'), [
      { host: 'cachelens', port: hostPort(configOf('cachelens').config.telemetry.endpoint).port },
    ]);
    assert.deepEqual(
      job('vllm'),
      configOf('cachelens').config.scrape.targets.map((t) => hostPort(t.url)),
      'Prometheus scrapes the vLLM cachelens scrapes',
    );
    assert.deepEqual(
      job('vllm-demo-fleet'),
      configOf('cachelens-demo').config.scrape.targets.map((t) => hostPort(t.url)),
    );
    assert.deepEqual(job('otel-collector'), [
      { host: 'otel-collector', port: collector.service.telemetry.metrics.readers[0]!.pull.exporter.prometheus.port },
    ]);
    assert.equal(
      flag(
        services.prometheus!.command?.flatMap((c) => c.split('=')),
        '--web.listen-address',
      ),
      ':9090',
    );

    const grafana = services.grafana!;
    const provisioning = mountOf(grafana, '/etc/grafana/provisioning');
    const ds = parseYaml(read(join(provisioning, 'datasources/datasources.yaml'))) as {
      datasources: Array<{ uid: string; url: string }>;
    };
    assert.deepEqual(
      ds.datasources.map((d) => hostPort(d.url)),
      [
        { host: 'prometheus', port: 9090 },
        { host: 'jaeger', port: 16686 },
      ],
    );
    const providers = parseYaml(read(join(provisioning, 'dashboards/dashboards.yaml'))) as {
      providers: Array<{ options: { path: string } }>;
    };
    const dashDir = mountOf(grafana, providers.providers[0]!.options.path);
    assert.ok(statSync(join(ROOT, dashDir, 'cachelens.json')).isFile());
    assert.equal(
      grafana.environment!.GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH,
      `${providers.providers[0]!.options.path}/cachelens.json`,
    );

    // Every hostname any config names is a service (or alias) of each profile that uses it.
    for (const profile of ['gpu', 'demo']) {
      const names = hostnamesIn(profile);
      const { config } = configOf(cachelensFor[profile]!);
      for (const h of [
        hostPort(config.exporter.endpoint!).host,
        ...config.scrape.targets.map((t) => hostPort(t.url).host),
        'prometheus',
        'jaeger',
      ])
        assert.ok(names.has(h), `${profile}: ${h} resolves`);
    }
  });

  it('the Grafana dashboard queries only metrics that cachelens and vLLM expose', async () => {
    const dash = JSON.parse(read('deploy/grafana/dashboards/cachelens.json')) as {
      panels: Array<{ type: string; title: string; datasource?: { uid: string }; targets?: Array<{ expr: string }> }>;
    };
    const registry = new Registry();
    new PipelineMetrics(registry);
    registerProcessMetrics(registry);
    registerScrapeMetrics(registry, { targets: () => [], skippedScrapes: () => 0, failures: () => new Map() });
    registerSpoolMetrics(registry, () => undefined);
    const exposed = new Set<string>();
    for (const m of (await registry.metrics()).matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
      exposed.add(m[1]!);
      if (m[2] === 'histogram') for (const s of ['_bucket', '_sum', '_count']) exposed.add(m[1]! + s);
    }
    for (const m of renderVllmExposition([demoModelState('m')]).matchAll(/^([a-z_:]+)[{ ]/gm)) exposed.add(m[1]!);
    const queried = new Set<string>();
    const graphs = dash.panels.filter((p) => p.type !== 'row');
    assert.ok(graphs.length >= 12);
    for (const p of graphs) {
      assert.equal(p.datasource?.uid, 'prometheus', `${p.title}: uses the provisioned datasource`);
      for (const t of p.targets ?? [])
        for (const m of t.expr.matchAll(/\b((?:cachelens_|vllm:|process_)[a-z_:]+)/g)) queried.add(m[1]!);
    }
    const missing = [...queried].filter((n) => !exposed.has(n));
    assert.deepEqual(missing, [], 'every queried metric exists');
    for (const required of [
      'cachelens_receiver_accepted_spans_total',
      'cachelens_spool_spans',
      'cachelens_spans_enriched_total',
      'cachelens_target_up',
      'vllm:prefix_cache_hits_total',
      'vllm:kv_cache_usage_perc',
      'vllm:num_requests_waiting',
    ]) {
      assert.ok(queried.has(required), `the dashboard shows ${required}`);
    }
  });
});
