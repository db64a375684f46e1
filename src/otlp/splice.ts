import { readVarint, skipField, WIRE_LEN, WireError, WireWriter } from './wire.ts';

/** Field numbers from opentelemetry-proto: the path from the request down to a span. */
const REQUEST_RESOURCE_SPANS = 1;
const RESOURCE_SPANS_SCOPE_SPANS = 2;
const SCOPE_SPANS_SPANS = 2;
const PATH = [REQUEST_RESOURCE_SPANS, RESOURCE_SPANS_SCOPE_SPANS, SCOPE_SPANS_SPANS];

interface Rewritten {
  chunks: Uint8Array[];
  len: number;
}

/** The rewritten request as one buffer (no copy when nothing changed). */
export function joined(r: Rewritten): Uint8Array {
  return r.chunks.length === 1 ? r.chunks[0]! : Buffer.concat(r.chunks, r.len);
}

/** What happens to the i-th span on the wire: bytes appended to it, nothing (undefined), or DROP. */
const DROP = null;
type SpanEdit = Uint8Array | undefined | typeof DROP;

interface Cursor {
  span: number;
  readonly edit: (i: number) => SpanEdit;
}

interface Walked extends Rewritten {
  /** Children on the path this message had, and how many it kept. */
  had: number;
  kept: number;
}

/** One walk down the path for both edits; unchanged bytes are copied as one view per run, not field by field. */
function rewrite(body: Uint8Array, start: number, end: number, level: number, cur: Cursor): Walked {
  const chunks: Uint8Array[] = [];
  let len = 0;
  let runStart = start;
  let pos = start;
  let had = 0;
  let kept = 0;
  const flush = (to: number) => {
    if (to > runStart) {
      chunks.push(body.subarray(runStart, to));
      len += to - runStart;
    }
  };
  while (pos < end) {
    const [key, afterKey] = readVarint(body, pos);
    const wire = key & 7;
    const next = skipField(body, afterKey, wire);
    if (next > end) throw new WireError('field runs past the end of its message');
    if (Math.floor(key / 8) === PATH[level] && wire === WIRE_LEN) {
      had++;
      const [childLen, childStart] = readVarint(body, afterKey);
      let child: Rewritten | undefined;
      let drop = false;
      if (level === PATH.length - 1) {
        const edit = cur.edit(cur.span++);
        if (edit === DROP) drop = true;
        else if (edit)
          child = { chunks: [body.subarray(childStart, next), edit], len: next - childStart + edit.length };
      } else {
        const walked = rewrite(body, childStart, next, level + 1, cur);
        // A message the walk emptied goes too; one that arrived empty stays as it was.
        drop = walked.had > 0 && walked.kept === 0;
        if (walked.len !== childLen) child = walked;
      }
      if (drop) {
        flush(pos);
        runStart = next;
      } else {
        kept++;
        if (child) {
          flush(pos);
          const header = new WireWriter().raw(body.subarray(pos, afterKey)).uvarint(child.len).finish();
          chunks.push(header, ...child.chunks);
          len += header.length + child.len;
          runStart = next;
        }
      }
    }
    pos = next;
  }
  flush(end);
  return { chunks, len, had, kept };
}

/**
 * Appends already-encoded fields (`adds[i]`, tags included) to the i-th span of an encoded
 * ExportTraceServiceRequest, in the order spans appear on the wire, and copies every other byte
 * as received, unknown fields included. Protobuf merges a repeated field's occurrences wherever
 * they sit in a message, so events or attributes appended after a span's own fields extend its
 * lists. Returns the pieces to send, in order; their concatenation is the new request.
 */
export function spliceSpans(
  body: Uint8Array,
  adds: ReadonlyArray<Uint8Array | undefined>,
  expectedSpans: number,
): Rewritten {
  if (!adds.some((a) => a !== undefined)) return { chunks: [body], len: body.length };
  const cur: Cursor = { span: 0, edit: (i) => adds[i] };
  const out = rewrite(body, 0, body.length, 0, cur);
  if (cur.span !== expectedSpans) throw new WireError(`found ${cur.span} spans on the wire, decoded ${expectedSpans}`);
  return { chunks: out.chunks, len: out.len };
}

/**
 * Removes the spans at the given wire-order indexes from an encoded ExportTraceServiceRequest and
 * copies every other byte as received, unknown fields included. A ScopeSpans (or ResourceSpans) this
 * leaves without spans goes too; one that arrived empty stays as it was.
 */
export function removeSpans(body: Uint8Array, drop: ReadonlySet<number>): Rewritten {
  if (!drop.size) return { chunks: [body], len: body.length };
  const out = rewrite(body, 0, body.length, 0, { span: 0, edit: (i) => (drop.has(i) ? DROP : undefined) });
  return { chunks: out.chunks, len: out.len };
}
