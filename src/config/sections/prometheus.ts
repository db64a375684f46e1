import type { ConfigOf, ObjectSpec } from '../spec.ts';
import { AUTH_FIELDS } from './auth.ts';

/**
 * `scrape.prometheus`: read the fleet's counters from a Prometheus-compatible HTTP API instead of (or
 * beside) scraping each server. Absent unless configured.
 */
export const prometheusSpec = {
  kind: 'object',
  optional: true,
  doc:
    'Read fleet counters from the Prometheus (or Thanos Query, Mimir, VictoriaMetrics) that already scrapes the ' +
    'servers; see docs/several-instances.md.',
  fields: {
    url: {
      kind: 'string',
      required: true,
      env: 'CACHELENS_SCRAPE_PROMETHEUS_URL',
      doc: 'Base URL of the Prometheus HTTP API, e.g. `http://prometheus:9090` (cachelens calls `/api/v1/query`).',
    },
    interval: {
      kind: 'duration',
      default: '15s',
      doc: 'How often cachelens reads; each read fetches every sample stored since the last one.',
    },
    timeout: { kind: 'duration', default: '10s', doc: 'Deadline of one query; must be shorter than the interval.' },
    selector: {
      kind: 'string',
      default: '',
      doc: 'Label matchers added to every query, e.g. `{job="vllm"}` or `{namespace="llm",job=~"vllm.*"}`.',
    },
    instance_labels: {
      kind: 'stringList',
      default: ['instance'],
      doc:
        'Series labels that name one server; e.g. `[namespace, pod]` on Kubernetes. Their values become the ' +
        "server's instance name, joined by `/`.",
    },
    resource_attributes: {
      kind: 'stringMap',
      keys: 'label',
      default: { pod: 'k8s.pod.name', namespace: 'k8s.namespace.name' },
      doc:
        'Series label → span resource attribute. A span whose resource attributes equal every mapped label of ' +
        "one server matches it by the `resource` rule (spans stamped by the Collector's k8sattributes processor).",
    },
    backfill: {
      kind: 'duration',
      default: '5m',
      doc: 'On the first read of a store, how far back to read; later reads continue from the last stored sample.',
    },
    overlap: {
      kind: 'duration',
      default: '10s',
      doc:
        "How far each read reaches back before the previous read's end, for samples stored after their timestamp: " +
        "at least Prometheus's scrape_timeout (10s by default); more behind remote storage that lags. Nothing is " +
        'counted twice.',
    },
    max_range: {
      kind: 'duration',
      default: '1h',
      doc: 'Longest time range one query asks for when catching up; a longer gap is read in steps.',
    },
    headers: {
      kind: 'stringMap',
      keys: 'header',
      default: {},
      secret: true,
      doc: 'HTTP headers sent with every query (e.g. `X-Scope-OrgID` for Mimir).',
    },
    ...AUTH_FIELDS,
  },
} as const satisfies ObjectSpec;

export type PrometheusSourceConfig = ConfigOf<typeof prometheusSpec>;

export function checkPrometheus(p: PrometheusSourceConfig | undefined): string[] {
  if (!p) return [];
  const problems: string[] = [];
  let u: URL | undefined;
  try {
    u = new URL(p.url);
  } catch {
    problems.push(`scrape.prometheus.url: ${JSON.stringify(p.url)} is not a URL like http://prometheus:9090`);
  }
  if (u && u.protocol !== 'http:' && u.protocol !== 'https:')
    problems.push(`scrape.prometheus.url: scheme ${u.protocol} is not http or https`);
  if (p.interval < 1000) problems.push('scrape.prometheus.interval: must be at least 1s');
  if (p.timeout <= 0 || p.timeout >= p.interval)
    problems.push(`scrape.prometheus.timeout: ${p.timeout}ms must be positive and shorter than the interval`);
  if (!p.instance_labels.length) problems.push('scrape.prometheus.instance_labels: name at least one label');
  if (p.max_range < p.interval) problems.push('scrape.prometheus.max_range: must be at least the interval');
  const s = p.selector.trim();
  if (s && !/^\{.*\}$/s.test(s))
    problems.push(`scrape.prometheus.selector: ${JSON.stringify(p.selector)} is not label matchers like {job="vllm"}`);
  return problems;
}
