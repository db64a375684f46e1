import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { buildConfig } from '../src/config/config.ts';
import { it } from 'node:test';
import { renderConfigDoc } from '../src/config/writeDocs.ts';
import { newSketch } from '../src/store/sketch.ts';

const doc = (name: string) => readFileSync(new URL(`../docs/${name}`, import.meta.url), 'utf8');

it(
  "docs/configuration.md is current: its table is the schema's " +
    '(every key, type, default, env variable and doc line)',
  () => {
    const current = doc('configuration.md');
    const want = renderConfigDoc(current).split('\n');
    const have = current.split('\n');
    // Line by line, so a failure names the key; `npm run docs` rewrites the table.
    for (let i = 0; i < Math.max(want.length, have.length); i++)
      assert.equal(have[i], want[i], 'docs/configuration.md is stale: run npm run docs');
  },
);

it('the README stays a front door under 12 KB, and every relative link in it and in docs/ resolves', () => {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  assert.ok(Buffer.byteLength(readme) < 12 * 1024, `README is ${Buffer.byteLength(readme)} bytes`);
  const files: Array<[URL, string]> = [
    [new URL('../README.md', import.meta.url), readme],
    ...readdirSync(new URL('../docs/', import.meta.url))
      .filter((f) => f.endsWith('.md'))
      .map((f): [URL, string] => [new URL(`../docs/${f}`, import.meta.url), doc(f)]),
  ];
  for (const [url, text] of files) {
    for (const m of text.matchAll(/\]\(([^)#\s]+\.md)(?:#([a-z0-9-]+))?\)/g)) {
      if (/^https?:/.test(m[1]!)) continue;
      const target = new URL(m[1]!, url);
      assert.ok(existsSync(target), `${url.pathname.split('/').slice(-2).join('/')}: link to ${m[1]} resolves`);
      if (m[2]) {
        const anchors = new Set(
          [...readFileSync(target, 'utf8').matchAll(/^#+ (.+)$/gm)].map((h) =>
            h[1]!
              .toLowerCase()
              .replace(/[^a-z0-9 -]/g, '')
              .replace(/ /g, '-'),
          ),
        );
        assert.ok(anchors.has(m[2]), `${m[1]}#${m[2]} names a heading`);
      }
    }
  }
});

it('the span-event tables list exactly the attributes the enricher writes', () => {
  const section = doc('span-events.md');
  const documented = new Set([...section.matchAll(/^\| `(cachelens\.[a-z_.]+)` \|/gm)].map((m) => m[1]!));
  const dir = new URL('../src/correlate/', import.meta.url);
  const written = new Set<string>();
  for (const f of readdirSync(dir))
    for (const m of readFileSync(new URL(f, dir), 'utf8').matchAll(/'(cachelens\.[a-z_.]+)'/g)) written.add(m[1]!);
  const events = ['cachelens.cache', 'cachelens.scheduler'];
  for (const e of events) {
    assert.ok(written.delete(e), `the enricher names event ${e}`);
    assert.ok(section.includes(`\`${e}\`:`), `docs/span-events.md has a table for ${e}`);
  }
  assert.deepEqual([...documented].sort(), [...written].sort());
});

it('docs/latency.md lists exactly the fields and buckets of cachelens.latency/v1', async () => {
  const { LATENCY_FAMILIES } = await import('../src/store/latencyRollups.ts');
  const { buildLatencyReport, LATENCY_SCHEMA } = await import('../src/report/latency.ts');
  const section = doc('latency.md');
  assert.ok(section.includes(`schema: "${LATENCY_SCHEMA}"`));
  const documented = [...section.matchAll(/^\| `([a-z0-9_]+)` \| (?!`)/gm)].map((m) => m[1]!);
  const report = buildLatencyReport({
    db: '',
    fromMs: 0,
    toMs: 1,
    by: [],
    facts: [
      {
        bucketMs: 0,
        targetId: 0,
        model: 'm',
        tenant: '',
        family: 'cache_hit',
        bucket: '0-0.1',
        requests: 1,
        promptRequests: 0,
        promptTokens: 0,
        shareMeasured: 0,
        shareEstimated: 0,
        sketches: {
          ttft: newSketch(),
          queue: newSketch(),
          prefill: newSketch(),
          e2e: newSketch(),
          prefill_per_1k: newSketch(),
        },
      },
    ],
    targets: new Map(),
    nowMs: 0,
  });
  const fields = Object.keys(report.rows[0]!).filter((k) => !['key', 'family', 'bucket'].includes(k));
  assert.deepEqual(documented, fields);
  for (const [family, buckets] of Object.entries(LATENCY_FAMILIES))
    assert.ok(
      section.includes(`| \`${family}\` | ${buckets.map((b) => `\`${b}\``).join(', ')} |`),
      `docs/latency.md: the buckets of ${family}`,
    );
});

it("docs/deployment.md's Collector snippet wires a pipeline through cachelens and back", () => {
  const blocks = [
    ...doc('deployment.md').matchAll(/```yaml\n(# otel-collector config\n[\s\S]*?|# cachelens\.yaml\n[\s\S]*?)```/g),
  ].map((m) => parseYaml(m[1]!) as Record<string, any>);
  assert.equal(blocks.length, 2);
  const [col, cl] = blocks as [Record<string, any>, Record<string, any>];
  const port = (e: string) => Number(new URL(e.includes('://') ? e : `tcp://${e}`).port);
  const { config } = buildConfig(cl, {});
  for (const [name, p] of Object.entries(col.service.pipelines) as Array<
    [string, { receivers: string[]; exporters: string[]; processors: string[] }]
  >) {
    for (const r of p.receivers) assert.ok(col.receivers[r], `${name}: receiver ${r} is defined`);
    for (const e of p.exporters) assert.ok(col.exporters[e], `${name}: exporter ${e} is defined`);
    for (const x of p.processors) assert.ok(col.processors[x] !== undefined, `${name}: processor ${x} is defined`);
  }
  const into = (col.service.pipelines['traces/to-cachelens'] as { exporters: string[] }).exporters.map(
    (e) => col.exporters[e].endpoint as string,
  );
  assert.deepEqual(
    into.map(port),
    [port(config.receivers.grpc.endpoint)],
    'the Collector sends to the port cachelens listens on',
  );
  const back = (col.service.pipelines['traces/enriched'] as { receivers: string[] }).receivers.map(
    (r) => col.receivers[r].protocols.grpc.endpoint as string,
  );
  assert.deepEqual(
    back.map(port),
    [port(config.exporter.endpoint!)],
    'cachelens sends back to a receiver the Collector listens on',
  );
  assert.notEqual(
    port(config.exporter.endpoint!),
    port(col.receivers.otlp.protocols.grpc.endpoint),
    'enriched spans do not loop back into cachelens',
  );
});

it('docs/several-instances.md: every layout config is valid, and the HA pair is wired by trace id', () => {
  const blocks = (kind: string) =>
    [...doc('several-instances.md').matchAll(/```yaml\n(# [^\n]*\n[\s\S]*?)```/g)]
      .map((m) => m[1]!)
      .filter((b) => b.startsWith(kind))
      .map((b) => parseYaml(b) as Record<string, any>);
  const cachelens = blocks('# cachelens.yaml');
  assert.equal(cachelens.length, 4, 'sidecar, pool, HA pair, Prometheus source');
  const configs = cachelens.map((raw) => buildConfig(raw, {}).config);
  assert.ok(configs.some((c) => c.scrape.prometheus?.instance_labels.includes('pod')));
  const [col] = blocks('# otel-collector config') as [Record<string, any>];
  for (const [name, p] of Object.entries(col.service.pipelines) as Array<
    [string, { receivers: string[]; exporters: string[]; processors: string[] }]
  >) {
    for (const r of p.receivers) assert.ok(col.receivers[r], `${name}: receiver ${r} is defined`);
    for (const e of p.exporters) assert.ok(col.exporters[e], `${name}: exporter ${e} is defined`);
    for (const x of p.processors) assert.ok(col.processors[x] !== undefined, `${name}: processor ${x} is defined`);
  }
  const lb = col.exporters.loadbalancing;
  assert.equal(lb.routing_key, 'traceID', 'every span of a trace reaches the same cachelens');
  const ha = configs[2]!;
  const port = Number(ha.receivers.grpc.endpoint.split(':').at(-1));
  for (const h of lb.resolver.static.hostnames as string[]) assert.equal(Number(h.split(':').at(-1)), port);
});
