import { Counter, Gauge, type Registry } from 'prom-client';
import { SCRAPE_FAILURE_REASONS, type ScrapeFailureReason } from './fetchExposition.ts';
import { SOURCE_FAILURE_REASONS, type SourceFailureReason } from './prometheusApi.ts';
import type { SourceStatus } from './prometheusSource.ts';
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
    cachedSplitMismatches?: () => number;
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
  new Counter({
    name: 'cachelens_cached_tokens_split_mismatch_total',
    help:
      'Scrape intervals of a server and model where vllm:prompt_tokens_by_source (local_cache_hit + ' +
      'external_kv_transfer) did not add up to vllm:prompt_tokens_cached. Stored as exposed, never corrected.',
    registers: r,
    collect() {
      this.reset();
      this.inc(src.cachedSplitMismatches?.() ?? 0);
    },
  });
}

/** A source's self-metrics (source="prometheus"), read from its status at scrape time. */
export function registerSourceMetrics(
  registry: Registry,
  source: string,
  src: { status: SourceStatus; failures: ReadonlyMap<SourceFailureReason, number> },
): void {
  const r = [registry];
  const labels = { source };
  new Gauge({
    name: 'cachelens_source_up',
    help: 'Whether the last read from the source worked (1) or not (0).',
    labelNames: ['source'],
    registers: r,
    collect() {
      this.reset();
      if (src.status.up !== undefined) this.set(labels, src.status.up ? 1 : 0);
    },
  });
  new Gauge({
    name: 'cachelens_source_read_duration_seconds',
    help: 'Duration of the last read from the source, all its queries together.',
    labelNames: ['source'],
    registers: r,
    collect() {
      this.reset();
      if (src.status.lastDurationMs !== undefined) this.set(labels, src.status.lastDurationMs / 1000);
    },
  });
  new Gauge({
    name: 'cachelens_source_servers',
    help: 'Inference servers the source currently reports.',
    labelNames: ['source'],
    registers: r,
    collect() {
      this.set(labels, src.status.servers);
    },
  });
  const total = (name: string, help: string, value: () => number) =>
    new Counter({
      name,
      help,
      labelNames: ['source'],
      registers: r,
      collect() {
        this.reset();
        this.inc(labels, value());
      },
    });
  total('cachelens_source_queries_total', 'Queries sent to the source.', () => src.status.queries);
  total('cachelens_source_read_bytes_total', 'Bytes of answers read from the source.', () => src.status.bytes);
  total('cachelens_source_samples_total', 'Raw samples read from the source.', () => src.status.samples);
  new Counter({
    name: 'cachelens_source_read_failures_total',
    help:
      'Failed reads by reason (connect, timeout, http_status, too_large, decode, auth_file, redirect, ' +
      'too_many_samples, api_error, unexpected).',
    labelNames: ['source', 'reason'],
    registers: r,
    collect() {
      this.reset();
      for (const reason of SOURCE_FAILURE_REASONS) this.inc({ source, reason }, src.failures.get(reason) ?? 0);
    },
  });
}
