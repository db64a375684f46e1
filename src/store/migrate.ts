import type { Database } from 'better-sqlite3';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const MIGRATIONS_DIR = fileURLToPath(new URL('../../migrations', import.meta.url));
const FILE_RE = /^(\d{3})_([a-z0-9_]+)\.sql$/;

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export function listMigrations(dir = MIGRATIONS_DIR): Migration[] {
  const out: Migration[] = [];
  for (const file of readdirSync(dir).sort()) {
    const m = FILE_RE.exec(file);
    if (!m) continue;
    out.push({ version: Number(m[1]), name: m[2]!, sql: readFileSync(join(dir, file), 'utf8') });
  }
  out.forEach((m, i) => {
    if (m.version !== i + 1)
      throw new Error(
        `migrations: expected version ${i + 1}, found ${String(m.version).padStart(3, '0')}_${m.name}.sql (numbers ` +
          `must run 001, 002, … without gaps)`,
      );
  });
  return out;
}

/** Applies pending migrations in order, each in its own transaction; the version is PRAGMA user_version. */
export function migrate(db: Database, dir = MIGRATIONS_DIR): Migration[] {
  const current = db.pragma('user_version', { simple: true }) as number;
  const all = listMigrations(dir);
  if (current > all.length)
    throw new Error(
      `database schema version ${current} is newer than this cachelens (knows ${all.length}); upgrade cachelens`,
    );
  const applied: Migration[] = [];
  for (const m of all.slice(current)) {
    db.transaction(() => {
      db.exec(m.sql);
      db.pragma(`user_version = ${m.version}`);
    }).immediate();
    applied.push(m);
  }
  return applied;
}
