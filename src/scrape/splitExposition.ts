// A fast line scan over a /metrics body. It records which families are present (for profile detection),
// and keeps only the lines of the sample names we map, so the bulk of a body (histograms) is never parsed.

import { lexSampleLine } from './lexSampleLine.ts';

/** Keep the lines of every name (the conformance suite), not only those a profile maps. */
export const ALL = Symbol('all names');

const SAMPLE_NAME_RE = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
/**
 * A copy of a kept line that does not point into the body. V8 makes a slice of 13 characters or more a view of
 * its parent: a model name or series key kept in the counter state held its whole 57 KB body for a scrape
 * interval, and the young-generation GC copied those bodies (13 ms pauses, 330 MB RSS at 1,000 targets).
 * Slicing a concatenation flattens it into a new string first.
 */
const own = (line: string) => ` ${line}`.slice(1);
/** What may follow a sample line's name: its labels, or the blank before its value. */
const isNameEnd = (c: number) => c === 123 /* { */ || c === 32 || c === 9;

export interface SplitExposition {
  /** Sample names and TYPE-declared family names seen in the body. */
  present: Set<string>;
  /** HELP text by family name, for names that a profile reads its unit from. */
  help: Map<string, string>;
  /** Lines of each wanted sample name, in body order. */
  linesByName: Map<string, string[]>;
  sampleLines: number;
  invalidLines: number;
  firstInvalid?: string;
  truncated: boolean;
  /** The body has an OpenMetrics `# EOF` line. */
  eof: boolean;
}

export function splitExposition(
  body: string,
  wanted: ReadonlySet<string> | typeof ALL,
  wantHelp: ReadonlySet<string> = new Set(),
): SplitExposition {
  const out: SplitExposition = {
    present: new Set(),
    help: new Map(),
    linesByName: new Map(),
    sampleLines: 0,
    invalidLines: 0,
    truncated: false,
    eof: false,
  };
  // The format requires a final LF; without one the last line may be cut mid-value, so it is not trusted.
  // (An OpenMetrics body stops at `# EOF`, which the loop reaches first.)
  const end = body.length;
  const unterminatedFrom = end > 0 && body.charCodeAt(end - 1) !== 10 ? body.lastIndexOf('\n') + 1 : end;
  const keep = (name: string, line: string) => {
    out.sampleLines++;
    out.present.add(name);
    if (wanted === ALL || wanted.has(name)) {
      const list = out.linesByName.get(name);
      if (list) list.push(own(line));
      else out.linesByName.set(name, [own(line)]);
    }
  };
  let prevName = '';
  /** Where lines of prevName go; undefined when that name is not wanted. */
  let prevLines: string[] | undefined;
  let pos = 0;
  while (pos < end) {
    if (pos === unterminatedFrom && !/^[ \t]*(?:# EOF)?\r?$/.test(body.slice(pos))) {
      out.truncated = true;
      break;
    }
    let nl = body.indexOf('\n', pos);
    if (nl === -1 || nl > end) nl = end;
    let lineEnd = nl;
    if (lineEnd > pos && body.charCodeAt(lineEnd - 1) === 13) lineEnd--; // tolerate CRLF
    let first = body.charCodeAt(pos);
    let from = pos;
    // The text format allows blanks before a line's first token.
    while ((first === 32 || first === 9) && from < lineEnd) first = body.charCodeAt(++from);
    if (from === lineEnd) {
      // blank line
    } else if (first === 35 /* # */) {
      if (body.startsWith('# TYPE ', from) || body.startsWith('# HELP ', from)) {
        const isHelp = body.charCodeAt(from + 2) === 72;
        const nameEnd = body.indexOf(' ', from + 7);
        const name = body.slice(from + 7, nameEnd === -1 || nameEnd > lineEnd ? lineEnd : nameEnd);
        if (SAMPLE_NAME_RE.test(name)) {
          out.present.add(name);
          if (isHelp && wantHelp.has(name) && nameEnd !== -1 && nameEnd < lineEnd)
            out.help.set(name, body.slice(nameEnd + 1, lineEnd));
        }
      } else if (from === pos && lineEnd - pos === 5 && body.startsWith('# EOF', pos)) {
        out.eof = true;
        break; // OpenMetrics: nothing after # EOF counts
      }
    } else if (first === 123 /* { */) {
      // {"utf8.name", ...}: rare, so the name comes from a full lex of the line
      const line = body.slice(pos, lineEnd);
      let name: string | undefined;
      try {
        name = lexSampleLine(line, true).name; // the permissive mode: parseExposition lexes it again strictly
      } catch {
        name = undefined;
      }
      if (name === undefined) {
        out.invalidLines++;
        out.firstInvalid ??= line.slice(0, 120);
      } else keep(name, line);
    } else if (
      // The name of the sample line before (a histogram's buckets, one family's labelled series): nine lines
      // in ten of a vLLM body, taken without slicing or testing the name again.
      prevName !== '' &&
      lineEnd - from > prevName.length &&
      body.startsWith(prevName, from) &&
      isNameEnd(body.charCodeAt(from + prevName.length))
    ) {
      out.sampleLines++;
      if (prevLines) prevLines.push(own(body.slice(pos, lineEnd)));
    } else {
      let i = from;
      while (i < lineEnd) {
        const c = body.charCodeAt(i);
        if (isNameEnd(c)) break;
        i++;
      }
      const name = body.slice(from, i);
      if (i === lineEnd || !SAMPLE_NAME_RE.test(name)) {
        out.invalidLines++;
        out.firstInvalid ??= body.slice(pos, Math.min(lineEnd, pos + 120));
        prevName = '';
      } else {
        keep(name, body.slice(pos, lineEnd));
        prevName = name;
        prevLines = out.linesByName.get(name);
      }
    }
    pos = nl + 1;
  }
  return out;
}
