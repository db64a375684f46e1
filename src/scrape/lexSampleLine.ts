// A strict lexer for one sample line of the Prometheus text format (0.0.4) or OpenMetrics 1.0.
// It accepts the union of what Prometheus's own parsers accept for a sample line (promparse for
// text, openmetricsparse for exemplars) and refuses everything else; docs/parsing.md has the rules
// and test/conformance/ the upstream cases they come from.

export interface LexedSample {
  name: string;
  labels: Record<string, string>;
  value: number;
  /** As written: milliseconds in the text format, seconds in OpenMetrics. Only compared within one body. */
  timestamp?: number;
}

export class LexError extends Error {}

const NAME_START = new Uint8Array(128);
const NAME_CHAR = new Uint8Array(128);
for (let c = 0; c < 128; c++) {
  const alpha = (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95;
  NAME_START[c] = alpha || c === 58 ? 1 : 0; // metric names may hold ':'
  NAME_CHAR[c] = alpha || c === 58 || (c >= 48 && c <= 57) ? 1 : 0;
}
const isBlank = (c: number) => c === 32 || c === 9;

// Go's strconv.ParseFloat without the forms Prometheus refuses ("unsupported character in float":
// hex floats and '_' separators). Hex, binary and octal integers are not floats at all.
const DECIMAL = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;
const INF = /^[+-]?(?:inf|infinity)$/i;
const NAN = /^nan$/i;

/** A sample value as Prometheus's Go parsers read it, or undefined when it is not one. */
export function parseGoFloat(text: string): number | undefined {
  if (DECIMAL.test(text)) return Number(text);
  if (INF.test(text)) return text.charCodeAt(0) === 45 ? -Infinity : Infinity;
  if (NAN.test(text)) return NaN;
  return undefined;
}

// Text-format timestamps are int64 milliseconds (Go's ParseInt); OpenMetrics ones are float seconds.
// Neither allows Inf, NaN, hex or '_'.
const TIMESTAMP_MS = /^[+-]?\d+$/;
const TIMESTAMP_S = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;

/**
 * Lexes one line (no line terminator). Throws LexError with a reason; never returns a partial sample.
 * `openMetrics` (the body ends with `# EOF`) allows float timestamps and exemplars.
 */
export function lexSampleLine(line: string, openMetrics = false): LexedSample {
  const n = line.length;
  let i = 0;
  while (i < n && isBlank(line.charCodeAt(i))) i++; // the text format allows leading blanks
  let name = '';
  const labels: Record<string, string> = {};
  if (i < n && line.charCodeAt(i) !== 123) {
    const start = i;
    const c0 = line.charCodeAt(i);
    if (c0 >= 128 || !NAME_START[c0]) throw new LexError(`invalid metric name start ${JSON.stringify(line[i])}`);
    i++;
    while (i < n) {
      const c = line.charCodeAt(i);
      if (c >= 128 || !NAME_CHAR[c]) break;
      i++;
    }
    name = line.slice(start, i);
    let j = i;
    while (j < n && isBlank(line.charCodeAt(j))) j++;
    if (line.charCodeAt(j) === 123) i = j; // promparse allows `name {…}`
  }
  if (i < n && line.charCodeAt(i) === 123) {
    const r = lexLabels(line, i + 1, labels, name === '', false);
    i = r.end;
    if (r.quotedName !== undefined) name = r.quotedName;
  }
  if (name === '') throw new LexError('metric name not set');
  const afterName = i;
  while (i < n && isBlank(line.charCodeAt(i))) i++;
  // expfmt reads `name{…}1` (the test's `}-Inf`); after a bare name the blank is what ends the name.
  if (i === afterName && line.charCodeAt(i - 1) !== 125)
    throw new LexError(i >= n ? 'no value' : `expected a blank before the value, got ${JSON.stringify(line[i])}`);
  if (i >= n) throw new LexError('no value');
  let end = i;
  while (end < n && !isBlank(line.charCodeAt(end))) end++;
  const valueText = line.slice(i, end);
  const value = parseGoFloat(valueText);
  if (value === undefined) throw new LexError(`value ${JSON.stringify(valueText.slice(0, 40))} is not a number`);
  i = end;
  while (i < n && isBlank(line.charCodeAt(i))) i++;
  let timestamp: number | undefined;
  if (i < n && line.charCodeAt(i) !== 35) {
    end = i;
    while (end < n && !isBlank(line.charCodeAt(end))) end++;
    const text = line.slice(i, end);
    if (!(openMetrics ? TIMESTAMP_S : TIMESTAMP_MS).test(text))
      throw new LexError(
        `timestamp ${JSON.stringify(text.slice(0, 40))} is not ` +
          `${openMetrics ? 'a number' : 'an integer of milliseconds'}`,
      );
    timestamp = Number(text);
    i = end;
    while (i < n && isBlank(line.charCodeAt(i))) i++;
  }
  if (i < n) {
    // Only an OpenMetrics exemplar may follow: " # {labels} value [timestamp]".
    if (!openMetrics || line.charCodeAt(i) !== 35 || !isBlank(line.charCodeAt(i - 1)))
      throw new LexError(`unexpected ${JSON.stringify(line.slice(i, i + 20))} after the value`);
    lexExemplar(line, i + 1);
  }
  return { name, labels, value, timestamp };
}

/** Reads a quoted string at `i` (the opening quote). \\, \" and \n are escapes; any other is kept as written. */
function lexQuoted(line: string, i: number): { text: string; end: number } {
  let out = '';
  let from = i + 1;
  let j = from;
  const n = line.length;
  for (;;) {
    if (j >= n) throw new LexError('unterminated quoted string');
    const c = line.charCodeAt(j);
    if (c === 34) break;
    if (c === 92) {
      const e = line.charCodeAt(j + 1);
      out += line.slice(from, j);
      if (e === 92) out += '\\';
      else if (e === 34) out += '"';
      else if (e === 110) out += '\n';
      else if (j + 1 >= n) throw new LexError('unterminated quoted string');
      else out += line.slice(j, j + 2); // Prometheus keeps an unknown escape as written (OpenMetrics escaping case)
      j += 2;
      from = j;
      continue;
    }
    // A body is decoded with replacement, so U+FFFD is where its bytes were not UTF-8.
    if (c === 0xfffd) throw new LexError('invalid UTF-8 in a quoted string');
    j++;
  }
  return { text: out + line.slice(from, j), end: j + 1 };
}

/** Reads `name="value", ...}` from just after `{`. */
function lexLabels(
  line: string,
  i: number,
  labels: Record<string, string>,
  nameMayBeQuoted: boolean,
  exemplar: boolean,
): { end: number; quotedName?: string } {
  const n = line.length;
  const blanks = () => {
    if (exemplar) return; // OpenMetrics allows no blanks inside an exemplar's braces
    while (i < n && isBlank(line.charCodeAt(i))) i++;
  };
  let quotedName: string | undefined;
  let count = 0;
  for (;;) {
    blanks();
    if (i >= n) throw new LexError('unterminated label set');
    if (line.charCodeAt(i) === 125) return { end: i + 1, quotedName };
    let labelName: string;
    if (line.charCodeAt(i) === 34) {
      if (exemplar) throw new LexError('quoted label name in an exemplar');
      const q = lexQuoted(line, i);
      i = q.end;
      blanks();
      const next = line.charCodeAt(i);
      if (nameMayBeQuoted && quotedName === undefined && (next === 44 || next === 125)) {
        // {"metric.name", label="v"}: a quoted metric name (expfmt takes it at any place in the braces)
        if (q.text === '') throw new LexError('empty metric name');
        quotedName = q.text;
        if (next === 44) i++;
        continue;
      }
      labelName = q.text;
      if (labelName === '') throw new LexError('empty label name');
    } else {
      const start = i;
      const c0 = line.charCodeAt(i);
      if (c0 >= 128 || !NAME_START[c0] || c0 === 58)
        throw new LexError(`invalid label name start ${JSON.stringify(line[i])}`);
      i++;
      while (i < n) {
        const c = line.charCodeAt(i);
        if (c >= 128 || !NAME_CHAR[c] || c === 58) break;
        i++;
      }
      labelName = line.slice(start, i);
    }
    blanks();
    if (line.charCodeAt(i) !== 61) throw new LexError(`label ${JSON.stringify(labelName)} has no "="`);
    i++;
    blanks();
    if (line.charCodeAt(i) !== 34) throw new LexError(`label ${JSON.stringify(labelName)} has no quoted value`);
    const v = lexQuoted(line, i);
    i = v.end;
    if (labelName === '__name__' && !exemplar) throw new LexError('label __name__ is reserved');
    if (Object.hasOwn(labels, labelName)) throw new LexError(`duplicate label ${JSON.stringify(labelName)}`);
    labels[labelName] = v.text;
    count += [...labelName].length + [...v.text].length;
    blanks();
    const c = line.charCodeAt(i);
    if (c === 44) {
      i++;
      if (exemplar && line.charCodeAt(i) === 125) throw new LexError('trailing comma in an exemplar');
      continue;
    }
    if (c === 125) {
      if (exemplar && count > 128) throw new LexError('exemplar labels longer than 128 characters');
      return { end: i + 1, quotedName };
    }
    throw new LexError(
      i >= n ? 'unterminated label set' : `expected "," or "}" after label ${JSON.stringify(labelName)}`,
    );
  }
}

function lexExemplar(line: string, i: number): void {
  if (line.charCodeAt(i) !== 32 || line.charCodeAt(i + 1) !== 123)
    throw new LexError('an exemplar is "# {labels} value"');
  const labels: Record<string, string> = {};
  i = lexLabels(line, i + 2, labels, false, true).end;
  const parts = line.slice(i).split(' ');
  // " value" or " value timestamp", one space each, nothing after
  if (parts[0] !== '' || parts.length < 2 || parts.length > 3 || parts.some((p, k) => k > 0 && p === ''))
    throw new LexError('an exemplar is "# {labels} value [timestamp]"');
  if (parseGoFloat(parts[1]!) === undefined)
    throw new LexError(`exemplar value ${JSON.stringify(parts[1])} is not a number`);
  if (parts.length === 3 && !TIMESTAMP_S.test(parts[2]!))
    throw new LexError(`exemplar timestamp ${JSON.stringify(parts[2])} is not a number`);
}
