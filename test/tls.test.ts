import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { scrapeTarget } from '../src/scrape/scrapeTarget.ts';
import { makeTarget } from '../src/scrape/target.ts';
import { Client, credentials, Metadata } from '@grpc/grpc-js';
import { makeRequest } from './support/otlpRequests.ts';
import { OtlpSink } from './support/otlpSink.ts';
import { startPipeline, type Harness } from './support/pipelineHarness.ts';

// A test CA and a server certificate for 127.0.0.1, made with openssl at test time.
function makeCerts(dir: string) {
  const sh = (args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  sh([
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    'ca.key',
    '-out',
    'ca.pem',
    '-days',
    '1',
    '-subj',
    '/CN=cachelens test CA',
  ]);
  sh(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=127.0.0.1']);
  writeFileSync(join(dir, 'ext.cnf'), 'subjectAltName=IP:127.0.0.1\n');
  sh([
    'x509',
    '-req',
    '-in',
    'server.csr',
    '-CA',
    'ca.pem',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-out',
    'server.pem',
    '-days',
    '1',
    '-extfile',
    'ext.cnf',
  ]);
}

describe('https targets', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cachelens-tls-'));
  let server: https.Server;
  let url = '';
  before(async () => {
    makeCerts(dir);
    server = https.createServer(
      { key: readFileSync(join(dir, 'server.key')), cert: readFileSync(join(dir, 'server.pem')) },
      (req, res) => {
        if (req.headers.authorization !== `Basic ${Buffer.from('scraper:pw').toString('base64')}`) {
          res.statusCode = 401;
          return res.end();
        }
        res.end('vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.5\n');
      },
    );
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `https://127.0.0.1:${(server.address() as AddressInfo).port}/metrics`;
    writeFileSync(join(dir, 'pw'), 'pw\n');
  });
  after(() => new Promise<void>((r) => server.close(() => r())));
  const opts = { timeoutMs: 2000, maxBodyBytes: 1 << 20 };

  it('verifies the server against tls.ca_file and sends basic auth from a password file', async () => {
    const r = await scrapeTarget(
      makeTarget(
        url,
        {},
        'auto',
        {
          tls: { ca_file: join(dir, 'ca.pem'), insecure_skip_verify: false },
          basic_auth: { username: 'scraper', password_file: join(dir, 'pw') },
        },
        'test',
      ),
      opts,
    );
    assert.equal(r.up, true, r.error);
    assert.equal(r.signals[0]?.value, 0.5);
  });
  it('fails with a certificate error when the CA is not trusted', async () => {
    const r = await scrapeTarget(
      makeTarget(url, {}, 'auto', { basic_auth: { username: 'scraper', password: 'pw' } }, 'test'),
      opts,
    );
    assert.equal(r.up, false);
    assert.match(r.error!, /certificate/i);
  });
  it('answers 401 become up=0 with the status', async () => {
    const r = await scrapeTarget(
      makeTarget(url, {}, 'auto', { tls: { ca_file: join(dir, 'ca.pem'), insecure_skip_verify: false } }, 'test'),
      opts,
    );
    assert.equal(r.up, false);
    assert.match(r.error!, /HTTP 401/);
  });
});

describe('OTLP receivers over TLS with a test CA', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cachelens-rtls-'));
  let h: Harness;
  let sink: OtlpSink;
  before(async () => {
    makeCerts(dir);
    sink = await new OtlpSink().start();
    h = await startPipeline({
      exporter: { endpoint: sink.endpoint },
      receivers: { tls: { cert_file: join(dir, 'server.pem'), key_file: join(dir, 'server.key') } },
    });
  });
  after(async () => {
    await h.close();
    await sink.stop();
  });

  it(
    'HTTPS and gRPC over TLS are accepted by a client trusting ' +
      'the CA; plain text and an untrusting client are not',
    async () => {
      const ca = readFileSync(join(dir, 'ca.pem'));
      const body = Buffer.from(makeRequest(3).body);
      const httpsUrl = h.httpUrl.replace('http://', 'https://');
      const post = (extra: https.RequestOptions) =>
        new Promise<number>((resolve, reject) => {
          const req = https.request(
            httpsUrl,
            { method: 'POST', headers: { 'content-type': 'application/x-protobuf' }, ...extra },
            (res) => {
              res.resume();
              resolve(res.statusCode ?? 0);
            },
          );
          req.on('error', reject);
          req.end(body);
        });
      assert.equal(await post({ ca }), 200);
      await assert.rejects(
        post({}),
        /self-signed|unable to verify|certificate/i,
        'a client without the CA refuses the server',
      );
      await assert.rejects(
        fetch(h.httpUrl, { method: 'POST', headers: { 'content-type': 'application/x-protobuf' }, body }),
        'plain HTTP to a TLS listener fails',
      );
      const grpc = (creds: ReturnType<typeof credentials.createSsl>) =>
        new Promise<number>((resolve) => {
          const c = new Client(`127.0.0.1:${h.pipeline.grpc!.port}`, creds);
          c.makeUnaryRequest(
            '/opentelemetry.proto.collector.trace.v1.TraceService/Export',
            (b: Buffer) => b,
            (b: Buffer) => b,
            body,
            new Metadata(),
            { deadline: Date.now() + 5000 },
            (err) => {
              c.close();
              resolve(err ? err.code : 0);
            },
          );
        });
      assert.equal(await grpc(credentials.createSsl(ca)), 0);
      assert.notEqual(await grpc(credentials.createInsecure()), 0);
    },
  );
});
