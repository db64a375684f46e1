/** A series' identity within one metric name: its labels, sorted, with values quoted. */
export function labelKey(labels: Record<string, string>, omit?: string): string {
  return Object.keys(labels)
    .filter((k) => k !== omit)
    .sort()
    .map((k) => `${k}=${JSON.stringify(labels[k])}`)
    .join(',');
}
