// LZ4 block format (lz4/doc/lz4_Block_format.md): a sequence of
//   token (4-bit literal length | 4-bit match length) · [length bytes] · literals · offset u16 LE · [length bytes]
// The last sequence holds only literals; the last 5 bytes are always literals and the last
// match starts at least 12 bytes before the end of the block.
// Compression follows the reference "fast" strategy (one hash probe per position, skip
// trigger acceleration), with these deviations: positions are hashed on, and matches taken from,
// 6 equal bytes rather than 4 (see KEY_BYTES); the table is twice the reference's (sized down
// for small blocks) and the position two bytes before a match end is not inserted (see
// HASH_TABLE). Decompression is fully bounds-checked: a fast loop checks its input
// and output room once per sequence while 40/80 bytes remain, a careful loop every field near
// the ends; both use v128 wild copies whenever the output has room for them.

/** Malformed compressed data (truncated, bad offset, bad length). */
export const LZ4_ERR_CORRUPT: i32 = -1;
/** The destination is too small for the output. */
export const LZ4_ERR_DST_TOO_SMALL: i32 = -2;
/** A length or capacity argument is negative or above the format's limit. */
export const LZ4_ERR_INVALID_ARGUMENT: i32 = -3;

const MINMATCH: usize = 4;
const LASTLITERALS: usize = 5;
const MFLIMIT: usize = 12;
const MAX_DISTANCE: usize = 65535;
const ML_MASK: usize = 15;
const RUN_MASK: usize = 15;
const SKIP_TRIGGER: u32 = 6;
/** The reference's LZ4_MAX_INPUT_SIZE. */
export const LZ4_MAX_INPUT_SIZE: i32 = 0x7e000000;
/** Below this an input fits u16 positions and every match is within the 64 KB window. */
const LIMIT_64K: i32 = 65536 + <i32>MFLIMIT - 1;
const HASHLOG16: u32 = 14;
const HASHLOG32: u32 = 13;
/** The smallest table a small independent block gets (256 u16 slots). */
const MIN_HASHLOG: u32 = 8;
/** Input and output room under which decompression leaves its fast loop. */
// FAST_IN covers a token, a length byte, 32 literals, the offset and a match length byte;
// FAST_OUT 32 literals and a 48-byte match.
const FAST_IN: usize = 40;
const FAST_OUT: usize = 80;

/**
 * One 32 KB region serves as 16384 u16 slots or 8192 u32 slots, twice the reference's defaults:
 * with positions no longer inserted two bytes before each match end (see compressImpl), the
 * larger table keeps the ratio (64 KB blocks: JSON logs 2.598 -> 2.614, x86 code 1.5% smaller,
 * source text within 1%) and is itself no slower, as fewer stale candidates are probed.
 */
const HASH_TABLE_BYTES: usize = 32768;
const HASH_TABLE: usize = memory.data(<i32>HASH_TABLE_BYTES, 16);
// Byte i of row k is i % k: an i8x16.swizzle pattern that repeats a k-byte period.
const PATTERN: usize = memory.data(16 * 16, 16);
// Row k: the largest multiple of k that is <= 16, the stride at which the pattern repeats.
const PATTERN_STEP: usize = memory.data(16, 16);

function buildPatterns(): void {
  for (let k: usize = 1; k < 16; k++) {
    for (let i: usize = 0; i < 16; i++) store<u8>(PATTERN + (k << 4) + i, <u8>(i % k));
    store<u8>(PATTERN_STEP + k, <u8>((16 / k) * k));
  }
}
buildPatterns();

/** Worst-case compressed size of `srcLen` bytes, or 0 if the input is too large. */
export function lz4_compress_bound(srcLen: i32): i32 {
  if (srcLen < 0 || srcLen > LZ4_MAX_INPUT_SIZE) return 0;
  return srcLen + srcLen / 255 + 16;
}

/**
 * Bytes a position's hash covers and a candidate must share before it is taken as a match. A
 * 4-byte match saves at most one byte (token and offset cost three) yet costs a whole sequence to
 * find and emit, and it can cut a longer match short; a 5-byte one saves at most two. The
 * reference hashes 4 for small blocks. Kernel CPU time and ratio, 64 KB blocks (bench/lz4/kernels-ab.ts):
 *   corpus                         4 bytes        5 bytes        6 bytes
 *   JSON logs                      696  2.571     800  2.614     823  2.665
 *   1 KB stream records (rec1k)    469  1.797     476  2.193     522  2.227
 *   the same in 16 KB blocks       411  1.779     504  1.979     535  1.956
 *   x86-64 binary (node)           440  1.870     502  1.880     594  1.842
 *   JavaScript sources             515  2.527     540  2.595     570  2.576
 *   Markdown docs                  574  2.775     658  2.814     721  2.754
 * (`lz4 -1 -B4` ratios: 2.548, 1.814, 1.813, 1.844, 2.544, 2.774.) With 6 every corpus is faster,
 * and none more than 0.7% larger than `lz4 -1`; with 7 binaries, docs and the records lose 6-15%.
 */
const KEY_BYTES: u64 = 6;

// @ts-ignore: decorator
@inline function hashAt<T>(p: usize, hashLog: u64): usize {
  return <usize>(((load<u64>(p) << (64 - 8 * KEY_BYTES)) * 889523592379) >>> (64 - hashLog));
}

// @ts-ignore: decorator
@inline function sameKey(a: usize, b: usize): bool {
  return ((load<u64>(a) ^ load<u64>(b)) << (64 - 8 * KEY_BYTES)) == 0;
}

// @ts-ignore: decorator
@inline function getPos<T>(h: usize): usize {
  return <usize>load<T>(HASH_TABLE + (h << alignof<T>()));
}

// @ts-ignore: decorator
@inline function putPos<T>(h: usize, pos: usize): void {
  store<T>(HASH_TABLE + (h << alignof<T>()), <T>pos);
}

/**
 * The candidate slot `h` names for `ip`. With `modular` (u16 slots over a block of any size) a
 * slot holds a position modulo 64 KB, read back as the latest position within 64 KB before `ip`
 * that it can stand for: a stale slot yields a wrong candidate, which the byte check rejects.
 */
// @ts-ignore: decorator
@inline function candidate<T>(h: usize, ip: usize, base: usize, modular: bool): usize {
  if (modular) return ip - ((ip - base - getPos<T>(h)) & 0xffff);
  return base + getPos<T>(h);
}

/** Whether a candidate is inside the block's history and the 64 KB window (before `ip`). */
// @ts-ignore: decorator
@inline function inWindow<T>(match: usize, ip: usize, lowLimit: usize, modular: bool): bool {
  if (modular) return match >= lowLimit && match < ip;
  if (sizeof<T>() == 2) return true;
  return match >= lowLimit && ip - match <= MAX_DISTANCE && match < ip;
}

/** Number of equal bytes at `a` and `b`, stopping at `limit` (for `a`). */
// @ts-ignore: decorator
@inline function countMatch(a: usize, b: usize, limit: usize): usize {
  const start = a;
  while (limit - a >= 8) {
    const diff = load<u64>(a) ^ load<u64>(b);
    if (diff != 0) return a + <usize>(ctz(diff) >>> 3) - start;
    a += 8;
    b += 8;
  }
  if (limit - a >= 4 && load<u32>(a) == load<u32>(b)) {
    a += 4;
    b += 4;
  }
  if (limit - a >= 2 && load<u16>(a) == load<u16>(b)) {
    a += 2;
    b += 2;
  }
  if (a < limit && load<u8>(a) == load<u8>(b)) a++;
  return a - start;
}

/** Copies `len` bytes; 16 at a time when both sides have 16 bytes of room past the end. */
// @ts-ignore: decorator
@inline function copyLiterals(op: usize, ip: usize, len: usize, oend: usize, iend: usize): void {
  if (oend - op >= len + 16 && iend - ip >= len + 16) {
    const end = op + len;
    do {
      v128.store(op, v128.load(ip));
      op += 16;
      ip += 16;
    } while (op < end);
  } else {
    memory.copy(op, ip, len);
  }
}

/** Writes a length continuation (the part above 15) as 255-bytes plus a remainder. */
// @ts-ignore: decorator
@inline function writeLength(op: usize, len: usize): usize {
  while (len >= 255) {
    store<u8>(op, 255);
    op++;
    len -= 255;
  }
  store<u8>(op, <u8>len);
  return op + 1;
}

/**
 * Compresses [src, src+srcLen) into dst. Table positions are relative to `base`; matches may
 * reach back to `lowLimit` (below `src` for linked frame blocks) but never past 64 KB. With
 * T = u16 and not `modular` the caller guarantees srcLen < LIMIT_64K, base == src and a cleared
 * table, so no window checks are needed. `modular` (T = u16, an independent block of any size)
 * keeps 16384 u16 slots instead of 8192 u32 ones in the same 32 KB: on 512 KB blocks of JSON
 * 16% faster and 2% smaller output, as every candidate is within the window by construction.
 */
// @ts-ignore: decorator
@inline function compressImpl<T>(src: usize, srcLen: usize, dst: usize, dstCap: usize, accel: u32, base: usize, lowLimit: usize, modular: bool, hashLog: u64, limited: bool): i32 {
  const iend = src + srcLen;
  const oend = dst + dstCap;
  let ip = src;
  let anchor = src;
  let op = dst;
  if (srcLen >= MFLIMIT + 1) {
    const mflimitPlusOne = iend - MFLIMIT + 1;
    const matchlimit = iend - LASTLITERALS;
    putPos<T>(hashAt<T>(ip, hashLog), ip - base);
    ip++;
    let forwardH = hashAt<T>(ip, hashLog);
    while (true) {
      // Find a match: probe with a growing step so incompressible stretches are skipped fast.
      let match: usize = 0;
      let forwardIp = ip;
      let step: usize = 1;
      let searchMatchNb: u32 = accel << SKIP_TRIGGER;
      let found = false;
      do {
        const h = forwardH;
        ip = forwardIp;
        forwardIp += step;
        step = <usize>(searchMatchNb++ >>> SKIP_TRIGGER);
        if (forwardIp > mflimitPlusOne) break;
        match = candidate<T>(h, ip, base, modular);
        forwardH = hashAt<T>(forwardIp, hashLog);
        putPos<T>(h, ip - base);
        if (inWindow<T>(match, ip, lowLimit, modular) && sameKey(match, ip)) {
          found = true;
          break;
        }
      } while (true);
      if (!found) break;

      // The match's end does not depend on how far it extends backwards: counted first, the next
      // probe need not wait for the backward extension. Counted past the KEY_BYTES known equal,
      // so one 8-byte compare settles matches of up to 13 bytes (1-4% faster on every corpus).
      let matchEnd = ip + <usize>KEY_BYTES + countMatch(ip + <usize>KEY_BYTES, match + <usize>KEY_BYTES, matchlimit);

      // Extend backwards over equal bytes, as far as the literals and the history allow: the
      // equal bytes that end the 8 before ip and the 8 before match, without a branch (most
      // matches extend by none or a few, and a byte loop's exit mispredicts), then byte by byte
      // in the rare case that all 8 are equal.
      let back = min<usize>(<usize>(clz(load<u64>(ip - 8) ^ load<u64>(match - 8)) >>> 3), min<usize>(ip - anchor, match - lowLimit));
      if (back == 8) {
        while (ip - back > anchor && match - back > lowLimit && load<u8>(ip - back - 1) == load<u8>(match - back - 1)) back++;
      }
      ip -= back;
      match -= back;

      // Literals.
      const litLen = ip - anchor;
      let token = op;
      // Checked before the token is counted: with dstCap 0, oend - (op + 1) would wrap around.
      if (limited && oend - op < 1 + litLen + (2 + 1 + LASTLITERALS) + litLen / 255) return LZ4_ERR_DST_TOO_SMALL;
      op++;
      if (litLen >= RUN_MASK) {
        store<u8>(token, <u8>(RUN_MASK << 4));
        op = writeLength(op, litLen - RUN_MASK);
      } else {
        store<u8>(token, <u8>(litLen << 4));
      }
      copyLiterals(op, anchor, litLen, oend, iend);
      op += litLen;

      // Sequences: a match, then as long as the next position matches immediately, more
      // matches with empty literal runs.
      while (true) {
        store<u16>(op, <u16>(ip - match));
        op += 2;
        let matchCode = matchEnd - ip - MINMATCH;
        ip = matchEnd;
        if (matchCode >= ML_MASK) {
          store<u8>(token, load<u8>(token) + <u8>ML_MASK);
          matchCode -= ML_MASK;
          if (limited && oend - op < 1 + LASTLITERALS + (matchCode + 240) / 255) return LZ4_ERR_DST_TOO_SMALL;
          op = writeLength(op, matchCode);
        } else {
          store<u8>(token, load<u8>(token) + <u8>matchCode);
        }
        anchor = ip;
        if (ip >= mflimitPlusOne) break;
        // NOTE: the reference also inserts ip - 2 here; without it 64 KB blocks of JSON logs
        // compress ~3% faster at the same ratio, text ~1% larger (the larger table wins it back).
        const h = hashAt<T>(ip, hashLog);
        match = candidate<T>(h, ip, base, modular);
        putPos<T>(h, ip - base);
        if (inWindow<T>(match, ip, lowLimit, modular) && sameKey(match, ip)) {
          token = op;
          if (limited && oend - op < 1 + 2 + 1 + LASTLITERALS) return LZ4_ERR_DST_TOO_SMALL;
          store<u8>(token, 0);
          op++;
          matchEnd = ip + <usize>KEY_BYTES + countMatch(ip + <usize>KEY_BYTES, match + <usize>KEY_BYTES, matchlimit);
          continue;
        }
        break;
      }
      if (anchor >= mflimitPlusOne) break;
      ip++;
      forwardH = hashAt<T>(ip, hashLog);
    }
  }
  // Last literals.
  const lastRun = iend - anchor;
  if (oend - op < lastRun + 1 + (lastRun + 255 - RUN_MASK) / 255) return LZ4_ERR_DST_TOO_SMALL;
  if (lastRun >= RUN_MASK) {
    store<u8>(op, <u8>(RUN_MASK << 4));
    op = writeLength(op + 1, lastRun - RUN_MASK);
  } else {
    store<u8>(op, <u8>(lastRun << 4));
    op++;
  }
  memory.copy(op, anchor, lastRun);
  op += lastRun;
  return <i32>(op - dst);
}

/** Clears the hash table. */
export function lz4_reset_table(): void {
  memory.fill(HASH_TABLE, 0, HASH_TABLE_BYTES);
}

/**
 * Compresses one block with up to `prefixLen` bytes before `src` usable as history (linked
 * frame blocks). With `keepTable` the table from the previous call on the same buffer (whose
 * start is `base`) is kept, as the reference streaming API does.
 */
export function compressBlockExt(src: usize, srcLen: i32, dst: usize, dstCap: i32, accel: i32, base: usize, lowLimit: usize, keepTable: bool): i32 {
  if (srcLen < 0 || srcLen > LZ4_MAX_INPUT_SIZE || dstCap < 0) return LZ4_ERR_INVALID_ARGUMENT;
  const a: u32 = accel < 1 ? 1 : accel > 65537 ? 65537 : <u32>accel;
  if (base == src && lowLimit == src && !keepTable) {
    if (srcLen < LIMIT_64K) {
      // A table of about one slot per input byte: small inputs clear (and spread over) only
      // that much of it, rather than 32 KB per call (~+65 ns on a 40-byte input).
      const hashLog = min<u32>(HASHLOG16, max<u32>(MIN_HASHLOG, 32 - clz<u32>(<u32>srcLen)));
      memory.fill(HASH_TABLE, 0, <usize>2 << hashLog);
      // The full table's own copy: a constant shift in the hash measured ~2% faster.
      if (hashLog == HASHLOG16) {
        // With room for the worst case (as callers that size by lz4_compress_bound have) no
        // sequence needs its output check, as the reference's notLimited mode: ~2% faster.
        if (dstCap >= lz4_compress_bound(srcLen)) return compressImpl<u16>(src, <usize>srcLen, dst, <usize>dstCap, a, src, src, false, HASHLOG16, false);
        return compressImpl<u16>(src, <usize>srcLen, dst, <usize>dstCap, a, src, src, false, HASHLOG16, true);
      }
      return compressImpl<u16>(src, <usize>srcLen, dst, <usize>dstCap, a, src, src, false, hashLog, true);
    }
    lz4_reset_table();
    return compressImpl<u16>(src, <usize>srcLen, dst, <usize>dstCap, a, src, src, true, HASHLOG16, true);
  }
  if (!keepTable) lz4_reset_table();
  return compressImpl<u32>(src, <usize>srcLen, dst, <usize>dstCap, a, base, lowLimit, false, HASHLOG32, true);
}

/** Compresses `srcLen` bytes at `src` into `dst`; returns the compressed size or a negative error. */
export function lz4_compress_block(src: usize, srcLen: i32, dst: usize, dstCap: i32): i32 {
  return compressBlockExt(src, srcLen, dst, dstCap, 1, src, src, false);
}

/** As lz4_compress_block, trading ratio for speed as the reference's `acceleration` does. */
export function lz4_compress_block_accel(src: usize, srcLen: i32, dst: usize, dstCap: i32, acceleration: i32): i32 {
  return compressBlockExt(src, srcLen, dst, dstCap, acceleration, src, src, false);
}

/**
 * Copies an `ml`-byte match from `off` bytes back to `op` and returns the new `op`, or a
 * negative error if the output has no room. With 32 bytes of slack past the match it uses wild
 * copies (up to 32 bytes past the end may be written, then overwritten); otherwise exact bytes.
 */
// @ts-ignore: decorator
@inline function copyMatch(op: usize, off: usize, ml: usize, oend: usize): isize {
  const match = op - off;
  if (oend - op >= ml + 32) {
    if (off >= 16) {
      // Each 16-byte chunk reads only bytes at least 16 behind it, so already final.
      v128.store(op, v128.load(match));
      v128.store(op, v128.load(match, 16), 16);
      if (ml > 32) {
        let i: usize = 32;
        do {
          v128.store(op + i, v128.load(match + i));
          i += 16;
        } while (i < ml);
      }
    } else if (off >= 8) {
      store<u64>(op, load<u64>(match));
      store<u64>(op, load<u64>(match, 8), 8);
      store<u64>(op, load<u64>(match, 16), 16);
      if (ml > 24) {
        let i: usize = 24;
        do {
          store<u64>(op + i, load<u64>(match + i));
          i += 8;
        } while (i < ml);
      }
    } else {
      // Overlapping copy: replicate the off-byte period across a vector and store it at
      // a stride that is a multiple of the period.
      const pattern = i8x16.swizzle(v128.load(match), v128.load(PATTERN + (off << 4)));
      const stride = <usize>load<u8>(PATTERN_STEP + off);
      let i: usize = 0;
      do {
        v128.store(op + i, pattern);
        i += stride;
      } while (i < ml);
    }
    return <isize>(op + ml);
  }
  if (ml > oend - op) return LZ4_ERR_DST_TOO_SMALL;
  const end = op + ml;
  let m = match;
  while (op < end) {
    store<u8>(op, load<u8>(m));
    op++;
    m++;
  }
  return <isize>op;
}

/** What readLengthBytes returns for length bytes that run past the input or past i32. */
const LENGTH_CORRUPT: usize = usize.MAX_VALUE;
/** Where the length bytes read by the last readLengthBytes call end. */
let lengthEnd: usize = 0;

/**
 * `len` plus the 255-continued length bytes at `ip` (checked against `iend`), or LENGTH_CORRUPT;
 * the input position after them is left in `lengthEnd`.
 */
// @ts-ignore: decorator
@inline function readLengthBytes(ip: usize, iend: usize, len: usize): usize {
  let s: usize;
  do {
    if (ip >= iend) return LENGTH_CORRUPT;
    s = <usize>load<u8>(ip);
    ip++;
    len += s;
    if (len > 0x7fffffff) return LENGTH_CORRUPT;
  } while (s == 255);
  lengthEnd = ip;
  return len;
}

/**
 * Decompresses one block into [dst, dst+dstCap); matches may reach back to `lowPrefix`
 * (== dst for an independent block). Never reads outside the input nor writes outside the
 * output. Returns the decompressed size or a negative error. With `want` below `dstCap`, stops
 * after the first whole sequence that brings the output to at least `want` bytes and returns
 * the bytes written so far (bytes past them may hold wild-copy garbage); the rest of the block
 * is then neither decoded nor checked.
 */
export function decompressBlockExt(src: usize, srcLen: i32, dst: usize, dstCap: i32, lowPrefix: usize, want: i32 = i32.MAX_VALUE): i32 {
  if (srcLen <= 0 || dstCap < 0) return srcLen == 0 ? LZ4_ERR_CORRUPT : LZ4_ERR_INVALID_ARGUMENT;
  let ip = src;
  const iend = src + <usize>srcLen;
  let op = dst;
  const oend = dst + <usize>dstCap;
  // Past oend (never reached) for a whole block.
  const ostop = want < dstCap ? dst + <usize>max(want, 0) : oend + 1;
  // The fast loop runs while FAST_IN bytes of input and FAST_OUT of output remain, so a
  // sequence with short literals needs no per-field bound checks; `src`/`dst` as limits
  // mean "never" for blocks too small for it. It also leaves at `ostop`.
  const ilimit = <usize>srcLen > FAST_IN ? iend - FAST_IN : src;
  const olimit = min(<usize>dstCap > FAST_OUT ? oend - FAST_OUT : dst, ostop);
  while (true) {
    while (ip < ilimit && op < olimit) {
      const token = <usize>load<u8>(ip);
      let ll = token >>> 4;
      if (ll != RUN_MASK) {
        // ll <= 14: the literals and the offset lie within the FAST_IN bytes, and input remains
        // after them, so a match follows (only the last sequence has none).
        v128.store(op, v128.load(ip, 1));
        op += ll;
        ip += ll + 1;
      } else if (<usize>load<u8>(ip, 1) <= 32 - RUN_MASK) {
        // 15..32 literals, one length byte (most long runs in text and logs, such as a 32-digit
        // hex id): two 16-byte copies within FAST_IN/FAST_OUT, without the general loop below.
        ll += <usize>load<u8>(ip, 1);
        v128.store(op, v128.load(ip, 2));
        v128.store(op, v128.load(ip, 18), 16);
        op += ll;
        ip += ll + 2;
      } else {
        // Long literals: 32-byte wild copies while FAST_IN/FAST_OUT of room remain past them,
        // else the careful path redoes this sequence (the last one always goes there). The
        // length stops growing once it is past the output room, so it cannot overflow.
        let p = ip + 1;
        let s: usize;
        do {
          s = <usize>load<u8>(p);
          p++;
          ll += s;
        } while (s == 255 && p < ilimit && ll <= olimit - op);
        // p may pass ilimit by the length bytes (ip was just under it): then `ilimit - p` would
        // wrap around and let a last run of literals through, reading an offset past the input.
        if (p > ilimit || ll > ilimit - p || ll > olimit - op) break;
        let i: usize = 0;
        do {
          v128.store(op + i, v128.load(p + i));
          v128.store(op + i, v128.load(p + i, 16), 16);
          i += 32;
        } while (i < ll);
        op += ll;
        ip = p + ll;
      }
      const off = <usize>load<u16>(ip);
      ip += 2;
      // One compare rejects offset 0 (wraps to the maximum) and offsets before the prefix.
      if (off - 1 >= op - lowPrefix) return LZ4_ERR_CORRUPT;
      let ml = token & ML_MASK;
      // A match of 4..48 bytes (the token's length, or 15 plus one length byte of at most 29)
      // from at least 16 bytes back: three 16-byte copies, with the literals at most 80 bytes
      // past op, within FAST_OUT, and no branch on which kind (as for the literals). The length
      // byte is in bounds as FAST_IN leaves at least 5 bytes here; it counts only when ml is 15.
      const longMatch = <usize>(ml == ML_MASK);
      const matchByte = select<usize>(<usize>load<u8>(ip), 0, ml == ML_MASK);
      if ((<i32>(matchByte <= 29) & <i32>(off >= 16)) != 0) {
        ip += longMatch;
        v128.store(op, v128.load(op - off));
        v128.store(op, v128.load(op - off, 16), 16);
        v128.store(op, v128.load(op - off, 32), 32);
        op += ml + matchByte + MINMATCH;
        continue;
      }
      if (ml == ML_MASK) {
        ml = readLengthBytes(ip, iend, ml);
        if (ml == LENGTH_CORRUPT) return LZ4_ERR_CORRUPT;
        ip = lengthEnd;
      }
      const r = copyMatch(op, off, ml + MINMATCH, oend);
      if (r < 0) return <i32>r;
      op = <usize>r;
    }

    if (op >= ostop) break;
    // The careful path: one sequence with every field checked.
    if (ip >= iend) return LZ4_ERR_CORRUPT;
    const token = <usize>load<u8>(ip);
    ip++;
    let ll = token >>> 4;
    if (ll != RUN_MASK && iend - ip >= 18 && oend - op >= 32) {
      // Common short case: one 16-byte copy covers the literals.
      v128.store(op, v128.load(ip));
      op += ll;
      ip += ll;
    } else {
      if (ll == RUN_MASK) {
        ll = readLengthBytes(ip, iend, ll);
        if (ll == LENGTH_CORRUPT) return LZ4_ERR_CORRUPT;
        ip = lengthEnd;
      }
      if (ll > iend - ip) return LZ4_ERR_CORRUPT;
      if (ll > oend - op) return LZ4_ERR_DST_TOO_SMALL;
      copyLiterals(op, ip, ll, oend, iend);
      ip += ll;
      op += ll;
      if (ip == iend) break;
    }

    // Match.
    if (iend - ip < 2) return LZ4_ERR_CORRUPT;
    const off = <usize>load<u16>(ip);
    ip += 2;
    if (off - 1 >= op - lowPrefix) return LZ4_ERR_CORRUPT;
    let ml = token & ML_MASK;
    if (ml == ML_MASK) {
      ml = readLengthBytes(ip, iend, ml);
      if (ml == LENGTH_CORRUPT) return LZ4_ERR_CORRUPT;
      ip = lengthEnd;
    }
    const r = copyMatch(op, off, ml + MINMATCH, oend);
    if (r < 0) return <i32>r;
    op = <usize>r;
  }
  return <i32>(op - dst);
}

/** Decompresses one independent block; returns the decompressed size or a negative error. */
export function lz4_decompress_block(src: usize, srcLen: i32, dst: usize, dstCap: i32): i32 {
  return decompressBlockExt(src, srcLen, dst, dstCap, dst);
}

/**
 * Decompresses the start of one independent block into [dst, dst+dstCap), stopping once at least
 * `want` bytes are out (or at the block's end): returns the bytes written (what a whole decode
 * writes there too) or a negative error. For readers that need only the first records of a block.
 */
export function lz4_decompress_prefix(src: usize, srcLen: i32, dst: usize, dstCap: i32, want: i32): i32 {
  return decompressBlockExt(src, srcLen, dst, dstCap, dst, want);
}
