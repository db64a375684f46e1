/**
 * vLLM's `llm_request`; SGLang's request root span ("Req <rid>", with an optional prefill/decode
 * role); TGI's handler spans. Entries wrapped in slashes are regular expressions.
 */
export const DEFAULT_REQUEST_SPAN_NAMES = [
  'llm_request',
  '/^(?:prefill |decode )? ?Req \\S+$/',
  'generate',
  'generate_stream',
  'chat_completions',
  'completions',
];

/** The pattern of a `/regex/` entry of enrich.span_names, or undefined for an exact name. */
export function spanNamePattern(entry: string): string | undefined {
  return entry.length > 2 && entry.startsWith('/') && entry.endsWith('/') ? entry.slice(1, -1) : undefined;
}

/** One problem per `/regex/` entry that does not compile, naming the entry. */
export function checkSpanNames(entries: readonly string[]): string[] {
  const problems: string[] = [];
  entries.forEach((e, i) => {
    const pattern = spanNamePattern(e);
    if (pattern === undefined) return;
    try {
      new RegExp(pattern);
    } catch (err) {
      problems.push(`enrich.span_names[${i}]: ${(err as Error).message}`);
    }
  });
  return problems;
}
