import { GRPC } from '../otlp/grpcStatus.ts';
import { RetryInfo, RpcStatus } from '../otlp/schema.ts';

// The OTLP spec's retryable set, plus auth failures: those are a config error someone will fix,
// so spans wait in the bounded spool instead of being thrown away.
const RETRYABLE = new Set<number>([
  GRPC.CANCELLED,
  GRPC.DEADLINE_EXCEEDED,
  GRPC.ABORTED,
  GRPC.OUT_OF_RANGE,
  GRPC.UNAVAILABLE,
  GRPC.DATA_LOSS,
  GRPC.UNAUTHENTICATED,
  GRPC.PERMISSION_DENIED,
]);

export interface FailureVerdict {
  retryable: boolean;
  /** Server-requested delay (RetryInfo), when it sent one. */
  retryAfterMs?: number;
  reason: string;
}

interface GrpcLikeError extends Error {
  code?: number;
  details?: string;
  metadata?: { get(key: string): Array<string | Buffer> };
}

function retryInfoMs(err: GrpcLikeError): number | undefined {
  const raw = err.metadata?.get?.('grpc-status-details-bin')?.[0];
  if (!raw || typeof raw === 'string') return undefined;
  try {
    const status = RpcStatus.decode(raw) as unknown as { details: Array<{ typeUrl: string; value: Uint8Array }> };
    for (const d of status.details) {
      if (!d.typeUrl.endsWith('google.rpc.RetryInfo')) continue;
      const info = RetryInfo.decode(d.value) as unknown as {
        retryDelay?: { seconds?: number | { toNumber(): number }; nanos?: number };
      };
      const s = info.retryDelay?.seconds;
      const seconds = typeof s === 'number' ? s : (s?.toNumber() ?? 0);
      return seconds * 1000 + (info.retryDelay?.nanos ?? 0) / 1e6;
    }
  } catch {
    return undefined;
  }
  return undefined;
}

/** Classifies an export failure as the OTLP spec says a client must. */
export function classifyExportError(err: unknown): FailureVerdict {
  const e = err as GrpcLikeError;
  if (!e || typeof e.code !== 'number') return { retryable: true, reason: e?.message ?? String(err) };
  const retryAfterMs = retryInfoMs(e);
  const codeName = Object.keys(GRPC).find((k) => GRPC[k as keyof typeof GRPC] === e.code) ?? e.code;
  const reason = `${codeName}: ${e.details ?? e.message}`;
  if (e.code === GRPC.RESOURCE_EXHAUSTED) return { retryable: retryAfterMs !== undefined, retryAfterMs, reason };
  return { retryable: RETRYABLE.has(e.code), retryAfterMs, reason };
}

/** Exponential backoff with full jitter between initial and max. */
export class Backoff {
  private failures = 0;

  constructor(
    private readonly initialMs: number,
    private readonly maxMs: number,
    private readonly random: () => number = Math.random,
  ) {}

  get consecutiveFailures(): number {
    return this.failures;
  }

  next(serverDelayMs?: number): number {
    this.failures++;
    const ceiling = Math.min(this.maxMs, this.initialMs * 2 ** (this.failures - 1));
    const jittered = ceiling / 2 + (this.random() * ceiling) / 2;
    return serverDelayMs !== undefined ? Math.max(serverDelayMs, 0) : jittered;
  }

  reset(): void {
    this.failures = 0;
  }
}
