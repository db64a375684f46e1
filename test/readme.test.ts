import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { buildConfig } from '../src/config/config.ts';
import { it } from 'node:test';
import { configTable } from '../src/config/configTable.ts';

it("the README's configuration table is the schema's: every key, type, default, env variable and doc line", () => {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  const want = configTable().split('\n');
  const start = readme.indexOf(want[0]!);
  assert.ok(start >= 0, 'the table header');
  const have = readme.slice(start).split('\n').slice(0, want.length + 1);
  // Row by row, so a failure names the key; `npm run docs:config` prints the table to paste.
  for (let i = 0; i < want.length; i++) assert.equal(have[i], want[i]);
  assert.ok(!have[want.length]!.startsWith('| `'), 'no row the schema does not have');
});

it('the span-event tables list exactly the attributes the enricher writes', () => {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  const section = readme.slice(readme.indexOf('\n## Span events'), readme.indexOf('\n## FinOps reports'));
  const documented = new Set([...section.matchAll(/^\| `(cachelens\.[a-z_.]+)` \|/gm)].map((m) => m[1]!));
  const dir = new URL('../src/correlate/', import.meta.url);
  const written = new Set<string>();
  for (const f of readdirSync(dir)) for (const m of readFileSync(new URL(f, dir), 'utf8').matchAll(/'(cachelens\.[a-z_.]+)'/g)) written.add(m[1]!);
  const events = ['cachelens.cache', 'cachelens.scheduler'];
  for (const e of events) {
    assert.ok(written.delete(e), `the enricher names event ${e}`);
    assert.ok(section.includes(`\`${e}\`:`), `the README has a table for ${e}`);
  }
  assert.deepEqual([...documented].sort(), [...written].sort());
});

it("the README's Collector snippet wires a pipeline through cachelens and back", () => {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  const blocks = [...readme.matchAll(/```yaml\n(# otel-collector config\n[\s\S]*?|# cachelens\.yaml\n[\s\S]*?)```/g)].map((m) => parseYaml(m[1]!) as Record<string, any>);
  assert.equal(blocks.length, 2);
  const [col, cl] = blocks as [Record<string, any>, Record<string, any>];
  const port = (e: string) => Number(new URL(e.includes('://') ? e : `tcp://${e}`).port);
  const { config } = buildConfig(cl, {});
  for (const [name, p] of Object.entries(col.service.pipelines) as Array<[string, { receivers: string[]; exporters: string[]; processors: string[] }]>) {
    for (const r of p.receivers) assert.ok(col.receivers[r], `${name}: receiver ${r} is defined`);
    for (const e of p.exporters) assert.ok(col.exporters[e], `${name}: exporter ${e} is defined`);
    for (const x of p.processors) assert.ok(col.processors[x] !== undefined, `${name}: processor ${x} is defined`);
  }
  const into = (col.service.pipelines['traces/to-cachelens'] as { exporters: string[] }).exporters.map((e) => col.exporters[e].endpoint as string);
  assert.deepEqual(into.map(port), [port(config.receivers.grpc.endpoint)], 'the Collector sends to the port cachelens listens on');
  const back = (col.service.pipelines['traces/enriched'] as { receivers: string[] }).receivers.map((r) => col.receivers[r].protocols.grpc.endpoint as string);
  assert.deepEqual(back.map(port), [port(config.exporter.endpoint!)], 'cachelens sends back to a receiver the Collector listens on');
  assert.notEqual(port(config.exporter.endpoint!), port(col.receivers.otlp.protocols.grpc.endpoint), 'enriched spans do not loop back into cachelens');
});
