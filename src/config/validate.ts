import { type Config, CONFIG_SCHEMA, type LeafSpec, type ObjectSpec, type Spec } from './schema.ts';
import { parseBytes, parseDurationMs } from './units.ts';
import { UserError } from './userError.ts';

export class ConfigError extends UserError {
  constructor(readonly problems: string[]) {
    super(problems.join('\n'));
  }

  override describe(): string {
    return `cachelens: invalid config:\n${this.problems.map((p) => `  ${p}`).join('\n')}\n`;
  }
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return row[b.length]!;
}

export function nearestName(name: string, candidates: string[]): string | undefined {
  let best: string | undefined;
  let bestScore = Infinity;
  for (const c of candidates) {
    const d = editDistance(name.toLowerCase(), c.toLowerCase());
    if (d < bestScore) [best, bestScore] = [c, d];
  }
  return bestScore <= Math.max(2, Math.floor(name.length / 2)) ? best : undefined;
}

const show = (v: unknown): string => JSON.stringify(v);

function validateLeaf(spec: LeafSpec, value: unknown, path: string, problems: string[]): unknown {
  switch (spec.kind) {
    case 'string':
      if (typeof value === 'string') return value;
      if (typeof value === 'number') return String(value);
      problems.push(`${path}: ${show(value)} is not a string`);
      return undefined;
    case 'duration': {
      const ms = typeof value === 'string' ? parseDurationMs(value) : undefined;
      if (ms === undefined) problems.push(`${path}: ${show(value)} is not a duration like 5s or 1m`);
      return ms;
    }
    case 'bytes': {
      const n = typeof value === 'string' || typeof value === 'number' ? parseBytes(value) : undefined;
      if (n === undefined) problems.push(`${path}: ${show(value)} is not a size like 16MiB or 1GiB`);
      return n;
    }
    case 'int':
      if (typeof value === 'number' && Number.isInteger(value) && value >= 0) return value;
      if (typeof value === 'string' && /^\d+$/.test(value)) return Number(value);
      problems.push(`${path}: ${show(value)} is not a non-negative integer`);
      return undefined;
    case 'bool':
      if (typeof value === 'boolean') return value;
      if (value === 'true' || value === 'false') return value === 'true';
      problems.push(`${path}: ${show(value)} is not true or false`);
      return undefined;
    case 'enum':
      if (typeof value === 'string' && spec.values!.includes(value)) return value;
      problems.push(`${path}: ${show(value)} is not one of ${spec.values!.join(', ')}`);
      return undefined;
    case 'stringList':
      if (Array.isArray(value) && value.every((v) => typeof v === 'string')) return value;
      if (typeof value === 'string')
        return value
          .split(',')
          .map((s) => s.trim())
          .filter(Boolean);
      problems.push(`${path}: ${show(value)} is not a list of strings`);
      return undefined;
    case 'stringMap':
      if (value && typeof value === 'object' && !Array.isArray(value)) {
        const out: Record<string, string> = {};
        for (const [k, v] of Object.entries(value)) {
          const keys = spec.keys ?? 'label';
          if (!KEY_RULES[keys].re.test(k)) problems.push(`${path}.${k}: is not a valid ${KEY_RULES[keys].what}`);
          else if (typeof v !== 'string' && typeof v !== 'number' && typeof v !== 'boolean')
            problems.push(`${path}.${k}: ${show(v)} is not a string`);
          else out[k] = String(v);
        }
        return out;
      }
      problems.push(`${path}: ${show(value)} is not a map of ${KEY_RULES[spec.keys ?? 'label'].what}s to values`);
      return undefined;
  }
}

const KEY_RULES = {
  label: { re: /^[a-zA-Z_][a-zA-Z0-9_]*$/, what: 'label name' },
  // OpenTelemetry attribute keys: any non-empty string (dots are the norm: service.name).
  attribute: { re: /^\S(.*\S)?$/, what: 'attribute key' },
  // gRPC metadata keys: lowercase letters, digits, - _ . (grpc-js lowercases them).
  header: { re: /^[A-Za-z0-9_.-]+$/, what: 'header name' },
} as const;

function validateNode(spec: Spec, value: unknown, path: string, problems: string[]): unknown {
  if (spec.kind === 'object')
    return spec.optional && (value === undefined || value === null)
      ? undefined
      : validateObject(spec, value, path, problems);
  if (spec.kind === 'list') {
    if (value === undefined || value === null)
      return structuredClone(spec.default).map((v, i) => validateObject(spec.item, v, `${path}[${i}]`, problems));
    if (!Array.isArray(value)) {
      problems.push(`${path}: ${show(value)} is not a list`);
      return [];
    }
    return value.map((v, i) => validateObject(spec.item, v, `${path}[${i}]`, problems));
  }
  if (value === undefined || value === null) {
    if (spec.required) problems.push(`${path}: is required`);
    return spec.default === undefined ? undefined : validateLeaf(spec, spec.default, path, problems);
  }
  return validateLeaf(spec, value, path, problems);
}

function validateObject(spec: ObjectSpec, value: unknown, path: string, problems: string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const prefix = path ? `${path}.` : '';
  if (value !== undefined && value !== null && (typeof value !== 'object' || Array.isArray(value))) {
    problems.push(`${path || '(top level)'}: ${show(value)} is not a map of keys`);
    value = {};
  }
  const given = (value ?? {}) as Record<string, unknown>;
  const known = Object.keys(spec.fields);
  for (const key of Object.keys(given)) {
    if (!(key in spec.fields)) {
      const near = nearestName(key, known);
      problems.push(
        `${prefix}${key}: unknown ` +
          `key${near ? `; did you mean ${prefix}${near}?` : `; valid keys here: ${known.join(', ')}`}`,
      );
    }
  }
  for (const [key, child] of Object.entries(spec.fields)) {
    const v = validateNode(child, given[key], `${prefix}${key}`, problems);
    if (v !== undefined) out[key] = v;
  }
  return out;
}

/** Applies env overrides (named in the schema) onto the raw YAML object. */
export function applyEnvOverrides(raw: Record<string, unknown>, env: NodeJS.ProcessEnv): string[] {
  const applied: string[] = [];
  const walk = (spec: ObjectSpec, node: Record<string, unknown>, path: string[]) => {
    for (const [key, child] of Object.entries(spec.fields)) {
      if (child.kind === 'object') {
        // An optional block is created by the environment only when one of its own variables is set.
        const wanted = Object.values(child.fields).some((f) => 'env' in f && f.env && env[f.env]);
        if (child.optional && node[key] === undefined && !wanted) continue;
        const sub = (node[key] ??= {}) as Record<string, unknown>;
        if (typeof sub === 'object' && sub !== null && !Array.isArray(sub)) walk(child, sub, [...path, key]);
      } else if (child.kind !== 'list' && child.env && env[child.env] !== undefined && env[child.env] !== '') {
        node[key] = env[child.env];
        applied.push(`${child.env} → ${[...path, key].join('.')}`);
      }
    }
  };
  walk(CONFIG_SCHEMA, raw, []);
  // Targets are a list; CACHELENS_SCRAPE_TARGETS takes comma-separated URLs for quick starts.
  const targets = env.CACHELENS_SCRAPE_TARGETS;
  if (targets) {
    const scrape = (raw.scrape ??= {}) as Record<string, unknown>;
    scrape.targets = targets
      .split(',')
      .map((u) => u.trim())
      .filter(Boolean)
      .map((url) => ({ url }));
    applied.push('CACHELENS_SCRAPE_TARGETS → scrape.targets');
  }
  return applied;
}

/**
 * The config the schema describes, with defaults filled in. Keys marked `derived` are still unset:
 * buildConfig resolves them. The value is only a Config when `problems` is empty.
 */
export function validateConfigObject(raw: unknown): { value: Config; problems: string[] } {
  const problems: string[] = [];
  // The walk above checks every key against the same schema the Config type is derived from.
  const value = validateObject(CONFIG_SCHEMA, raw, '', problems) as Config;
  return { value, problems };
}
