/**
 * The few protobuf wire primitives the exporter needs to append fields to spans it forwards
 * without re-encoding them (https://protobuf.dev/programming-guides/encoding/).
 */

export const WIRE_VARINT = 0;
export const WIRE_I64 = 1;
export const WIRE_LEN = 2;
export const WIRE_I32 = 5;

/** Grows as needed; `finish()` returns a view of what was written. */
export class WireWriter {
  private buf = Buffer.allocUnsafe(256);
  private pos = 0;

  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n));
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  /** Non-negative integers up to 2^64 - 1 given as a safe number; larger ones go through bigint(). */
  uvarint(n: number): this {
    if (n > Number.MAX_SAFE_INTEGER) return this.bigint(BigInt(n));
    this.ensure(10);
    while (n >= 0x80) {
      this.buf[this.pos++] = (n % 128) | 0x80;
      n = Math.floor(n / 128);
    }
    this.buf[this.pos++] = n;
    return this;
  }

  /** int64 as protobuf writes it: two's complement in 64 bits, so a negative number takes 10 bytes. */
  bigint(n: bigint): this {
    let v = BigInt.asUintN(64, n);
    this.ensure(10);
    while (v >= 0x80n) {
      this.buf[this.pos++] = Number(v & 0x7fn) | 0x80;
      v >>= 7n;
    }
    this.buf[this.pos++] = Number(v);
    return this;
  }

  tag(field: number, wire: number): this {
    return this.uvarint(field * 8 + wire);
  }

  bytes(b: Uint8Array): this {
    this.uvarint(b.length);
    this.ensure(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
    return this;
  }

  /** Raw bytes, no length prefix (already-encoded fields). */
  raw(b: Uint8Array): this {
    this.ensure(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
    return this;
  }

  string(s: string): this {
    const len = Buffer.byteLength(s);
    this.uvarint(len);
    this.ensure(len);
    this.pos += this.buf.write(s, this.pos);
    return this;
  }

  fixed64(low: number, high: number): this {
    this.ensure(8);
    this.buf.writeUInt32LE(low >>> 0, this.pos);
    this.buf.writeUInt32LE(high >>> 0, this.pos + 4);
    this.pos += 8;
    return this;
  }

  double(v: number): this {
    this.ensure(8);
    this.buf.writeDoubleLE(v, this.pos);
    this.pos += 8;
    return this;
  }

  get length(): number {
    return this.pos;
  }

  /** Starts over, keeping the buffer (a scratch writer reused across calls). */
  reset(): this {
    this.pos = 0;
    return this;
  }

  finish(): Buffer {
    return this.buf.subarray(0, this.pos);
  }
}

export class WireError extends Error {}

/**
 * Reads one varint at `pos`; returns [value, next position]. Values above 2^53 lose precision (lengths and tags never
 * are).
 */
export function readVarint(buf: Uint8Array, pos: number): [number, number] {
  let result = 0;
  let mul = 1;
  for (let i = 0; i < 10; i++) {
    if (pos >= buf.length) throw new WireError('truncated varint');
    const b = buf[pos++]!;
    result += (b & 0x7f) * mul;
    if (b < 0x80) return [result, pos];
    mul *= 128;
  }
  throw new WireError('varint longer than 10 bytes');
}

/** Position just past the value of a field with wire type `wire` starting at `pos`. */
export function skipField(buf: Uint8Array, pos: number, wire: number): number {
  switch (wire) {
    case WIRE_VARINT:
      return readVarint(buf, pos)[1];
    case WIRE_I64:
      return pos + 8;
    case WIRE_LEN: {
      const [len, p] = readVarint(buf, pos);
      return p + len;
    }
    case WIRE_I32:
      return pos + 4;
    default:
      throw new WireError(`unsupported wire type ${wire}`);
  }
}
