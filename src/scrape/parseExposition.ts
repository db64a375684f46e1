import { ScrapeError } from './fetchExposition.ts';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import type { Sample } from './types.ts';
import { splitExposition } from './splitExposition.ts';

// parse-prometheus-text-format 1.1.1 is given one sample name at a time, as an untyped family:
// whole bodies hit its faults (histograms with several label sets collapse into one unlabelled series;
// one invalid line throws for the whole body). See README "Parsing".

interface LibSample {
  value: string;
  labels?: Record<string, string>;
}
interface LibFamily {
  name: string;
  metrics: LibSample[];
}

export function parseSampleValue(text: string): number {
  switch (text) {
    case '+Inf':
    case 'Inf':
    case '+inf':
      return Infinity;
    case '-Inf':
    case '-inf':
      return -Infinity;
    default:
      return text === '' ? NaN : Number(text);
  }
}

function parseLines(name: string, lines: string[]): LibFamily[] {
  return parsePrometheusTextFormat(`# TYPE ${name} untyped\n${lines.join('\n')}\n`) as LibFamily[];
}

export interface ParsedExposition {
  samples: Sample[];
  present: Set<string>;
  help: Map<string, string>;
  sampleLines: number;
  /** Lines that could not be parsed; the rest of the body still counts. */
  parseErrors: number;
  firstError?: string;
  truncated: boolean;
}

export function parseExposition(body: string, wanted: ReadonlySet<string>, wantHelp?: ReadonlySet<string>, sampleLimit?: number): ParsedExposition {
  const split = splitExposition(body, wanted, wantHelp);
  if (sampleLimit !== undefined) {
    let kept = 0;
    for (const lines of split.linesByName.values()) kept += lines.length;
    // Checked before the costly parse: 400k such lines would hold the event loop for seconds.
    if (kept > sampleLimit) throw new ScrapeError(`${kept} samples of the metrics cachelens reads exceed scrape.sample_limit (${sampleLimit}); is a label exploding?`, 'sample_limit');
  }
  const samples: Sample[] = [];
  let parseErrors = split.invalidLines;
  let firstError = split.firstInvalid ? `invalid line: ${split.firstInvalid}` : undefined;
  const take = (name: string, families: LibFamily[]) => {
    for (const fam of families) {
      if (fam.name !== name) continue;
      for (const m of fam.metrics) {
        const value = parseSampleValue(m.value);
        if (m.value !== 'NaN' && Number.isNaN(value)) {
          parseErrors++;
          firstError ??= `${name}: value ${JSON.stringify(m.value)} is not a number`;
          continue;
        }
        samples.push({ name, labels: m.labels ?? {}, value });
      }
    }
  };
  for (const [name, lines] of split.linesByName) {
    try {
      take(name, parseLines(name, lines));
    } catch {
      // One bad line sinks only its own line: retry the group line by line.
      for (const line of lines) {
        try {
          const fams = parseLines(name, [line]);
          if (!fams.some((f) => f.metrics.length > 0)) throw new Error('no sample');
          take(name, fams);
        } catch {
          parseErrors++;
          firstError ??= `invalid line: ${line.slice(0, 120)}`;
        }
      }
    }
  }
  if (split.truncated) {
    parseErrors++;
    firstError ??= 'body ends mid-line (no final newline); last line ignored';
  }
  return { samples, present: split.present, help: split.help, sampleLines: split.sampleLines, parseErrors, firstError, truncated: split.truncated };
}
