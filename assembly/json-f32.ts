// A JSON array of numbers read into f32, bit-identical to Math.fround(JSON.parse(text)[i]): the
// fast path of src/core/json-f32.ts, which explains the method and keeps the exact conversion.
// Here W is an exact u64 of up to 19 digits, read up to eight at a time (SWAR); anything this reader
// does not settle (a grammar error, a number near an f32 midpoint or outside the f32 normal
// range, over 19 digits, a non-finite f32, too many numbers) returns -1 and the JS reader decides.

// @ts-ignore: decorator
@inline const OPEN_BRACKET: u32 = 0x5b;
// @ts-ignore: decorator
@inline const CLOSE_BRACKET: u32 = 0x5d;
// @ts-ignore: decorator
@inline const COMMA: u32 = 0x2c;
// @ts-ignore: decorator
@inline const MINUS: u32 = 0x2d;
// @ts-ignore: decorator
@inline const PLUS: u32 = 0x2b;
// @ts-ignore: decorator
@inline const DOT: u32 = 0x2e;
// @ts-ignore: decorator
@inline const ZERO: u32 = 0x30;

/** 10^i for i in [0, 22]: exact doubles. */
const EXACT_POW10: StaticArray<f64> = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22];

/** How many numbers the last successful json_f32_array read. */
let readCount: i32 = 0;

// @ts-ignore: decorator
@inline function isDigit(c: u32): bool {
  return c - ZERO < 10;
}

// @ts-ignore: decorator
@inline function isWhitespace(c: u32): bool {
  return c == 0x20 || c == 0x0a || c == 0x0d || c == 0x09;
}

/** The byte at `i`, or 0 past the end (no JSON token contains a 0 byte). */
// @ts-ignore: decorator
@inline function byteAt(src: usize, len: i32, i: i32): u32 {
  return i < len ? <u32>load<u8>(src + <usize>i) : 0;
}

function skipWhitespace(src: usize, len: i32, i: i32): i32 {
  while (i < len && isWhitespace(<u32>load<u8>(src + <usize>i))) i++;
  return i;
}

/** 10^i as u64 for i in [0, 8]. */
const POW10_U64: StaticArray<u64> = [1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000];

/**
 * How many of the eight bytes of `v ^ 0x30…30` (first byte low) are ASCII digits before the first
 * that is not: a byte is a digit when its xor with '0' is at most 9. A carry out of a non-digit
 * byte can only spoil the bytes after it, which do not count.
 */
// @ts-ignore: decorator
@inline function leadingDigits(t: u64): i32 {
  const nonDigits = ((t + 0x7676767676767676) | t) & 0x8080808080808080;
  return nonDigits == 0 ? 8 : <i32>(ctz(nonDigits) >> 3);
}

/** The number the first `n` (0-8) digit values of `t` (one per byte, first low) spell. */
// @ts-ignore: decorator
@inline function digitsValue(t: u64, n: i32): u64 {
  // Move the n digits to the top bytes: the zero bytes below them are leading zeros. (A shift by
  // 64 is a shift by 0 in wasm, hence the select for n = 0.)
  let x = n == 0 ? 0 : t << (<u64>(64 - 8 * n));
  x = (x * 10 + (x >> 8)) & 0x00ff00ff00ff00ff;
  x = (x * 100 + (x >> 16)) & 0x0000ffff0000ffff;
  return (x * 10000 + (x >> 32)) & 0xffffffff;
}

/**
 * W × 10^e as the double whose f32 rounding is exact, or NaN when the JS reader must decide.
 * W < 2^53 with |e| ≤ 22 is one correctly rounded operation (Clinger); otherwise at most five
 * roundings (W to f64, up to four scalings), far inside the 64-ulp margin kept from an f32 midpoint.
 */
function scaled(w: u64, e: i32): f64 {
  if (w == 0) return 0;
  let a = <f64>w;
  if (w <= (<u64>1 << 53) && e >= -22 && e <= 22) {
    return e >= 0 ? a * unchecked(EXACT_POW10[e]) : a / unchecked(EXACT_POW10[-e]);
  }
  // Beyond these the value is far outside f32 (W has at most 19 digits).
  if (e < -85 || e > 60) return NaN;
  while (e > 22) {
    a *= 1e22;
    e -= 22;
  }
  while (e < -22) {
    a /= 1e22;
    e += 22;
  }
  a = e >= 0 ? a * unchecked(EXACT_POW10[e]) : a / unchecked(EXACT_POW10[-e]);
  const bits = reinterpret<u64>(a);
  const biased = <i32>((bits >> 52) & 0x7ff);
  // The f32 normal range, [2^-126, 2^128).
  if (biased < 1023 - 126 || biased > 1023 + 127) return NaN;
  // The 29 bits an f32 drops: their midpoint 0x10000000 is where f32 rounding turns.
  const dropped = <i32>(bits & 0x1fffffff);
  if (dropped > 0x10000000 - 64 && dropped < 0x10000000 + 64) return NaN;
  return a;
}

/**
 * Reads the JSON array at src[at] (`[` there) into f32s at `out` (room for `max`), and returns
 * the index just past its `]`, or -1 when the JS reader must decide (see the header).
 */
export function json_f32_array(src: usize, len: i32, at: i32, out: usize, max: i32): i32 {
  if (byteAt(src, len, at) != OPEN_BRACKET) return -1;
  let i = skipWhitespace(src, len, at + 1);
  let count = 0;
  while (true) {
    // Signs, and below the 16 or 17 digits of a run, vary from number to number: both are taken
    // without branches, which would be mispredicted about half the time.
    const negative = byteAt(src, len, i) == MINUS;
    i += <i32>negative;
    let w: u64 = 0;
    let digits = 0;
    let e = 0;
    let c = byteAt(src, len, i);
    if (c == ZERO) {
      c = byteAt(src, len, ++i);
      if (isDigit(c)) return -1;
    } else if (isDigit(c)) {
      while (true) {
        if (i + 8 <= len) {
          // Up to eight digits in one step; fewer end the run.
          const t = load<u64>(src + <usize>i) ^ 0x3030303030303030;
          const n = leadingDigits(t);
          if (digits + n > 19) return -1;
          digits += n;
          // Eight digits move on by a constant, so the next load need not wait for the count.
          if (n == 8) {
            w = w * 100000000 + digitsValue(t, 8);
            i += 8;
            continue;
          }
          w = w * unchecked(POW10_U64[n]) + digitsValue(t, n);
          i += n;
          break;
        } else if (isDigit(c = byteAt(src, len, i))) {
          if (digits == 19) return -1;
          w = w * 10 + <u64>(c - ZERO);
          digits++;
          i++;
        } else {
          break;
        }
      }
      c = byteAt(src, len, i);
    } else {
      return -1;
    }
    if (c == DOT) {
      c = byteAt(src, len, ++i);
      if (!isDigit(c)) return -1;
      // Zeros before the first significant digit only move the exponent.
      if (digits == 0) {
        while (c == ZERO) {
          e--;
          c = byteAt(src, len, ++i);
        }
      }
      // NOTE: the integer part's loop again, moving the exponent too: one shared function would
      // have to hand back w, i and digits through globals, which keeps them out of locals here.
      while (true) {
        if (i + 8 <= len) {
          const t = load<u64>(src + <usize>i) ^ 0x3030303030303030;
          const n = leadingDigits(t);
          if (digits + n > 19) return -1;
          digits += n;
          e -= n;
          // Eight digits move on by a constant, so the next load need not wait for the count.
          if (n == 8) {
            w = w * 100000000 + digitsValue(t, 8);
            i += 8;
            continue;
          }
          w = w * unchecked(POW10_U64[n]) + digitsValue(t, n);
          i += n;
          break;
        } else if (isDigit(c = byteAt(src, len, i))) {
          if (digits == 19) return -1;
          w = w * 10 + <u64>(c - ZERO);
          digits++;
          e--;
          i++;
        } else {
          break;
        }
      }
      c = byteAt(src, len, i);
    }
    if ((c | 0x20) == 0x65) {
      c = byteAt(src, len, ++i);
      let sign = 1;
      if (c == PLUS || c == MINUS) {
        if (c == MINUS) sign = -1;
        c = byteAt(src, len, ++i);
      }
      if (!isDigit(c)) return -1;
      let x = 0;
      do {
        if (x < 100000) x = x * 10 + <i32>(c - ZERO);
        c = byteAt(src, len, ++i);
      } while (isDigit(c));
      e += sign * x;
    }
    const a = scaled(w, e);
    if (isNaN(a)) return -1;
    const f = <f32>(negative ? -a : a);
    if (!isFinite<f32>(f) || count == max) return -1;
    store<f32>(out + (<usize>count << 2), f);
    count++;
    i = skipWhitespace(src, len, i);
    c = byteAt(src, len, i);
    if (c == COMMA) {
      i = skipWhitespace(src, len, i + 1);
    } else if (c == CLOSE_BRACKET) {
      readCount = count;
      return i + 1;
    } else {
      return -1;
    }
  }
  return -1;
}

/** How many numbers the last successful json_f32_array read. */
export function json_f32_count(): i32 {
  return readCount;
}
