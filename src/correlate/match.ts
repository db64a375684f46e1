import type { JsAttrValue } from '../otlp/decode.ts';
import type { StoredTarget } from '../store/fleetQueries.ts';

export const MATCH_RULES = ['config', 'resource', 'peer', 'fleet'] as const;
export type MatchRule = (typeof MATCH_RULES)[number];

export interface MatchTarget extends StoredTarget {
  host: string;
  /** Resource attributes that identify this target's spans (scrape.targets[].match). */
  match?: Record<string, string>;
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

export function toMatchTarget(t: StoredTarget, match?: Record<string, string>): MatchTarget {
  return { ...t, host: hostOf(t.url), match };
}

/** "ipv4:10.0.0.5:4317", "[::ffff:10.0.0.5]:1234", "::ffff:10.0.0.5" → "10.0.0.5". */
export function normalizePeer(peer: string | null | undefined): string | undefined {
  if (!peer) return undefined;
  let p = peer.replace(/^ipv[46]:/, '');
  const bracket = /^\[([^\]]+)\](?::\d+)?$/.exec(p);
  if (bracket) p = bracket[1]!;
  else if (/^[^:]+:\d+$/.test(p)) p = p.slice(0, p.lastIndexOf(':'));
  return p.replace(/^::ffff:/, '');
}

/** The first rule that holds: config match, service.instance.id, host.name, peer address, else the fleet. */
export function matchSpan(
  resource: Record<string, JsAttrValue>,
  peer: string | undefined,
  targets: readonly MatchTarget[],
): Match {
  for (const t of targets) {
    if (!t.match) continue;
    const entries = Object.entries(t.match);
    if (entries.length && entries.every(([k, v]) => resource[k] !== undefined && String(resource[k]) === v))
      return { rule: 'config', target: t };
  }
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
