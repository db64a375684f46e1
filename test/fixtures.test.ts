import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { aggregateSignals } from '../src/scrape/aggregateSignals.ts';
import { parseExposition } from '../src/scrape/parseExposition.ts';
import { PROFILES, WANTED_SAMPLE_NAMES } from '../src/scrape/profiles.ts';
import { normalizeBody } from '../src/scrape/scrapeTarget.ts';
import { makeTarget } from '../src/scrape/target.ts';

const RAW = new URL('../fixtures/metrics/raw/', import.meta.url);
const OWN = new URL('../fixtures/metrics/', import.meta.url);
const target = makeTarget('http://10.0.0.1:8000/metrics', {}, 'auto', {}, 'test');

describe('real captures in fixtures/metrics/raw (byte for byte as published)', () => {
  const files = readdirSync(RAW).filter((f) => f.endsWith('.prom'));
  it('are all present', () => assert.ok(files.length >= 15, `found ${files.length}`));
  for (const file of files) {
    it(`${file} parses without a crash and yields every signal whose family it holds`, () => {
      const body = readFileSync(new URL(file, RAW), 'utf8');
      const result = normalizeBody(target, body);
      const parsed = parseExposition(body, WANTED_SAMPLE_NAMES);
      const profile = PROFILES.find((p) => p.name === result.profile);
      if (!profile) {
        // Only captures without any inference-server family may come back without a profile.
        assert.ok(
          ![...parsed.present].some((n) => /^(vllm|sglang):|^tgi_/.test(n)),
          `${file}: has server families but no profile`,
        );
        return;
      }
      const got = new Set(result.signals.map((s) => s.signal));
      const sampleNames = new Set(parsed.samples.map((s) => s.name));
      for (const row of profile.rows) {
        const usable = parsed.samples.some(
          (s) =>
            s.name === row.metric &&
            !Number.isNaN(s.value) &&
            !(row.unknownBelow !== undefined && s.value < row.unknownBelow),
        );
        if (sampleNames.has(row.metric) && usable)
          assert.ok(got.has(row.signal), `${file}: ${row.metric} present but ${row.signal} missing`);
      }
    });
  }
});

describe('cleaned captures in fixtures/metrics carry exact values', () => {
  const expected = JSON.parse(readFileSync(new URL('expected.json', OWN), 'utf8')) as Record<
    string,
    { profile: string; signals: Array<Record<string, unknown>> }
  >;
  for (const [file, want] of Object.entries(expected)) {
    if (file.startsWith('_')) continue;
    it(`${file} → ${want.profile}, ${want.signals.length} signals`, () => {
      const result = normalizeBody(target, readFileSync(new URL(file, OWN), 'utf8'));
      assert.equal(result.parseErrors, 0, result.error);
      assert.equal(result.profile, want.profile);
      const got = aggregateSignals(result.signals, []).map(({ model, signal, kind, unit, value }) => ({
        model,
        signal,
        kind,
        unit,
        value,
      }));
      assert.equal(got.length, want.signals.length, JSON.stringify(got));
      for (const w of want.signals) {
        const g = got.find((x) => x.model === w.model && x.signal === w.signal);
        assert.ok(g, `missing ${w.signal}`);
        assert.equal(g.kind, w.kind);
        assert.equal(g.unit, w.unit);
        assert.ok(
          Math.abs(g.value - (w.value as number)) <= 1e-12 * Math.max(1, Math.abs(w.value as number)),
          `${w.signal}: ${g.value} != ${w.value}`,
        );
      }
    });
  }
});
