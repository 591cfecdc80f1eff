/**
 * A JSON array of numbers read straight from UTF-8 bytes into f32, for the vector query's body:
 * the values are bit-identical to `Math.fround(JSON.parse(text)[i])`, without building the
 * array of doubles or the body's string. Platform-free.
 *
 * Each number is taken as W × 10^E, its digits read four at a time (SWAR). Short numbers
 * (W < 10^15, |E| ≤ 22) convert exactly as the correctly rounded W ⋅ 10^E or W / 10^−E (Clinger's
 * fast path). Longer ones, such as the 17 digits JSON.stringify gives an f32 widened to a double,
 * get an approximation within a few f64 ulps (at most four roundings); its f32 rounding is the
 * same as the exact double's whenever no f32 rounding boundary (a midpoint between two f32s)
 * lies within that error, which fails for about one number in four million. Those, and numbers
 * outside the f32 normal range or with more than 30 digits, go through
 * `Number(text)`, which is what JSON.parse uses too (both correctly rounded).
 *
 * Once the core is loaded its reader (assembly/json-f32.ts, the same method with W an exact u64
 * read eight digits at a time) takes the common numbers; whatever it does not settle is read here.
 */

import { scratch, scratchIn } from './codec-scratch.js';
import { codecs, isInitialized, type QuartzExports } from './loader.js';

// Byte values (plain constants: with isolatedModules a const enum stays an object to look up).
const TAB = 0x09;
const NEWLINE = 0x0a;
const RETURN = 0x0d;
const SPACE = 0x20;
const PLUS = 0x2b;
const COMMA = 0x2c;
const MINUS = 0x2d;
const DOT = 0x2e;
const ZERO = 0x30;
const NINE = 0x39;
const UPPER_E = 0x45;
const CLOSE_BRACKET = 0x5d;
const LOWER_E = 0x65;
const OPEN_BRACKET = 0x5b;

/** 10^i for i in [0, 22]: exact doubles. */
const EXACT_POW10 = Array.from({ length: 23 }, (_, i) => Number(`1e${i}`));
/** The approximation's power of ten covers 10^±300; beyond, the values are far outside f32 anyway. */
const MAX_POW = 300;
/** Correctly rounded 10^e for e in [−300, 300], at index e + 300. */
const POW10 = Array.from({ length: 2 * MAX_POW + 1 }, (_, i) => Number(`1e${i - MAX_POW}`));

/**
 * How close (in f64 ulps, in the low 29 bits an f32 drops) the approximation may come to an f32
 * midpoint before the exact conversion decides: four roundings of at most half an ulp each, with
 * room to spare.
 */
const MIDPOINT_MARGIN = 64;
const HALF_F32_ULP = 0x10000000;
const DROPPED_BITS = 0x1fffffff;
/** Biased f64 exponents of the f32 normal range, [2^−126, 2^128). */
const MIN_F32_EXPONENT = 1023 - 126;
const MAX_F32_EXPONENT = 1023 + 127;

interface JsonF32Exports extends QuartzExports {
  json_f32_array(src: number, length: number, at: number, out: number, max: number): number;
  json_f32_count(): number;
}

/**
 * Inputs the core reader takes (a 4,096-d vector of 17-digit numbers is under 100 KB): it copies
 * the whole input into the shared codec instance, whose memory never shrinks, so a huge body is
 * read here instead.
 */
const CORE_INPUT_LIMIT = 1 << 20;

const bits = new Float64Array(1);
const words = new Uint32Array(bits.buffer);
// Which 32-bit word of a double holds its low mantissa bits (the platform's byte order).
bits[0] = 1;
const LOW = words[0] === 0 ? 0 : 1;

const isWhitespace = (c: number): boolean => c === SPACE || c === NEWLINE || c === RETURN || c === TAB;

/** The first index from `i` on that is not JSON whitespace. */
export function skipWhitespace(bytes: Uint8Array, i: number): number {
  while (i < bytes.length && isWhitespace(bytes[i]!)) i++;
  return i;
}

/**
 * The index just past the JSON number starting at `bytes[i]`, or −1 if no JSON number starts
 * there (the grammar of RFC 8259 §6: no leading zeros, no lone `.`, no `+` sign).
 */
export function jsonNumberEnd(bytes: Uint8Array, i: number): number {
  const n = bytes.length;
  if (bytes[i] === MINUS) i++;
  if (i >= n) return -1;
  let c = bytes[i]!;
  if (c === ZERO) {
    i++;
  } else if (c > ZERO && c <= NINE) {
    do i++;
    while (i < n && isDigit(bytes[i]!));
  } else {
    return -1;
  }
  if (bytes[i] === DOT) {
    i++;
    if (i >= n || !isDigit(bytes[i]!)) return -1;
    do i++;
    while (i < n && isDigit(bytes[i]!));
  }
  c = bytes[i]!;
  if (c === LOWER_E || c === UPPER_E) {
    i++;
    c = bytes[i]!;
    if (c === PLUS || c === MINUS) i++;
    if (i >= n || !isDigit(bytes[i]!)) return -1;
    do i++;
    while (i < n && isDigit(bytes[i]!));
  }
  return i;
}

const isDigit = (c: number): boolean => c >= ZERO && c <= NINE;

/** The double JSON.parse gives the JSON number in bytes [start, end). */
function exactDouble(bytes: Uint8Array, start: number, end: number): number {
  let text = '';
  for (let i = start; i < end; i++) text += String.fromCharCode(bytes[i]!);
  return Number(text);
}

/**
 * A reusable reader of JSON number arrays into f32.
 *
 * @example
 * const reader = new JsonF32ArrayReader(4096);
 * const end = reader.read(new TextEncoder().encode('[0.5, -1e-3]'), 0); // → 12
 * reader.values.subarray(0, reader.length); // → Float32Array [0.5, -0.0010000000474974513]
 */
export class JsonF32ArrayReader {
  /** The numbers of the last successful read are `values[0 .. length)`. */
  values: Float32Array;
  length = 0;

  /**
   * Arrays longer than `maxLength` are not read (−1). `useCore: false` reads in JS only, as
   * before the core is loaded (the tests check both readers this way).
   */
  constructor(
    private readonly maxLength: number,
    private readonly useCore = true,
  ) {
    this.values = new Float32Array(Math.min(maxLength, 256));
  }

  /**
   * Reads the array whose `[` is at `bytes[at]` and returns the index just past its `]`, or −1
   * when the bytes are not such an array, the array is empty or longer than `maxLength`, or a
   * number's f32 is not finite: the caller then parses the JSON the general way, which gives
   * those cases their errors.
   */
  read(bytes: Uint8Array, at: number): number {
    if (this.useCore && bytes.length <= CORE_INPUT_LIMIT && isInitialized()) {
      const end = this.readInWasm(bytes, at);
      if (end >= 0) return end;
    }
    return this.readInJs(bytes, at);
  }

  /** The core's reader (assembly/json-f32.ts): the common numbers, several times faster; −1 leaves the rest to readInJs. */
  private readInWasm(bytes: Uint8Array, at: number): number {
    const wasm = codecs<JsonF32Exports>();
    const src = scratchIn(wasm, 0, bytes);
    const out = scratch(wasm, 1, this.maxLength * 4);
    const end = wasm.json_f32_array(src, bytes.length, at, out, this.maxLength);
    if (end < 0) return -1;
    const count = wasm.json_f32_count();
    if (count > this.values.length) this.values = new Float32Array(this.maxLength);
    this.values.set(new Float32Array(wasm.memory.buffer, out, count));
    this.length = count;
    return end;
  }

  private readInJs(bytes: Uint8Array, at: number): number {
    const n = bytes.length;
    if (bytes[at] !== OPEN_BRACKET) return -1;
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    let i = skipWhitespace(bytes, at + 1);
    let count = 0;
    for (;;) {
      // One number: W × 10^exponent, W = w1 × 10^n2 + w2 (each part below 10^15, so exact).
      const start = i;
      let negative = false;
      if (bytes[i] === MINUS) {
        negative = true;
        i++;
      }
      let w1 = 0;
      let n1 = 0;
      let w2 = 0;
      let n2 = 0;
      let exponent = 0;
      let c = i < n ? bytes[i]! : 0;
      if (c === ZERO) {
        c = ++i < n ? bytes[i]! : 0;
        // JSON has no leading zeros.
        if (c >= ZERO && c <= NINE) return -1;
      } else if (c < ZERO || c > NINE) {
        return -1;
      }
      // The integer digits (none after a 0), then the fraction's: four at a time while they last.
      let fraction = false;
      for (;;) {
        if (c >= ZERO && c <= NINE) {
          let d: number;
          let size: number;
          const word = i + 4 <= n ? view.getUint32(i, true) : 0;
          if (((word & 0xf0f0f0f0) | (((word + 0x06060606) & 0xf0f0f0f0) >>> 4)) === 0x33333333) {
            // Four ASCII digits, the first in the low byte: pairs, then the pair of pairs.
            const digits = word - 0x30303030;
            const pairs = (Math.imul(digits, 10) + (digits >>> 8)) & 0x00ff00ff;
            d = Math.imul(pairs & 0xff, 100) + (pairs >>> 16);
            size = 4;
          } else {
            d = c - ZERO;
            size = 1;
          }
          i += size;
          if (fraction) exponent -= size;
          if (n2 === 0 && n1 + size <= 15) {
            w1 = w1 * (size === 4 ? 10_000 : 10) + d;
            n1 += size;
          } else if (n2 + size <= 15) {
            w2 = w2 * (size === 4 ? 10_000 : 10) + d;
            n2 += size;
          } else {
            // Over 30 digits: the exact conversion decides.
            n2 = 99;
          }
          c = i < n ? bytes[i]! : 0;
        } else if (c === DOT && !fraction) {
          fraction = true;
          c = ++i < n ? bytes[i]! : 0;
          if (c < ZERO || c > NINE) return -1;
          // Zeros before the first significant digit only move the exponent.
          while (c === ZERO && n1 === 0) {
            exponent--;
            c = ++i < n ? bytes[i]! : 0;
          }
        } else {
          break;
        }
      }
      if (c === LOWER_E || c === UPPER_E) {
        c = ++i < n ? bytes[i]! : 0;
        let sign = 1;
        if (c === PLUS || c === MINUS) {
          if (c === MINUS) sign = -1;
          c = ++i < n ? bytes[i]! : 0;
        }
        if (c < ZERO || c > NINE) return -1;
        let e = 0;
        do {
          // Capped: anything this large is far outside f32 and goes the exact way.
          if (e < 100_000) e = e * 10 + (c - ZERO);
          c = ++i < n ? bytes[i]! : 0;
        } while (c >= ZERO && c <= NINE);
        exponent += sign * e;
      }
      let value: number;
      if (w1 === 0 && w2 === 0) {
        value = 0;
      } else if (n1 + n2 <= 15 && exponent >= -22 && exponent <= 22) {
        // W and 10^|E| are exact doubles: one correctly rounded operation.
        const w = n2 === 0 ? w1 : w1 * EXACT_POW10[n2]! + w2;
        value = exponent >= 0 ? w * EXACT_POW10[exponent]! : w / EXACT_POW10[-exponent]!;
      } else {
        value = n2 > 15 || exponent < -MAX_POW || exponent > MAX_POW ? NaN : approximate(w1, w2, n2, exponent);
        if (value !== value) value = exactDouble(bytes, negative ? start + 1 : start, i);
      }
      if (negative) value = -value;
      if (count === this.values.length) {
        if (count === this.maxLength) return -1;
        const grown = new Float32Array(Math.min(this.maxLength, count * 2));
        grown.set(this.values);
        this.values = grown;
      }
      const f = Math.fround(value);
      if (f - f !== 0) return -1;
      this.values[count++] = f;
      // Then `,` and the next number, or `]`.
      i = skipWhitespace(bytes, i);
      c = i < n ? bytes[i]! : 0;
      if (c === COMMA) {
        i = skipWhitespace(bytes, i + 1);
      } else if (c === CLOSE_BRACKET) {
        this.length = count;
        return i + 1;
      } else {
        return -1;
      }
    }
  }
}

/**
 * W × 10^E within a few ulps, as a double whose f32 rounding is the exact value's; NaN when
 * the exact conversion must decide (near an f32 midpoint, or outside the f32 normal range).
 */
function approximate(w1: number, w2: number, n2: number, exponent: number): number {
  // At most two roundings for W (the product, then the sum), one or two for the scaling.
  const w = n2 === 0 ? w1 : w1 * EXACT_POW10[n2]! + w2;
  const a = exponent >= -22 && exponent < 0 ? w / EXACT_POW10[-exponent]! : w * POW10[exponent + MAX_POW]!;
  bits[0] = a;
  const biased = (words[1 - LOW]! >>> 20) & 0x7ff;
  if (biased < MIN_F32_EXPONENT || biased > MAX_F32_EXPONENT) return NaN;
  const dropped = words[LOW]! & DROPPED_BITS;
  if (dropped > HALF_F32_ULP - MIDPOINT_MARGIN && dropped < HALF_F32_ULP + MIDPOINT_MARGIN) return NaN;
  return a;
}
