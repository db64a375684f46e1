// The demo's downstream: an OTLP/gRPC receiver that keeps what cachelens forwards, so the demo can
// print enriched spans without a trace backend.
import { Server, ServerCredentials, type sendUnaryData, type ServerUnaryCall } from '@grpc/grpc-js';
import { decodeProtobuf } from '../otlp/decode.ts';
import type { OtlpResourceSpans, OtlpSpan } from '../otlp/schema.ts';
import { TRACE_SERVICE } from '../pipeline/receivers/grpcReceiver.ts';

export interface CapturedSpan {
  span: OtlpSpan;
  resource?: OtlpResourceSpans['resource'];
}

export class CaptureSink {
  private server?: Server;
  private port = 0;
  readonly spans: CapturedSpan[] = [];
  received = 0;

  constructor(private readonly keep: (s: OtlpSpan) => boolean) {}

  async start(): Promise<string> {
    this.server = new Server({ 'grpc.max_receive_message_length': 64 * 1024 * 1024 });
    this.server.addService(TRACE_SERVICE, {
      Export: (call: ServerUnaryCall<Buffer, Buffer>, cb: sendUnaryData<Buffer>) => {
        for (const rs of decodeProtobuf(call.request).resourceSpans) {
          for (const ss of rs.scopeSpans) {
            for (const span of ss.spans) {
              this.received++;
              if (this.keep(span)) this.spans.push({ span, resource: rs.resource });
            }
          }
        }
        cb(null, Buffer.alloc(0));
      },
    });
    this.port = await new Promise<number>((resolve, reject) =>
      this.server!.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))),
    );
    return `http://127.0.0.1:${this.port}`;
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => this.server?.tryShutdown(() => resolve()) ?? resolve());
  }
}
