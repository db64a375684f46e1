import { BadRequest, ExportTraceServiceResponse, RetryInfo, RpcStatus } from '../../otlp/schema.ts';
import type { Accepted, RefusalKind } from './refusal.ts';

/** google.rpc.Status with BadRequest or RetryInfo details, as the OTLP spec asks error bodies to be. */
export function rpcStatus(
  code: number,
  message: string,
  kind?: RefusalKind,
  retryAfterMs?: number,
): { code: number; message: string; details: Array<{ typeUrl: string; value: Uint8Array }> } {
  const details: Array<{ typeUrl: string; value: Uint8Array }> = [];
  if (kind === 'invalid')
    details.push({
      typeUrl: 'type.googleapis.com/google.rpc.BadRequest',
      value: BadRequest.encode({ fieldViolations: [{ field: 'body', description: message }] }).finish(),
    });
  if (retryAfterMs !== undefined) {
    const seconds = Math.floor(retryAfterMs / 1000);
    details.push({
      typeUrl: 'type.googleapis.com/google.rpc.RetryInfo',
      value: RetryInfo.encode({
        retryDelay: { seconds, nanos: Math.round((retryAfterMs - seconds * 1000) * 1e6) },
      }).finish(),
    });
  }
  return { code, message, details };
}

export function encodeRpcStatus(status: ReturnType<typeof rpcStatus>): Uint8Array {
  return RpcStatus.encode(status).finish();
}

export function rpcStatusJson(status: ReturnType<typeof rpcStatus>): string {
  return JSON.stringify({
    code: status.code,
    message: status.message,
    details: status.details.map((d) => ({ '@type': d.typeUrl, value: Buffer.from(d.value).toString('base64') })),
  });
}

export function exportResponse(a: Accepted): Uint8Array {
  if (!a.rejected && !a.message) return new Uint8Array(0);
  return ExportTraceServiceResponse.encode({
    partialSuccess: { rejectedSpans: a.rejected, errorMessage: a.message ?? '' },
  }).finish();
}

export function exportResponseJson(a: Accepted): string {
  if (!a.rejected && !a.message) return '{}';
  return JSON.stringify({ partialSuccess: { rejectedSpans: String(a.rejected), errorMessage: a.message ?? '' } });
}
