// The scrape client against a real HTTP server on 127.0.0.1: each Content-Encoding a target may answer with,
// the size cap before and after inflation, and bodies that are cut or cannot be decoded.
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { deflateSync, gzipSync } from 'node:zlib';
import { fetchExposition, ScrapeError } from '../src/scrape/fetchExposition.ts';
import { makeTarget } from '../src/scrape/target.ts';

const BODY = Array.from({ length: 2000 }, (_, i) => `vllm:num_requests_running{model_name="m",engine="${i}"} 1`)
  .concat('')
  .join('\n');

// 4 GiB of zeros in 4 MB: 64 members of 64 MiB each. Inflated whole, it passes Node's largest Buffer.
const member = gzipSync(Buffer.alloc(64 * 1024 * 1024));
const BOMB = Buffer.concat(Array.from({ length: 64 }, () => member));
// Inflated on the thread pool (over 256 KB compressed), as a Prometheus answer for a fleet is: random values
// that gzip cannot shrink much.
const LARGE = Array.from(
  { length: 40_000 },
  (_, i) => `vllm:prompt_tokens_total{pod="p${i}",model_name="m"} ${Math.random()}${Math.random()}`,
)
  .concat('')
  .join('\n');

type Answer = (req: http.IncomingMessage, res: http.ServerResponse) => void;
const answers: Record<string, Answer> = {
  '/plain': (_q, res) => res.end(BODY),
  '/gzip': (q, res) => {
    assert.match(String(q.headers['accept-encoding']), /gzip/);
    res.setHeader('Content-Encoding', 'gzip');
    res.end(gzipSync(BODY));
  },
  '/x-gzip': (_q, res) => {
    res.setHeader('Content-Encoding', 'x-gzip');
    res.end(gzipSync(BODY));
  },
  '/deflate': (_q, res) => {
    res.setHeader('Content-Encoding', 'deflate');
    res.end(deflateSync(BODY));
  },
  // Two gzip members read as one body (RFC 1952 §2.2), as Go's and Python's readers do.
  '/members': (_q, res) => {
    res.setHeader('Content-Encoding', 'gzip');
    const cut = 1000;
    res.end(Buffer.concat([gzipSync(BODY.slice(0, cut)), gzipSync(BODY.slice(cut))]));
  },
  '/bomb': (_q, res) => {
    res.setHeader('Content-Encoding', 'gzip');
    res.end(BOMB);
  },
  // 64 MiB of zeros in 64 KB: small enough to inflate synchronously.
  '/small-bomb': (_q, res) => {
    res.setHeader('Content-Encoding', 'gzip');
    res.end(member);
  },
  '/large-gzip': (_q, res) => {
    res.setHeader('Content-Encoding', 'gzip');
    const gz = gzipSync(LARGE);
    assert.ok(gz.length > 256 * 1024, `${gz.length} bytes compressed`);
    res.end(gz);
  },
  '/large-deflate': (_q, res) => {
    res.setHeader('Content-Encoding', 'deflate');
    res.end(deflateSync(LARGE));
  },
  '/large-garbage': (_q, res) => {
    res.setHeader('Content-Encoding', 'gzip');
    res.end(Buffer.concat([Buffer.from([0x1f, 0x8b]), Buffer.alloc(512 * 1024, 7)]));
  },
  '/garbage': (_q, res) => {
    res.setHeader('Content-Encoding', 'gzip');
    res.end(Buffer.from('\x1f\x8b this is not gzip'));
  },
  '/truncated-gzip': (_q, res) => {
    res.setHeader('Content-Encoding', 'gzip');
    const gz = gzipSync(BODY);
    res.end(gz.subarray(0, gz.length >> 1));
  },
  '/br': (_q, res) => {
    res.setHeader('Content-Encoding', 'br');
    res.end('whatever');
  },
  '/big': (_q, res) => res.end(BODY + BODY + BODY),
  '/cut': (_q, res) => {
    res.setHeader('Content-Length', String(BODY.length));
    res.write(BODY.slice(0, 100));
    setTimeout(() => res.socket?.destroy(), 20);
  },
};

describe('fetchExposition: encodings and limits', () => {
  let server: http.Server;
  let base = '';
  before(async () => {
    server = http.createServer((req, res) => (answers[req.url ?? ''] ?? ((_q, r) => r.writeHead(404).end()))(req, res));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => server.close());

  const get = (path: string, maxBodyBytes = 1 << 20) =>
    fetchExposition(makeTarget(`${base}${path}`, {}, 'auto', {}, 'config'), 5000, maxBodyBytes);
  const failure = async (path: string, maxBodyBytes?: number) => {
    const err = await get(path, maxBodyBytes).then(
      () => assert.fail(`${path} should fail`),
      (e: unknown) => e,
    );
    assert.ok(err instanceof ScrapeError, String(err));
    return err;
  };

  for (const path of ['/plain', '/gzip', '/x-gzip', '/deflate', '/members'])
    it(`${path}: the body as served`, async () => {
      const r = await get(path);
      assert.equal(r.status, 200);
      assert.equal(r.body, BODY);
      assert.equal(r.bodyBytes, Buffer.byteLength(BODY));
    });

  it('a gzip bomb stops at scrape.max_body_bytes after inflation, with a clear error', async () => {
    for (const path of ['/bomb', '/small-bomb']) {
      const err = await failure(path, 8 * 1024 * 1024);
      assert.equal(err.reason, 'too_large', path);
      assert.match(err.message, /body exceeds 8388608 bytes \(scrape\.max_body_bytes\)/, path);
    }
  });

  it('a large compressed answer inflates off the event loop to the same body', async () => {
    for (const path of ['/large-gzip', '/large-deflate']) {
      const r = await get(path, 64 * 1024 * 1024);
      assert.equal(r.body, LARGE, path);
    }
    const err = await failure('/large-garbage');
    assert.equal(err.reason, 'decode');
    assert.match(err.message, /^cannot decode gzip: /);
  });

  it('an identity body over the cap is too_large', async () => {
    const err = await failure('/big', Buffer.byteLength(BODY) * 2);
    assert.equal(err.reason, 'too_large');
  });

  it('gzip that is not gzip, or cut short, is a decode failure naming the encoding', async () => {
    for (const path of ['/garbage', '/truncated-gzip']) {
      const err = await failure(path);
      assert.equal(err.reason, 'decode', path);
      assert.match(err.message, /^cannot decode gzip: /, path);
    }
  });

  it('an encoding it did not ask for is refused by name', async () => {
    const err = await failure('/br');
    assert.equal(err.reason, 'decode');
    assert.match(err.message, /unsupported Content-Encoding br/);
  });

  it('a connection closed mid-body fails the scrape instead of keeping half a body', async () => {
    const err = await failure('/cut');
    assert.notEqual(err.reason, 'timeout');
  });
});
