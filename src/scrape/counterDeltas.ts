import type { SignalSample } from './types.ts';

/** What is remembered of one exposed counter series between scrapes (persisted, so restarts lose nothing). */
export interface CounterState {
  value: number;
  createdSeconds?: number;
  tsMs: number;
  /** Missing from its target's last successful scrape: tsMs is when it was last seen. */
  absent?: boolean;
}

export interface SeriesDelta {
  sample: SignalSample;
  delta: number;
  intervalMs: number;
  reset: boolean;
}

export interface DeltaResult {
  deltas: SeriesDelta[];
  /** New state for every counter series seen in this scrape. */
  nextState: Map<string, CounterState>;
  /** Series seen for the first time: they only set a baseline. */
  baselines: number;
}

// A _created change means the counter restarted even if it has already climbed past the old value.
const CREATED_TOLERANCE_S = 0.001;

/**
 * Deltas between consecutive successful scrapes of each exposed counter series.
 * A counter that went down was reset: its delta is the new value, as Prometheus counts it.
 * `targetSeenBeforeMs` is the previous successful scrape of the target (undefined on its first scrape).
 */
export function computeCounterDeltas(
  samples: SignalSample[],
  prev: ReadonlyMap<string, CounterState>,
  tsMs: number,
  targetSeenBeforeMs?: number,
): DeltaResult {
  const deltas: SeriesDelta[] = [];
  const nextState = new Map<string, CounterState>();
  let baselines = 0;
  for (const s of samples) {
    if (s.kind !== 'counter' || !Number.isFinite(s.value)) continue;
    nextState.set(s.seriesKey, { value: s.value, createdSeconds: s.createdSeconds, tsMs });
    const p = prev.get(s.seriesKey);
    if (!p) {
      // A series born since the target's last scrape (per its _created) counted all of its value in that gap.
      if (
        targetSeenBeforeMs !== undefined &&
        s.createdSeconds !== undefined &&
        s.createdSeconds * 1000 >= targetSeenBeforeMs
      ) {
        deltas.push({ sample: s, delta: s.value, intervalMs: tsMs - targetSeenBeforeMs, reset: false });
      } else baselines++;
      continue;
    }
    const createdChanged =
      p.createdSeconds !== undefined &&
      s.createdSeconds !== undefined &&
      Math.abs(p.createdSeconds - s.createdSeconds) > CREATED_TOLERANCE_S;
    const reset = s.value < p.value || createdChanged;
    deltas.push({ sample: s, delta: reset ? s.value : s.value - p.value, intervalMs: tsMs - p.tsMs, reset });
  }
  return { deltas, nextState, baselines };
}
