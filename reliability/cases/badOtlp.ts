// Generated bad OTLP requests against the real daemon: each must get the right answer, and the
// process must neither crash nor grow.
import { gzipSync } from 'node:zlib';
import { AckingClient, Check, seededRandom, DaemonProcess, makeRequest, OtlpSink, type CaseResult } from '../lib.ts';

type Expect = { codes: number[]; rejected?: number };
interface Gen {
  kind: string;
  weight: number;
  make: (
    rand: () => number,
    i: number,
  ) => { body: Uint8Array | string; contentType?: string; encoding?: string; grpc?: boolean; expect: Expect };
}

const hex = (bytes: number, rand: () => number) =>
  Array.from({ length: bytes * 2 }, () => '0123456789abcdef'[Math.floor(rand() * 16)]).join('');
const randomBytes = (n: number, rand: () => number) => Uint8Array.from({ length: n }, () => Math.floor(rand() * 256));

function jsonSpan(rand: () => number, over: Record<string, unknown> = {}): Record<string, unknown> {
  const now = BigInt(Date.now()) * 1_000_000n;
  return {
    traceId: hex(16, rand),
    spanId: hex(8, rand),
    name: 'fuzz',
    kind: 2,
    startTimeUnixNano: String(now - 1_000_000n),
    endTimeUnixNano: String(now),
    ...over,
  };
}
const jsonReq = (
  spans: unknown[],
  resourceAttrs: unknown[] = [{ key: 'service.name', value: { stringValue: 'fuzz' } }],
) => ({
  resourceSpans: [{ resource: { attributes: resourceAttrs }, scopeSpans: [{ scope: { name: 'fuzz' }, spans }] }],
});

function nestedKvlist(depth: number): unknown {
  let v: unknown = { stringValue: 'bottom' };
  for (let i = 0; i < depth; i++) v = { kvlistValue: { values: [{ key: `level${depth - i}`, value: v }] } };
  return v;
}

const EVERY_TYPE = [
  { key: 'str', value: { stringValue: 'é中🙂\u0000' } },
  { key: 'bool', value: { boolValue: true } },
  { key: 'int', value: { intValue: '-9223372036854775808' } },
  { key: 'double', value: { doubleValue: 1e308 } },
  { key: 'bytes', value: { bytesValue: Buffer.from([0, 255, 1]).toString('base64') } },
  {
    key: 'array',
    value: { arrayValue: { values: [{ stringValue: 'a' }, { intValue: '1' }, { arrayValue: { values: [] } }] } },
  },
  { key: 'empty', value: {} },
  { key: 'kvlist100', value: nestedKvlist(100) },
];

const GENERATORS: Gen[] = [
  {
    kind: 'random bytes',
    weight: 20,
    make: (r) => ({ body: randomBytes(Math.floor(r() * 2048), r), expect: { codes: [200, 400] } }),
  },
  {
    kind: 'random bytes over gRPC',
    weight: 8,
    make: (r) => ({ body: randomBytes(1 + Math.floor(r() * 2048), r), grpc: true, expect: { codes: [0, 3] } }),
  },
  {
    kind: 'mutated valid protobuf',
    weight: 20,
    make: (r) => {
      const b = Uint8Array.from(makeRequest(3, { attrs: 5 }).body);
      const mode = r();
      if (mode < 0.4) for (let k = 0; k < 1 + r() * 8; k++) b[Math.floor(r() * b.length)] = Math.floor(r() * 256);
      const cut = mode >= 0.4 && mode < 0.8 ? b.slice(0, Math.floor(r() * b.length)) : b;
      if (mode >= 0.8) cut[Math.floor(r() * cut.length)]! ^= 0x80; // a varint continuation bit
      return { body: cut, expect: { codes: [200, 400] } };
    },
  },
  {
    kind: 'truncated JSON',
    weight: 12,
    make: (r) => {
      const text = JSON.stringify(jsonReq([jsonSpan(r), jsonSpan(r)]));
      return {
        body: text.slice(0, 1 + Math.floor(r() * (text.length - 2))),
        contentType: 'application/json',
        expect: { codes: [400] },
      };
    },
  },
  {
    kind: 'wrongly typed JSON',
    weight: 12,
    make: (r) => {
      const wrong: Array<() => unknown> = [
        () => ({ resourceSpans: 5 }),
        () => ({ resourceSpans: [{ scopeSpans: 'x' }] }),
        () => jsonReq(['not a span']),
        () => jsonReq([jsonSpan(r, { startTimeUnixNano: 'yesterday' })]),
        () => jsonReq([jsonSpan(r, { attributes: { key: 'a' } })]),
        () => jsonReq([jsonSpan(r, { events: 7 })]),
        () => jsonReq([jsonSpan(r, { kind: 'SERVERISH' })]),
        () => [1, 2, 3],
        () => 'null',
      ];
      const v = wrong[Math.floor(r() * wrong.length)]!();
      return {
        body: typeof v === 'string' ? v : JSON.stringify(v),
        contentType: 'application/json',
        expect: { codes: [400] },
      };
    },
  },
  {
    kind: 'wrong ids',
    weight: 12,
    make: (r) => {
      const pick = Math.floor(r() * 5);
      if (pick === 0)
        return {
          body: JSON.stringify(jsonReq([jsonSpan(r, { traceId: '' }), jsonSpan(r)])),
          contentType: 'application/json',
          expect: { codes: [200], rejected: 1 },
        };
      if (pick === 1)
        return {
          body: JSON.stringify(jsonReq([jsonSpan(r, { spanId: hex(7, r) }), jsonSpan(r)])),
          contentType: 'application/json',
          expect: { codes: [200], rejected: 1 },
        };
      if (pick === 2)
        return {
          body: JSON.stringify(jsonReq([jsonSpan(r, { traceId: '0'.repeat(32) })])),
          contentType: 'application/json',
          expect: { codes: [200], rejected: 1 },
        };
      if (pick === 3)
        return {
          body: JSON.stringify(jsonReq([jsonSpan(r, { traceId: 'zz' + hex(15, r) })])),
          contentType: 'application/json',
          expect: { codes: [400] },
        };
      return {
        body: JSON.stringify(jsonReq([jsonSpan(r, { spanId: hex(8, r).slice(1) })])),
        contentType: 'application/json',
        expect: { codes: [400] },
      };
    },
  },
  {
    kind: 'every attribute type, kvlists 100 deep',
    weight: 10,
    make: (r) => ({
      body: JSON.stringify(
        jsonReq(
          [jsonSpan(r, { attributes: EVERY_TYPE, events: [{ name: 'e', timeUnixNano: '1', attributes: EVERY_TYPE }] })],
          EVERY_TYPE,
        ),
      ),
      contentType: 'application/json',
      expect: { codes: [200], rejected: 0 },
    }),
  },
  {
    kind: 'wrong Content-Type',
    weight: 3,
    make: (r) => ({
      body: makeRequest(1).body,
      contentType: ['text/plain', 'application/xml', 'application/grpc', '', 'multipart/form-data'][
        Math.floor(r() * 5)
      ],
      expect: { codes: [415] },
    }),
  },
  {
    kind: 'wrong Content-Encoding',
    weight: 3,
    make: (r) => {
      if (r() < 0.5)
        return {
          body: makeRequest(1).body,
          encoding: ['br', 'zstd', 'compress', 'gzip, br'][Math.floor(r() * 4)],
          expect: { codes: [415] },
        };
      return { body: makeRequest(1).body, encoding: 'gzip', expect: { codes: [400] } }; // says gzip, is not
    },
  },
];

export async function badOtlp(opts: { cases: number; seed?: number }): Promise<CaseResult> {
  const check = new Check();
  const sink = await new OtlpSink().start();
  const d = await new DaemonProcess({ exporter: { endpoint: sink.endpoint } }).init();
  d.start();
  await d.ready();
  const client = new AckingClient();
  const rand = seededRandom(opts.seed ?? 99);
  const counts = new Map<string, { n: number; wrong: number; codes: Map<string, number> }>();
  const wrongExamples: string[] = [];
  const record = (kind: string, code: string, ok: boolean, detail: string) => {
    const c = counts.get(kind) ?? { n: 0, wrong: 0, codes: new Map() };
    c.n++;
    c.codes.set(code, (c.codes.get(code) ?? 0) + 1);
    if (!ok) {
      c.wrong++;
      if (wrongExamples.length < 5) wrongExamples.push(`${kind}: got ${code} ${detail}`);
    }
    counts.set(kind, c);
  };
  const post = async (body: Uint8Array | string, contentType = 'application/x-protobuf', encoding?: string) => {
    const headers: Record<string, string> = {};
    if (contentType) headers['content-type'] = contentType;
    if (encoding) headers['content-encoding'] = encoding;
    try {
      const res = await fetch(d.httpUrl, {
        method: 'POST',
        headers,
        body: typeof body === 'string' ? body : Buffer.from(body),
      });
      return { status: res.status, text: await res.text() };
    } catch (err) {
      return { status: -1, text: (err as Error).message };
    }
  };

  // The heavy ones first, before the memory baseline.
  const big = JSON.stringify(
    jsonReq([jsonSpan(rand, { attributes: [{ key: 'huge', value: { stringValue: 'x'.repeat(50 * 1024 * 1024) } }] })]),
  );
  for (let k = 0; k < 3; k++) {
    const r = await post(big, 'application/json');
    record('a single 50 MB string', String(r.status), r.status === 413, r.text.slice(0, 100));
  }
  const bomb = gzipSync(Buffer.alloc(1024 * 1024 * 1024), { level: 9 });
  for (let k = 0; k < 5; k++) {
    const r = await post(bomb, 'application/x-protobuf', 'gzip');
    record(
      `gzip bomb (${(bomb.length / 1024).toFixed(0)} KB → 1 GiB)`,
      String(r.status),
      r.status === 413,
      r.text.slice(0, 100),
    );
  }
  const total = GENERATORS.reduce((n, g) => n + g.weight, 0);
  const rssSamples: number[] = [];
  let baseline = 0;
  for (let i = 0; i < opts.cases; i++) {
    let x = rand() * total;
    const gen = GENERATORS.find((g) => (x -= g.weight) <= 0) ?? GENERATORS[0]!;
    const c = gen.make(rand, i);
    if (c.grpc) {
      const out = await client.sendGrpc(d.grpcAddr, c.body as Uint8Array);
      const code = out.code === 'OK' ? 0 : out.code === 'INVALID_ARGUMENT' ? 3 : -1;
      record(gen.kind, out.code, c.expect.codes.includes(code), '');
    } else {
      const r = await post(c.body, c.contentType ?? 'application/x-protobuf', c.encoding);
      let ok = c.expect.codes.includes(r.status);
      if (ok && r.status === 200 && c.expect.rejected !== undefined && (c.contentType ?? '').includes('json')) {
        const rejected = Number(
          (JSON.parse(r.text) as { partialSuccess?: { rejectedSpans?: string | number } }).partialSuccess
            ?.rejectedSpans ?? 0,
        );
        ok = rejected === c.expect.rejected;
      }
      record(gen.kind, String(r.status), ok, r.text.slice(0, 120));
    }
    if (i === Math.floor(opts.cases / 5)) baseline = d.rssBytes() ?? 0;
    if (i % 500 === 0) rssSamples.push(d.rssBytes() ?? 0);
  }
  const end = d.rssBytes() ?? 0;
  const alive = await fetch(`http://127.0.0.1:${d.telemetryPort}/healthz`).then(
    (r) => r.status === 200,
    () => false,
  );
  // A valid request still goes through end to end after all that.
  const after = await client.batch(d, 'http', 10);
  const wrong = [...counts.values()].reduce((n, c) => n + c.wrong, 0);
  const n = [...counts.values()].reduce((k, c) => k + c.n, 0);
  check.that(wrong === 0, `${wrong} cases got the wrong answer: ${wrongExamples.join(' | ')}`);
  check.that(alive && d.current!.child.exitCode === null, 'the daemon is alive after every case');
  check.that(after.acked, 'a valid request is accepted afterwards');
  const growthMb = (end - baseline) / 1024 / 1024;
  check.that(
    growthMb < 64,
    `RSS grew ${growthMb.toFixed(1)} MB from case ${Math.floor(opts.cases / 5)} to the end (leak?)`,
  );
  const exit = await d.stop();
  check.that(exit === 0, `clean exit (got ${exit})`);
  await sink.stop();
  client.close();
  const byKind = [...counts].map(
    ([k, c]) => `${k}: ${c.n} (${[...c.codes].map(([code, m]) => `${code}×${m}`).join(' ')})`,
  );
  return {
    name: 'bad OTLP input',
    load: `${n} generated requests over HTTP and gRPC, ${counts.size} kinds`,
    lost: wrong + (alive ? 0 : 1),
    refused: `every case answered as the spec asks: ${wrong} wrong`,
    recovered:
      `no crash; RSS ${(baseline / 1048576).toFixed(0)} → ${(end / 1048576).toFixed(0)} MB over the last ` +
      `${opts.cases - Math.floor(opts.cases / 5)} cases; a valid request accepted after`,
    notes: byKind,
    ok: check.failures.length === 0,
    failures: check.failures,
  };
}
