import { spanNamePattern } from '../config/spanNames.ts';
import type { OtlpSpan } from '../otlp/schema.ts';

export type SpanSelector = (span: OtlpSpan) => boolean;

/** enrich.span_names as a test on a span: exact names, or `/regex/` entries. */
export function compileSpanSelector(entries: readonly string[]): SpanSelector {
  const exact = new Set<string>();
  const patterns: RegExp[] = [];
  for (const e of entries) {
    const pattern = spanNamePattern(e);
    if (pattern !== undefined) patterns.push(new RegExp(pattern));
    else exact.add(e);
  }
  return (span) => exact.has(span.name) || patterns.some((p) => p.test(span.name));
}
