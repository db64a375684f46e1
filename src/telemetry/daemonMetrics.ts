import { collectDefaultMetrics, Counter, Gauge, type Registry } from 'prom-client';
import type { TargetStatus } from '../scrape/scheduler.ts';

export interface DaemonSources {
  targets: () => readonly TargetStatus[];
  skippedScrapes: () => number;
  spool: () => { spans: number; bytes: number } | undefined;
}

/**
 * The scraped server is the label `target`, never `instance` or `job`: those are the labels Prometheus
 * gives cachelens itself, and with honor_labels: false an `instance` here would become `exported_instance`.
 *
 * Metrics read from the daemon's state at scrape time (collect callbacks), so nothing on the hot path
 * updates them; plus prom-client's process metrics. Names follow the Collector's where one exists.
 */
export function registerDaemonMetrics(registry: Registry, src: DaemonSources): void {
  collectDefaultMetrics({ register: registry });
  // prom-client names these gauges *_total, which promtool's lint rejects (a _total suffix means counter).
  for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) registry.removeSingleMetric(name);
  const r = [registry];
  new Gauge({
    name: 'cachelens_target_up',
    help: 'Whether the last scrape of the target worked (1) or not (0), like Prometheus\' up. target is the instance name cachelens gives the server.',
    labelNames: ['target'],
    registers: r,
    collect() {
      this.reset();
      for (const t of src.targets()) if (t.up !== undefined) this.set({ target: t.target.instance }, t.up ? 1 : 0);
    },
  });
  new Gauge({
    name: 'cachelens_scrape_duration_seconds',
    help: 'Duration of the last scrape of the target.',
    labelNames: ['target'],
    registers: r,
    collect() {
      this.reset();
      for (const t of src.targets()) if (t.lastDurationMs !== undefined) this.set({ target: t.target.instance }, t.lastDurationMs / 1000);
    },
  });
  new Counter({
    name: 'cachelens_scrapes_skipped_total',
    help: 'Scrapes skipped because the previous scrape of the same target was still running.',
    registers: r,
    collect() {
      this.reset();
      this.inc(src.skippedScrapes());
    },
  });
  new Gauge({
    name: 'cachelens_spool_spans',
    help: 'Spans acknowledged and waiting in the spool for enrichment or export.',
    registers: r,
    collect() {
      const s = src.spool();
      if (s) this.set(s.spans);
    },
  });
  new Gauge({
    name: 'cachelens_spool_bytes',
    help: 'Bytes of OTLP requests in the spool (what spool.max_bytes bounds).',
    registers: r,
    collect() {
      const s = src.spool();
      if (s) this.set(s.bytes);
    },
  });
}
