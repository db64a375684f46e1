import type { ConfigOf, ObjectSpec } from '../spec.ts';
import { AUTH_FIELDS } from './auth.ts';
import { checkPrometheus, prometheusSpec } from './prometheus.ts';

export const PROFILE_NAMES = ['auto', 'vllm', 'vllm-0.9', 'vllm-v0', 'sglang', 'sglang-0.3', 'tgi'] as const;

export const scrapeSpec = {
  kind: 'object',
  fields: {
    interval: {
      kind: 'duration',
      default: '5s',
      env: 'CACHELENS_SCRAPE_INTERVAL',
      doc: 'How often each target is scraped (whole seconds, ≥ 1s).',
    },
    timeout: {
      kind: 'duration',
      default: '4s',
      env: 'CACHELENS_SCRAPE_TIMEOUT',
      doc: 'Per-scrape deadline; must be shorter than the interval.',
    },
    max_body_bytes: {
      kind: 'bytes',
      default: '16MiB',
      env: 'CACHELENS_SCRAPE_MAX_BODY_BYTES',
      doc: 'Cap on a decompressed /metrics body; larger bodies fail the scrape with up=0.',
    },
    sample_limit: {
      kind: 'int',
      default: 20000,
      doc:
        'Most sample lines of the metrics cachelens reads, per scrape (like Prometheus `sample_limit`); more fails ' +
        'the scrape with up=0 before parsing, so a label explosion cannot stall the daemon or flood the store. A ' +
        'vLLM server exposes a few dozen.',
    },
    profile: {
      kind: 'enum',
      values: PROFILE_NAMES,
      default: 'auto',
      env: 'CACHELENS_SCRAPE_PROFILE',
      doc: 'Metric profile for every target (`auto` detects it per target from the families present).',
    },
    file_sd: {
      kind: 'stringList',
      default: [],
      doc: 'Prometheus `file_sd_configs` files (JSON or YAML); edits are picked up without a restart.',
    },
    file_sd_refresh_interval: {
      kind: 'duration',
      default: '30s',
      doc: 'Re-read period for file_sd files, on top of file-change notifications.',
    },
    ...AUTH_FIELDS,
    prometheus: prometheusSpec,
    targets: {
      kind: 'list',
      default: [{ url: 'http://127.0.0.1:8000/metrics' }],
      doc:
        'Static targets. Each entry takes `url`, `labels` and optionally `profile`, `bearer_token`, ' +
        '`bearer_token_file`, `basic_auth`, `tls`, which override the scrape-level ones.',
      item: {
        kind: 'object',
        fields: {
          url: { kind: 'string', required: true, doc: 'Full /metrics URL (http or https).' },
          labels: {
            kind: 'stringMap',
            default: {},
            doc:
              'Extra labels; `instance` overrides the default `host:port`, `model_name` names the model for servers ' +
              'that do not label it (TGI).',
          },
          profile: { kind: 'enum', values: PROFILE_NAMES, doc: 'Profile override for this target.' },
          match: {
            kind: 'stringMap',
            keys: 'attribute',
            default: {},
            doc:
              "Resource attributes that mark spans as this target's (span matching rule 1), e.g. `{service.name: " +
              'vllm-a}`.',
          },
          ...AUTH_FIELDS,
        },
      },
    },
  },
} as const satisfies ObjectSpec;

export type ScrapeConfig = ConfigOf<typeof scrapeSpec>;
export type StaticTargetConfig = ScrapeConfig['targets'][number];

export function checkScrape(s: ScrapeConfig): string[] {
  const problems: string[] = checkPrometheus(s.prometheus);
  const { interval, timeout } = s;
  if (interval < 1000 || interval % 1000 !== 0)
    problems.push(`scrape.interval: ${interval}ms must be a whole number of seconds, at least 1s`);
  if (timeout >= interval)
    problems.push(`scrape.timeout: ${timeout}ms must be shorter than scrape.interval (${interval}ms)`);
  if (timeout <= 0) problems.push('scrape.timeout: must be positive');
  s.targets.forEach((t, i) => {
    let u: URL;
    try {
      u = new URL(t.url);
    } catch {
      problems.push(`scrape.targets[${i}].url: ${JSON.stringify(t.url)} is not a URL like http://host:8000/metrics`);
      return;
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:')
      problems.push(`scrape.targets[${i}].url: scheme ${u.protocol} is not http or https`);
  });
  return problems;
}

/** What span matching takes from the scrape config. */
export interface SpanMatching {
  /** Each static target's `match` block, by its normalized URL (what the store keeps as the target's url). */
  byUrl: ReadonlyMap<string, Record<string, string>>;
  /** Server label → span resource attribute (scrape.prometheus.resource_attributes). */
  labelAttributes: Readonly<Record<string, string>>;
}

export function spanMatchingFor(s: ScrapeConfig): SpanMatching {
  const byUrl = new Map<string, Record<string, string>>();
  for (const t of s.targets) if (Object.keys(t.match).length) byUrl.set(new URL(t.url).toString(), t.match);
  return { byUrl, labelAttributes: s.prometheus?.resource_attributes ?? {} };
}

/**
 * With Prometheus as the source, the default target (a vLLM on localhost) is not assumed: targets
 * are scraped directly only when listed. Runs on the raw config, where "not given" is still visible.
 */
export function defaultTargetsFor(rawScrape: Record<string, unknown> | undefined): void {
  if (rawScrape && rawScrape.prometheus !== undefined && rawScrape.targets === undefined) rawScrape.targets = [];
}

/** The slowest source decides how long a span may wait for the sample that closes its window. */
export function slowestIntervalMs(s: ScrapeConfig): number {
  return Math.max(s.interval, s.prometheus?.interval ?? 0);
}
