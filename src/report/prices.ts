import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { UserError } from '../config/userError.ts';

// Prices are per 1M tokens (model entries) or per GPU-hour (instance entries). An entry applies from
// its effective_from (UTC) until a later entry for a name it matches takes over.

export interface ModelPrice {
  match: string;
  input: number;
  cachedInput: number;
  /** A cached token whose KV came from an external tier (KV connector); defaults to cachedInput. */
  externalCachedInput: number;
  output: number;
  effectiveFromMs: number;
  re: RegExp;
}

export interface InstancePrice {
  match: string;
  gpuHour: number;
  gpus: number;
  effectiveFromMs: number;
  re: RegExp;
}

export interface Prices {
  file: string;
  currency: string;
  models: ModelPrice[];
  instances: InstancePrice[];
}

export class PricesError extends UserError {
  constructor(message: string) {
    super(message, 'report');
  }
}

/** `*` any run of characters, `?` one; the whole name must match. */
export function globToRegExp(glob: string): RegExp {
  const body = glob
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  return new RegExp(`^${body}$`);
}

const DATE_RE = /^\d{4}-\d{2}-\d{2}$/;

function parseEffective(v: unknown, where: string): number {
  if (v === undefined || v === null) return -Infinity;
  const s = v instanceof Date ? v.toISOString() : String(v);
  const ms = DATE_RE.test(s) ? Date.parse(`${s}T00:00:00Z`) : Date.parse(s);
  if (!Number.isFinite(ms))
    throw new PricesError(`${where}.effective_from: ${JSON.stringify(s)} is not a date; write it as YYYY-MM-DD (UTC)`);
  return ms;
}

function price(entry: Record<string, unknown>, key: string, where: string, required: boolean): number | undefined {
  const v = entry[key];
  if (v === undefined && !required) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0)
    throw new PricesError(
      `${where}.${key}: ${v === undefined ? 'missing' : JSON.stringify(v)}; set it to a number ≥ 0`,
    );
  return v;
}

function checkKeys(entry: Record<string, unknown>, allowed: string[], where: string): void {
  for (const k of Object.keys(entry))
    if (!allowed.includes(k)) throw new PricesError(`${where}: unknown key "${k}"; allowed: ${allowed.join(', ')}`);
}

export function parsePrices(text: string, file: string): Prices {
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw new PricesError(`${file}: not valid YAML: ${(err as Error).message.split('\n')[0]}`);
  }
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc))
    throw new PricesError(`${file}: expected a mapping with "models:" and/or "instances:" lists`);
  const root = doc as Record<string, unknown>;
  checkKeys(root, ['currency', 'models', 'instances'], file);
  const list = (key: string): Array<Record<string, unknown>> => {
    const v = root[key];
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v)) throw new PricesError(`${file}: ${key} must be a list of entries ("- match: ...")`);
    return v.map((e, i) => {
      if (e === null || typeof e !== 'object' || Array.isArray(e))
        throw new PricesError(`${file}: ${key}[${i}] must be a mapping`);
      const entry = e as Record<string, unknown>;
      if (typeof entry.match !== 'string' || !entry.match)
        throw new PricesError(
          `${file}: ${key}[${i}].match: missing; set it to a ${key === 'models' ? 'model' : 'instance'} name or glob ` +
            `such as "llama-*"`,
        );
      return entry;
    });
  };
  const models = list('models').map((e, i): ModelPrice => {
    const where = `${file}: models[${i}]`;
    checkKeys(e, ['match', 'input', 'cached_input', 'external_cached_input', 'output', 'effective_from'], where);
    const cachedInput = price(e, 'cached_input', where, true)!;
    return {
      match: e.match as string,
      input: price(e, 'input', where, true)!,
      cachedInput,
      externalCachedInput: price(e, 'external_cached_input', where, false) ?? cachedInput,
      output: price(e, 'output', where, true)!,
      effectiveFromMs: parseEffective(e.effective_from, where),
      re: globToRegExp(e.match as string),
    };
  });
  const instances = list('instances').map((e, i): InstancePrice => {
    const where = `${file}: instances[${i}]`;
    checkKeys(e, ['match', 'gpu_hour', 'gpus', 'effective_from'], where);
    const gpus = price(e, 'gpus', where, false) ?? 1;
    return {
      match: e.match as string,
      gpuHour: price(e, 'gpu_hour', where, true)!,
      gpus,
      effectiveFromMs: parseEffective(e.effective_from, where),
      re: globToRegExp(e.match as string),
    };
  });
  if (!models.length && !instances.length)
    throw new PricesError(`${file}: no prices; add a "models:" or "instances:" list (see docs/reports.md, Prices)`);
  const currency = root.currency === undefined ? 'USD' : String(root.currency);
  return { file, currency, models, instances };
}

export function loadPrices(file: string): Prices {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new PricesError(
      `cannot read prices file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
    );
  }
  return parsePrices(text, file);
}

/** The entry in effect at `ms` for `name`: the latest effective_from not after `ms`; the first listed on a tie. */
function pick<T extends { re: RegExp; effectiveFromMs: number }>(
  entries: readonly T[],
  name: string,
  ms: number,
): T | undefined {
  let best: T | undefined;
  for (const e of entries) {
    if (e.effectiveFromMs > ms || !e.re.test(name)) continue;
    if (!best || e.effectiveFromMs > best.effectiveFromMs) best = e;
  }
  return best;
}

export const modelPriceAt = (p: Prices, model: string, ms: number) => pick(p.models, model, ms);
export const instancePriceAt = (p: Prices, instance: string, ms: number) => pick(p.instances, instance, ms);
