import type { Profile } from './profiles.ts';
import { createdCompanion } from './profiles.ts';
import type { Sample, SignalSample } from './types.ts';

import { labelKey } from './labelKey.ts';

export { labelKey };

export const UNKNOWN_MODEL = 'unknown';

/**
 * Maps parsed samples onto signals with one profile. For each signal the first row with samples wins.
 * NaN and "not available" values are dropped here, so they never enter a sum.
 */
export function normalizeSamples(profile: Profile, samples: Sample[], help: Map<string, string>, targetLabels: Record<string, string>): SignalSample[] {
  const byName = new Map<string, Sample[]>();
  for (const s of samples) {
    const list = byName.get(s.name);
    if (list) list.push(s);
    else byName.set(s.name, [s]);
  }
  const fallbackModel = targetLabels.model_name ?? targetLabels.model ?? UNKNOWN_MODEL;
  const out: SignalSample[] = [];
  const done = new Set<string>();
  for (const row of profile.rows) {
    if (done.has(row.signal)) continue;
    const rowSamples = byName.get(row.metric);
    if (!rowSamples || rowSamples.length === 0) continue;
    done.add(row.signal);
    const companion = createdCompanion(row.metric);
    const created = new Map<string, number>();
    if (row.kind === 'counter' && companion) for (const c of byName.get(companion) ?? []) if (Number.isFinite(c.value)) created.set(labelKey(c.labels, 'le'), c.value);
    let unit = row.unit;
    if (row.unitFromHelp) {
      const text = help.get(row.metric) ?? help.get(row.metric.replace(/_total$/, ''));
      if (text && row.unitFromHelp.pattern.test(text)) unit = row.unitFromHelp.unit;
    }
    for (const s of rowSamples) {
      if (row.skipLabel && row.skipLabel.pattern.test(s.labels[row.skipLabel.name] ?? '')) continue;
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
      const key = labelKey(s.labels);
      out.push({
        signal: row.signal,
        kind: row.kind,
        unit,
        model,
        engine: profile.engineLabel ? (s.labels[profile.engineLabel] ?? '') : '',
        seriesKey: `${row.metric}{${key}}`,
        value,
        createdSeconds: created.get(key),
      });
    }
  }
  return out;
}
