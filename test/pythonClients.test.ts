import assert from 'node:assert/strict';
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { decodeProtobuf, toHex } from '../src/otlp/decode.ts';
import { canonicalSpans, diffSpan } from './support/canonical.ts';
import { OtlpSink } from './support/otlpSink.ts';
import { startPipeline, waitFor, type Harness } from './support/pipelineHarness.ts';

// vLLM's exporters are Python: the request built by the real opentelemetry-proto classes and sent
// through grpcio and requests (test/python/otlp_client.py). grpcio and requests come from Debian
// (python3-grpcio, python3-requests; .ci/run installs them); opentelemetry-proto and protobuf from
// the wheels in fixtures/python, unpacked for this run.

const root = fileURLToPath(new URL('..', import.meta.url));
const script = join(root, 'test/python/otlp_client.py');

function findPython(): { python: string; env: NodeJS.ProcessEnv } | { skip: string } {
  const vendor = mkdtempSync(join(tmpdir(), 'cachelens-py-'));
  const wheels = join(root, 'fixtures/python');
  const candidates = [process.env.CACHELENS_TEST_PYTHON, '/usr/bin/python3', 'python3'].filter((p): p is string => !!p);
  const tried: string[] = [];
  for (const python of candidates) {
    const env = { ...process.env, PYTHONPATH: vendor, PYTHONDONTWRITEBYTECODE: '1' };
    try {
      for (const w of readdirSync(wheels).filter((f) => f.endsWith('.whl')))
        execFileSync(python, ['-m', 'zipfile', '-e', join(wheels, w), vendor], { stdio: 'ignore' });
    } catch {
      tried.push(`${python}: not runnable`);
      continue;
    }
    const probe = spawnSync(
      python,
      ['-c', 'import grpc, requests; from opentelemetry.proto.collector.trace.v1 import trace_service_pb2'],
      { env, encoding: 'utf8' },
    );
    if (probe.status === 0) return { python, env };
    tried.push(`${python}: ${(probe.stderr || '').trim().split('\n').at(-1)}`);
  }
  const skip =
    `no Python with grpcio and requests (apt-get install python3-grpcio python3-requests; ` +
    `.ci/run installs them): ${tried.join('; ')}`;
  if (process.env.CI === 'true') throw new Error(`CI=true and ${skip}`);
  return { skip };
}

const found = findPython();

interface ClientResult {
  code: number;
  details?: string;
  content_type?: string;
  rejected_spans?: number;
  request: string;
}

describe('vLLM Python exporters (grpcio, requests, opentelemetry-proto)', {
  skip: 'skip' in found ? found.skip : false,
}, () => {
  const sink = new OtlpSink();
  let h: Harness;

  before(async () => {
    await sink.start();
    // No fleet: spans get fleet-wide context once max_wait passes, which is enough to show they
    // were selected and enriched; the values themselves are the enrichment test's business.
    h = await startPipeline({ exporter: { endpoint: sink.endpoint, insecure: true }, enrich: { max_wait: '300ms' } });
  });
  after(async () => {
    await h?.close();
    await sink.stop();
  });

  // Asynchronous: the receivers answering the client run in this process.
  const python = (args: string[]) => {
    const { python, env } = found as { python: string; env: NodeJS.ProcessEnv };
    return promisify(execFile)(python, args, { env, encoding: 'utf8', timeout: 30_000 }).then((r) => r.stdout);
  };
  const run = async (transport: 'grpc' | 'http', compression: string, tag: string): Promise<ClientResult> => {
    const port = transport === 'grpc' ? h.pipeline.grpc!.port : h.pipeline.http!.port;
    return JSON.parse(await python([script, transport, `127.0.0.1:${port}`, compression, tag])) as ClientResult;
  };

  for (const [transport, compression] of [
    ['grpc', 'none'],
    ['grpc', 'gzip'],
    ['http', 'none'],
    ['http', 'gzip'],
    ['http', 'deflate'],
  ] as const) {
    it(`${transport} with ${compression}: accepted, forwarded field for field, request spans enriched`, async () => {
      const tag = `${transport}-${compression}`;
      const res = await run(transport, compression, tag);
      if (transport === 'grpc') assert.equal(res.code, 0, res.details);
      else {
        assert.equal(res.code, 200);
        assert.equal(res.content_type, 'application/x-protobuf');
      }
      assert.equal(res.rejected_spans, 0);

      const sent = canonicalSpans([decodeProtobuf(Buffer.from(res.request, 'base64'))]);
      assert.equal(sent.size, 4);
      await waitFor(
        () => [...sent.keys()].every((id) => canonicalSpans(sink.requests).has(id)),
        `the ${tag} spans downstream`,
      );
      const got = canonicalSpans(sink.requests);
      for (const [id, s] of sent) {
        const g = got.get(id)!;
        const added = (g.events as Array<{ name: string }>).filter((e) => e.name.startsWith('cachelens.'));
        const own = {
          ...g,
          events: (g.events as Array<{ name: string }>).filter((e) => !e.name.startsWith('cachelens.')),
        };
        assert.deepEqual(diffSpan(s, own), [], `span ${id} (${s.name as string}) changed on the way`);
        if (s.name === 'llm_request')
          assert.deepEqual(
            added.map((e) => e.name),
            ['cachelens.cache', 'cachelens.scheduler'],
          );
        else assert.equal(added.length, 0, 'the gateway span is not a request span');
      }
      // The tenant on the gateway span reaches the ledger row of its trace's request span.
      const first = decodeProtobuf(Buffer.from(res.request, 'base64')).resourceSpans[0]!.scopeSpans[0]!.spans[0]!;
      const row = h.db
        .prepare('SELECT prompt_tokens, completion_tokens FROM request_ledger WHERE trace_id = ? AND span_id = ?')
        .get(toHex(first.traceId), toHex(first.spanId));
      assert.deepEqual({ ...(row as object) }, { prompt_tokens: 800, completion_tokens: 64 });
      const tenant = h.db
        .prepare('SELECT value FROM trace_tenants WHERE trace_id = ? AND key = ?')
        .get(toHex(first.traceId), 'tenant.id') as { value: string } | undefined;
      assert.equal(tenant?.value, `team-${tag}`);
    });
  }

  it('a malformed body from the Python HTTP client gets 400 with a google.rpc.Status body', async () => {
    const code = `import requests
r = requests.post("http://127.0.0.1:${h.pipeline.http!.port}/v1/traces", data=b"\\x0a\\xff\\xff",
                  headers={"Content-Type": "application/x-protobuf"})
print(r.status_code, r.headers.get("Content-Type"), r.content.hex())`;
    const [status, type, hex] = (await python(['-c', code])).trim().split(' ');
    assert.equal(status, '400');
    assert.equal(type, 'application/x-protobuf');
    // google.rpc.Status: code 3 (INVALID_ARGUMENT) in field 1, then a message saying what is wrong.
    assert.match(hex!, /^0803/);
  });
});
