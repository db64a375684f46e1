import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { context, trace, SpanKind, SpanStatusCode, type Link } from '@opentelemetry/api';
import { TraceState } from '@opentelemetry/core';
import { OTLPTraceExporter as GrpcExporter } from '@opentelemetry/exporter-trace-otlp-grpc';
import { OTLPTraceExporter as HttpJsonExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { OTLPTraceExporter as HttpProtoExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
  type ReadableSpan,
  type SpanExporter,
} from '@opentelemetry/sdk-trace-base';
import { decodeProtobuf, encodeRequest } from '../src/otlp/decode.ts';
import type { OtlpTraceRequest } from '../src/otlp/schema.ts';
import { canonicalSpans, diffSpan } from './support/canonical.ts';
import { OtlpSink } from './support/otlpSink.ts';
import { startPipeline, waitFor, type Harness } from './support/pipelineHarness.ts';

/**
 * Spans covering what the SDK API can express: every attribute type, events, links, status, remote parent, trace state.
 */
async function emitRichSpans(exporter: SpanExporter, label: string): Promise<ReadableSpan[]> {
  const memory = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({
      'service.name': `fidelity-${label}`,
      'service.instance.id': 'vllm-0',
      'host.arch': 'amd64',
      'process.pid': 4242,
    }),
    spanProcessors: [new SimpleSpanProcessor(memory), new SimpleSpanProcessor(exporter)],
  });
  const tracer = provider.getTracer('fidelity.scope', '1.2.3', {
    schemaUrl: 'https://opentelemetry.io/schemas/1.30.0',
  });
  const remoteParent = trace.setSpanContext(context.active(), {
    traceId: '0af7651916cd43dd8448eb211c80319c',
    spanId: 'b7ad6b7169203331',
    traceFlags: 1,
    isRemote: true,
    traceState: new TraceState('vendor=abc,other=1'),
  });
  const links: Link[] = [
    {
      context: {
        traceId: '11112222333344445555666677778888',
        spanId: '1111222233334444',
        traceFlags: 1,
        traceState: new TraceState('l=2'),
      },
      attributes: { 'link.kind': 'retry', 'link.n': 2 },
    },
  ];
  const root = tracer.startSpan(
    'llm_request',
    {
      kind: SpanKind.SERVER,
      startTime: [1764000000, 123456789],
      links,
      attributes: {
        'gen_ai.usage.prompt_tokens': 812,
        'gen_ai.latency.e2e': 1.2345,
        'gen_ai.request.id': `chatcmpl-${label}`,
        'flag.bool': true,
        'list.str': ['a', 'b'],
        'list.int': [1, 2, 3],
        'list.double': [0.5, 1.25],
        'list.bool': [true, false],
        'neg.int': -17,
      },
    },
    remoteParent,
  );
  root.addEvent('first_token', { 'token.index': 0, 'token.text': 'Hi' }, [1764000000, 223456789]);
  root.setStatus({ code: SpanStatusCode.ERROR, message: 'length limit' });
  const child = tracer.startSpan(
    'tokenize',
    { kind: SpanKind.INTERNAL, startTime: [1764000000, 130000000] },
    trace.setSpan(context.active(), root),
  );
  child.end([1764000000, 140000001]);
  root.end([1764000001, 999999999]);
  tracer.startSpan('client-call', { kind: SpanKind.CLIENT, startTime: [1764000002, 1] }).end([1764000002, 2]);
  await provider.forceFlush();
  const spans = memory.getFinishedSpans();
  await provider.shutdown();
  return spans;
}

describe('OTLP fidelity: what downstream receives equals what the client sent, field by field', () => {
  let sink: OtlpSink;
  let h: Harness;

  before(async () => {
    sink = await new OtlpSink().start();
    // span_names matches nothing here, so every span is a pass-through; enrichment has its own test.
    h = await startPipeline({ exporter: { endpoint: sink.endpoint }, enrich: { span_names: ['no-such-span'] } });
  });
  after(async () => {
    await h.close();
    await sink.stop();
  });

  const clients: Array<[string, () => SpanExporter]> = [
    ['grpc', () => new GrpcExporter({ url: h.grpcUrl })],
    ['grpc+gzip', () => new GrpcExporter({ url: h.grpcUrl, compression: 'gzip' as never })],
    ['http/protobuf', () => new HttpProtoExporter({ url: h.httpUrl })],
    ['http/protobuf+gzip', () => new HttpProtoExporter({ url: h.httpUrl, compression: 'gzip' as never })],
    ['http/json', () => new HttpJsonExporter({ url: h.httpUrl })],
    ['http/json+gzip', () => new HttpJsonExporter({ url: h.httpUrl, compression: 'gzip' as never })],
  ];

  for (const [label, make] of clients) {
    it(`the JS SDK ${label} exporter: every span arrives unchanged`, async () => {
      const sentSpans = await emitRichSpans(make(), label);
      assert.equal(sentSpans.length, 3);
      // What the SDK's gRPC and http/protobuf exporters put on the wire for these spans.
      const sent = canonicalSpans([decodeProtobuf(ProtobufTraceSerializer.serializeRequest(sentSpans)!)]);
      await waitFor(
        () => [...sent.keys()].every((id) => canonicalSpans(sink.requests).has(id)),
        `${label} spans downstream`,
      );
      const got = canonicalSpans(sink.requests);
      for (const [id, s] of sent) {
        assert.deepEqual(diffSpan(s, got.get(id)!), [], `span ${s.name} (${id}) via ${label}`);
      }
    });
  }

  it(
    'a hand-built request with every AnyValue type, dropped ' + 'counts and unknown fields arrives byte for byte',
    async () => {
      const kv = (key: string, value: object) => ({ key, value });
      const req = {
        resourceSpans: [
          {
            resource: {
              attributes: [
                kv('service.name', { stringValue: 'crafted' }),
                kv('bytes.attr', { bytesValue: Buffer.from([0, 1, 254, 255]) }),
              ],
              droppedAttributesCount: 3,
            },
            schemaUrl: 'https://opentelemetry.io/schemas/1.26.0',
            scopeSpans: [
              {
                scope: {
                  name: 'crafted.scope',
                  version: '0.1',
                  attributes: [kv('scope.attr', { intValue: 7 })],
                  droppedAttributesCount: 1,
                },
                schemaUrl: 'https://example.com/scope-schema',
                spans: [
                  {
                    traceId: Buffer.from('5b8efff798038103d269b633813fc60c', 'hex'),
                    spanId: Buffer.from('eee19b7ec3c1b174', 'hex'),
                    parentSpanId: Buffer.from('eee19b7ec3c1b173', 'hex'),
                    traceState: 'k=v',
                    flags: 0x301,
                    name: 'crafted-span',
                    kind: 4,
                    startTimeUnixNano: '1764000000000000001',
                    endTimeUnixNano: '1764000000999999999',
                    attributes: [
                      kv('str', { stringValue: 'é ✓' }),
                      kv('bool', { boolValue: false }),
                      kv('int', { intValue: '-9007199254740991' }),
                      kv('double', { doubleValue: 3.25 }),
                      kv('bytes', { bytesValue: Buffer.from('cafe', 'hex') }),
                      kv('array.mixed', {
                        arrayValue: {
                          values: [{ stringValue: 'x' }, { intValue: 1 }, { boolValue: true }, { doubleValue: 0.5 }],
                        },
                      }),
                      kv('kvlist', {
                        kvlistValue: {
                          values: [
                            kv('inner.s', { stringValue: 's' }),
                            kv('inner.list', { arrayValue: { values: [{ intValue: 2 }] } }),
                          ],
                        },
                      }),
                      // Beyond what a JS number or the SDK's attribute API can carry:
                      // kept because bytes are forwarded as received.
                      kv('int.big', { intValue: '9007199254740993' }),
                      kv('double.integral', { doubleValue: 2 }),
                    ],
                    droppedAttributesCount: 5,
                    events: [
                      {
                        timeUnixNano: '1764000000500000000',
                        name: 'ev',
                        attributes: [kv('e', { intValue: 1 })],
                        droppedAttributesCount: 2,
                      },
                    ],
                    droppedEventsCount: 6,
                    links: [
                      {
                        traceId: Buffer.from('5b8efff798038103d269b633813fc60d', 'hex'),
                        spanId: Buffer.from('eee19b7ec3c1b175', 'hex'),
                        traceState: 'lk=lv',
                        attributes: [kv('l', { stringValue: 'x' })],
                        droppedAttributesCount: 4,
                        flags: 0x301,
                      },
                    ],
                    droppedLinksCount: 7,
                    status: { code: 1, message: '' },
                  },
                ],
              },
            ],
          },
        ],
      };
      const { ExportTraceServiceRequest } = await import('../src/otlp/schema.ts');
      const known = encodeRequest(ExportTraceServiceRequest.fromObject(req) as unknown as OtlpTraceRequest);
      // A field from a newer opentelemetry-proto (number 1000, a varint) on the request: a receiver
      // that decodes and re-encodes would drop it; cachelens forwards the bytes it received.
      const body = Buffer.concat([known, Buffer.from([0xc0, 0x3e, 0x2a])]);
      const res = await fetch(h.httpUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/x-protobuf' },
        body,
      });
      assert.equal(res.status, 200);
      const sent = canonicalSpans([decodeProtobuf(body)]);
      await waitFor(() => canonicalSpans(sink.requests).has('eee19b7ec3c1b174'), 'crafted span downstream');
      const got = canonicalSpans(sink.requests).get('eee19b7ec3c1b174')!;
      assert.deepEqual(diffSpan(sent.get('eee19b7ec3c1b174')!, got), []);
      assert.ok(
        sink.raw.some((r) => r.equals(body)),
        'downstream got the request bytes exactly as sent',
      );
    },
  );
});
