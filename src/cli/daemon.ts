import type { Database } from 'better-sqlite3';
import type { Config } from '../config/config.ts';
import { ScrapeScheduler } from '../scrape/scheduler.ts';
import { TargetDiscovery } from '../scrape/targetDiscovery.ts';
import { openDatabase } from '../store/openDatabase.ts';
import { Compactor } from '../store/compaction.ts';
import { Retention } from '../store/retention.ts';
import { RoundWriter } from '../store/roundWriter.ts';
import { ScrapeStore } from '../store/scrapeStore.ts';
import type { Logger } from '../telemetry/logger.ts';
import { TracePipeline } from '../pipeline/tracePipeline.ts';

/** The long-running process: discovery → scheduler → round writer → SQLite, plus retention. */
export class Daemon {
  db?: Database;
  scheduler?: ScrapeScheduler;
  writer?: RoundWriter;
  private discovery?: TargetDiscovery;
  private retentionTimer?: NodeJS.Timeout;
  private retention?: Retention;
  private compactor?: Compactor;
  private housekeepingRun?: Promise<void>;
  pipeline?: TracePipeline;

  constructor(
    private readonly config: Config,
    private readonly log: Logger,
  ) {}

  async start(): Promise<void> {
    const { storage, scrape } = this.config;
    this.db = openDatabase(storage.path, { busyTimeoutMs: storage.busy_timeout });
    const store = new ScrapeStore(this.db);
    this.writer = new RoundWriter(store, this.log, storage.path, storage.max_pending_results);
    const writer = this.writer;
    this.scheduler = new ScrapeScheduler({
      intervalMs: scrape.interval,
      timeoutMs: scrape.timeout,
      maxBodyBytes: scrape.max_body_bytes,
      log: this.log,
      onRound: (results) => {
        writer.write(results);
        // A new round may close the windows of spans waiting in the spool.
        this.pipeline?.queue.kick();
      },
    });
    const scheduler = this.scheduler;
    this.discovery = new TargetDiscovery(this.config, this.log, (targets) => scheduler.setTargets(targets));
    this.discovery.start();
    scheduler.start();
    this.pipeline = new TracePipeline(this.config, this.db, this.log);
    const listening = await this.pipeline.start();
    this.retention = new Retention(this.db, storage.raw_retention, storage.rollup_retention, this.log, storage.ledger_retention);
    this.compactor = new Compactor(this.db, { tenantKeys: this.config.ledger.tenant_attributes, graceMs: storage.compaction_delay, log: this.log });
    // Compaction first, so retention never deletes ledger rows the rollups do not hold yet.
    const housekeeping = async () => {
      await this.compactor?.runOnce();
      await this.retention?.runOnce();
    };
    this.retentionTimer = setInterval(() => {
      this.housekeepingRun ??= housekeeping().finally(() => (this.housekeepingRun = undefined));
    }, storage.retention_check_interval);
    this.log.info(
      { db: storage.path, targets: scheduler.statuses().length, interval: `${scrape.interval / 1000}s`, timeout: `${scrape.timeout / 1000}s`, otlp_grpc: listening.grpc, otlp_http: listening.http, exporter: this.pipeline.endpoint ?? null },
      'cachelens started',
    );
  }

  /** Closes in reverse order of start: stop discovery and scheduling, write the last round, close the DB. */
  async shutdown(): Promise<void> {
    clearInterval(this.retentionTimer);
    this.compactor?.stop();
    await this.housekeepingRun;
    this.discovery?.shutdown();
    await this.pipeline?.shutdown();
    await this.scheduler?.shutdown();
    this.writer?.write([]);
    if (this.writer?.pendingResults) this.log.warn({ pending: this.writer.pendingResults }, 'exiting with unwritten scrape results (gauges lost; counters stay exact)');
    this.db?.close();
    this.log.info('cachelens stopped');
  }
}
