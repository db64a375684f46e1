import type { PrometheusSourceConfig } from '../config/config.ts';
import { fetchExposition, ScrapeError } from './fetchExposition.ts';
import { makeTarget, type Target } from './target.ts';

/** Why a read from Prometheus failed: the `reason` label of cachelens_source_read_failures_total. */
export const SOURCE_FAILURE_REASONS = [
  'connect',
  'timeout',
  'http_status',
  'too_large',
  'decode',
  'auth_file',
  'redirect',
  'too_many_samples',
  'api_error',
  'unexpected',
] as const;
export type SourceFailureReason = (typeof SOURCE_FAILURE_REASONS)[number];

export class SourceError extends Error {
  constructor(
    message: string,
    readonly reason: SourceFailureReason,
  ) {
    super(message);
    this.name = 'SourceError';
  }
}

/** One series of a range-vector answer: its labels (with __name__) and its raw samples. */
export interface RawSeries {
  metric: Record<string, string>;
  /** [unix seconds, value as text] as the API sends them. */
  values: Array<[number, string]>;
}

export interface QueryAnswer {
  series: RawSeries[];
  warnings: string[];
  bytes: number;
}

// Prometheus (query.max-samples), Thanos, Mimir and VictoriaMetrics word a query refused for its size
// differently; all of them name samples, series or chunks and a limit.
const TOO_BIG = new RegExp(
  [
    'too many samples',
    'would load too many',
    'max(imum)?[ _-]?(number of )?(samples|series|chunks)',
    'maxSamplesPerQuery',
    'maxSeries',
    'exceeded the (limit|maximum)',
  ].join('|'),
  'i',
);

const MAX_ANSWER_BYTES = 512 * 1024 * 1024;

/** A value as the API writes it: decimal, NaN, +Inf or -Inf. */
export function parseApiValue(text: string): number {
  if (text === '+Inf') return Number.POSITIVE_INFINITY;
  if (text === '-Inf') return Number.NEGATIVE_INFINITY;
  return Number(text);
}

/**
 * The HTTP API of Prometheus (and of Thanos Query, Mimir and VictoriaMetrics, which serve the same
 * `/api/v1/query`). Requests go through the scraper's own HTTP client, with the same auth and TLS options.
 */
export class PrometheusApi {
  private readonly endpoint: Target;

  constructor(private readonly cfg: PrometheusSourceConfig) {
    const { bearer_token, bearer_token_file, basic_auth, tls } = cfg;
    this.endpoint = makeTarget(cfg.url, {}, 'auto', { bearer_token, bearer_token_file, basic_auth, tls }, 'prometheus');
  }

  /**
   * An instant query (a range selector gives every raw sample in its range, with its stored timestamp). An
   * expression of instant vectors (`want: 'vector'`) comes back with each sample as a series of one value.
   */
  async query(expr: string, atMs: number, want: 'matrix' | 'vector' = 'matrix'): Promise<QueryAnswer> {
    const base = this.cfg.url.replace(/\/+$/, '');
    const params = new URLSearchParams({
      query: expr,
      time: (atMs / 1000).toFixed(3),
      timeout: `${Math.max(1, Math.floor(this.cfg.timeout / 1000))}s`,
    });
    const target = { ...this.endpoint, url: new URL(`${base}/api/v1/query?${params}`) };
    let fetched: Awaited<ReturnType<typeof fetchExposition>>;
    try {
      fetched = await fetchExposition(target, this.cfg.timeout, MAX_ANSWER_BYTES, {
        accept: 'application/json',
        headers: this.cfg.headers,
        readErrorBodies: true,
      });
    } catch (err) {
      if (err instanceof ScrapeError)
        throw new SourceError(
          err.message,
          (SOURCE_FAILURE_REASONS as readonly string[]).includes(err.reason)
            ? (err.reason as SourceFailureReason)
            : 'unexpected',
        );
      throw err;
    }
    let doc: {
      status?: string;
      errorType?: string;
      error?: string;
      warnings?: string[];
      data?: { resultType?: string; result?: unknown };
    };
    try {
      doc = JSON.parse(fetched.body);
    } catch {
      const what = fetched.status === 200 ? 'an answer that is not JSON' : `HTTP ${fetched.status}`;
      throw new SourceError(
        `${what}: ${fetched.body.slice(0, 200)}`,
        fetched.status === 200 ? 'decode' : 'http_status',
      );
    }
    if (doc.status !== 'success') {
      const message = `${doc.errorType ?? `HTTP ${fetched.status}`}: ${doc.error ?? fetched.body.slice(0, 200)}`;
      throw new SourceError(message, TOO_BIG.test(doc.error ?? '') ? 'too_many_samples' : 'api_error');
    }
    const result = doc.data?.result;
    if (doc.data?.resultType !== want || !Array.isArray(result))
      throw new SourceError(`expected a ${want}, got ${doc.data?.resultType}`, 'decode');
    const series =
      want === 'matrix'
        ? (result as RawSeries[])
        : (result as Array<{ metric: Record<string, string>; value: [number, string] }>).map((r) => ({
            metric: r.metric,
            values: [r.value],
          }));
    return { series, warnings: doc.warnings ?? [], bytes: fetched.bodyBytes };
  }

  /** HELP text of one metric, from the metadata API (Prometheus keeps it per metric name). */
  async help(metric: string): Promise<string | undefined> {
    const base = this.cfg.url.replace(/\/+$/, '');
    const target = { ...this.endpoint, url: new URL(`${base}/api/v1/metadata?metric=${encodeURIComponent(metric)}`) };
    const fetched = await fetchExposition(target, this.cfg.timeout, 1 << 20, {
      accept: 'application/json',
      headers: this.cfg.headers,
    });
    const doc = JSON.parse(fetched.body) as { data?: Record<string, Array<{ help?: string }>> };
    return doc.data?.[metric]?.[0]?.help;
  }
}
