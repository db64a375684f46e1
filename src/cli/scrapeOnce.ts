import type { Config } from '../config/config.ts';
import { aggregateSignals } from '../scrape/aggregateSignals.ts';
import { scrapeTarget } from '../scrape/scrapeTarget.ts';
import { staticTargets } from '../scrape/targetDiscovery.ts';
import { makeTarget } from '../scrape/target.ts';
import { readFileSd } from '../scrape/fileSd.ts';
import { formatTable } from '../report/formatTable.ts';

export interface ScrapeOnceRow {
  target: string;
  instance: string;
  model: string;
  signal: string;
  kind: string;
  value: number;
}

/** `cachelens scrape --once`: one round over the targets, printed; exit 1 when every target failed. */
export async function scrapeOnce(
  config: Config,
  urls: string[],
  format: 'table' | 'json',
  out: NodeJS.WritableStream,
  err: NodeJS.WritableStream,
): Promise<number> {
  const { bearer_token, bearer_token_file, basic_auth, tls } = config.scrape;
  const auth = { bearer_token, bearer_token_file, basic_auth, tls };
  const targets = urls.length
    ? urls.map((u) => makeTarget(u, {}, config.scrape.profile, auth, 'command line'))
    : [
        ...staticTargets(config.scrape),
        ...config.scrape.file_sd.flatMap((p) => readFileSd(p, config.scrape.profile, auth)),
      ];
  const results = await Promise.all(
    targets.map((t) =>
      scrapeTarget(t, {
        timeoutMs: config.scrape.timeout,
        maxBodyBytes: config.scrape.max_body_bytes,
        sampleLimit: config.scrape.sample_limit,
      }),
    ),
  );
  const rows: ScrapeOnceRow[] = [];
  for (const r of results) {
    if (!r.up) err.write(`${r.target.key}: down: ${r.error}\n`);
    else if (r.error) err.write(`${r.target.key}: ${r.error}\n`);
    for (const a of aggregateSignals(r.signals, [])) {
      if (a.engine !== '') continue;
      rows.push({
        target: r.target.key,
        instance: r.target.instance,
        model: a.model,
        signal: a.signal,
        kind: a.kind,
        value: a.value,
      });
    }
  }
  if (format === 'json')
    out.write(
      `${JSON.stringify(rows, (_k, v) => (typeof v === 'number' && !Number.isFinite(v) ? String(v) : v), 2)}\n`,
    );
  else {
    const profiles = new Map(results.map((r) => [r.target.key, r.up ? (r.profile ?? 'none') : 'down']));
    out.write(
      formatTable(
        ['target', 'profile', 'model', 'signal', 'kind', 'value'],
        rows.map((r) => [r.instance, profiles.get(r.target) ?? '', r.model, r.signal, r.kind, formatValue(r.value)]),
        [5],
      ),
    );
  }
  const failed = results.filter((r) => !r.up).length;
  if (results.length > 0 && failed === results.length) {
    err.write(`cachelens: all ${failed} target(s) failed to scrape\n`);
    return 1;
  }
  return 0;
}

/**
 * About six significant digits, never fewer than the integer part's (toPrecision(6) made 100000.4 "1e+5", then "1").
 */
export function formatValue(v: number): string {
  if (!Number.isFinite(v) || Number.isInteger(v)) return String(v);
  const abs = Math.abs(v);
  if (abs < 1e-4 || abs >= 1e15) return v.toPrecision(6);
  const decimals = Math.max(1, 6 - Math.floor(Math.log10(abs)) - 1);
  return v.toFixed(decimals).replace(/0+$/, '').replace(/\.$/, '');
}
