/**
 * Unsigned LEB128 varints and zigzag over JS numbers (safe integers, up to 2^53 − 1), for the
 * segment codec. Writers take a target buffer and return the next position, so callers write
 * straight into one buffer with no per-value allocation.
 */
import { ErrorCode, QuartzError } from './errors.js';

const TWO_POW_28 = 0x10000000;

/**
 * Bytes the unsigned varint of `n` takes (n: a non-negative safe integer).
 * @example
 * varintSize(300); // → 2
 */
export function varintSize(n: number): number {
  if (n < 0x80) return 1;
  if (n < 0x4000) return 2;
  if (n < 0x200000) return 3;
  if (n < TWO_POW_28) return 4;
  let size = 4;
  n = Math.floor(n / TWO_POW_28);
  while (n >= 1) {
    size++;
    n = Math.floor(n / 0x80);
  }
  return size;
}

/**
 * Writes `n` as an unsigned varint at `pos` and returns the position after it. The caller has
 * sized `buf` (see `varintSize`).
 * @example
 * const buf = new Uint8Array(10);
 * writeVarint(buf, 0, 300); // → 2, buf starts ac 02
 */
export function writeVarint(buf: Uint8Array, pos: number, n: number): number {
  // Bit operations are exact below 2^31; the rare larger values (timestamps) use division.
  while (n >= 0x80000000) {
    buf[pos++] = (n % 0x80) | 0x80;
    n = Math.floor(n / 0x80);
  }
  while (n >= 0x80) {
    buf[pos++] = (n & 0x7f) | 0x80;
    n >>>= 7;
  }
  buf[pos++] = n;
  return pos;
}

/**
 * Zigzag of a signed safe integer whose magnitude is at most 2^52, so the result stays exact.
 * @example
 * zigzag(-1); // → 1
 */
export function zigzag(n: number): number {
  return n >= 0 ? n * 2 : -n * 2 - 1;
}

/**
 * Inverse of `zigzag`.
 * @example
 * unzigzag(3); // → -2
 */
export function unzigzag(z: number): number {
  return z % 2 === 0 ? z / 2 : -(z + 1) / 2;
}

/**
 * A forward reader over `buf[pos, end)` that fails with CORRUPT_DATA naming `subject` when a
 * value runs past `end`, is longer than 10 bytes or exceeds 2^53 − 1.
 * @example
 * const r = new VarintReader(new Uint8Array([0xac, 0x02]), 0, 2, 'example');
 * r.varint(); // → 300
 */
export class VarintReader {
  pos: number;

  constructor(
    readonly buf: Uint8Array,
    pos: number,
    readonly end: number,
    readonly subject: string,
  ) {
    this.pos = pos;
  }

  varint(): number {
    const buf = this.buf;
    let p = this.pos;
    if (p >= this.end) this.fail('a varint runs past the end');
    let b = buf[p++]!;
    if (b < 0x80) {
      this.pos = p;
      return b;
    }
    let result = b & 0x7f;
    let shift = 7;
    for (;;) {
      if (p >= this.end) this.fail('a varint runs past the end');
      b = buf[p++]!;
      result = shift < 28 ? result | ((b & 0x7f) << shift) : result + (b & 0x7f) * 2 ** shift;
      if (b < 0x80) break;
      shift += 7;
      if (shift > 63) this.fail('a varint is longer than 10 bytes');
    }
    if (result > Number.MAX_SAFE_INTEGER) this.fail('a varint exceeds 2^53 − 1');
    this.pos = p;
    return result;
  }

  fail(what: string): never {
    throw new QuartzError(ErrorCode.CORRUPT_DATA, `${this.subject}: ${what} (byte ${this.pos})`, { details: { position: this.pos } });
  }
}
