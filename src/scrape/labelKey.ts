/** Label values JSON.stringify leaves as they are: no quote, backslash, control character or surrogate. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: these are the characters JSON.stringify escapes.
const PLAIN = /^[^"\\\u0000-\u001f\ud800-\udfff]*$/;

/**
 * A series' identity within one metric name: its labels, sorted, with values quoted as JSON.stringify
 * quotes them. Stored in counter_state, so it never changes form; built in one pass, since every wanted
 * sample of every scrape makes one.
 */
export function labelKey(labels: Record<string, string>, omit?: string): string {
  const keys = Object.keys(labels);
  if (keys.length > 1) keys.sort();
  let out = '';
  for (const k of keys) {
    if (k === omit) continue;
    const v = labels[k]!;
    const quoted = PLAIN.test(v) ? `"${v}"` : JSON.stringify(v);
    out = out === '' ? `${k}=${quoted}` : `${out},${k}=${quoted}`;
  }
  return out;
}
