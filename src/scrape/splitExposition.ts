// A fast line scan over a /metrics body. It records which families are present (for profile detection),
// and keeps only the lines of the sample names we map, so the bulk of a body (histograms) is never parsed.

const SAMPLE_NAME_RE = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;

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
}

export function splitExposition(body: string, wanted: ReadonlySet<string>, wantHelp: ReadonlySet<string> = new Set()): SplitExposition {
  const out: SplitExposition = { present: new Set(), help: new Map(), linesByName: new Map(), sampleLines: 0, invalidLines: 0, truncated: false };
  // The format requires a final LF; without one the last line may be cut mid-value, so it is not trusted.
  // (An OpenMetrics body stops at `# EOF`, which the loop reaches first.)
  const end = body.length;
  const unterminatedFrom = end > 0 && body.charCodeAt(end - 1) !== 10 ? body.lastIndexOf('\n') + 1 : end;
  let pos = 0;
  while (pos < end) {
    if (pos === unterminatedFrom && body.slice(pos).trim() !== '# EOF') {
      out.truncated = true;
      break;
    }
    let nl = body.indexOf('\n', pos);
    if (nl === -1 || nl > end) nl = end;
    let lineEnd = nl;
    if (lineEnd > pos && body.charCodeAt(lineEnd - 1) === 13) lineEnd--; // tolerate CRLF
    const first = body.charCodeAt(pos);
    if (lineEnd === pos) {
      // blank line
    } else if (first === 35 /* # */) {
      if (body.startsWith('# TYPE ', pos) || body.startsWith('# HELP ', pos)) {
        const isHelp = body.charCodeAt(pos + 2) === 72;
        const nameEnd = body.indexOf(' ', pos + 7);
        const name = body.slice(pos + 7, nameEnd === -1 || nameEnd > lineEnd ? lineEnd : nameEnd);
        if (SAMPLE_NAME_RE.test(name)) {
          out.present.add(name);
          if (isHelp && wantHelp.has(name) && nameEnd !== -1 && nameEnd < lineEnd) out.help.set(name, body.slice(nameEnd + 1, lineEnd));
        }
      } else if (body.startsWith('# EOF', pos)) {
        break; // OpenMetrics: nothing after # EOF counts
      }
    } else {
      let i = pos;
      while (i < lineEnd) {
        const c = body.charCodeAt(i);
        if (c === 123 /* { */ || c === 32 || c === 9) break;
        i++;
      }
      const name = body.slice(pos, i);
      if (i === lineEnd || !SAMPLE_NAME_RE.test(name)) {
        out.invalidLines++;
        out.firstInvalid ??= body.slice(pos, Math.min(lineEnd, pos + 120));
      } else {
        out.sampleLines++;
        out.present.add(name);
        if (wanted.has(name)) {
          const list = out.linesByName.get(name);
          const line = body.slice(pos, lineEnd);
          if (list) list.push(line);
          else out.linesByName.set(name, [line]);
        }
      }
    }
    pos = nl + 1;
  }
  return out;
}
