import { GRPC } from '../../otlp/grpcStatus.ts';

/** Why a request was refused; each receiver maps it onto its own status codes. */
export type RefusalKind = 'invalid' | 'too_large' | 'unavailable' | 'unauthenticated' | 'unsupported';

export class Refusal extends Error {
  constructor(
    readonly kind: RefusalKind,
    message: string,
    readonly retryAfterMs?: number,
  ) {
    super(message);
  }
}

export interface Accepted {
  spans: number;
  rejected: number;
  message?: string;
}

/** One table for both transports: the gRPC code and the HTTP status a refusal of each kind gets. */
export const GRPC_CODE: Record<RefusalKind, number> = {
  invalid: GRPC.INVALID_ARGUMENT,
  too_large: GRPC.RESOURCE_EXHAUSTED,
  unavailable: GRPC.UNAVAILABLE,
  unauthenticated: GRPC.UNAUTHENTICATED,
  unsupported: GRPC.UNIMPLEMENTED,
};

export const HTTP_CODE: Record<RefusalKind, number> = {
  invalid: 400,
  too_large: 413,
  unavailable: 503,
  unauthenticated: 401,
  unsupported: 415,
};

/** HTTP refusals that are not about the request's content: the route or the method. */
export const ROUTE_REFUSALS = {
  not_found: { http: 404, grpc: GRPC.UNIMPLEMENTED },
  method_not_allowed: { http: 405, grpc: GRPC.UNIMPLEMENTED },
} as const;

/** Every `reason` label value of cachelens_receiver_refused_requests_total, set to 0 at start. */
export const REFUSAL_REASONS = [
  ...(Object.keys(GRPC_CODE) as RefusalKind[]),
  ...(Object.keys(ROUTE_REFUSALS) as Array<keyof typeof ROUTE_REFUSALS>),
];
