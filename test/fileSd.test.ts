// file_sd as Prometheus reads it: a .json file is JSON (duplicate keys: the last wins), and a file the
// refresh timer finds unchanged is not parsed again (1,000 groups through the YAML parser blocked the
// event loop for 134 ms every 30 s).
import assert from 'node:assert/strict';
import { mkdtempSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { buildConfig } from '../src/config/config.ts';
import { FileSdError, readFileSd } from '../src/scrape/fileSd.ts';
import type { Target } from '../src/scrape/target.ts';
import { TargetDiscovery } from '../src/scrape/targetDiscovery.ts';
import { memoryLogger } from './support/silentLogger.ts';

const dir = mkdtempSync(join(tmpdir(), 'cachelens-filesd-'));
const write = (name: string, text: string) => {
  const path = join(dir, name);
  // Replaced by rename, as config management does.
  writeFileSync(`${path}.tmp`, text);
  renameSync(`${path}.tmp`, path);
  return path;
};

describe('file_sd', () => {
  it('parses a .json file as JSON: a repeated label key takes its last value, as in Prometheus', () => {
    const path = write('dup.json', '[{"targets": ["a:8000"], "labels": {"pool": "x", "pool": "y"}}]');
    const [t] = readFileSd(path, 'auto', {});
    assert.equal(t!.labels.pool, 'y');
  });

  it('names the format a broken file failed as', () => {
    const json = write('broken.json', '[{"targets": ["a:8000"],]');
    assert.throws(
      () => readFileSd(json, 'auto', {}),
      (e: Error) => e instanceof FileSdError && /not valid JSON/.test(e.message),
    );
    const yaml = write('broken.yml', '- targets: [a:8000\n');
    assert.throws(() => readFileSd(yaml, 'auto', {}), /not valid YAML/);
  });

  it('keeps the targets of a file found unchanged, and re-reads one that changed', () => {
    const groups = (n: number) =>
      JSON.stringify(
        Array.from({ length: n }, (_, i) => ({ targets: [`10.0.0.${i}:8000`], labels: { pod: `p${i}` } })),
      );
    const path = write('fleet.json', groups(3));
    const { log } = memoryLogger();
    const { config } = buildConfig({ scrape: { targets: [], file_sd: [path] } }, {});
    const seen: Target[][] = [];
    const d = new TargetDiscovery(config.scrape, log, (t) => seen.push(t));
    d.refresh();
    const first = d.targets();
    assert.equal(first.length, 3);
    d.refresh();
    d.refresh();
    // The same objects: the text was not parsed again.
    assert.ok(d.targets().every((t, i) => t === first[i]));
    assert.equal(seen.length, 1);
    write('fleet.json', groups(4));
    d.refresh();
    assert.equal(d.targets().length, 4);
    assert.equal(seen.length, 2);
    // A broken edit keeps the last good targets.
    write('fleet.json', '[{');
    d.refresh();
    assert.equal(d.targets().length, 4);
  });
});
