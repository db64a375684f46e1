import { gunzip, inflate, type InputType } from 'node:zlib';
import type { Logger } from '../../telemetry/logger.ts';
import type { PipelineMetrics } from '../metrics.ts';
import { decodeJson, decodeProtobuf, encodeRequest, OtlpDecodeError, validateRequest } from '../../otlp/decode.ts';
import type { OtlpTraceRequest } from '../../otlp/schema.ts';
import { joined, removeSpans } from '../../otlp/splice.ts';
import { Refusal, type Accepted } from './refusal.ts';

export type BodyFormat = 'protobuf' | 'json';
export type Transport = 'grpc' | 'http';

/** Decompresses with the size cap applied to the output, so a gzip bomb stops at the limit. */
export function decompress(body: Buffer, encoding: string, maxBytes: number): Promise<Buffer> {
  const enc = encoding.trim().toLowerCase();
  if (enc === '' || enc === 'identity' || enc === 'none') return Promise.resolve(body);
  const fn = enc === 'gzip' || enc === 'x-gzip' ? gunzip : enc === 'deflate' ? inflate : undefined;
  if (!fn)
    return Promise.reject(
      new Refusal(
        'unsupported',
        `unsupported Content-Encoding ${JSON.stringify(encoding)} (use gzip, deflate or none)`,
      ),
    );
  return new Promise((resolve, reject) => {
    fn(body as InputType, { maxOutputLength: maxBytes }, (err, out) => {
      if (!err) return resolve(out);
      if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE')
        reject(
          new Refusal(
            'too_large',
            `request larger than receivers.max_request_bytes (${maxBytes} bytes) after decompression`,
          ),
        );
      else reject(new Refusal('invalid', `cannot decompress ${enc} body: ${err.message}`));
    });
  });
}

/**
 * What the receivers hand an accepted request to, as the Collector's receivers hand theirs to the
 * next consumer. It resolves only once the request is durable (the ack depends on it), and throws a
 * Refusal('unavailable') when it cannot take the request now.
 */
export interface TracesConsumer {
  /** Reads `req` only before its first await: the receiver does not keep the decoded request alive for it. */
  consume(bytes: Uint8Array, spans: number, peer: string | null, req: OtlpTraceRequest): Promise<void>;
}

/**
 * The receiver half shared by gRPC and HTTP: decode, validate, hand the request to the consumer,
 * and only then report success. Nothing is acknowledged that the consumer has not made durable.
 */
export class Intake {
  private lastFullLogMs = 0;
  private lastBusyLogMs = 0;
  /** Bytes of requests admitted and not yet answered, over both receivers. */
  inFlightBytes = 0;

  constructor(
    private readonly next: TracesConsumer,
    private readonly metrics: PipelineMetrics,
    private readonly log: Logger,
    /** receivers.max_inflight_bytes */
    private readonly maxInFlightBytes = Infinity,
  ) {}

  /**
   * Takes `bytes` of the in-flight budget, or refuses (retryably) when it is spent: a request is shed before
   * it is read and decoded, so memory does not grow with the offered load. One request always fits, so a
   * request near max_request_bytes is never refused forever. The caller releases what it took.
   */
  admit(bytes: number): () => void {
    if (this.inFlightBytes > 0 && this.inFlightBytes + bytes > this.maxInFlightBytes) {
      if (Date.now() - this.lastBusyLogMs > 10_000) {
        this.lastBusyLogMs = Date.now();
        this.log.warn(
          { inFlightBytes: this.inFlightBytes, max: this.maxInFlightBytes },
          'refusing requests: receivers.max_inflight_bytes reached (clients will retry)',
        );
      }
      throw new Refusal(
        'unavailable',
        `busy: ${this.inFlightBytes} request bytes in flight (receivers.max_inflight_bytes ${this.maxInFlightBytes})`,
        1000,
      );
    }
    this.inFlightBytes += bytes;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.inFlightBytes -= bytes;
    };
  }

  async accept(body: Uint8Array, format: BodyFormat, peer: string | null, transport: Transport): Promise<Accepted> {
    const { accepted, durable } = this.handOver(body, format, peer, transport);
    if (!durable) return accepted;
    try {
      await durable;
    } catch (err) {
      // Once per 10 s: a full spool refuses every request until downstream catches up.
      if (err instanceof Refusal && err.kind === 'unavailable' && Date.now() - this.lastFullLogMs > 10_000) {
        this.lastFullLogMs = Date.now();
        this.log.warn({ err: err.message, transport }, 'refusing spans: spool cannot take them (clients will retry)');
      }
      throw err;
    }
    this.metrics.accepted.inc({ transport }, accepted.spans);
    return accepted;
  }

  /**
   * Decodes, validates and hands the request on, in one synchronous turn: the decoded request (an object per
   * attribute) is not held across the spool's commit, so it dies young instead of being promoted.
   */
  private handOver(
    body: Uint8Array,
    format: BodyFormat,
    peer: string | null,
    transport: Transport,
  ): { accepted: Accepted; durable?: Promise<void> } {
    let req: OtlpTraceRequest;
    try {
      req = format === 'json' ? decodeJson(Buffer.from(body).toString('utf8')) : decodeProtobuf(body);
    } catch (err) {
      if (err instanceof OtlpDecodeError) throw new Refusal('invalid', err.message);
      throw err;
    }
    const v = validateRequest(req);
    if (v.rejected) this.metrics.rejected.inc({ transport }, v.rejected);
    const message = v.rejected ? `${v.rejected} span(s) rejected: ${v.reasons.join('; ')}` : undefined;
    const accepted = { spans: v.spans, rejected: v.rejected, message };
    if (!v.spans) return { accepted };
    // Kept as protobuf, as received. Rejected spans are cut out of the bytes, so the other spans'
    // unknown fields survive; only a JSON body is encoded.
    let bytes: Uint8Array;
    if (format === 'json') bytes = encodeRequest(req);
    else if (!v.rejected) bytes = body;
    else bytes = joined(removeSpans(body, new Set(v.rejectedIndexes)));
    return { accepted, durable: this.next.consume(bytes, v.spans, peer, req) };
  }
}
