// The pipeline's parts on their own: the facts cache, the ledger writer, and the intake over any consumer.
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { RequestFacts } from '../src/correlate/requestFacts.ts';
import { FactsCache } from '../src/pipeline/factsCache.ts';
import { emptyLedgerBatch, LedgerWriter } from '../src/pipeline/ledgerWriter.ts';
import { LedgerStore } from '../src/store/ledgerStore.ts';
import { openDatabase } from '../src/store/openDatabase.ts';
import { memoryLogger } from './support/silentLogger.ts';
import { makeRequest } from './support/otlpRequests.ts';
import { decodeProtobuf, encodeRequest } from '../src/otlp/decode.ts';
import { PipelineMetrics } from '../src/pipeline/metrics.ts';
import { Intake } from '../src/pipeline/receivers/intake.ts';
import { Refusal } from '../src/pipeline/receivers/refusal.ts';

const factsOf = (approxBytes: number) =>
  ({ approxBytes, spanCount: 1, resources: [], tracesWithCount: new Set() }) as unknown as RequestFacts;

describe('FactsCache', () => {
  it('keeps facts up to its bound, never counts a row twice, and frees what it forgets', () => {
    const c = new FactsCache(2500);
    c.remember(1, factsOf(1000));
    c.remember(1, factsOf(1000));
    assert.equal(c.bytes, 1000, 'a row already kept is not counted again');
    c.remember(2, factsOf(1000));
    c.remember(3, factsOf(1000));
    assert.equal(c.size, 2, 'the third would pass the bound');
    assert.equal(c.bytes, 2000);
    c.forget(1);
    c.forget(1);
    assert.equal(c.bytes, 1000);
    c.forget(99);
    assert.equal(c.bytes, 1000);
  });

  it('decodes only what it does not hold, and keeps the decoded facts if they fit', () => {
    const c = new FactsCache(1500);
    let decodes = 0;
    const kept = factsOf(100);
    c.remember(7, kept);
    assert.equal(
      c.get(7, () => (decodes++, factsOf(1))),
      kept,
    );
    assert.equal(decodes, 0);
    const big = factsOf(5000);
    assert.equal(
      c.get(8, () => (decodes++, big)),
      big,
    );
    assert.equal(
      c.get(8, () => (decodes++, big)),
      big,
    );
    assert.equal(decodes, 2, 'too big to keep: decoded each time');
    c.get(9, () => (decodes++, factsOf(200)));
    c.get(9, () => (decodes++, factsOf(200)));
    assert.equal(decodes, 3, 'small enough: decoded once');
  });
});

describe('LedgerWriter', () => {
  const row = (spanId: string) => ({
    traceId: 't',
    spanId,
    startMs: 1000,
    endMs: 2000,
    spanName: 'llm_request',
    serviceName: null,
    targetId: null,
    instance: null,
    model: null,
    match: 'fleet',
    promptTokens: 10,
    completionTokens: 1,
    cachedTokens: null,
    cachedTokensEstimate: null,
    windowComplete: true,
    latency: {},
    tenantJson: null,
  });

  it('writes queued batches on the next turn, each once', async () => {
    const db = openDatabase(join(mkdtempSync(join(tmpdir(), 'cachelens-lw-')), 'store.db'));
    const w = new LedgerWriter(new LedgerStore(db), memoryLogger().log);
    const a = { ...emptyLedgerBatch(), rows: [row('a')] };
    const b = { ...emptyLedgerBatch(), rows: [row('b')] };
    w.queue(a);
    w.queue(b);
    assert.equal(db.prepare('SELECT count(*) FROM request_ledger').pluck().get(), 0, 'not yet: the send goes first');
    await new Promise((r) => setImmediate(r));
    assert.equal(db.prepare('SELECT count(*) FROM request_ledger').pluck().get(), 2);
    assert.ok(a.written && b.written);
    assert.equal(w.write(a), true, 'a written batch is not written again');
    db.close();
  });

  it('a failed write says so and logs it; the batch can be written later', () => {
    const db = openDatabase(join(mkdtempSync(join(tmpdir(), 'cachelens-lw-')), 'store.db'));
    const { log, lines } = memoryLogger();
    const w = new LedgerWriter(new LedgerStore(db), log);
    const a = { ...emptyLedgerBatch(), rows: [row('a')] };
    db.exec('ALTER TABLE request_ledger RENAME TO request_ledger_off');
    assert.equal(w.write(a), false);
    assert.equal(a.written, false);
    assert.ok(lines.some((l) => String(l.msg).includes('request ledger write failed')));
    db.exec('ALTER TABLE request_ledger_off RENAME TO request_ledger');
    assert.equal(w.write(a), true);
    assert.equal(db.prepare('SELECT count(*) FROM request_ledger').pluck().get(), 1);
    db.close();
  });
});

describe('Intake over any TracesConsumer', () => {
  it('hands the consumer what it accepts, cut of rejected spans, and acknowledges only after it', async () => {
    const got: Array<{ spans: number; peer: string | null; names: string[] }> = [];
    const intake = new Intake(
      {
        async consume(bytes, spans, peer) {
          got.push({
            spans,
            peer,
            names: decodeProtobuf(bytes).resourceSpans.flatMap((rs) =>
              rs.scopeSpans.flatMap((ss) => ss.spans.map((s) => s.name)),
            ),
          });
        },
      },
      new PipelineMetrics(),
      memoryLogger().log,
    );
    const req = decodeProtobuf(makeRequest(3, { name: 'ok' }).body);
    req.resourceSpans[0]!.scopeSpans[0]!.spans[1]!.name = 'bad';
    req.resourceSpans[0]!.scopeSpans[0]!.spans[1]!.parentSpanId = Buffer.from([1, 2, 3]);
    const a = await intake.accept(encodeRequest(req), 'protobuf', '10.0.0.1:5000', 'grpc');
    assert.deepEqual({ spans: a.spans, rejected: a.rejected }, { spans: 2, rejected: 1 });
    assert.deepEqual(got, [{ spans: 2, peer: '10.0.0.1:5000', names: ['ok', 'ok'] }]);
  });

  it('a consumer that cannot take the request refuses it, retryably, and nothing counts as accepted', async () => {
    const metrics = new PipelineMetrics();
    const { log, lines } = memoryLogger();
    const intake = new Intake(
      {
        async consume() {
          throw new Refusal('unavailable', 'spool full', 5000);
        },
      },
      metrics,
      log,
    );
    await assert.rejects(
      intake.accept(makeRequest(2).body, 'protobuf', null, 'http'),
      (err: unknown) => err instanceof Refusal && err.kind === 'unavailable' && err.retryAfterMs === 5000,
    );
    await assert.rejects(intake.accept(makeRequest(2).body, 'protobuf', null, 'http'));
    assert.equal(lines.filter((l) => String(l.msg).startsWith('refusing spans')).length, 1, 'logged once per 10 s');
    assert.match(
      await metrics.registry.getSingleMetricAsString('cachelens_receiver_accepted_spans_total'),
      /transport="http"\} 0/,
    );
  });
});
