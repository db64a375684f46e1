// Conformance of the exposition parser against the upstream parsers' own test tables, re-typed as data
// in test/conformance/exposition-cases.json (each case cites its source file and commit):
// - OpenObservability/OpenMetrics tests/testdata/parsers/* (every case);
// - prometheus/prometheus model/textparse/promparse_test.go TestPromParseErrors and
//   openmetricsparse_test.go TestOpenMetricsParseErrors;
// - prometheus/common expfmt/text_parse_test.go testTextParse and testTextParseError.
// Expected samples come from an independent parser (prometheus_client) or from the Go test's `out:`.
// "tolerated" cases are invalid upstream for a reason cachelens does not judge; docs/parsing.md
// gives each category. Every other invalid case must be a parse error that yields no sample.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { parseExposition } from '../src/scrape/parseExposition.ts';
import { ALL } from '../src/scrape/splitExposition.ts';

type Value = number | 'NaN' | '+Inf' | '-Inf';
interface Case {
  id: string;
  source: string;
  input: string;
  bytes?: 'latin1';
  expect: { samples?: Array<[string, Record<string, string>, Value]>; error?: true; good?: number; tolerated?: string };
}
const CATEGORIES = new Set(['framing', 'metadata', 'family', 'order', 'text', 'escape', 'utf8']);
const cases = JSON.parse(
  readFileSync(new URL('./conformance/exposition-cases.json', import.meta.url), 'utf8'),
) as Case[];
// A body arrives as bytes and is decoded with replacement, as fetchExposition does.
const bodyOf = (c: Case) => (c.bytes ? new TextDecoder().decode(Buffer.from(c.input, 'latin1')) : c.input);
const expectedValue = (v: Value) => (v === 'NaN' ? NaN : v === '+Inf' ? Infinity : v === '-Inf' ? -Infinity : v);

describe('exposition parser: upstream conformance tables', () => {
  it('covers at least 150 cases from the four upstream sources', () => {
    assert.ok(cases.length >= 150, `${cases.length} cases`);
    for (const prefix of ['OpenObservability/OpenMetrics', 'prometheus/prometheus', 'prometheus/common'])
      assert.ok(
        cases.some((c) => c.source.startsWith(prefix)),
        prefix,
      );
    for (const file of [
      'promparse_test.go',
      'openmetricsparse_test.go',
      'text_parse_test.go',
      'tests/testdata/parsers/',
    ])
      assert.ok(
        cases.some((c) => c.source.includes(file)),
        file,
      );
    for (const c of cases)
      if (c.expect.tolerated)
        assert.ok(CATEGORIES.has(c.expect.tolerated), `${c.id}: unknown category ${c.expect.tolerated}`);
  });

  for (const c of cases) {
    it(c.id, () => {
      const p = parseExposition(bodyOf(c), ALL);
      const why = `${c.source}\ninput: ${JSON.stringify(c.input)}\nfirst error: ${p.firstError}`;
      if (c.expect.samples) {
        assert.equal(p.parseErrors, 0, why);
        assert.deepEqual(
          p.samples.map((s) => [s.name, s.labels, s.value]),
          c.expect.samples.map(([n, l, v]) => [n, l, expectedValue(v)]),
          why,
        );
      } else if (c.expect.error) {
        assert.ok(p.parseErrors >= 1, `invalid upstream, read as valid: ${why}`);
        assert.equal(p.samples.length, c.expect.good ?? 0, `a sample came from an invalid line: ${why}`);
      } else {
        assert.equal(p.parseErrors, 0, why);
        // Every sample line was read (a repeated series counts once).
        assert.equal(p.samples.length + p.duplicateSamples, p.sampleLines, why);
      }
    });
  }
});
