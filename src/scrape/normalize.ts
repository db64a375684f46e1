import type { Profile } from './profiles.ts';
import { createdCompanion } from './profiles.ts';
import type { Sample, Signal, SignalSample } from './types.ts';

import { labelKey } from './labelKey.ts';

export { labelKey };

export const UNKNOWN_MODEL = 'unknown';

/**
 * Maps parsed samples onto signals with one profile. For each signal the first row with samples wins.
 * NaN and "not available" values are dropped here, so they never enter a sum.
 */
export function normalizeSamples(
  profile: Profile,
  samples: Sample[],
  help: Map<string, string>,
  targetLabels: Record<string, string>,
): SignalSample[] {
  const byName = new Map<string, Sample[]>();
  for (const s of samples) {
    const list = byName.get(s.name);
    if (list) list.push(s);
    else byName.set(s.name, [s]);
  }
  const fallbackModel = targetLabels.model_name ?? targetLabels.model ?? UNKNOWN_MODEL;
  const blockSizes = profile.blockSize
    ? blockSizesByEngine(byName.get(profile.blockSize.metric) ?? [], profile.blockSize.label, profile.engineLabel)
    : undefined;
  const out: SignalSample[] = [];
  const done = new Set<string>();
  for (const row of profile.rows) {
    if (done.has(row.signal)) continue;
    const rowSamples = byName.get(row.metric);
    if (!rowSamples || rowSamples.length === 0) continue;
    done.add(row.signal);
    const companion = createdCompanion(row.metric);
    const created = new Map<string, number>();
    if (row.kind === 'counter' && companion)
      for (const c of byName.get(companion) ?? [])
        if (Number.isFinite(c.value))
          created.set(c.key !== undefined && c.labels.le === undefined ? c.key : labelKey(c.labels, 'le'), c.value);
    let unit = row.unit;
    if (row.unitFromHelp) {
      const text = help.get(row.metric) ?? help.get(row.metric.replace(/_total$/, ''));
      if (text && row.unitFromHelp.pattern.test(text)) unit = row.unitFromHelp.unit;
    }
    for (const s of rowSamples) {
      if (row.skipLabel?.pattern.test(s.labels[row.skipLabel.name] ?? '')) continue;
      if (row.onlyLabel && s.labels[row.onlyLabel.name] !== row.onlyLabel.value) continue;
      let value = s.value;
      if (Number.isNaN(value)) continue;
      if (row.unknownBelow !== undefined && value < row.unknownBelow) continue;
      if (row.scale !== undefined) value *= row.scale;
      let model = fallbackModel;
      for (const l of profile.modelLabels) {
        const v = s.labels[l];
        if (v !== undefined && v !== '') {
          model = v;
          break;
        }
      }
      const key = s.key ?? labelKey(s.labels);
      const engine = profile.engineLabel ? (s.labels[profile.engineLabel] ?? '') : '';
      let sampleUnit = unit;
      let signal = row.signal;
      let seriesKey = s.seriesKey ?? `${row.metric}{${key}}`;
      if (unit === 'blocks') {
        // Before vLLM 0.9 prefix counters count blocks: tokens = blocks × that engine's block size.
        const size = blockSizes?.get(engine) ?? (blockSizes?.size === 1 ? blockSizes.get('') : undefined);
        if (size !== undefined) {
          value *= size;
          sampleUnit = 'tokens';
          // A new series identity, so no delta is ever taken between a value in blocks and one in tokens.
          seriesKey += '#tokens';
        } else signal = `${row.signal}_blocks` as Signal;
      }
      out.push({
        signal,
        kind: row.kind,
        unit: sampleUnit,
        model,
        engine,
        seriesKey,
        value,
        createdSeconds: created.size ? created.get(key) : undefined,
      });
    }
  }
  return out;
}

/** Block size per engine from an info-style series (`vllm:cache_config_info{block_size="16",engine="0"} 1`). */
function blockSizesByEngine(
  samples: readonly Sample[],
  label: string,
  engineLabel: string | undefined,
): Map<string, number> {
  const out = new Map<string, number>();
  for (const s of samples) {
    const size = Number(s.labels[label]);
    if (Number.isInteger(size) && size > 0) out.set(engineLabel ? (s.labels[engineLabel] ?? '') : '', size);
  }
  return out;
}
