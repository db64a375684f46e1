import type { Database } from 'better-sqlite3';
import { checkConfigFiles } from '../config/checkFiles.ts';
import { parseEndpoint } from '../config/endpoint.ts';
import { type Config, spanMatchingFor } from '../config/config.ts';
import { ScrapeScheduler } from '../scrape/scheduler.ts';
import { TargetDiscovery } from '../scrape/targetDiscovery.ts';
import { openDatabase } from '../store/openDatabase.ts';
import { Compactor } from '../store/compaction.ts';
import { Retention } from '../store/retention.ts';
import { RoundWriter } from '../store/roundWriter.ts';
import { ScrapeStore } from '../store/scrapeStore.ts';
import { WalCheckpointer } from '../store/walCheckpointer.ts';
import type { Logger } from '../telemetry/logger.ts';
import { TracePipeline } from '../pipeline/tracePipeline.ts';
import { Registry } from 'prom-client';
import { registerScrapeMetrics, registerSourceMetrics } from '../scrape/metrics.ts';
import { PrometheusSource } from '../scrape/prometheusSource.ts';
import { PipelineMetrics, registerSpoolMetrics } from '../pipeline/metrics.ts';
import { registerProcessMetrics, TelemetryServer } from '../telemetry/telemetryServer.ts';

/** The long-running process: discovery → scheduler → round writer → SQLite, plus retention. */
export class Daemon {
  private checkpointer?: WalCheckpointer;
  db?: Database;
  scheduler?: ScrapeScheduler;
  writer?: RoundWriter;
  private discovery?: TargetDiscovery;
  private retentionTimer?: NodeJS.Timeout;
  private retention?: Retention;
  private compactor?: Compactor;
  private housekeepingRun?: Promise<void>;
  pipeline?: TracePipeline;
  telemetry?: TelemetryServer;
  source?: PrometheusSource;
  readonly registry = new Registry();
  private stopping?: Promise<void>;
  /** Where shutdown is: logged if it runs past its grace period. */
  shutdownStage = 'running';

  constructor(
    private readonly config: Config,
    private readonly log: Logger,
  ) {}

  /**
   * Starts every part, or none: a part that cannot start (a port in use, a file that cannot be
   * read) stops what already started and throws one line naming the config key.
   */
  async start(): Promise<void> {
    const problems = checkConfigFiles(this.config);
    if (problems.length)
      throw new Error(
        problems.length === 1
          ? problems[0]!
          : `${problems.length} files named in the config cannot be read: ${problems.join('; ')}`,
      );
    try {
      await this.startParts();
    } catch (err) {
      await this.shutdown().catch(() => undefined);
      throw err;
    }
  }

  private async startParts(): Promise<void> {
    const { storage, scrape } = this.config;
    this.db = openDatabase(storage.path, { busyTimeoutMs: storage.busy_timeout });
    if (storage.path !== ':memory:') {
      this.checkpointer = new WalCheckpointer(this.db, storage.path, this.log);
      this.checkpointer.start();
    }
    const store = new ScrapeStore(this.db);
    this.writer = new RoundWriter(store, this.log, storage.path, storage.max_pending_results);
    const writer = this.writer;
    this.scheduler = new ScrapeScheduler({
      intervalMs: scrape.interval,
      timeoutMs: scrape.timeout,
      maxBodyBytes: scrape.max_body_bytes,
      sampleLimit: scrape.sample_limit,
      log: this.log,
      onRound: (results) => {
        writer.write(results);
        // A new round may close the windows of spans waiting in the spool.
        this.pipeline?.queue.scrapesWritten();
      },
    });
    const scheduler = this.scheduler;
    if (scrape.prometheus)
      this.source = new PrometheusSource({
        cfg: scrape.prometheus,
        log: this.log,
        store,
        onRound: (results) => {
          writer.write(results);
          this.pipeline?.queue.scrapesWritten();
        },
      });
    const source = this.source;
    this.discovery = new TargetDiscovery(this.config.scrape, this.log, (targets) => scheduler.setTargets(targets));
    this.discovery.start();
    scheduler.start();
    source?.start();
    this.pipeline = new TracePipeline(
      this.config,
      spanMatchingFor(this.config.scrape),
      this.db,
      this.log,
      new PipelineMetrics(this.registry),
    );
    const pipeline = this.pipeline;
    const listening = await pipeline.start();
    registerProcessMetrics(this.registry);
    registerScrapeMetrics(this.registry, {
      targets: () => (source ? [...scheduler.statuses(), ...source.statuses()] : scheduler.statuses()),
      skippedScrapes: () => scheduler.skippedTotal,
      failures: () => scheduler.failures,
      cachedSplitMismatches: () => writer.cachedDisagreements,
    });
    if (source) registerSourceMetrics(this.registry, 'prometheus', source);
    registerSpoolMetrics(this.registry, () =>
      pipeline.listening ? { spans: pipeline.spool.counts().spans, bytes: pipeline.spool.bytes } : undefined,
    );
    let telemetryAt: string | null = null;
    if (this.config.telemetry.enabled) {
      const highWaterPercent = this.config.spool.high_water_percent;
      const highWater = (highWaterPercent / 100) * pipeline.spool.maxBytes;
      this.telemetry = new TelemetryServer(
        parseEndpoint(this.config.telemetry.endpoint),
        this.registry,
        [
          { name: 'database', problem: () => (this.db?.open ? undefined : `${storage.path} is not open`) },
          {
            name: 'receivers',
            problem: () =>
              pipeline.listening ? undefined : 'OTLP listeners are not bound (starting or shutting down)',
          },
          ...(source
            ? [
                {
                  name: 'prometheus',
                  problem: () =>
                    source.status.up === false ? `cannot read from Prometheus: ${source.status.lastError}` : undefined,
                },
              ]
            : []),
          {
            name: 'spool',
            problem: () =>
              pipeline.spool.bytes <= highWater
                ? undefined
                : `spool holds ${pipeline.spool.bytes} bytes, above ${highWaterPercent}% of spool.max_bytes ` +
                  `(${pipeline.spool.maxBytes}); downstream is slower than intake`,
          },
        ],
        this.log,
      );
      telemetryAt = await this.telemetry.start();
    }
    this.retention = new Retention(
      this.db,
      storage.raw_retention,
      storage.rollup_retention,
      this.log,
      storage.ledger_retention,
    );
    this.compactor = new Compactor(this.db, {
      tenantKeys: this.config.ledger.tenant_attributes,
      graceMs: storage.compaction_delay,
      log: this.log,
    });
    // Compaction first, so retention never deletes ledger rows the rollups do not hold yet.
    const housekeeping = async () => {
      await this.compactor?.runOnce();
      await this.retention?.runOnce();
    };
    this.retentionTimer = setInterval(() => {
      this.housekeepingRun ??= housekeeping().finally(() => (this.housekeepingRun = undefined));
    }, storage.retention_check_interval);
    this.log.info(
      {
        db: storage.path,
        targets: scheduler.statuses().length,
        prometheus: scrape.prometheus?.url ?? null,
        interval: `${scrape.interval / 1000}s`,
        timeout: `${scrape.timeout / 1000}s`,
        otlp_grpc: listening.grpc,
        otlp_http: listening.http,
        telemetry: telemetryAt,
        exporter: this.pipeline.endpoint ?? null,
      },
      'cachelens started',
    );
  }

  /**
   * Stops the parts in an order where nothing touches a closed part: intake first (no new spans),
   * then the last scrape round (which may wake spans waiting for their window), then the export
   * stage drains, and only then are the stores closed. Safe on a half-started daemon.
   */
  async shutdown(): Promise<void> {
    if (this.stopping) return this.stopping;
    this.stopping = (async () => {
      const stage = (name: string) => {
        this.shutdownStage = name;
      };
      stage('housekeeping');
      clearInterval(this.retentionTimer);
      this.compactor?.stop();
      await this.housekeepingRun;
      this.discovery?.shutdown();
      stage('receivers');
      await this.pipeline?.stopIntake();
      stage('scrapes in flight');
      await this.scheduler?.shutdown();
      stage('prometheus read in flight');
      await this.source?.stop();
      this.writer?.write([]);
      this.pipeline?.queue.scrapesWritten();
      stage('export stage');
      await this.pipeline?.shutdown();
      stage('telemetry server');
      await this.telemetry?.shutdown();
      if (this.writer?.pendingResults)
        this.log.warn(
          { pending: this.writer.pendingResults },
          'exiting with unwritten scrape results (gauges lost; counters stay exact)',
        );
      stage('closing the store');
      await this.checkpointer?.stop();
      if (this.db?.open) this.db.close();
      stage('stopped');
      this.log.info('cachelens stopped');
    })();
    return this.stopping;
  }
}
