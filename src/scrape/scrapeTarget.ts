import { fetchExposition, ScrapeError, type ScrapeFailureReason } from './fetchExposition.ts';
import { normalizeSamples } from './normalize.ts';
import { parseExposition } from './parseExposition.ts';
import { detectProfile, HELP_NAMES, PROFILE_BY_NAME, WANTED_SAMPLE_NAMES } from './profiles.ts';
import type { Target } from './target.ts';
import type { SignalSample } from './types.ts';

export interface ScrapeResult {
  target: Target;
  startedMs: number;
  durationMs: number;
  up: boolean;
  /** Why the scrape failed, or a warning about a scrape that worked (partial parse, no profile). */
  error?: string;
  /** The kind of failure, when up is false. */
  failure?: ScrapeFailureReason;
  samples: number;
  parseErrors: number;
  profile?: string;
  signals: SignalSample[];
}

export interface ScrapeOptions {
  timeoutMs: number;
  maxBodyBytes: number;
  /** Most sample lines of wanted metrics; more is up=0 before any parsing. */
  sampleLimit?: number;
}

/** Turns one body into signals: parse, pick the profile (configured or detected), normalize. */
export function normalizeBody(
  target: Target,
  body: string,
  sampleLimit?: number,
): Omit<ScrapeResult, 'target' | 'startedMs' | 'durationMs' | 'up'> {
  const parsed = parseExposition(body, WANTED_SAMPLE_NAMES, HELP_NAMES, sampleLimit);
  const profile = target.profile === 'auto' ? detectProfile(parsed.present) : PROFILE_BY_NAME.get(target.profile);
  const warnings: string[] = [];
  if (parsed.parseErrors) warnings.push(`${parsed.parseErrors} line(s) not parsed; first: ${parsed.firstError}`);
  if (!profile)
    warnings.push(
      'no vLLM, SGLang or TGI metric families found (is the server started with metrics on, e.g. without ' +
        '--disable-log-stats?)',
    );
  const signals = profile ? normalizeSamples(profile, parsed.samples, parsed.help, target.labels) : [];
  return {
    error: warnings.length ? warnings.join('; ') : undefined,
    samples: parsed.sampleLines,
    parseErrors: parsed.parseErrors,
    profile: profile?.name,
    signals,
  };
}

/** One scrape. Never throws: failures come back as up=false with the reason. */
export async function scrapeTarget(
  target: Target,
  opts: ScrapeOptions,
  now: () => number = Date.now,
): Promise<ScrapeResult> {
  const startedMs = now();
  const t0 = performance.now();
  try {
    const fetched = await fetchExposition(target, opts.timeoutMs, opts.maxBodyBytes);
    const normalized = normalizeBody(target, fetched.body, opts.sampleLimit);
    // A body with no sample line at all and only unparseable ones is not an exposition (an HTML error page, binary).
    if (normalized.samples === 0 && normalized.parseErrors > 0) {
      const what = fetched.contentType ? ` (Content-Type: ${fetched.contentType})` : '';
      return {
        target,
        startedMs,
        durationMs: performance.now() - t0,
        up: false,
        failure: 'not_exposition',
        error: `body is not a Prometheus text exposition${what}: ${normalized.error}`,
        samples: 0,
        parseErrors: normalized.parseErrors,
        signals: [],
      };
    }
    return { target, startedMs, durationMs: performance.now() - t0, up: true, ...normalized };
  } catch (err) {
    const known = err instanceof ScrapeError;
    const message = known ? err.message : `unexpected: ${(err as Error).message}`;
    return {
      target,
      startedMs,
      durationMs: performance.now() - t0,
      up: false,
      failure: known ? err.reason : 'unexpected',
      error: message,
      samples: 0,
      parseErrors: 0,
      signals: [],
    };
  }
}
