import { existsSync, readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import type { Config } from './schema.ts';
import { checkEnrich, resolveEnrich } from './sections/enrich.ts';
import { checkExporter } from './sections/exporter.ts';
import { checkReceivers } from './sections/receivers.ts';
import { checkScrape, defaultTargetsFor, slowestIntervalMs } from './sections/scrape.ts';
import { resolveSpool } from './sections/spool.ts';
import { applyEnvOverrides, ConfigError, validateConfigObject } from './validate.ts';

export { ConfigError };
export type { Config };
export type { AuthOptions } from './sections/auth.ts';
export type { EnrichAs, EnrichConfig, EnrichDetail } from './sections/enrich.ts';
export type { ExporterConfig } from './sections/exporter.ts';
export type { LedgerConfig } from './sections/ledger.ts';
export type { ReceiversConfig } from './sections/receivers.ts';
export type { ScrapeConfig, StaticTargetConfig } from './sections/scrape.ts';
export { type SpanMatching, spanMatchingFor } from './sections/scrape.ts';
export type { SpoolConfig } from './sections/spool.ts';
export type { PrometheusSourceConfig } from './sections/prometheus.ts';
export { defaultSpoolPath } from './sections/spool.ts';

export interface LoadedConfig {
  config: Config;
  source: string; // file path, or "built-in defaults"
  envApplied: string[];
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
  defaultTargetsFor((obj as { scrape?: Record<string, unknown> }).scrape);
  const { value, problems } = validateConfigObject(obj);
  if (problems.length) throw new ConfigError(problems);
  // Values whose default depends on other keys are resolved once, here, so every part (and
  // check-config) sees the same number.
  resolveEnrich(value.enrich, slowestIntervalMs(value.scrape));
  resolveSpool(value.spool, value.storage.path);
  const cross = [
    ...checkScrape(value.scrape),
    ...checkReceivers(value.receivers),
    ...checkExporter(value.exporter),
    ...checkEnrich(value.enrich),
  ];
  if (cross.length) throw new ConfigError(cross);
  return { config: value, envApplied };
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
