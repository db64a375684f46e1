import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { it } from 'node:test';
import { CONFIG_SCHEMA, type Spec } from '../src/config/schema.ts';

it('the README documents every config key', () => {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  const missing: string[] = [];
  const walk = (spec: Spec, path: string) => {
    if (spec.kind === 'object') for (const [k, c] of Object.entries(spec.fields)) walk(c, path ? `${path}.${k}` : k);
    else if (spec.kind === 'list') {
      if (!readme.includes(`\`${path}\``)) missing.push(path);
      for (const [k, c] of Object.entries(spec.item.fields)) walk(c, `${path}[].${k}`);
    } else if (!readme.includes(`\`${path}\``)) missing.push(path);
  };
  walk(CONFIG_SCHEMA, '');
  assert.deepEqual(missing, []);
});
