import { parseArgs } from 'node:util';
import { stringify as toYaml } from 'yaml';
import { loadConfig } from '../config/config.ts';
import { UserError } from '../config/userError.ts';
import { formatBytes, formatDurationMs, parseDurationMs } from '../config/units.ts';
import { CONFIG_SCHEMA, LOG_LEVELS, type Spec } from '../config/schema.ts';
import { openDatabase } from '../store/openDatabase.ts';
import { listMigrations, migrate } from '../store/migrate.ts';
import { createLogger } from '../telemetry/logger.ts';
import { runReport } from './report.ts';

const USAGE = `cachelens — fleet cache and scheduler context for LLM inference

Usage:
  cachelens run [--config FILE]             run the daemon (default config: ./cachelens.yaml if present)
  cachelens scrape --once [--target URL ...] [--format table|json] [--config FILE]
                                            scrape once and print the normalized signals
  cachelens report [--since 7d|2026-11-01] [--until TIME] [--by model,instance,day,hour,tenant]
                   [--format table|csv|json|html] [--out FILE] [--prices FILE] [--db FILE ...] [--config FILE]
                   [--view cost|latency]
                                            tokens, cache hit ratio, pressure and savings from the local store;
                                            --view latency: TTFT, queue and prefill by cache-hit and KV bucket
  cachelens demo [--duration 45s] [--dir DIR] [--log-level warn]
                                            a simulated vLLM fleet through the real daemon: enriched spans and a
                                            report in about a minute, no GPU needed
  cachelens demo --fleet-only [--listen 127.0.0.1:8001] [--otlp http://127.0.0.1:4317]
                                            only the simulated fleet (3 /metrics ports from --listen), until SIGTERM
  cachelens check-config [--config FILE]    print the effective config, or the errors
  cachelens migrate [--config FILE] [--db FILE]
                                            apply pending database migrations
  cachelens help
`;

class UsageError extends UserError {
  override describe(): string {
    return `cachelens: ${this.message}\n\n${USAGE}`;
  }
}

/** Durations and sizes back into the units users write, for check-config. */
function displayConfig(node: unknown, spec: Spec): unknown {
  if (spec.kind === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, child] of Object.entries(spec.fields)) {
      const v = (node as Record<string, unknown>)[k];
      if (v !== undefined) out[k] = displayConfig(v, child);
    }
    return out;
  }
  if (spec.kind === 'list') return (node as unknown[]).map((v) => displayConfig(v, spec.item));
  if (spec.secret) return '[redacted]';
  if (spec.kind === 'duration') return formatDurationMs(node as number);
  if (spec.kind === 'bytes') return formatBytes(node as number);
  return node;
}

export async function main(
  argv: string[],
  io: { out: NodeJS.WritableStream; err: NodeJS.WritableStream } = { out: process.stdout, err: process.stderr },
): Promise<number> {
  const [command, ...rest] = argv;
  const { values, positionals } = parseArgs({
    args: rest,
    allowPositionals: true,
    options: {
      config: { type: 'string', short: 'c' },
      once: { type: 'boolean' },
      target: { type: 'string', multiple: true },
      format: { type: 'string' },
      db: { type: 'string', multiple: true },
      since: { type: 'string' },
      until: { type: 'string' },
      by: { type: 'string' },
      out: { type: 'string', short: 'o' },
      prices: { type: 'string' },
      view: { type: 'string' },
      duration: { type: 'string' },
      dir: { type: 'string' },
      'log-level': { type: 'string' },
      'fleet-only': { type: 'boolean' },
      listen: { type: 'string' },
      otlp: { type: 'string' },
    },
  });
  if (positionals.length) throw new UsageError(`unexpected argument ${JSON.stringify(positionals[0])}`);
  switch (command) {
    case 'run': {
      const { config, source, envApplied } = loadConfig(values.config);
      const log = createLogger(config.log.level);
      log.info({ config: source, env: envApplied }, 'configuration loaded');
      // Loaded on demand: the daemon pulls in gRPC, protobufjs and the OTel exporter, which `report` does not need.
      const { Daemon } = await import('./daemon.ts');
      const daemon = new Daemon(config, log);
      await daemon.start();
      await new Promise<void>((resolve) => {
        const stop = (signal: string) => {
          log.info({ signal }, 'shutting down');
          process.off('SIGTERM', onTerm);
          process.off('SIGINT', onInt);
          // A safety net, not the plan: every step of shutdown has its own bound, but a stop must end even if
          // one does not. Everything acknowledged is in the fsync'd spool and the store is crash-safe (WAL).
          const graceMs = config.exporter.shutdown_timeout + 6000;
          setTimeout(() => {
            log.error(
              { grace_ms: graceMs, stage: daemon.shutdownStage },
              'shutdown did not finish in time; exiting with the spool and store as they are (nothing ' +
                'acknowledged is lost)',
            );
            process.exit(0);
          }, graceMs).unref();
          void daemon.shutdown().then(resolve);
        };
        const onTerm = () => stop('SIGTERM');
        const onInt = () => stop('SIGINT');
        process.on('SIGTERM', onTerm);
        process.on('SIGINT', onInt);
      });
      return 0;
    }
    case 'scrape': {
      if (!values.once) throw new UsageError('scrape needs --once (the daemon is `cachelens run`)');
      const format = values.format ?? 'table';
      if (format !== 'table' && format !== 'json') throw new UsageError(`--format ${format}: use table or json`);
      const { config } = loadConfig(values.config);
      const { scrapeOnce } = await import('./scrapeOnce.ts');
      return scrapeOnce(config, values.target ?? [], format, io.out, io.err);
    }
    case 'report': {
      // The config is optional here: it names the DB and the tenant attributes; --db wins.
      const { config } = loadConfig(values.config);
      return runReport(
        {
          db: values.db?.length ? values.db : [config.storage.path],
          since: values.since,
          until: values.until,
          by: values.by,
          format: values.format,
          prices: values.prices,
          view: values.view,
          out: values.out,
          tenantKeys: config.ledger.tenant_attributes,
        },
        io,
      );
    }
    case 'demo': {
      const { runDemo, runFleetOnly } = await import('./demo.ts');
      if (values['fleet-only']) {
        await runFleetOnly(values.listen ?? '127.0.0.1:8001', values.otlp, io.out);
        return 0;
      }
      const durationMs = parseDurationMs(values.duration ?? '45s');
      if (durationMs === undefined || durationMs < 10_000)
        throw new UsageError(`--duration ${values.duration}: use a duration of at least 10s, such as 45s or 2m`);
      const logLevel = values['log-level'] ?? 'error';
      if (!(LOG_LEVELS as readonly string[]).includes(logLevel))
        throw new UsageError(`--log-level ${logLevel}: use one of ${LOG_LEVELS.join(', ')}`);
      return runDemo({ durationMs, dir: values.dir, logLevel, out: io.out, err: io.err });
    }
    case 'check-config': {
      const { config, source, envApplied } = loadConfig(values.config);
      io.out.write(
        `# effective config (from ${source}${envApplied.length ? `; env: ${envApplied.join(', ')}` : ''})\n`,
      );
      io.out.write(toYaml(displayConfig(config, CONFIG_SCHEMA)));
      return 0;
    }
    case 'migrate': {
      if ((values.db?.length ?? 0) > 1) throw new UsageError('migrate takes one --db');
      const path = values.db?.[0] ?? loadConfig(values.config).config.storage.path;
      const db = openDatabase(path, { migrate: false });
      const applied = migrate(db);
      db.close();
      io.out.write(
        applied.length
          ? applied.map((m) => `applied ${String(m.version).padStart(3, '0')}_${m.name}\n`).join('')
          : `${path}: up to date (version ${listMigrations().length})\n`,
      );
      return 0;
    }
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      io.out.write(USAGE);
      return 0;
    default:
      throw new UsageError(`unknown command ${JSON.stringify(command)}`);
  }
}

/** Entry point: errors become one clear message on stderr and a non-zero exit, never a stack trace. */
export async function runCli(argv: string[]): Promise<void> {
  try {
    process.exitCode = await main(argv);
  } catch (err) {
    if (err instanceof UserError) process.stderr.write(err.describe());
    else if ((err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS'))
      process.stderr.write(new UsageError((err as Error).message).describe());
    else process.stderr.write(`cachelens: ${(err as Error).message}\n`);
    process.exitCode = 2;
    // Whatever a failed start left running must not keep the process alive: exit within 5 s.
    setTimeout(() => process.exit(2), 5000).unref();
  }
}
