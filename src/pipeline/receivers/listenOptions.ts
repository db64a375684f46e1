import { readFileSync } from 'node:fs';
import { timingSafeEqual } from 'node:crypto';

export interface ReceiverTls {
  cert_file?: string;
  key_file?: string;
  client_ca_file?: string;
}

export interface ReceiverAuth {
  bearer_token?: string;
  bearer_token_file?: string;
}

export function loadTls(tls: ReceiverTls | undefined): { cert: Buffer; key: Buffer; ca?: Buffer } | undefined {
  if (!tls?.cert_file) return undefined;
  if (!tls.key_file) throw new Error('receivers.tls.key_file is required with receivers.tls.cert_file');
  return {
    cert: readFileSync(tls.cert_file),
    key: readFileSync(tls.key_file),
    ca: tls.client_ca_file ? readFileSync(tls.client_ca_file) : undefined,
  };
}

/**
 * A checker for `authorization: Bearer <token>`; the token file is re-read so rotation works. A
 * file that cannot be read refuses the request (401) instead of throwing, and is reported once
 * through `onFileError` until it can be read again.
 */
export function bearerChecker(
  auth: ReceiverAuth | undefined,
  onFileError: (err: Error) => void = () => undefined,
): ((header: string | undefined) => boolean) | undefined {
  if (!auth || (!auth.bearer_token && !auth.bearer_token_file)) return undefined;
  let failing = false;
  return (header) => {
    let token: string;
    if (auth.bearer_token) token = auth.bearer_token;
    else {
      try {
        token = readFileSync(auth.bearer_token_file!, 'utf8').trim();
        failing = false;
      } catch (err) {
        if (!failing)
          onFileError(
            new Error(
              `receivers.bearer_token_file ${auth.bearer_token_file}: cannot read ` +
                `(${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); refusing every request as ` +
                `unauthenticated until it can be read`,
            ),
          );
        failing = true;
        return false;
      }
      if (!token) return false; // an empty file never matches an empty token
    }
    const m = /^Bearer\s+(.+)$/i.exec(header ?? '');
    if (!m) return false;
    const a = Buffer.from(m[1]!.trim());
    const b = Buffer.from(token);
    return a.length === b.length && timingSafeEqual(a, b);
  };
}
