import { childMap } from './childMap.ts';
import type { SeriesDelta } from './counterDeltas.ts';
import { MEAN_SIGNALS, type Signal, type SignalKind, type SignalSample } from './types.ts';

/** A value per (model, engine, signal); engine '' is the combination over every engine of the model. */
export interface AggregatedSignal {
  model: string;
  engine: string;
  signal: Signal;
  kind: SignalKind;
  unit: string;
  /** Gauges: the combined value. Counters: the summed cumulative value. */
  value: number;
  /** Counters only, when at least one constituent series had a previous value. */
  delta?: number;
  intervalMs?: number;
  resets?: number;
}

interface Acc {
  model: string;
  engine: string;
  signal: Signal;
  kind: SignalKind;
  unit: string;
  sum: number;
  n: number;
  delta?: number;
  intervalMs?: number;
  resets: number;
  engines: Set<string>;
}

/**
 * Combines over engines (data-parallel ranks): counters and request counts sum; kv_cache_usage and
 * hit-rate gauges take the mean, since each engine has its own KV pool. Counter deltas are summed
 * per series first, so a reset on one engine never looks like a decrease of the total.
 * Per-engine rows are added when a model has more than one engine.
 */
export function aggregateSignals(samples: SignalSample[], deltas: SeriesDelta[]): AggregatedSignal[] {
  const deltaBySeries = new Map<string, SeriesDelta>();
  for (const d of deltas) deltaBySeries.set(d.sample.seriesKey, d);
  // model → engine → signal (see childMap), with the accumulators in the order first seen.
  const accs = new Map<string, Map<string, Map<Signal, Acc>>>();
  const order: Acc[] = [];
  const add = (s: SignalSample, engine: string) => {
    const bySignal = childMap(childMap(accs, s.model), engine);
    let a = bySignal.get(s.signal);
    if (!a) {
      a = {
        model: s.model,
        engine,
        signal: s.signal,
        kind: s.kind,
        unit: s.unit,
        sum: 0,
        n: 0,
        resets: 0,
        engines: new Set(),
      };
      bySignal.set(s.signal, a);
      order.push(a);
    }
    a.sum += s.value;
    a.n++;
    a.engines.add(s.engine);
    const d = s.kind === 'counter' ? deltaBySeries.get(s.seriesKey) : undefined;
    if (d) {
      a.delta = (a.delta ?? 0) + d.delta;
      a.intervalMs = Math.max(a.intervalMs ?? 0, d.intervalMs);
      if (d.reset) a.resets++;
    }
  };
  for (const s of samples) {
    if (!Number.isFinite(s.value) && s.kind === 'counter') continue;
    add(s, '');
    if (s.engine !== '') add(s, s.engine);
  }
  const enginesPerModel = new Map<string, number>();
  for (const a of order)
    if (a.engine === '') enginesPerModel.set(a.model, Math.max(enginesPerModel.get(a.model) ?? 0, a.engines.size));
  const out: AggregatedSignal[] = [];
  for (const a of order) {
    if (a.engine !== '' && (enginesPerModel.get(a.model) ?? 0) < 2) continue;
    // Within one engine several series (finished_reason, cache_source) are parts of one total.
    const value = a.kind === 'gauge' && MEAN_SIGNALS.has(a.signal) ? a.sum / a.n : a.sum;
    const row: AggregatedSignal = {
      model: a.model,
      engine: a.engine,
      signal: a.signal,
      kind: a.kind,
      unit: a.unit,
      value,
    };
    if (a.delta !== undefined) Object.assign(row, { delta: a.delta, intervalMs: a.intervalMs, resets: a.resets });
    out.push(row);
  }
  return out;
}
