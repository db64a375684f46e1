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

interface Cursor {
  span: number;
  readonly adds: ReadonlyArray<Uint8Array | undefined>;
}

function rewrite(body: Uint8Array, start: number, end: number, level: number, cur: Cursor): Rewritten {
  if (level === PATH.length) {
    const add = cur.adds[cur.span++];
    const own = body.subarray(start, end);
    return add ? { chunks: [own, add], len: own.length + add.length } : { chunks: [own], len: own.length };
  }
  const chunks: Uint8Array[] = [];
  let len = 0;
  // Unchanged bytes are copied as one view per run, not field by field.
  let runStart = start;
  let pos = start;
  while (pos < end) {
    const [key, afterKey] = readVarint(body, pos);
    const wire = key & 7;
    const next = skipField(body, afterKey, wire);
    if (next > end) throw new WireError('field runs past the end of its message');
    if (Math.floor(key / 8) === PATH[level] && wire === WIRE_LEN) {
      const [childLen, childStart] = readVarint(body, afterKey);
      const child = rewrite(body, childStart, next, level + 1, cur);
      if (child.len !== childLen) {
        if (pos > runStart) {
          chunks.push(body.subarray(runStart, pos));
          len += pos - runStart;
        }
        const header = new WireWriter().raw(body.subarray(pos, afterKey)).uvarint(child.len).finish();
        chunks.push(header, ...child.chunks);
        len += header.length + child.len;
        runStart = next;
      }
    }
    pos = next;
  }
  if (end > runStart) {
    chunks.push(body.subarray(runStart, end));
    len += end - runStart;
  }
  return { chunks, len };
}

/**
 * Appends already-encoded fields (`adds[i]`, tags included) to the i-th span of an encoded
 * ExportTraceServiceRequest, in the order spans appear on the wire, and copies every other byte
 * as received, unknown fields included. Protobuf merges a repeated field's occurrences wherever
 * they sit in a message, so events or attributes appended after a span's own fields extend its
 * lists. Returns the pieces to send, in order; their concatenation is the new request.
 */
export function spliceSpans(body: Uint8Array, adds: ReadonlyArray<Uint8Array | undefined>, expectedSpans: number): Rewritten {
  if (!adds.some((a) => a !== undefined)) return { chunks: [body], len: body.length };
  const cur: Cursor = { span: 0, adds };
  const out = rewrite(body, 0, body.length, 0, cur);
  if (cur.span !== expectedSpans) throw new WireError(`found ${cur.span} spans on the wire, decoded ${expectedSpans}`);
  return out;
}

/**
 * Removes the spans at the given wire-order indexes from an encoded ExportTraceServiceRequest and
 * copies every other byte as received, unknown fields included. A ScopeSpans (or ResourceSpans) this
 * leaves without spans goes too; one that arrived empty stays as it was.
 */
export function removeSpans(body: Uint8Array, drop: ReadonlySet<number>): Rewritten {
  if (!drop.size) return { chunks: [body], len: body.length };
  const cur = { span: 0 };
  const out = prune(body, 0, body.length, 0, drop, cur);
  return out.rewritten;
}

interface Pruned {
  rewritten: Rewritten;
  /** Children on the path this message had, and how many it kept. */
  had: number;
  kept: number;
}

function prune(body: Uint8Array, start: number, end: number, level: number, drop: ReadonlySet<number>, cur: { span: number }): Pruned {
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
      if (level === PATH.length - 1) {
        // a span
        if (drop.has(cur.span++)) {
          flush(pos);
          runStart = next;
        } else kept++;
      } else {
        const [childLen, childStart] = readVarint(body, afterKey);
        const child = prune(body, childStart, next, level + 1, drop, cur);
        if (child.had > 0 && child.kept === 0) {
          flush(pos);
          runStart = next;
        } else {
          kept++;
          if (child.rewritten.len !== childLen) {
            flush(pos);
            const header = new WireWriter().raw(body.subarray(pos, afterKey)).uvarint(child.rewritten.len).finish();
            chunks.push(header, ...child.rewritten.chunks);
            len += header.length + child.rewritten.len;
            runStart = next;
          }
        }
      }
    }
    pos = next;
  }
  flush(end);
  return { rewritten: { chunks, len }, had, kept };
}
