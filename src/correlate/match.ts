import type { JsAttrValue } from '../otlp/decode.ts';
import type { StoredTarget } from '../store/fleetQueries.ts';

export const MATCH_RULES = ['config', 'resource', 'peer', 'fleet'] as const;
export type MatchRule = (typeof MATCH_RULES)[number];

export interface MatchTarget extends StoredTarget {
  host: string;
  /** Resource attributes that identify this target's spans (scrape.targets[].match). */
  match?: Record<string, string>;
  /** Resource attributes its labels map to (scrape.prometheus.resource_attributes), e.g. k8s.pod.name. */
  resource?: Record<string, string>;
}

export interface Match {
  rule: MatchRule;
  target?: MatchTarget;
}

function hostOf(url: string): string {
  try {
    return new URL(url).hostname.replace(/^\[|\]$/g, '');
  } catch {
    return '';
  }
}

/** "10.0.0.5:8000" → "10.0.0.5": a server read from Prometheus has no URL, but its instance is often host:port. */
function hostOfInstance(instance: string): string {
  const m = /^(?:\[([^\]]+)\]|([^:/\s]+)):\d+$/.exec(instance);
  return m ? (m[1] ?? m[2]!) : '';
}

export function toMatchTarget(
  t: StoredTarget,
  match?: Record<string, string>,
  labelAttributes: Readonly<Record<string, string>> = {},
): MatchTarget {
  const resource: Record<string, string> = {};
  for (const [label, attr] of Object.entries(labelAttributes))
    if (t.labels[label] !== undefined && t.labels[label] !== '') resource[attr] = t.labels[label]!;
  return {
    ...t,
    host: hostOf(t.url) || hostOfInstance(t.instance),
    match,
    resource: Object.keys(resource).length ? resource : undefined,
  };
}

const carries = (resource: Record<string, JsAttrValue>, attrs: Record<string, string>): boolean =>
  Object.entries(attrs).every(([k, v]) => resource[k] !== undefined && String(resource[k]) === v);

/** "ipv4:10.0.0.5:4317", "[::ffff:10.0.0.5]:1234", "::ffff:10.0.0.5" → "10.0.0.5". */
export function normalizePeer(peer: string | null | undefined): string | undefined {
  if (!peer) return undefined;
  let p = peer.replace(/^ipv[46]:/, '');
  const bracket = /^\[([^\]]+)\](?::\d+)?$/.exec(p);
  if (bracket) p = bracket[1]!;
  else if (/^[^:]+:\d+$/.test(p)) p = p.slice(0, p.lastIndexOf(':'));
  return p.replace(/^::ffff:/, '');
}

/**
 * The first rule that holds: config match; resource (mapped server labels, service.instance.id, host.name);
 * peer address; else the fleet.
 */
export function matchSpan(
  resource: Record<string, JsAttrValue>,
  peer: string | undefined,
  targets: readonly MatchTarget[],
): Match {
  for (const t of targets) {
    if (!t.match) continue;
    if (Object.keys(t.match).length && carries(resource, t.match)) return { rule: 'config', target: t };
  }
  // Labels mapped to resource attributes (a pod's name and namespace, as the Collector's k8sattributes stamps them).
  const mapped = targets.filter((t) => t.resource && carries(resource, t.resource));
  if (mapped.length === 1) return { rule: 'resource', target: mapped[0] };
  for (const key of ['service.instance.id', 'host.name']) {
    const v = resource[key];
    if (typeof v !== 'string' || !v) continue;
    const hits = targets.filter((t) => t.instance === v || t.host === v);
    if (hits.length === 1) return { rule: 'resource', target: hits[0] };
  }
  if (peer) {
    const hits = targets.filter((t) => t.host === peer);
    if (hits.length === 1) return { rule: 'peer', target: hits[0] };
  }
  return { rule: 'fleet' };
}
