// The pipeline's parts on their own: the facts cache, the ledger writer, and the intake over any consumer.
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { RequestFacts } from '../src/correlate/requestFacts.ts';
import { FactsCache } from '../src/pipeline/factsCache.ts';
import { approxFactsBytes } from '../src/correlate/requestFacts.ts';
import { emptyLedgerBatch, LedgerWriter } from '../src/pipeline/ledgerWriter.ts';
import { LedgerStore } from '../src/store/ledgerStore.ts';
import { openDatabase } from '../src/store/openDatabase.ts';
import { memoryLogger } from './support/silentLogger.ts';
import { makeRequest } from './support/otlpRequests.ts';
import { decodeProtobuf, encodeRequest } from '../src/otlp/decode.ts';
import { PipelineMetrics } from '../src/pipeline/metrics.ts';
import { Intake } from '../src/pipeline/receivers/intake.ts';
import { Refusal } from '../src/pipeline/receivers/refusal.ts';
import { Batcher } from '../src/pipeline/batcher.ts';
import { Spool, type SpoolRow } from '../src/pipeline/spool.ts';
import { Sender, type SendOutcome } from '../src/pipeline/sender.ts';
import { createDownstreamExporter } from '../src/pipeline/exporter.ts';
import { buildConfig } from '../src/config/config.ts';
import { GRPC } from '../src/otlp/grpcStatus.ts';
import { OtlpSink } from './support/otlpSink.ts';
import { EnrichStage } from '../src/pipeline/enrichStage.ts';
import { demoModelState, renderVllmExposition } from '../src/demo/vllmExposition.ts';
import { normalizeBody } from '../src/scrape/scrapeTarget.ts';
import { makeTarget } from '../src/scrape/target.ts';
import { ScrapeStore } from '../src/store/scrapeStore.ts';
import { Enricher } from '../src/correlate/enricher.ts';
import { FleetQueries } from '../src/store/fleetQueries.ts';
import { compileSpanSelector } from '../src/correlate/requestSpans.ts';
import { DEFAULT_REQUEST_SPAN_NAMES } from '../src/config/spanNames.ts';

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

  it('says whether a request of n spans could be kept, at about 1 KB a span', () => {
    const c = new FactsCache(approxFactsBytes(4));
    assert.ok(c.hasRoomFor(4));
    assert.ok(!c.hasRoomFor(5));
    c.remember(1, factsOf(approxFactsBytes(1)));
    assert.ok(!c.hasRoomFor(2), 'what is held counts');
    assert.ok(c.hasRoomFor(1));
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
    kvUsageStart: null,
    waitingStart: null,
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

describe('Batcher', () => {
  const spoolAt = () =>
    new Spool(join(mkdtempSync(join(tmpdir(), 'cachelens-batcher-')), 'spool.db'), { maxBytes: 1 << 26, fsync: false });
  const fill = async (spool: Spool, spans: number[]) => {
    const ids: number[] = [];
    for (const n of spans) ids.push(await spool.append(makeRequest(n).body, n, '10.0.0.1:1', 0));
    return ids;
  };

  it('merges ready rows up to the span bound, and does not read rows in flight again', async () => {
    const spool = spoolAt();
    const ids = await fill(spool, [3, 3, 3, 5]);
    const b = new Batcher(spool, 8);
    const first = b.next(Date.now(), (r) => ({ item: r.id }))!;
    assert.deepEqual(first.items, [ids[0], ids[1]], 'a third row of 3 would pass 8 spans');
    assert.equal(first.spans, 6);
    const second = b.next(Date.now(), (r) => ({ item: r.id }))!;
    assert.deepEqual(second.items, [ids[2], ids[3]]);
    assert.equal(
      b.next(Date.now(), (r) => ({ item: r.id })),
      undefined,
      'everything is in flight',
    );
    b.settled(first.rows.map((r) => r.id));
    assert.deepEqual(
      b.next(Date.now(), (r) => ({ item: r.id }))!.items,
      [ids[0], ids[1]],
      'settled rows are read again',
    );
    spool.close();
  });

  it('postpones rows that must wait, in the spool, and leaves out rows that are gone', async () => {
    const spool = spoolAt();
    const ids = await fill(spool, [1, 1, 1]);
    const b = new Batcher(spool, 100);
    const later = Date.now() + 60_000;
    const batch = b.next(Date.now(), (r) =>
      r.id === ids[0] ? { waitUntilMs: later } : r.id === ids[1] ? { gone: true } : { item: r.id },
    )!;
    assert.deepEqual(batch.items, [ids[2]]);
    assert.deepEqual(
      spool.ready(Date.now(), 10).map((r) => r.id),
      [ids[1], ids[2]],
      'the waiting row is postponed; the gone row is the caller’s to delete; the taken row stays until acknowledged',
    );
    assert.equal(b.inFlightRows, 1);
    assert.deepEqual(
      spool.ready(later, 10).map((r) => r.id),
      ids,
      'the waiting row is ready at its time',
    );
    spool.close();
  });

  it(
    'a refused merged request goes back row by row, then a ' +
      'refused row is split in halves, until one span is dropped',
    async () => {
      const spool = spoolAt();
      const ids = await fill(spool, [4, 1]);
      const b = new Batcher(spool, 100);
      const take = (r: SpoolRow) => ({ item: r.id });
      const merged = b.next(Date.now(), take)!;
      assert.equal(merged.rows.length, 2);
      b.settled(ids);
      assert.deepEqual(b.refused(merged.rows), {}, 'a merged request is not split yet');
      const alone = b.next(Date.now(), take)!;
      assert.deepEqual(alone.items, [ids[0]], 'each row now goes alone');
      b.settled([ids[0]!]);
      const { splitIds } = b.refused(alone.rows);
      assert.equal(splitIds?.length, 2);
      const rows = spool.ready(Date.now(), 10);
      assert.deepEqual(rows.map((r) => r.spans).sort(), [1, 2, 2], 'four spans became two halves of two');
      assert.equal(spool.body(ids[0]!), undefined, 'the refused row is replaced');
      for (const id of splitIds!)
        assert.equal(decodeProtobuf(spool.body(id)!).resourceSpans[0]!.scopeSpans[0]!.spans.length, 2);
      const single = rows.find((r) => r.id === ids[1])!;
      assert.equal(b.refused([single]).drop, single, 'a lone one-span row cannot be split: it is dropped');
      spool.close();
    },
  );
});

describe('Sender', () => {
  const batchOf = (n: number) => {
    const body = makeRequest(n).body;
    return { chunks: [body], bytes: body.length, spans: n };
  };
  const sendOnce = (s: Sender, n: number) => new Promise<SendOutcome>((resolve) => s.send(batchOf(n), resolve));

  it(
    'sends through a real exporter, pauses with backoff ' + 'after a retryable failure, and honours RetryInfo',
    async () => {
      const sink = await new OtlpSink().start();
      const metrics = new PipelineMetrics();
      const { log, lines } = memoryLogger();
      const exporter = createDownstreamExporter(
        { ...buildConfig({}, {}).config.exporter, insecure: true },
        sink.endpoint,
      );
      const s = new Sender(exporter, { maxInFlight: 1, retryInitialMs: 1000, retryMaxMs: 8000 }, log, metrics, () => 1);
      try {
        assert.deepEqual(await sendOnce(s, 2), { kind: 'sent' });
        assert.equal(sink.spans().length, 2);
        assert.equal(s.pausedUntil, 0);

        sink.failures.push({ code: GRPC.UNAUTHENTICATED, message: 'bad token' });
        const t0 = Date.now();
        const failed = await sendOnce(s, 3);
        assert.equal(failed.kind, 'retry');
        assert.equal(failed.kind === 'retry' && failed.delayMs, 1000, 'first backoff step (jitter pinned to its top)');
        assert.ok(s.pausedUntil >= t0 + 1000, 'sending pauses');
        sink.failures.push({ code: GRPC.UNAUTHENTICATED, message: 'bad token' });
        const again = await sendOnce(s, 3);
        assert.equal(again.kind === 'retry' && again.delayMs, 2000, 'the backoff doubles');
        assert.equal(
          lines.filter((l) => String(l.msg).startsWith('downstream export failed')).length,
          1,
          'logged once per outage',
        );

        sink.failures.push({ code: GRPC.RESOURCE_EXHAUSTED, message: 'slow down', retryAfterMs: 1500 });
        const told = await sendOnce(s, 1);
        assert.ok(
          told.kind === 'retry' && Math.abs(told.delayMs - 1500) < 1,
          `the server's delay: ${JSON.stringify(told)}`,
        );

        assert.deepEqual(await sendOnce(s, 1), { kind: 'sent' });
        assert.match(await metrics.registry.getSingleMetricAsString('cachelens_exporter_sent_spans_total'), / 3$/m);
        assert.match(
          await metrics.registry.getSingleMetricAsString('cachelens_exporter_send_failed_spans_total'),
          / 7$/m,
        );
      } finally {
        await s.shutdown(Date.now() + 1000);
        await sink.stop();
      }
    },
  );

  it('the exporter joins a batch of several rows and lets go of the pieces before waiting for downstream', async () => {
    const sink = await new OtlpSink().start();
    const exporter = createDownstreamExporter(
      { ...buildConfig({}, {}).config.exporter, insecure: true },
      sink.endpoint,
    );
    try {
      const [a, b] = [makeRequest(2).body, makeRequest(3).body];
      const batch = { chunks: [a, b], bytes: a.length + b.length, spans: 5 };
      const done = new Promise<number>((resolve) => exporter.export(batch, (r) => resolve(r.code)));
      assert.equal(batch.chunks.length, 0, 'the pieces are not held while the request is in flight');
      assert.equal(await done, 0);
      assert.equal(sink.spans().length, 5, 'both rows arrive as one request');
    } finally {
      await exporter.shutdown();
      await sink.stop();
    }
  });

  it('shutdown keeps to its deadline when downstream is slower; the unacknowledged batch stays', async () => {
    const sink = await new OtlpSink().start();
    sink.delayMs = 3000;
    const exporter = createDownstreamExporter(
      { ...buildConfig({}, {}).config.exporter, insecure: true },
      sink.endpoint,
    );
    const s = new Sender(exporter, { maxInFlight: 2, retryInitialMs: 1000, retryMaxMs: 8000 }, memoryLogger().log);
    try {
      let outcome: SendOutcome | undefined;
      s.send(batchOf(1), (o) => (outcome = o));
      await new Promise((r) => setTimeout(r, 100));
      const t0 = Date.now();
      await s.shutdown(Date.now() + 300);
      const took = Date.now() - t0;
      assert.ok(took < 1000, `shutdown took ${took} ms against a 300 ms deadline`);
      assert.equal(outcome, undefined, 'not acknowledged within the deadline');
    } finally {
      await sink.stop();
    }
  });

  it('a permanent refusal is reported, not retried, and it bounds the requests in flight', async () => {
    const sink = await new OtlpSink().start();
    sink.delayMs = 200;
    const exporter = createDownstreamExporter(
      { ...buildConfig({}, {}).config.exporter, insecure: true },
      sink.endpoint,
    );
    const s = new Sender(exporter, { maxInFlight: 2, retryInitialMs: 1000, retryMaxMs: 8000 }, memoryLogger().log);
    try {
      const a = sendOnce(s, 1);
      const b = sendOnce(s, 1);
      assert.equal(s.inFlight, 2);
      assert.equal(s.hasRoom, false);
      await Promise.all([a, b]);
      assert.equal(s.hasRoom, true);
      sink.failures.push({ code: GRPC.INVALID_ARGUMENT, message: 'bad span' });
      const r = await sendOnce(s, 1);
      assert.equal(r.kind, 'rejected');
      assert.match(r.kind === 'rejected' ? r.reason : '', /INVALID_ARGUMENT: bad span/);
      assert.equal(s.pausedUntil, 0, 'a permanent refusal does not pause sending');
      assert.equal(sink.attempts, 3);
    } finally {
      await s.shutdown(Date.now() + 1000);
      await sink.stop();
    }
  });
});

describe('EnrichStage', () => {
  const stageOn = (maxWaitMs: number, factsCacheBytes = 1 << 20) => {
    const db = openDatabase(join(mkdtempSync(join(tmpdir(), 'cachelens-es-')), 'store.db'));
    // One server, scraped 10 s ago: a span that ended since needs the next scrape to close its window.
    const target = makeTarget('http://10.0.0.9:8000/metrics', { instance: 'vllm-a' }, 'auto', {}, 'test');
    new ScrapeStore(db).writeRound([
      {
        target,
        startedMs: Date.now() - 10_000,
        durationMs: 1,
        up: true,
        ...normalizeBody(target, renderVllmExposition([demoModelState('llama')], { histograms: false })),
      },
    ]);
    const enricher = new Enricher(new FleetQueries(db), {
      maxWaitMs,
      as: 'events',
      selector: compileSpanSelector(DEFAULT_REQUEST_SPAN_NAMES),
      tenantKeys: [],
      lookbackMs: 6 * 3600_000,
      targetMatch: () => new Map(),
    });
    return { db, stage: new EnrichStage(enricher, factsCacheBytes) };
  };
  const rowOf = (id: number, spans: number, receivedMs: number): SpoolRow =>
    ({ id, spans, peer: null, received_ms: receivedMs, not_before_ms: 0, attempts: 0 }) as unknown as SpoolRow;

  it('holds a request until its window can close, and a scrape round wakes it', () => {
    const { db, stage } = stageOn(10_000);
    const { body } = makeRequest(2);
    const now = Date.now();
    stage.refresh(now);
    const ledger = emptyLedgerBatch();
    const r = stage.enrich(rowOf(1, 2, now), body, now, ledger);
    assert.equal(r.ready, false, 'no scrape has closed the window yet');
    assert.ok(!r.ready && r.retryAtMs > now && r.retryAtMs <= now + 10_000, 'retried no later than max_wait');
    assert.equal(ledger.rows.length, 0);
    assert.deepEqual(stage.wake(now + 5), [1]);
    assert.equal(stage.wokenAt(1), now + 5);
    assert.deepEqual(stage.wake(now + 6), [], 'each waiting row is woken once');
    stage.forget([1]);
    assert.equal(stage.wokenAt(1), undefined);
    db.close();
  });

  it('past max_wait it enriches with what the store has: spliced bytes and a ledger row per request span', () => {
    const { db, stage } = stageOn(1000);
    const { body, spanIds } = makeRequest(3);
    const now = Date.now();
    stage.refresh(now);
    const ledger = emptyLedgerBatch();
    const r = stage.enrich(rowOf(1, 3, now - 5000), body, now, ledger);
    assert.ok(r.ready);
    const out = decodeProtobuf(Buffer.concat(r.row.chunks));
    const spans = out.resourceSpans[0]!.scopeSpans[0]!.spans;
    assert.deepEqual(
      spans.map((s) => Buffer.from(s.spanId).toString('hex')),
      spanIds,
    );
    assert.ok(
      spans.every((s) => s.events.some((e) => e.name === 'cachelens.cache')),
      'every request span carries the cache event',
    );
    assert.equal(r.row.bytes, Buffer.concat(r.row.chunks).length);
    assert.equal(ledger.rows.length, 3);
    db.close();
  });

  it('uses the facts taken at admission instead of decoding the spooled bytes again', () => {
    const { db, stage } = stageOn(1000);
    const { body } = makeRequest(1);
    stage.admitted(7, stage.factsOf(decodeProtobuf(body), 1));
    assert.equal(stage.cachedFacts, 1);
    const now = Date.now();
    stage.refresh(now);
    const broken = Buffer.from([0xff, 0xff, 0xff]);
    assert.throws(
      () => stage.enrich(rowOf(8, 1, now - 5000), broken, now, emptyLedgerBatch()),
      'row 8 must be decoded',
    );
    // Row 7's facts were kept: only the splice reads the bytes, so a valid body of the same spans passes.
    assert.ok(stage.enrich(rowOf(7, 1, now - 5000), body, now, emptyLedgerBatch()).ready);
    stage.forget([7]);
    assert.equal(stage.cachedFacts, 0);
    db.close();
  });

  it('takes no facts at admission when the cache has no room (a backlog), and decodes the row in its turn', () => {
    const { db, stage } = stageOn(1000, approxFactsBytes(1));
    const first = makeRequest(1).body;
    const second = makeRequest(1).body;
    const kept = stage.factsOf(decodeProtobuf(first), 1);
    assert.ok(kept, 'room for one request of one span');
    stage.admitted(1, kept);
    assert.equal(stage.factsOf(decodeProtobuf(second), 1), undefined, 'the cache is full: nothing is taken');
    stage.admitted(2, undefined);
    assert.equal(stage.cachedFacts, 1);
    const now = Date.now();
    stage.refresh(now);
    assert.ok(stage.enrich(rowOf(2, 1, now - 5000), second, now, emptyLedgerBatch()).ready, 'decoded from its bytes');
    db.close();
  });
});
