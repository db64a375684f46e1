#!/usr/bin/env node
// Lines of code are at most 120 characters (Biome wraps code but not strings, SQL or comments, so this
// checks what it cannot). Usage: node scripts/checkLineLength.mjs [file ...]; with no files, every
// tracked source file. Exits 1 and lists each long line.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

export const MAX_LINE = 120;
const SOURCE = /\.(ts|js|mjs|cjs|py)$/;

export function longLines(text, max = MAX_LINE) {
  const out = [];
  text.split('\n').forEach((line, i) => {
    if ([...line].length > max) out.push({ line: i + 1, length: [...line].length });
  });
  return out;
}

const main = process.argv[1]?.endsWith('checkLineLength.mjs');
if (main) {
  const files =
    process.argv.length > 2
      ? process.argv.slice(2)
      : execFileSync('git', ['ls-files'], { encoding: 'utf8' })
          .split('\n')
          .filter((f) => SOURCE.test(f));
  let bad = 0;
  for (const f of files) {
    for (const { line, length } of longLines(readFileSync(f, 'utf8'))) {
      console.log(`${f}:${line}: ${length} characters (at most ${MAX_LINE})`);
      bad++;
    }
  }
  if (bad) {
    console.log(`${bad} line(s) longer than ${MAX_LINE} characters`);
    process.exit(1);
  }
  console.log(`line length: ${files.length} files, every line at most ${MAX_LINE} characters`);
}
