import { existsSync, readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { applyEnvOverrides, ConfigError, validateConfigObject } from './validate.ts';

export { ConfigError };

export interface AuthOptions {
  bearer_token?: string;
  bearer_token_file?: string;
  basic_auth?: { username?: string; password?: string; password_file?: string };
  tls?: { ca_file?: string; cert_file?: string; key_file?: string; server_name?: string; insecure_skip_verify?: boolean };
}

export interface StaticTargetConfig extends AuthOptions {
  url: string;
  labels: Record<string, string>;
  profile?: string;
}

/** The validated config; durations in ms, sizes in bytes. */
export interface Config {
  storage: {
    path: string;
    raw_retention: number;
    rollup_retention: number;
    retention_check_interval: number;
    busy_timeout: number;
    max_pending_results: number;
  };
  scrape: AuthOptions & {
    interval: number;
    timeout: number;
    max_body_bytes: number;
    profile: string;
    file_sd: string[];
    file_sd_refresh_interval: number;
    targets: StaticTargetConfig[];
  };
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
  if (interval < 1000 || interval % 1000 !== 0) problems.push(`scrape.interval: ${interval}ms must be a whole number of seconds, at least 1s`);
  if (timeout >= interval) problems.push(`scrape.timeout: ${timeout}ms must be shorter than scrape.interval (${interval}ms)`);
  if (timeout <= 0) problems.push('scrape.timeout: must be positive');
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
    if (u.protocol !== 'http:' && u.protocol !== 'https:') problems.push(`scrape.targets[${i}].url: scheme ${u.protocol} is not http or https`);
  });
  return problems;
}

/** Builds a config from a parsed YAML object plus the environment. Throws ConfigError listing every fault. */
export function buildConfig(raw: unknown, env: NodeJS.ProcessEnv = process.env): { config: Config; envApplied: string[] } {
  const obj = raw === null || raw === undefined ? {} : raw;
  if (typeof obj !== 'object' || Array.isArray(obj)) throw new ConfigError(['(top level): the config file must be a YAML map of keys']);
  const envApplied = applyEnvOverrides(obj as Record<string, unknown>, env);
  const { value, problems } = validateConfigObject(obj);
  if (problems.length) throw new ConfigError(problems);
  const config = value as unknown as Config;
  const cross = crossChecks(config);
  if (cross.length) throw new ConfigError(cross);
  return { config, envApplied };
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
      throw new ConfigError([`${chosen}: cannot read config file (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`]);
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
