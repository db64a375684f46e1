import type { Dimension, Figures, Report, ReportRow } from './build.ts';

export type ColumnKind = 'count' | 'tokens' | 'ratio' | 'depth' | 'money';

export interface Column {
  field: keyof Figures;
  /** Terminal header, with its unit. */
  header: string;
  kind: ColumnKind;
}

const BASE: Column[] = [
  { field: 'requests', header: 'requests', kind: 'count' },
  { field: 'prompt_tokens', header: 'prompt tok', kind: 'tokens' },
  { field: 'cached_prompt_tokens', header: 'cached tok', kind: 'tokens' },
  { field: 'cache_hit_ratio', header: 'hit %', kind: 'ratio' },
  { field: 'generation_tokens', header: 'gen tok', kind: 'tokens' },
  { field: 'preemptions', header: 'preempt', kind: 'count' },
  { field: 'kv_cache_usage_mean', header: 'KV mean %', kind: 'ratio' },
  { field: 'kv_cache_usage_p95', header: 'KV p95 %', kind: 'ratio' },
  { field: 'queue_depth_mean', header: 'queue mean', kind: 'depth' },
  { field: 'queue_depth_p95', header: 'queue p95', kind: 'depth' },
];
const TENANT: Column[] = [
  { field: 'cached_measured_tokens', header: 'measured tok', kind: 'tokens' },
  { field: 'cached_allocated_tokens', header: 'allocated tok', kind: 'tokens' },
];
const TIERED: Column[] = [
  { field: 'local_cached_prompt_tokens', header: 'local cached', kind: 'tokens' },
  { field: 'external_cached_prompt_tokens', header: 'external cached', kind: 'tokens' },
  { field: 'external_hit_ratio', header: 'ext hit %', kind: 'ratio' },
];
const COST: Column[] = [
  { field: 'cost_without_cache', header: 'cost no cache', kind: 'money' },
  { field: 'cost_with_cache', header: 'cost', kind: 'money' },
  { field: 'savings', header: 'saved', kind: 'money' },
];

/** Whether any server in the report exposed where its cached tokens came from (a tiered KV cache). */
export function hasTiers(report: Report): boolean {
  return [...report.rows, report.totals].some(
    (r) => r.external_cached_prompt_tokens !== null || r.local_cached_prompt_tokens !== null,
  );
}

/**
 * The figure columns a report shows: cost only with prices, the measured/allocated split only per tenant,
 * local/external cached tokens where a server exposed them (`tiers`: always, for CSV's fixed header).
 */
export function columnsFor(report: Report, tiers = hasTiers(report)): Column[] {
  const cols = [...BASE];
  if (tiers) cols.splice(3, 0, ...TIERED);
  if (report.group_by.includes('tenant')) cols.splice(3, 0, ...TENANT);
  if (report.currency !== null) cols.push(...COST);
  return cols;
}

export const keyColumns = (report: Report): Dimension[] => report.group_by;

export function showsBasis(report: Report): boolean {
  return report.group_by.includes('tenant');
}

export function rowsWithTotal(report: Report): Array<ReportRow & { total?: true }> {
  return [...report.rows, { ...report.totals, total: true as const }];
}
