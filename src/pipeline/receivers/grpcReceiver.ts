import {
  Metadata,
  Server,
  ServerCredentials,
  type sendUnaryData,
  type ServerUnaryCall,
  type ServiceDefinition,
} from '@grpc/grpc-js';
import type { Logger } from '../../telemetry/logger.ts';
import type { PipelineMetrics } from '../metrics.ts';
import type { Intake } from './intake.ts';
import { parseEndpoint } from '../../config/endpoint.ts';
import { bearerChecker, loadTls, type ReceiverAuth, type ReceiverTls } from './listenOptions.ts';
import { GRPC_CODE, Refusal } from './refusal.ts';
import { encodeRpcStatus, exportResponse, rpcStatus } from './status.ts';

export interface GrpcReceiverOptions {
  endpoint: string;
  maxRequestBytes: number;
  tls?: ReceiverTls;
  auth?: ReceiverAuth;
}

const identity = (b: Buffer): Buffer => b;

// Raw bytes in and out: decoding is ours, so a malformed body gets a precise INVALID_ARGUMENT.
export const TRACE_SERVICE: ServiceDefinition = {
  Export: {
    path: '/opentelemetry.proto.collector.trace.v1.TraceService/Export',
    requestStream: false,
    responseStream: false,
    requestSerialize: identity,
    requestDeserialize: identity,
    responseSerialize: identity,
    responseDeserialize: identity,
  },
};

/** OTLP/gRPC TraceService/Export; grpc-js enforces the size cap after decompression (RESOURCE_EXHAUSTED). */
export class GrpcReceiver {
  private server?: Server;
  private boundPort = 0;
  private readonly authorized: ((h: string | undefined) => boolean) | undefined;

  constructor(
    private readonly opts: GrpcReceiverOptions,
    private readonly intake: Intake,
    private readonly metrics: PipelineMetrics,
    private readonly log: Logger,
  ) {
    this.authorized = bearerChecker(opts.auth, (err) =>
      this.log.error({ err: err.message }, 'bearer token file unreadable'),
    );
  }

  async start(): Promise<string> {
    const { host, port } = parseEndpoint(this.opts.endpoint);
    const tls = loadTls(this.opts.tls);
    this.server = new Server({ 'grpc.max_receive_message_length': this.opts.maxRequestBytes });
    this.server.addService(TRACE_SERVICE, {
      Export: (call: ServerUnaryCall<Buffer, Buffer>, cb: sendUnaryData<Buffer>) => void this.export(call, cb),
    });
    const creds = tls
      ? ServerCredentials.createSsl(tls.ca ?? null, [{ cert_chain: tls.cert, private_key: tls.key }], !!tls.ca)
      : ServerCredentials.createInsecure();
    const target = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
    this.boundPort = await new Promise<number>((resolve, reject) =>
      this.server!.bindAsync(target, creds, (err, p) =>
        err
          ? reject(
              new Error(
                `receivers.grpc.endpoint ${this.opts.endpoint}: cannot listen ` +
                  `(${/EADDRINUSE|EACCES|EADDRNOTAVAIL/.exec(err.message)?.[0] ?? err.message})`,
              ),
            )
          : resolve(p),
      ),
    );
    return target.replace(/:\d+$/, `:${this.boundPort}`);
  }

  get port(): number {
    return this.boundPort;
  }

  private fail(cb: sendUnaryData<Buffer>, kind: Refusal['kind'], message: string, retryAfterMs?: number): void {
    this.metrics.refused.inc({ transport: 'grpc', reason: kind });
    const code = GRPC_CODE[kind];
    const metadata = new Metadata();
    metadata.set('grpc-status-details-bin', Buffer.from(encodeRpcStatus(rpcStatus(code, message, kind, retryAfterMs))));
    cb({ code, details: message, metadata });
  }

  private async export(call: ServerUnaryCall<Buffer, Buffer>, cb: sendUnaryData<Buffer>): Promise<void> {
    if (this.authorized && !this.authorized(call.metadata.get('authorization')[0]?.toString()))
      return this.fail(cb, 'unauthenticated', 'missing or wrong bearer token');
    let release: (() => void) | undefined;
    try {
      release = this.intake.admit(call.request.length);
      const accepted = await this.intake.accept(call.request, 'protobuf', call.getPeer(), 'grpc');
      cb(null, Buffer.from(exportResponse(accepted)));
    } catch (err) {
      if (err instanceof Refusal) return this.fail(cb, err.kind, err.message, err.retryAfterMs);
      this.log.error({ err: (err as Error).message }, 'OTLP/gRPC request failed');
      this.fail(cb, 'unavailable', `internal error: ${(err as Error).message}`, 1000);
    } finally {
      release?.();
    }
  }

  async shutdown(): Promise<void> {
    const s = this.server;
    if (!s) return;
    await new Promise<void>((resolve) => {
      const force = setTimeout(() => {
        s.forceShutdown();
        resolve();
      }, 5000);
      s.tryShutdown(() => {
        clearTimeout(force);
        resolve();
      });
    });
  }
}
