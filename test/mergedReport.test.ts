// One report over several stores. An HA pair reads the same fleet (the same samples, as two daemons
// reading one Prometheus have) and the Collector's loadbalancing exporter sends each trace to one of
// them: the merged report must equal the report of one daemon that saw every trace, raw, compacted,
// or one compacted and the other not, and when one store missed a stretch of scrapes.
import assert from 'node:assert/strict';
import { copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { main } from '../src/cli/main.ts';
import { UserError } from '../src/config/userError.ts';
import { makeReport } from '../src/cli/report.ts';
import type { Report } from '../src/report/build.ts';
import { Compactor } from '../src/store/compaction.ts';
import { openDatabase } from '../src/store/openDatabase.ts';
import { memoryLogger } from './support/silentLogger.ts';
import { NOV4, NOV5, buildDataset } from './support/reportDataset.ts';

const TENANT_KEYS = ['tenant.id'];
const VARIANTS = ['model', 'tenant', 'instance,day', 'hour', 'tenant,model', ''];

function reports(db: string | string[], prices: string): unknown[] {
  return VARIANTS.map((by) => {
    const r: Report = makeReport({
      db,
      since: '2026-11-03',
      until: '2026-11-05',
      by,
      prices,
      tenantKeys: TENANT_KEYS,
      nowMs: NOV5 + 3 * 3_600_000,
      format: 'html',
    });
    // Sums in another order: equal to the last few bits.
    return JSON.parse(
      JSON.stringify({ ...r, db: '', generated_at: '' }, (_k, v) =>
        typeof v === 'number' ? Number(v.toPrecision(12)) : v,
      ),
    );
  });
}

/** The full store's scrapes in both; the ledger split by trace, as routing_key: traceID splits it. */
function haPair(dir: string, full: string): [string, string] {
  const a = join(dir, 'a.db');
  const b = join(dir, 'b.db');
  copyFileSync(full, a);
  copyFileSync(full, b);
  for (const [path, drop] of [
    [a, ['t2', 't4']],
    [b, ['t1', 't3']],
  ] as const) {
    const db = openDatabase(path);
    for (const t of drop) {
      db.prepare('DELETE FROM request_ledger WHERE trace_id = ?').run(t);
      db.prepare('DELETE FROM trace_tenants WHERE trace_id = ?').run(t);
      db.prepare('DELETE FROM trace_usage WHERE trace_id = ?').run(t);
    }
    db.close();
  }
  return [a, b];
}

const compact = async (path: string) => {
  const db = openDatabase(path);
  await new Compactor(db, { tenantKeys: TENANT_KEYS, graceMs: 600_000, log: memoryLogger().log }).runOnce(
    NOV5 + 2 * 3_600_000,
  );
  db.close();
};

describe('one report over several stores', () => {
  it('an HA pair, merged, reports what one daemon that saw every trace reports', () => {
    const data = buildDataset();
    const one = reports(data.dbPath, data.pricesPath);
    const [a, b] = haPair(data.dir, data.dbPath);
    assert.notDeepEqual(reports(a, data.pricesPath), one, 'each store alone holds part of the ledger');
    assert.deepEqual(reports([a, b], data.pricesPath), one);
    assert.deepEqual(reports([data.dbPath, data.dbPath], data.pricesPath), one, '--db X --db X is --db X');
    const copy = join(data.dir, 'copy.db');
    copyFileSync(data.dbPath, copy);
    assert.deepEqual(
      reports([data.dbPath, copy], data.pricesPath),
      one,
      'a copy adds nothing: same spans, same samples',
    );
  });

  it('the same after compaction of both, of one, and when one store missed an hour of scrapes', async () => {
    const data = buildDataset();
    const [a, b] = haPair(data.dir, data.dbPath);
    const raw = reports(data.dbPath, data.pricesPath);
    await compact(a);
    assert.deepEqual(reports([a, b], data.pricesPath), raw, 'one compacted, one not');
    await compact(b);
    await compact(data.dbPath);
    const compacted = reports(data.dbPath, data.pricesPath);
    assert.deepEqual(compacted, raw);
    assert.deepEqual(reports([a, b], data.pricesPath), compacted, 'both compacted');
    // b was down on Nov 4 from 10:00 to 11:00: no minutes, no compacted hour; a has them.
    const db = openDatabase(b);
    const hour = NOV4 + 10 * 3_600_000;
    const gone =
      db.prepare('DELETE FROM rollup_minute WHERE minute_ms >= ? AND minute_ms < ?').run(hour, hour + 3_600_000)
        .changes + db.prepare("DELETE FROM fleet_rollup WHERE level = 'hour' AND bucket_ms = ?").run(hour).changes;
    db.close();
    assert.ok(gone > 0);
    assert.deepEqual(reports([b, a], data.pricesPath), compacted, 'the hour one store missed comes from the other');
  });

  it('through the CLI: --db repeats or takes a glob, and a pattern matching nothing is a clear error', async () => {
    const data = buildDataset();
    haPair(data.dir, data.dbPath);
    const run = async (args: string[]) => {
      let out = '';
      const sink = { write: (t: string) => ((out += t), true) } as unknown as NodeJS.WritableStream;
      try {
        return { code: await main(args, { out: sink, err: sink }), out, err: '' };
      } catch (e) {
        // What runCli prints for a user's mistake, with exit code 2.
        return { code: 2, out, err: e instanceof UserError ? e.describe() : String(e) };
      }
    };
    const common = ['report', '--since', '2026-11-03', '--until', '2026-11-05', '--by', 'tenant', '--format', 'csv'];
    const single = await run([...common, '--db', data.dbPath]);
    const glob = await run([...common, '--db', join(data.dir, '[ab].db').replace('[ab]', '?')]);
    const listed = await run([...common, '--db', join(data.dir, 'a.db'), '--db', join(data.dir, 'b.db')]);
    assert.equal(single.code, 0, single.err);
    assert.equal(glob.code, 0, glob.err);
    assert.equal(glob.out, single.out);
    assert.equal(listed.out, single.out);
    const none = await run([...common, '--db', join(data.dir, 'nothing-*.db')]);
    assert.equal(none.code, 2);
    assert.match(none.err, /--db .*nothing-\*\.db: no file matches/);
  });
});
