// The one-way floors of src/ (.dependency-cruiser.cjs), checked with dependency-cruiser: the tree as it
// is passes, and one import pointing up a floor fails, naming the rule.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { appendFileSync, cpSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const DEPCRUISE = join(ROOT, 'node_modules/.bin/depcruise');

function cruise(cwd: string): { status: number | null; out: string } {
  const r = spawnSync(DEPCRUISE, ['src', '--config', '.dependency-cruiser.cjs', '--output-type', 'err'], {
    cwd,
    encoding: 'utf8',
  });
  return { status: r.status, out: r.stdout + r.stderr };
}

describe('one-way floors', () => {
  it('src/ has no import that points up the data flow, and no cycle', () => {
    const r = cruise(ROOT);
    assert.equal(r.status, 0, r.out);
  });

  it('the check fails on an upward import (otlp → pipeline) and on a cycle', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cachelens-floors-'));
    for (const f of ['src', 'tsconfig.json', '.dependency-cruiser.cjs'])
      cpSync(join(ROOT, f), join(dir, f), { recursive: true });
    appendFileSync(join(dir, 'src/otlp/wire.ts'), "\nimport '../pipeline/spool.ts';\n");
    appendFileSync(join(dir, 'src/config/endpoint.ts'), "\nimport './units.ts';\n");
    appendFileSync(join(dir, 'src/config/units.ts'), "\nimport './endpoint.ts';\n");
    const r = cruise(dir);
    assert.notEqual(r.status, 0);
    assert.match(r.out, /otlp-imports-up/);
    assert.match(r.out, /no-circular/);
  });
});

describe('line length', () => {
  it('every tracked source line is at most 120 characters', () => {
    const r = spawnSync(process.execPath, ['scripts/checkLineLength.mjs'], { cwd: ROOT, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stdout + r.stderr);
  });

  it('the check fails on a longer line and names it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cachelens-lines-'));
    const file = join(dir, 'long.ts');
    appendFileSync(file, `const ok = 1;\nconst s = '${'x'.repeat(110)}';\n`);
    const r = spawnSync(process.execPath, [join(ROOT, 'scripts/checkLineLength.mjs'), file], { encoding: 'utf8' });
    assert.equal(r.status, 1);
    assert.match(r.stdout, /long\.ts:2: 123 characters/);
  });
});
