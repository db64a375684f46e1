import http from 'node:http';
import https from 'node:https';
import { readFileSync } from 'node:fs';
import zlib from 'node:zlib';
import type { Target } from './target.ts';

export const SCRAPE_ACCEPT = 'text/plain;version=0.0.4;q=1,*/*;q=0.1';
const USER_AGENT = 'cachelens/0.1';

const httpAgent = new http.Agent({ keepAlive: true, maxSockets: Infinity, maxFreeSockets: 4096 });
const httpsAgents = new Map<string, https.Agent>();

/** Why a scrape failed: the `reason` label of cachelens_scrape_failures_total. */
export const SCRAPE_FAILURE_REASONS = [
  'connect',
  'timeout',
  'http_status',
  'too_large',
  'decode',
  'auth_file',
  'redirect',
  'sample_limit',
  'not_exposition',
  'unexpected',
] as const;
export type ScrapeFailureReason = (typeof SCRAPE_FAILURE_REASONS)[number];

/** A failed scrape: the message is the target's last error, the reason labels the failure counter. */
export class ScrapeError extends Error {
  constructor(
    message: string,
    readonly reason: ScrapeFailureReason,
  ) {
    super(message);
    this.name = 'ScrapeError';
  }
}

export interface FetchedExposition {
  body: string;
  status: number;
  contentType: string;
  bodyBytes: number;
}

function readSecretFile(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch (err) {
    throw new ScrapeError(
      `cannot read ${what} ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      'auth_file',
    );
  }
}

function authorizationHeader(t: Target): string | undefined {
  if (t.auth.bearer_token_file) return `Bearer ${readSecretFile(t.auth.bearer_token_file, 'bearer_token_file')}`;
  if (t.auth.bearer_token) return `Bearer ${t.auth.bearer_token}`;
  const b = t.auth.basic_auth;
  if (b?.username !== undefined) {
    const password = b.password_file ? readSecretFile(b.password_file, 'basic_auth.password_file') : (b.password ?? '');
    return `Basic ${Buffer.from(`${b.username}:${password}`).toString('base64')}`;
  }
  return undefined;
}

function httpsAgentFor(t: Target): https.Agent {
  const tls: Partial<NonNullable<Target['auth']['tls']>> = t.auth.tls ?? {};
  const key = JSON.stringify(tls);
  let agent = httpsAgents.get(key);
  if (!agent) {
    const read = (p: string | undefined, what: string) => (p ? readSecretFile(p, `tls.${what}`) : undefined);
    agent = new https.Agent({
      keepAlive: true,
      maxSockets: Infinity,
      ca: read(tls.ca_file, 'ca_file'),
      cert: read(tls.cert_file, 'cert_file'),
      key: read(tls.key_file, 'key_file'),
      servername: tls.server_name,
      rejectUnauthorized: !tls.insecure_skip_verify,
    });
    httpsAgents.set(key, agent);
  }
  return agent;
}

export interface FetchOptions {
  accept?: string;
  headers?: Record<string, string>;
  /** Read the body of any non-redirect answer (an API's JSON error) instead of failing on a status other than 200. */
  readErrorBodies?: boolean;
}

/**
 * Compressed bodies up to this size inflate synchronously (a gzipped vLLM body is 4–10 KB); larger ones, such
 * as Prometheus API answers of several MB, on the thread pool, where ~10 ms of inflation does not hold the loop.
 */
const SYNC_INFLATE_MAX_BYTES = 256 * 1024;

/** GETs a target's /metrics. The size cap applies after decompression, so a gzip bomb stops at the cap. */
export function fetchExposition(
  t: Target,
  timeoutMs: number,
  maxBodyBytes: number,
  opts: FetchOptions = {},
): Promise<FetchedExposition> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const fail = (err: ScrapeError) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      req.destroy();
      reject(err);
    };
    const headers: Record<string, string> = {
      ...opts.headers,
      Accept: opts.accept ?? SCRAPE_ACCEPT,
      'Accept-Encoding': 'gzip',
      'User-Agent': USER_AGENT,
      'X-Prometheus-Scrape-Timeout-Seconds': String(timeoutMs / 1000),
    };
    const authorization = authorizationHeader(t);
    if (authorization) headers.Authorization = authorization;
    const isHttps = t.url.protocol === 'https:';
    const req = (isHttps ? https : http).request(t.url, {
      method: 'GET',
      headers,
      agent: isHttps ? httpsAgentFor(t) : httpAgent,
    });
    const timer = setTimeout(() => fail(new ScrapeError(`timed out after ${timeoutMs}ms`, 'timeout')), timeoutMs);
    req.on('error', (err: NodeJS.ErrnoException) =>
      fail(new ScrapeError(`${err.code ?? 'error'}: ${err.message}`, 'connect')),
    );
    req.on('response', (res) => {
      const status = res.statusCode ?? 0;
      if (status >= 300 && status < 400) {
        res.resume();
        return fail(
          new ScrapeError(
            `HTTP ${status} redirect to ${res.headers.location ?? '(no location)'} (redirects are not followed; ` +
              `configure the final URL)`,
            'redirect',
          ),
        );
      }
      if (status !== 200 && !opts.readErrorBodies) {
        res.resume();
        return fail(new ScrapeError(`HTTP ${status} ${res.statusMessage ?? ''}`.trim(), 'http_status'));
      }
      const encoding = (res.headers['content-encoding'] ?? '').toLowerCase();
      const gzip = encoding === 'gzip' || encoding === 'x-gzip';
      if (!gzip && encoding !== 'deflate' && encoding !== '' && encoding !== 'identity')
        return fail(new ScrapeError(`unsupported Content-Encoding ${encoding}`, 'decode'));
      const tooLarge = () =>
        fail(new ScrapeError(`body exceeds ${maxBodyBytes} bytes (scrape.max_body_bytes)`, 'too_large'));
      const chunks: Buffer[] = [];
      let bytes = 0;
      res.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
        if (bytes > maxBodyBytes) {
          res.destroy();
          tooLarge();
          return;
        }
        chunks.push(chunk);
      });
      res.on('error', (err: Error) => fail(new ScrapeError(`body: ${err.message}`, 'connect')));
      const done = (body: Buffer) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve({
          body: body.toString('utf8'),
          status,
          contentType: String(res.headers['content-type'] ?? ''),
          bodyBytes: body.length,
        });
      };
      const inflateFailed = (err: unknown) =>
        (err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE'
          ? tooLarge()
          : fail(new ScrapeError(`cannot decode ${encoding}: ${(err as Error).message}`, 'decode'));
      res.on('end', () => {
        if (settled) return;
        const raw = Buffer.concat(chunks, bytes);
        if (encoding === '' || encoding === 'identity') return done(raw);
        // maxOutputLength stops a gzip bomb at the cap.
        const opts = { maxOutputLength: maxBodyBytes };
        if (raw.length <= SYNC_INFLATE_MAX_BYTES) {
          // One synchronous inflation of a /metrics body (~50 µs for 57 KB): a zlib stream per scrape, or the
          // thread pool's hand-off, cost 250–300 µs of CPU more per scrape (bench/README).
          let body: Buffer;
          try {
            body = gzip ? zlib.gunzipSync(raw, opts) : zlib.inflateSync(raw, opts);
          } catch (err) {
            return inflateFailed(err);
          }
          return done(body);
        }
        // A large answer (a Prometheus query for a whole fleet) inflates on the thread pool, off the event loop.
        const cb = (err: Error | null, body: Buffer) => (err ? inflateFailed(err) : done(body));
        if (gzip) zlib.gunzip(raw, opts, cb);
        else zlib.inflate(raw, opts, cb);
      });
    });
    req.end();
  });
}
