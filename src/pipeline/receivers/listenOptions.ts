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

/** "127.0.0.1:4317", "[::1]:4317", "0.0.0.0:4318", ":4318" (every interface). */
export function parseEndpoint(endpoint: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(endpoint.trim());
  if (!m) throw new Error(`listen endpoint ${JSON.stringify(endpoint)} is not host:port (e.g. 127.0.0.1:4317)`);
  const port = Number(m[3]);
  if (port > 65535) throw new Error(`listen endpoint ${JSON.stringify(endpoint)}: port out of range`);
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port };
}

export function loadTls(tls: ReceiverTls | undefined): { cert: Buffer; key: Buffer; ca?: Buffer } | undefined {
  if (!tls || !tls.cert_file) return undefined;
  if (!tls.key_file) throw new Error('receivers.tls.key_file is required with receivers.tls.cert_file');
  return { cert: readFileSync(tls.cert_file), key: readFileSync(tls.key_file), ca: tls.client_ca_file ? readFileSync(tls.client_ca_file) : undefined };
}

/** A checker for `authorization: Bearer <token>`; the token file is re-read so rotation works. */
export function bearerChecker(auth: ReceiverAuth | undefined): ((header: string | undefined) => boolean) | undefined {
  if (!auth || (!auth.bearer_token && !auth.bearer_token_file)) return undefined;
  return (header) => {
    const token = auth.bearer_token ?? readFileSync(auth.bearer_token_file!, 'utf8').trim();
    const m = /^Bearer\s+(.+)$/i.exec(header ?? '');
    if (!m) return false;
    const a = Buffer.from(m[1]!.trim());
    const b = Buffer.from(token);
    return a.length === b.length && timingSafeEqual(a, b);
  };
}
