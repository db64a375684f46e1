import type { OtlpSpan } from '../pipeline/otlp/schema.ts';

/**
 * vLLM's `llm_request`; SGLang's request root span ("Req <rid>", with an optional prefill/decode
 * role); TGI's handler spans. Entries wrapped in slashes are regular expressions.
 */
export const DEFAULT_REQUEST_SPAN_NAMES = ['llm_request', '/^(?:prefill |decode )? ?Req \\S+$/', 'generate', 'generate_stream', 'chat_completions', 'completions'];

export type SpanSelector = (span: OtlpSpan) => boolean;

export function compileSpanSelector(entries: readonly string[]): SpanSelector {
  const exact = new Set<string>();
  const patterns: RegExp[] = [];
  for (const e of entries) {
    if (e.length > 2 && e.startsWith('/') && e.endsWith('/')) patterns.push(new RegExp(e.slice(1, -1)));
    else exact.add(e);
  }
  return (span) => exact.has(span.name) || patterns.some((p) => p.test(span.name));
}

/** Throws with the entry named when a /regex/ entry does not compile. */
export function checkSpanNames(entries: readonly string[]): string[] {
  const problems: string[] = [];
  entries.forEach((e, i) => {
    if (e.length > 2 && e.startsWith('/') && e.endsWith('/')) {
      try {
        new RegExp(e.slice(1, -1));
      } catch (err) {
        problems.push(`enrich.span_names[${i}]: ${(err as Error).message}`);
      }
    }
  });
  return problems;
}
