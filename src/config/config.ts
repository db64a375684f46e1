import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { checkSpanNames } from './spanNames.ts';
import { applyEnvOverrides, ConfigError, validateConfigObject } from './validate.ts';

export { ConfigError };

export type EnrichAs = 'events' | 'attributes' | 'both';

/** The exporter's slice; options left unset fall back to the OTEL_EXPORTER_OTLP_* environment. */
export interface ExporterConfig {
  endpoint?: string;
  insecure?: boolean;
  headers: Record<string, string>;
  compression?: 'gzip' | 'none';
  timeout?: number;
  tls?: { ca_file?: string; cert_file?: string; key_file?: string };
}

export interface AuthOptions {
  bearer_token?: string;
  bearer_token_file?: string;
  basic_auth?: { username?: string; password?: string; password_file?: string };
  tls?: {
    ca_file?: string;
    cert_file?: string;
    key_file?: string;
    server_name?: string;
    insecure_skip_verify?: boolean;
  };
}

export interface StaticTargetConfig extends AuthOptions {
  url: string;
  labels: Record<string, string>;
  profile?: string;
  match: Record<string, string>;
}

/** The validated config; durations in ms, sizes in bytes. */
export interface Config {
  storage: {
    path: string;
    raw_retention: number;
    rollup_retention: number;
    ledger_retention: number;
    compaction_delay: number;
    retention_check_interval: number;
    busy_timeout: number;
    max_pending_results: number;
  };
  scrape: AuthOptions & {
    interval: number;
    timeout: number;
    max_body_bytes: number;
    sample_limit: number;
    profile: string;
    file_sd: string[];
    file_sd_refresh_interval: number;
    targets: StaticTargetConfig[];
  };
  receivers: {
    grpc: { enabled: boolean; endpoint: string };
    http: { enabled: boolean; endpoint: string };
    max_request_bytes: number;
    bearer_token?: string;
    bearer_token_file?: string;
    tls?: { cert_file?: string; key_file?: string; client_ca_file?: string };
  };
  exporter: ExporterConfig & {
    retry_initial_interval: number;
    retry_max_interval: number;
    max_batch_spans: number;
    max_in_flight: number;
    shutdown_timeout: number;
  };
  /** path is resolved: the configured one, or cachelens-spool.db next to storage.path. */
  spool: { path: string; max_bytes: number; fsync: boolean; high_water_percent: number };
  telemetry: { enabled: boolean; endpoint: string };
  /** max_wait and lookback are resolved from scrape.interval when not set. */
  enrich: { max_wait: number; lookback: number; facts_cache_bytes: number; as: EnrichAs; span_names: string[] };
  ledger: { tenant_attributes: string[] };
  log: { level: string };
}

export interface LoadedConfig {
  config: Config;
  source: string; // file path, or "built-in defaults"
  envApplied: string[];
}

function crossChecks(c: Config): string[] {
  const problems: string[] = [];
  const { interval, timeout } = c.scrape;
  if (interval < 1000 || interval % 1000 !== 0)
    problems.push(`scrape.interval: ${interval}ms must be a whole number of seconds, at least 1s`);
  if (timeout >= interval)
    problems.push(`scrape.timeout: ${timeout}ms must be shorter than scrape.interval (${interval}ms)`);
  if (timeout <= 0) problems.push('scrape.timeout: must be positive');
  problems.push(...checkSpanNames(c.enrich.span_names));
  if (c.exporter.max_batch_spans < 1) problems.push('exporter.max_batch_spans: must be at least 1');
  if (c.exporter.max_in_flight < 1) problems.push('exporter.max_in_flight: must be at least 1');
  if (c.receivers.max_request_bytes < 1024) problems.push('receivers.max_request_bytes: must be at least 1KiB');
  if (c.exporter.endpoint) {
    try {
      new URL(c.exporter.endpoint.includes('://') ? c.exporter.endpoint : `http://${c.exporter.endpoint}`);
    } catch {
      problems.push(
        `exporter.endpoint: ${JSON.stringify(c.exporter.endpoint)} is not an endpoint like http://collector:4317`,
      );
    }
  }
  c.scrape.targets.forEach((t, i) => {
    if (!t.url) {
      problems.push(`scrape.targets[${i}].url: is required`);
      return;
    }
    let u: URL;
    try {
      u = new URL(t.url);
    } catch {
      problems.push(`scrape.targets[${i}].url: ${JSON.stringify(t.url)} is not a URL like http://host:8000/metrics`);
      return;
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:')
      problems.push(`scrape.targets[${i}].url: scheme ${u.protocol} is not http or https`);
  });
  return problems;
}

/** Builds a config from a parsed YAML object plus the environment. Throws ConfigError listing every fault. */
export function buildConfig(
  raw: unknown,
  env: NodeJS.ProcessEnv = process.env,
): { config: Config; envApplied: string[] } {
  const obj = raw === null || raw === undefined ? {} : raw;
  if (typeof obj !== 'object' || Array.isArray(obj))
    throw new ConfigError(['(top level): the config file must be a YAML map of keys']);
  const envApplied = applyEnvOverrides(obj as Record<string, unknown>, env);
  const { value, problems } = validateConfigObject(obj);
  if (problems.length) throw new ConfigError(problems);
  const config = resolveDerived(value as unknown as Config);
  const cross = crossChecks(config);
  if (cross.length) throw new ConfigError(cross);
  return { config, envApplied };
}

/**
 * Values whose default depends on other keys, resolved here once so every part (and check-config)
 * sees the same number: enrich.max_wait and enrich.lookback from scrape.interval, the spool path
 * from storage.path.
 */
function resolveDerived(c: Config): Config {
  const raw = c as unknown as { enrich: { max_wait?: number; lookback?: number }; spool: { path?: string } };
  raw.enrich.max_wait ??= 2 * c.scrape.interval;
  raw.enrich.lookback ??= Math.max(6 * 3_600_000, 4 * c.scrape.interval);
  if (!raw.spool.path) raw.spool.path = defaultSpoolPath(c.storage.path);
  return c;
}

export function defaultSpoolPath(storagePath: string): string {
  return storagePath === ':memory:' ? ':memory:' : join(dirname(storagePath), 'cachelens-spool.db');
}

/** --config PATH, else ./cachelens.yaml when present, else built-in defaults. */
export function loadConfig(path: string | undefined, env: NodeJS.ProcessEnv = process.env): LoadedConfig {
  const chosen = path ?? (existsSync('cachelens.yaml') ? 'cachelens.yaml' : undefined);
  let raw: unknown = {};
  if (chosen) {
    let text: string;
    try {
      text = readFileSync(chosen, 'utf8');
    } catch (err) {
      throw new ConfigError([
        `${chosen}: cannot read config file (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`,
      ]);
    }
    try {
      raw = parseYaml(text);
    } catch (err) {
      throw new ConfigError([`${chosen}: is not valid YAML: ${(err as Error).message.split('\n')[0]}`]);
    }
  }
  const { config, envApplied } = buildConfig(raw, env);
  return { config, source: chosen ?? 'built-in defaults', envApplied };
}
