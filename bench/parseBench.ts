import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { normalizeBody } from '../src/scrape/scrapeTarget.ts';
import { makeTarget } from '../src/scrape/target.ts';
import { demoModelState, renderVllmExposition } from '../src/demo/vllmExposition.ts';

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
  const models = ['meta-llama/Llama-3.1-8B-Instruct', 'Qwen/Qwen2.5-7B-Instruct', 'mistralai/Mistral-7B-Instruct-v0.3', 'google/gemma-2-9b-it'];
  const body = renderVllmExposition(models.map((m, i) => demoModelState(m, i + 1)), { created: true, kvBlockHistograms: true });
  const target = makeTarget('http://127.0.0.1:8000/metrics', {}, 'auto', {}, 'bench');
  const check = normalizeBody(target, body);
  if (check.profile !== 'vllm' || check.signals.length < 40) throw new Error(`bench body did not normalize: ${check.profile} ${check.signals.length}`);
  const ours = timeMs(() => normalizeBody(target, body));
  const library = timeMs(() => parsePrometheusTextFormat(body));
  return {
    body_bytes: body.length,
    body_lines: body.split('\n').length,
    cachelens_parse_normalize_ms: Number(ours.perOpMs.toFixed(3)),
    library_whole_body_parse_ms: Number(library.perOpMs.toFixed(3)),
    cachelens_mb_per_s: Number((body.length / 1e6 / (ours.perOpMs / 1000)).toFixed(1)),
  };
}
