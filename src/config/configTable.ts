import { CONFIG_SCHEMA, type LeafSpec, type Spec } from './schema.ts';

// The configuration table of docs/configuration.md, made from the schema so that neither can drift
// from the other (`npm run docs` writes it; test/docs.test.ts fails when it is stale).

const cell = (s: string) => s.replace(/\|/g, '\\|');

function typeOf(spec: LeafSpec): string {
  return spec.kind === 'enum' ? (spec.values ?? []).join(' | ') : spec.kind;
}

function defaultOf(spec: LeafSpec): string {
  const d = spec.default;
  if (d === undefined) return '–';
  if (spec.kind === 'stringList') return (d as string[]).length ? `\`${(d as string[]).join(', ')}\`` : '`[]`';
  if (spec.kind === 'stringMap') return '`{}`';
  return `\`${String(d)}\``;
}

/** One row per leaf key, in schema order; list items as `key[].field`. */
export function configTableRows(): string[] {
  const rows: string[] = [];
  const walk = (spec: Spec, path: string) => {
    if (spec.kind === 'object') {
      for (const [k, c] of Object.entries(spec.fields)) walk(c, path ? `${path}.${k}` : k);
    } else if (spec.kind === 'list') {
      rows.push(`| \`${path}\` | list | see below | – | ${cell(spec.doc)} |`);
      for (const [k, c] of Object.entries(spec.item.fields)) walk(c, `${path}[].${k}`);
    } else {
      const env = spec.env ? `\`${spec.env}\`` : '–';
      rows.push(`| \`${path}\` | ${cell(typeOf(spec))} | ${cell(defaultOf(spec))} | ${env} | ${cell(spec.doc)} |`);
    }
  };
  walk(CONFIG_SCHEMA, '');
  return rows;
}

export function configTable(): string {
  return ['| key | type | default | env | meaning |', '|---|---|---|---|---|', ...configTableRows()].join('\n');
}
