import { watch, type FSWatcher } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import type { ScrapeConfig } from '../config/config.ts';
import type { Logger } from '../telemetry/logger.ts';
import { parseFileSd, readFileSdText } from './fileSd.ts';
import { makeTarget, type Target } from './target.ts';

export function staticTargets(scrape: ScrapeConfig): Target[] {
  const { bearer_token, bearer_token_file, basic_auth, tls } = scrape;
  const defaults = { bearer_token, bearer_token_file, basic_auth, tls };
  return scrape.targets.map((t) => {
    const own = {
      bearer_token: t.bearer_token,
      bearer_token_file: t.bearer_token_file,
      basic_auth: t.basic_auth,
      tls: t.tls,
    };
    const hasOwn = Object.values(own).some((v) => v !== undefined);
    return makeTarget(t.url, t.labels, t.profile ?? scrape.profile, hasOwn ? own : defaults, 'config');
  });
}

/**
 * Static targets plus file_sd files, re-read on change notifications and every refresh interval.
 * A file that fails to read keeps its last good targets, as Prometheus does, and the error is logged.
 */
export class TargetDiscovery {
  private readonly fromFiles = new Map<string, { text: string; targets: Target[] }>();
  private readonly watchers: FSWatcher[] = [];
  private timer?: NodeJS.Timeout;
  private debounce?: NodeJS.Timeout;
  private lastKeys = '';

  constructor(
    private readonly scrape: ScrapeConfig,
    private readonly log: Logger,
    private readonly onChange: (targets: Target[]) => void,
  ) {}

  targets(): Target[] {
    const byKey = new Map<string, Target>();
    for (const t of staticTargets(this.scrape)) byKey.set(t.key, t);
    for (const { targets } of this.fromFiles.values())
      for (const t of targets) if (!byKey.has(t.key)) byKey.set(t.key, t);
    return [...byKey.values()];
  }

  /** Re-reads the files; one whose text is unchanged is not parsed again (the refresh timer fires every 30 s). */
  refresh(): void {
    const { bearer_token, bearer_token_file, basic_auth, tls } = this.scrape;
    let changed = this.lastKeys === '';
    for (const path of this.scrape.file_sd) {
      try {
        const text = readFileSdText(path);
        if (this.fromFiles.get(path)?.text === text) continue;
        const targets = parseFileSd(path, text, this.scrape.profile, {
          bearer_token,
          bearer_token_file,
          basic_auth,
          tls,
        });
        this.fromFiles.set(path, { text, targets });
        changed = true;
      } catch (err) {
        this.log.error(
          { file: path, err: (err as Error).message },
          'file_sd read failed; keeping its previous targets',
        );
      }
    }
    if (!changed) return;
    const targets = this.targets();
    const keys = targets
      .map((t) => `${t.key}|${JSON.stringify(t.labels)}|${t.profile}`)
      .sort()
      .join('\n');
    if (keys !== this.lastKeys) {
      this.lastKeys = keys;
      this.log.info({ targets: targets.length, files: this.scrape.file_sd.length }, 'targets updated');
      this.onChange(targets);
    }
  }

  start(): void {
    this.refresh();
    // Watch the directories: editors and config management replace files by rename.
    const dirs = new Map<string, Set<string>>();
    for (const p of this.scrape.file_sd) {
      const abs = resolve(p);
      const names = dirs.get(dirname(abs)) ?? new Set<string>();
      names.add(basename(abs));
      dirs.set(dirname(abs), names);
    }
    for (const [dir, names] of dirs) {
      try {
        const w = watch(dir, (_event, file) => {
          if (file && !names.has(file.toString())) return;
          clearTimeout(this.debounce);
          this.debounce = setTimeout(() => this.refresh(), 100);
        });
        w.on('error', (err) =>
          this.log.warn({ dir, err: err.message }, 'file_sd watch failed; relying on the refresh interval'),
        );
        this.watchers.push(w);
      } catch (err) {
        this.log.warn(
          { dir, err: (err as Error).message },
          'cannot watch file_sd directory; relying on the refresh interval',
        );
      }
    }
    if (this.scrape.file_sd.length)
      this.timer = setInterval(() => this.refresh(), this.scrape.file_sd_refresh_interval).unref();
  }

  shutdown(): void {
    clearInterval(this.timer);
    clearTimeout(this.debounce);
    for (const w of this.watchers) w.close();
    this.watchers.length = 0;
  }
}
