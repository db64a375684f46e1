import { Metadata, Server, ServerCredentials, type sendUnaryData, type ServerUnaryCall } from '@grpc/grpc-js';
import { decodeProtobuf } from '../../src/otlp/decode.ts';
import type { OtlpSpan, OtlpTraceRequest } from '../../src/otlp/schema.ts';
import { TRACE_SERVICE } from '../../src/pipeline/receivers/grpcReceiver.ts';
import { encodeRpcStatus, rpcStatus } from '../../src/pipeline/receivers/status.ts';

export interface SinkFailure {
  code: number;
  message: string;
  retryAfterMs?: number;
}

/**
 * A real downstream OTLP/gRPC receiver on 127.0.0.1 that keeps every request it acknowledged,
 * and can be told to fail the next requests with a given status.
 */
export class OtlpSink {
  readonly requests: OtlpTraceRequest[] = [];
  readonly raw: Buffer[] = [];
  failures: SinkFailure[] = [];
  /** When set, every request fails with it (downstream outage). */
  failAll?: SinkFailure;
  attempts = 0;
  /** Refuse a whole request when this says so (the Collector refuses a request for one bad span). */
  rejectIf?: (req: OtlpTraceRequest) => SinkFailure | undefined;
  /** Answer each successful export this much later (a slow downstream). */
  delayMs = 0;
  private server?: Server;
  port = 0;

  async start(port = 0): Promise<this> {
    this.server = new Server({ 'grpc.max_receive_message_length': 64 * 1024 * 1024 });
    this.server.addService(TRACE_SERVICE, {
      Export: (call: ServerUnaryCall<Buffer, Buffer>, cb: sendUnaryData<Buffer>) => {
        this.attempts++;
        const f = this.failAll ?? this.failures.shift() ?? this.rejectIf?.(decodeProtobuf(call.request));
        if (f) {
          const md = new Metadata();
          md.set(
            'grpc-status-details-bin',
            Buffer.from(encodeRpcStatus(rpcStatus(f.code, f.message, undefined, f.retryAfterMs))),
          );
          return cb({ code: f.code, details: f.message, metadata: md });
        }
        const accept = () => {
          this.raw.push(call.request);
          this.requests.push(decodeProtobuf(call.request));
          cb(null, Buffer.alloc(0));
        };
        if (this.delayMs) setTimeout(accept, this.delayMs);
        else accept();
      },
    });
    this.port = await new Promise<number>((resolve, reject) =>
      this.server!.bindAsync(`127.0.0.1:${port}`, ServerCredentials.createInsecure(), (e, p) =>
        e ? reject(e) : resolve(p),
      ),
    );
    return this;
  }

  get endpoint(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  spans(): OtlpSpan[] {
    return this.requests.flatMap((r) => r.resourceSpans.flatMap((rs) => rs.scopeSpans.flatMap((ss) => ss.spans)));
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => this.server?.tryShutdown(() => resolve()) ?? resolve());
    this.server?.forceShutdown();
  }
}
