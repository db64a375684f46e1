import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../../telemetry/logger.ts';
import type { PipelineMetrics } from '../metrics.ts';
import { decompress, type BodyFormat, type Intake } from './intake.ts';
import { parseEndpoint } from '../../config/endpoint.ts';
import { bearerChecker, loadTls, type ReceiverAuth, type ReceiverTls } from './listenOptions.ts';
import { GRPC_CODE, HTTP_CODE, Refusal, ROUTE_REFUSALS } from './refusal.ts';
import { encodeRpcStatus, exportResponse, exportResponseJson, rpcStatus, rpcStatusJson } from './status.ts';

export interface HttpReceiverOptions {
  endpoint: string;
  maxRequestBytes: number;
  tls?: ReceiverTls;
  auth?: ReceiverAuth;
}

const TRACES_PATH = '/v1/traces';
// google.rpc.Code carried in the Status body for each HTTP status we answer with.

function formatOf(contentType: string | undefined): BodyFormat | undefined {
  const ct = (contentType ?? '').split(';')[0]!.trim().toLowerCase();
  if (ct === 'application/x-protobuf' || ct === 'application/protobuf') return 'protobuf';
  if (ct === 'application/json') return 'json';
  return undefined;
}

/** OTLP/HTTP `POST /v1/traces`, protobuf or JSON by Content-Type, gzip/deflate by Content-Encoding. */
export class HttpReceiver {
  private server?: Server;
  private closing = false;
  private readonly authorized: ((h: string | undefined) => boolean) | undefined;

  constructor(
    private readonly opts: HttpReceiverOptions,
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
    const handler = (req: IncomingMessage, res: ServerResponse): void => {
      // Shutting down: answer, then hang up, so a keep-alive client sending without pause cannot hold the
      // server open (close() waits for every connection to end).
      if (this.closing) res.shouldKeepAlive = false;
      void this.handle(req, res);
    };
    this.server = tls
      ? createHttpsServer(
          { cert: tls.cert, key: tls.key, ca: tls.ca, requestCert: !!tls.ca, rejectUnauthorized: !!tls.ca },
          handler,
        )
      : createHttpServer(handler);
    this.server.keepAliveTimeout = 65_000;
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(port, host, () => resolve());
    }).catch((err: Error) => {
      throw new Error(
        `receivers.http.endpoint ${this.opts.endpoint}: cannot listen ` +
          `(${(err as NodeJS.ErrnoException).code ?? err.message})`,
      );
    });
    const a = this.server.address() as AddressInfo;
    return `${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`;
  }

  get port(): number {
    const address = this.server?.address() as AddressInfo | undefined;
    return address?.port ?? 0;
  }

  private reply(
    res: ServerResponse,
    status: number,
    format: BodyFormat,
    body: Uint8Array | string,
    headers: Record<string, string> = {},
  ): void {
    res.writeHead(status, {
      'Content-Type': format === 'json' ? 'application/json' : 'application/x-protobuf',
      ...headers,
    });
    res.end(body);
  }

  private refuse(
    res: ServerResponse,
    format: BodyFormat,
    status: number,
    kind: Refusal['kind'] | keyof typeof ROUTE_REFUSALS,
    message: string,
    retryAfterMs?: number,
    headers: Record<string, string> = {},
  ): void {
    this.metrics.refused.inc({ transport: 'http', reason: kind });
    // One table for both transports: the gRPC code a refusal of this kind gets on :4317.
    const code =
      kind in ROUTE_REFUSALS
        ? ROUTE_REFUSALS[kind as keyof typeof ROUTE_REFUSALS].grpc
        : GRPC_CODE[kind as Refusal['kind']];
    const st = rpcStatus(code, message, kind in ROUTE_REFUSALS ? undefined : (kind as Refusal['kind']), retryAfterMs);
    if (retryAfterMs !== undefined) headers['Retry-After'] = String(Math.max(1, Math.ceil(retryAfterMs / 1000)));
    this.reply(res, status, format, format === 'json' ? rpcStatusJson(st) : encodeRpcStatus(st), headers);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '').split('?')[0];
    const format = formatOf(req.headers['content-type']);
    const replyFormat = format ?? 'json';
    if (path !== TRACES_PATH) {
      req.resume();
      return this.refuse(
        res,
        replyFormat,
        404,
        'not_found',
        `no OTLP endpoint at ${path}; traces go to POST ${TRACES_PATH}`,
      );
    }
    if (req.method !== 'POST') {
      req.resume();
      return this.refuse(
        res,
        replyFormat,
        405,
        'method_not_allowed',
        `method ${req.method} not allowed; use POST`,
        undefined,
        { Allow: 'POST' },
      );
    }
    if (this.authorized && !this.authorized(req.headers.authorization)) {
      req.resume();
      return this.refuse(res, replyFormat, 401, 'unauthenticated', 'missing or wrong bearer token', undefined, {
        'WWW-Authenticate': 'Bearer',
      });
    }
    if (!format) {
      req.resume();
      return this.refuse(
        res,
        'json',
        415,
        'unsupported',
        `unsupported Content-Type ${JSON.stringify(req.headers['content-type'] ?? '')}; use application/x-protobuf ` +
          `or application/json`,
      );
    }
    const max = this.opts.maxRequestBytes;
    let release: (() => void) | undefined;
    let bodyRead = false;
    try {
      const declared = Number(req.headers['content-length']);
      if (Number.isFinite(declared) && declared > max)
        throw new Refusal(
          'too_large',
          `request of ${declared} bytes is larger than receivers.max_request_bytes (${max})`,
        );
      // Shed before reading: a declared length is admitted up front; a chunked body once it has arrived.
      if (Number.isFinite(declared)) release = this.intake.admit(declared);
      const raw = await readBody(req, max);
      bodyRead = true;
      release ??= this.intake.admit(raw.length);
      const body = await decompress(raw, String(req.headers['content-encoding'] ?? ''), max);
      const accepted = await this.intake.accept(body, format, req.socket.remoteAddress ?? null, 'http');
      this.reply(res, 200, format, format === 'json' ? exportResponseJson(accepted) : exportResponse(accepted));
    } catch (err) {
      if (err instanceof Refusal) {
        // Refused before its body was read (too large, or shed): read it to the bin so the answer arrives.
        if (!bodyRead) discardRest(req, DISCARD_LIMIT_BYTES);
        return this.refuse(res, format, HTTP_CODE[err.kind], err.kind, err.message, err.retryAfterMs);
      }
      this.log.error({ err: (err as Error).message }, 'OTLP/HTTP request failed');
      // Unexpected: answer retryable so the client keeps the spans.
      this.refuse(res, format, 503, 'unavailable', `internal error: ${(err as Error).message}`, 1000);
    } finally {
      release?.();
    }
  }

  async shutdown(): Promise<void> {
    const s = this.server;
    if (!s) return;
    this.closing = true;
    await new Promise<void>((resolve) => {
      // Connections become idle as their requests are answered (and not kept alive); a connection still busy
      // after 5 s (a client that never finishes its upload) is cut, as the gRPC receiver forces its shutdown.
      const idle = setInterval(() => s.closeIdleConnections(), 50);
      const force = setTimeout(() => s.closeAllConnections(), 5000);
      s.close(() => {
        clearInterval(idle);
        clearTimeout(force);
        resolve();
      });
      s.closeIdleConnections();
    });
  }
}

// A client sending a body over the limit gets its 413 after its upload ends: closing the connection
// mid-upload makes most clients report a broken pipe instead of the answer. Past this, we hang up.
const DISCARD_LIMIT_BYTES = 256 * 1024 * 1024;

function discardRest(req: IncomingMessage, limit: number): void {
  let n = 0;
  req.on('data', (c: Buffer) => {
    n += c.length;
    if (n > limit) req.socket.destroy();
  });
  req.resume();
}

function readBody(req: IncomingMessage, max: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    req.on('data', (c: Buffer) => {
      if (done) return;
      size += c.length;
      if (size > max) {
        done = true;
        reject(new Refusal('too_large', `request larger than receivers.max_request_bytes (${max} bytes)`));
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => {
      if (!done) resolve(Buffer.concat(chunks, size));
    });
    req.on('error', (err) => {
      if (!done) reject(new Refusal('invalid', `request body could not be read: ${err.message}`));
    });
  });
}
