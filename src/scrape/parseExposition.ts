import { ScrapeError } from './fetchExposition.ts';
import { LexError, lexSampleLine } from './lexSampleLine.ts';
import type { Sample } from './types.ts';
import { type ALL, splitExposition } from './splitExposition.ts';
import { labelKey } from './labelKey.ts';

// parse-prometheus-text-format 1.1.1 was replaced by lexSampleLine: on the upstream conformance
// tables it misread or refused cases Prometheus accepts and read lines Prometheus refuses
// (docs/parsing.md has the figures).

export interface ParsedExposition {
  samples: Sample[];
  present: Set<string>;
  help: Map<string, string>;
  sampleLines: number;
  /** Lines that could not be parsed; the rest of the body still counts. */
  parseErrors: number;
  firstError?: string;
  /** Samples of a series already seen in this body, dropped (see keepNewest). */
  duplicateSamples: number;
  truncated: boolean;
}

/**
 * Parses the lines of the wanted names (or of every name, with ALL). A series written more than once
 * keeps its newest sample: the greatest timestamp, a sample without one counting as newest (it is
 * "now"), the later line on a tie. One stored value per series per scrape is all a delta needs.
 */
export function parseExposition(
  body: string,
  wanted: ReadonlySet<string> | typeof ALL,
  wantHelp?: ReadonlySet<string>,
  sampleLimit?: number,
): ParsedExposition {
  const split = splitExposition(body, wanted, wantHelp);
  if (sampleLimit !== undefined) {
    let kept = 0;
    for (const lines of split.linesByName.values()) kept += lines.length;
    // Checked before lexing: 400k such lines would hold the event loop for seconds.
    if (kept > sampleLimit)
      throw new ScrapeError(
        `${kept} samples of the metrics cachelens reads exceed scrape.sample_limit (${sampleLimit}); is a label ` +
          `exploding?`,
        'sample_limit',
      );
  }
  const openMetrics = split.eof; // an OpenMetrics body ends with # EOF
  const samples: Sample[] = [];
  let parseErrors = split.invalidLines;
  let duplicateSamples = 0;
  let firstError = split.firstInvalid ? `invalid line: ${split.firstInvalid}` : undefined;
  for (const lines of split.linesByName.values()) {
    const single = lines.length === 1;
    const seen = single ? undefined : new Map<string, number>();
    for (const line of lines) {
      let s: Sample;
      try {
        s = lexSampleLine(line, openMetrics);
      } catch (err) {
        if (!(err instanceof LexError)) throw err;
        parseErrors++;
        firstError ??= `${err.message}: ${line.slice(0, 120)}`;
        continue;
      }
      if (seen) {
        const key = labelKey(s.labels);
        const at = seen.get(key);
        if (at !== undefined) {
          duplicateSamples++;
          const old = samples[at]!;
          if (old.timestamp === undefined || (s.timestamp !== undefined && s.timestamp < old.timestamp)) continue;
          samples[at] = s;
          continue;
        }
        seen.set(key, samples.length);
      }
      samples.push(s);
    }
  }
  if (split.truncated) {
    parseErrors++;
    firstError ??= 'body ends mid-line (no final newline); last line ignored';
  }
  return {
    samples,
    present: split.present,
    help: split.help,
    sampleLines: split.sampleLines,
    parseErrors,
    firstError,
    duplicateSamples,
    truncated: split.truncated,
  };
}
