import { createHash } from 'node:crypto';
import type { AuthOptions } from '../config/config.ts';

/** A resolved scrape target: static from config or discovered through file_sd. */
export interface Target {
  url: URL;
  /** The target's identity: the URL string. */
  key: string;
  instance: string;
  labels: Record<string, string>;
  profile: string; // 'auto' or a profile name
  auth: AuthOptions;
  source: string; // "config" or the file_sd path
}

export function defaultInstance(url: URL): string {
  const port = url.port || (url.protocol === 'https:' ? '443' : '80');
  return `${url.hostname.includes(':') ? `[${url.hostname}]` : url.hostname}:${port}`;
}

export function makeTarget(
  urlText: string,
  labels: Record<string, string>,
  profile: string,
  auth: AuthOptions,
  source: string,
): Target {
  const url = new URL(urlText);
  const instance = labels.instance ?? defaultInstance(url);
  return { url, key: url.toString(), instance, labels: { ...labels, instance }, profile, auth, source };
}

/**
 * A stable offset inside the interval, from a hash of the target's identity, as Prometheus spreads
 * scrapes: the same target always lands at the same phase, and targets do not all fire at once.
 */
export function scrapeOffsetMs(t: Target, intervalMs: number): number {
  const digest = createHash('sha1').update(`${t.key}\u0000${t.instance}`).digest();
  return digest.readUInt32BE(0) % intervalMs;
}
