import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { normalizeBody } from '../src/scrape/scrapeTarget.ts';
import { makeTarget } from '../src/scrape/target.ts';
import { demoModelState, renderVllmExposition } from '../src/demo/vllmExposition.ts';
import { readFileSync } from 'node:fs';

interface ConformanceCase {
  input: string;
  bytes?: 'latin1';
  expect: {
    samples?: Array<[string, Record<string, string>, number | string]>;
    error?: true;
    good?: number;
    tolerated?: string;
  };
}
interface LibFamily {
  name: string;
  type: string;
  metrics: Array<{
    value?: string;
    labels?: Record<string, string>;
    buckets?: Record<string, string>;
    quantiles?: Record<string, string>;
    count?: string;
    sum?: string;
  }>;
}

/** The replaced library on the conformance table: valid bodies it refuses or misreads, invalid ones it reads. */
function libraryConformance(): { cases: number; valid_refused_or_misread: number; invalid_read_as_data: number } {
  const cases = JSON.parse(
    readFileSync(new URL('../test/conformance/exposition-cases.json', import.meta.url), 'utf8'),
  ) as ConformanceCase[];
  let validWrong = 0;
  let invalidRead = 0;
  for (const c of cases) {
    const body = c.bytes ? new TextDecoder().decode(Buffer.from(c.input, 'latin1')) : c.input;
    let fams: LibFamily[] | undefined;
    try {
      fams = parsePrometheusTextFormat(body) as LibFamily[];
    } catch {
      fams = undefined;
    }
    if (c.expect.samples) {
      // Counted only as samples (histograms and summaries are folded by the library): a refusal, or fewer series.
      const series = fams?.reduce((n, f) => n + f.metrics.length, 0) ?? -1;
      const wanted = new Set(c.expect.samples.map(([name, labels]) => `${name}${JSON.stringify(labels)}`)).size;
      if (!fams || (series === 0 && wanted > 0)) validWrong++;
      else {
        const plain = fams.filter((f) => f.type === 'UNTYPED' || f.type === 'GAUGE' || f.type === 'COUNTER');
        for (const f of plain)
          for (const m of f.metrics) {
            const hit = c.expect.samples.find(
              ([n, l]) =>
                n === f.name &&
                JSON.stringify(Object.entries(l).sort()) === JSON.stringify(Object.entries(m.labels ?? {}).sort()),
            );
            if (
              !hit ||
              String(Number(m.value)) !==
                String(Number(hit[2] === '+Inf' ? Infinity : hit[2] === '-Inf' ? -Infinity : hit[2]))
            ) {
              validWrong++;
              break;
            }
          }
      }
    } else if (c.expect.error && fams && fams.reduce((n, f) => n + f.metrics.length, 0) > (c.expect.good ?? 0))
      invalidRead++;
  }
  return { cases: cases.length, valid_refused_or_misread: validWrong, invalid_read_as_data: invalidRead };
}

function timeMs(fn: () => void, minMs = 2000): { perOpMs: number; ops: number } {
  for (let i = 0; i < 20; i++) fn();
  let ops = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < minMs) {
    fn();
    ops++;
  }
  return { perOpMs: (performance.now() - t0) / ops, ops };
}

/** Parse + normalize of a full vLLM exposition: 4 models, every histogram with every bucket. */
export function runParseBench(): Record<string, number | string> {
  const models = [
    'meta-llama/Llama-3.1-8B-Instruct',
    'Qwen/Qwen2.5-7B-Instruct',
    'mistralai/Mistral-7B-Instruct-v0.3',
    'google/gemma-2-9b-it',
  ];
  const body = renderVllmExposition(
    models.map((m, i) => demoModelState(m, i + 1)),
    { created: true, kvBlockHistograms: true },
  );
  const target = makeTarget('http://127.0.0.1:8000/metrics', {}, 'auto', {}, 'bench');
  const check = normalizeBody(target, body);
  if (check.profile !== 'vllm' || check.signals.length < 40)
    throw new Error(`bench body did not normalize: ${check.profile} ${check.signals.length}`);
  const ours = timeMs(() => normalizeBody(target, body));
  const library = timeMs(() => parsePrometheusTextFormat(body));
  return {
    body_bytes: body.length,
    body_lines: body.split('\n').length,
    cachelens_parse_normalize_ms: Number(ours.perOpMs.toFixed(3)),
    library_whole_body_parse_ms: Number(library.perOpMs.toFixed(3)),
    cachelens_mb_per_s: Number((body.length / 1e6 / (ours.perOpMs / 1000)).toFixed(1)),
    ...Object.fromEntries(Object.entries(libraryConformance()).map(([k, v]) => [`library_conformance_${k}`, v])),
  };
}
