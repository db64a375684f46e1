import { Counter, Gauge, type Registry } from 'prom-client';
import { SCRAPE_FAILURE_REASONS, type ScrapeFailureReason } from './fetchExposition.ts';
import type { TargetStatus } from './scheduler.ts';

/**
 * The scraper's self-metrics, read from its state at scrape time (collect callbacks), so nothing on
 * the scrape path updates them. The scraped server is the label `target`, never `instance` or `job`:
 * those are the labels Prometheus gives cachelens itself, and with honor_labels: false an `instance`
 * here would become `exported_instance`.
 */
export function registerScrapeMetrics(
  registry: Registry,
  src: {
    targets: () => readonly TargetStatus[];
    skippedScrapes: () => number;
    failures: () => ReadonlyMap<ScrapeFailureReason, number>;
  },
): void {
  const r = [registry];
  new Gauge({
    name: 'cachelens_target_up',
    help:
      "Whether the last scrape of the target worked (1) or not (0), like Prometheus' up. target is the instance name " +
      'cachelens gives the server.',
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
      for (const t of src.targets())
        if (t.lastDurationMs !== undefined) this.set({ target: t.target.instance }, t.lastDurationMs / 1000);
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
  new Counter({
    name: 'cachelens_scrape_failures_total',
    help:
      'Failed scrapes by reason (connect, timeout, http_status, too_large, decode, auth_file, redirect, ' +
      'sample_limit, not_exposition, unexpected).',
    labelNames: ['reason'],
    registers: r,
    collect() {
      this.reset();
      const f = src.failures();
      // Every reason is exported, at 0 until it happens, so rate() sees the first failure.
      for (const reason of SCRAPE_FAILURE_REASONS) this.inc({ reason }, f.get(reason) ?? 0);
    },
  });
}
