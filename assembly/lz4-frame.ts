// LZ4 frame format (lz4/doc/lz4_Frame_format.md), interoperable with the `lz4` CLI:
//   0: magic 0x184D2204 u32 LE  4: FLG  5: BD  [6: content size u64 LE]  [dict id u32]  HC
//   blocks: size u32 LE (bit 31 = stored uncompressed) · data · [xxh32(data) u32 LE]
//   end mark 0 u32 · [xxh32(content) u32 LE]
// FLG: version 01 (bits 7-6), block independence (5), block checksum (4), content size (3),
// content checksum (2), reserved (1), dict id (0). BD: block max size id 4..7 (bits 6-4).
// Decoding also accepts skippable frames (0x184D2A50..5F), legacy frames (0x184C2102) and any
// number of concatenated frames, as the CLI does.
import { compressBlockExt, decompressBlockExt, lz4_reset_table, LZ4_ERR_DST_TOO_SMALL } from './lz4';
import { xxh32, xxh32Digest, xxh32Init, xxh32Stripes } from './xxhash32';

const MAGIC: u32 = 0x184d2204;
const MAGIC_SKIPPABLE: u32 = 0x184d2a50;
const MAGIC_LEGACY: u32 = 0x184c2102;
const LEGACY_BLOCK_MAX: usize = 8 << 20;

/** compress flags */
export const LZ4F_BLOCK_INDEPENDENT: i32 = 1;
export const LZ4F_BLOCK_CHECKSUM: i32 = 2;
export const LZ4F_CONTENT_CHECKSUM: i32 = 4;
export const LZ4F_CONTENT_SIZE: i32 = 8;

// Error codes (the block codes -1..-3 keep their meaning).
export const LZ4F_ERR_CORRUPT: i32 = -1;
export const LZ4F_ERR_DST_TOO_SMALL: i32 = -2;
export const LZ4F_ERR_INVALID_ARGUMENT: i32 = -3;
/** Input is not an LZ4 frame (unknown magic). */
export const LZ4F_ERR_BAD_MAGIC: i32 = -10;
/** Frame version other than 01. */
export const LZ4F_ERR_BAD_VERSION: i32 = -11;
/** A reserved bit is set. */
export const LZ4F_ERR_RESERVED: i32 = -12;
/** Block max size id outside 4..7. */
export const LZ4F_ERR_BLOCK_SIZE_ID: i32 = -13;
/** The frame needs a dictionary. */
export const LZ4F_ERR_DICT: i32 = -14;
export const LZ4F_ERR_HEADER_CHECKSUM: i32 = -15;
export const LZ4F_ERR_BLOCK_CHECKSUM: i32 = -16;
export const LZ4F_ERR_CONTENT_CHECKSUM: i32 = -17;
/** The decoded size differs from the header's content size. */
export const LZ4F_ERR_CONTENT_SIZE: i32 = -18;
/** The input ends inside a frame. */
export const LZ4F_ERR_TRUNCATED: i32 = -19;
/** A block is larger than the frame's block max size. */
export const LZ4F_ERR_BLOCK_TOO_LARGE: i32 = -20;
/** The output buffer is full: grow it, copy what was written, and call again with resume = 1. */
export const LZ4F_ERR_NEED_OUTPUT: i32 = -21;

// @ts-ignore: decorator
@inline function blockMaxOf(id: i32): usize {
  return (<usize>1) << (8 + 2 * <usize>id);
}

/** Worst-case frame size for `srcLen` bytes (a block never grows: it is stored raw instead). */
export function lz4f_compress_bound(srcLen: i32, blockSizeId: i32, flags: i32): i32 {
  if (srcLen < 0 || blockSizeId < 4 || blockSizeId > 7) return 0;
  const blockMax = <i64>blockMaxOf(blockSizeId);
  const blocks = (<i64>srcLen + blockMax - 1) / blockMax;
  const perBlock: i64 = 4 + (flags & LZ4F_BLOCK_CHECKSUM ? 4 : 0);
  const bound = 19 + <i64>srcLen + blocks * perBlock + 8;
  return bound > 0x7fffffff ? 0 : <i32>bound;
}

/**
 * Writes `srcLen` bytes at `src` as one LZ4 frame into `dst`. Returns the frame size or a
 * negative error.
 */
export function lz4f_compress(src: usize, srcLen: i32, dst: usize, dstCap: i32, blockSizeId: i32, flags: i32, accel: i32): i32 {
  if (srcLen < 0 || dstCap < 0 || blockSizeId < 4 || blockSizeId > 7) return LZ4F_ERR_INVALID_ARGUMENT;
  const independent = (flags & LZ4F_BLOCK_INDEPENDENT) != 0;
  const blockChecksum = (flags & LZ4F_BLOCK_CHECKSUM) != 0;
  const contentChecksum = (flags & LZ4F_CONTENT_CHECKSUM) != 0;
  const contentSize = (flags & LZ4F_CONTENT_SIZE) != 0;
  const headerLen: usize = contentSize ? 15 : 7;
  const oend = dst + <usize>dstCap;
  if (<usize>dstCap < headerLen + 4 + (contentChecksum ? 4 : 0)) return LZ4F_ERR_DST_TOO_SMALL;
  store<u32>(dst, MAGIC);
  store<u8>(dst, <u8>(0x40 | (independent ? 0x20 : 0) | (blockChecksum ? 0x10 : 0) | (contentSize ? 0x08 : 0) | (contentChecksum ? 0x04 : 0)), 4);
  store<u8>(dst, <u8>(blockSizeId << 4), 5);
  if (contentSize) store<u64>(dst + 6, <u64>srcLen);
  store<u8>(dst + headerLen - 1, <u8>((xxh32(dst + 4, headerLen - 5, 0) >>> 8) & 0xff));
  let op = dst + headerLen;

  const blockMax = blockMaxOf(blockSizeId);
  const iend = src + <usize>srcLen;
  let ip = src;
  // The content checksum runs block by block, over input the compressor just read.
  let hashed: usize = 0;
  if (contentChecksum) xxh32Init(0);
  if (!independent) lz4_reset_table();
  while (ip < iend) {
    const len = min(blockMax, iend - ip);
    const trailer: usize = blockChecksum ? 4 : 0;
    if (oend - op < 4 + trailer) return LZ4F_ERR_DST_TOO_SMALL;
    const room = oend - op - 4 - trailer;
    // A block that does not shrink is stored raw, so the compressor gets len - 1 at most.
    const cap = <i32>min(room, len - 1);
    const n = independent
      ? compressBlockExt(ip, <i32>len, op + 4, cap, accel, ip, ip, false)
      : compressBlockExt(ip, <i32>len, op + 4, cap, accel, src, src, true);
    let stored: usize;
    if (n > 0) {
      store<u32>(op, <u32>n);
      stored = <usize>n;
    } else if (n == LZ4_ERR_DST_TOO_SMALL && room >= len) {
      store<u32>(op, <u32>len | 0x80000000);
      memory.copy(op + 4, ip, len);
      stored = len;
    } else {
      return n == LZ4_ERR_DST_TOO_SMALL ? LZ4F_ERR_DST_TOO_SMALL : n;
    }
    if (blockChecksum) store<u32>(op + 4 + stored, xxh32(op + 4, stored, 0));
    op += 4 + stored + trailer;
    ip += len;
    if (contentChecksum) hashed += xxh32Stripes(src + hashed, ip - src - hashed);
  }
  if (oend - op < 4 + (contentChecksum ? 4 : 0)) return LZ4F_ERR_DST_TOO_SMALL;
  store<u32>(op, 0);
  op += 4;
  if (contentChecksum) {
    store<u32>(op, xxh32Digest(src + hashed, <usize>srcLen));
    op += 4;
  }
  return <i32>(op - dst);
}

// Decoder state, kept between calls so that a caller whose output fills up can grow it and
// resume at the block that did not fit. Positions are offsets into src and dst.
let inPos: usize = 0;
let outPos: usize = 0;
/** 0: between frames; 1: inside an LZ4 frame; 2: inside a legacy frame. */
let frameKind: i32 = 0;
let frameFlags: u32 = 0;
let frameBlockMax: usize = 0;
let frameOutStart: usize = 0;
let frameContentSize: i64 = -1;
/** Bytes of the current frame's output already in the streaming content checksum. */
let frameHashed: usize = 0;
let blockIndex: i32 = 0;
let errorAt: usize = 0;

/** Index (from 0) of the block in the current frame where the last error happened. */
export function lz4f_error_block(): i32 {
  return blockIndex;
}

/** Input offset where the last error was found. */
export function lz4f_error_offset(): i32 {
  return <i32>errorAt;
}

// @ts-ignore: decorator
@inline function fail(code: i32, at: usize): i32 {
  errorAt = at;
  return code;
}

/** Parses a frame header at `p` (with `avail` bytes); returns its length or a negative error. */
function readHeader(p: usize, avail: usize): i32 {
  if (avail < 7) return LZ4F_ERR_TRUNCATED;
  const flg = <u32>load<u8>(p, 4);
  const bd = <u32>load<u8>(p, 5);
  if (flg >>> 6 != 1) return LZ4F_ERR_BAD_VERSION;
  if ((flg & 0x02) != 0 || (bd & 0x8f) != 0) return LZ4F_ERR_RESERVED;
  const id = <i32>(bd >>> 4);
  if (id < 4) return LZ4F_ERR_BLOCK_SIZE_ID;
  const len: usize = 7 + (flg & 0x08 ? 8 : 0) + (flg & 0x01 ? 4 : 0);
  if (avail < len) return LZ4F_ERR_TRUNCATED;
  if (<u32>load<u8>(p + len - 1) != ((xxh32(p + 4, len - 5, 0) >>> 8) & 0xff)) return LZ4F_ERR_HEADER_CHECKSUM;
  if (flg & 0x01) return LZ4F_ERR_DICT;
  frameFlags = flg;
  frameBlockMax = blockMaxOf(id);
  frameContentSize = flg & 0x08 ? <i64>load<u64>(p, 6) : -1;
  return <i32>len;
}

// @ts-ignore: decorator
@inline function isKnownMagic(m: u32): bool {
  return m == MAGIC || m == MAGIC_LEGACY || (m & 0xfffffff0) == MAGIC_SKIPPABLE;
}

/**
 * Decodes every frame in [src, src+srcLen) into dst. Returns the total decoded size, or a
 * negative error; LZ4F_ERR_NEED_OUTPUT means dst is full and the call can be repeated with a
 * larger dst holding the same first bytes and `resume` = 1.
 */
export function lz4f_decompress(src: usize, srcLen: i32, dst: usize, dstCap: i32, resume: i32): i32 {
  if (srcLen < 0 || dstCap < 0) return LZ4F_ERR_INVALID_ARGUMENT;
  if (!resume) {
    inPos = 0;
    outPos = 0;
    frameKind = 0;
    blockIndex = 0;
    if (srcLen == 0) return fail(LZ4F_ERR_TRUNCATED, 0);
  }
  const n = <usize>srcLen;
  const cap = <usize>dstCap;
  if (inPos > n || outPos > cap) return LZ4F_ERR_INVALID_ARGUMENT;
  while (true) {
    if (frameKind == 0) {
      if (inPos == n) return <i32>outPos;
      if (n - inPos < 4) return fail(LZ4F_ERR_TRUNCATED, inPos);
      const p = src + inPos;
      const magic = load<u32>(p);
      if ((magic & 0xfffffff0) == MAGIC_SKIPPABLE) {
        if (n - inPos < 8) return fail(LZ4F_ERR_TRUNCATED, inPos);
        const size = <usize>load<u32>(p, 4);
        if (size > n - inPos - 8) return fail(LZ4F_ERR_TRUNCATED, inPos);
        inPos += 8 + size;
        continue;
      }
      if (magic == MAGIC_LEGACY) {
        frameKind = 2;
        frameBlockMax = LEGACY_BLOCK_MAX;
        frameFlags = 0x20;
        frameOutStart = outPos;
        blockIndex = 0;
        inPos += 4;
        continue;
      }
      if (magic != MAGIC) return fail(LZ4F_ERR_BAD_MAGIC, inPos);
      const h = readHeader(p, n - inPos);
      if (h < 0) return fail(h, inPos);
      frameKind = 1;
      frameOutStart = outPos;
      blockIndex = 0;
      frameHashed = 0;
      if (frameFlags & 0x04) xxh32Init(0);
      inPos += <usize>h;
      continue;
    }

    // One block of the current frame.
    const p = src + inPos;
    const legacy = frameKind == 2;
    if (legacy) {
      // A legacy frame has no end mark: it ends with the input or where another frame starts.
      if (n - inPos < 4 || isKnownMagic(load<u32>(p))) {
        if (n - inPos > 0 && n - inPos < 4) return fail(LZ4F_ERR_TRUNCATED, inPos);
        frameKind = 0;
        continue;
      }
    } else if (n - inPos < 4) {
      return fail(LZ4F_ERR_TRUNCATED, inPos);
    }
    const word = load<u32>(p);
    if (!legacy && word == 0) {
      // End mark, then the optional content checksum.
      const produced = outPos - frameOutStart;
      let end = inPos + 4;
      if (frameFlags & 0x04) {
        if (n - end < 4) return fail(LZ4F_ERR_TRUNCATED, inPos);
        if (load<u32>(src + end) != xxh32Digest(dst + frameOutStart + frameHashed, produced)) return fail(LZ4F_ERR_CONTENT_CHECKSUM, end);
        end += 4;
      }
      if (frameContentSize >= 0 && <u64>frameContentSize != <u64>produced) return fail(LZ4F_ERR_CONTENT_SIZE, inPos);
      inPos = end;
      frameKind = 0;
      continue;
    }
    const raw = !legacy && (word & 0x80000000) != 0;
    const len = <usize>(legacy ? word : word & 0x7fffffff);
    // A compressed block never needs more bytes than its raw form; legacy blocks are bounded
    // by the compress bound of their 8 MiB.
    if (len > (legacy ? LEGACY_BLOCK_MAX + LEGACY_BLOCK_MAX / 255 + 16 : frameBlockMax)) return fail(LZ4F_ERR_BLOCK_TOO_LARGE, inPos);
    const trailer: usize = frameFlags & 0x10 ? 4 : 0;
    if (n - inPos - 4 < len + trailer) return fail(LZ4F_ERR_TRUNCATED, inPos);
    const data = p + 4;
    if (trailer != 0 && load<u32>(data + len) != xxh32(data, len, 0)) return fail(LZ4F_ERR_BLOCK_CHECKSUM, inPos);
    const room = cap - outPos;
    if (raw) {
      if (len > room) return LZ4F_ERR_NEED_OUTPUT;
      memory.copy(dst + outPos, data, len);
      outPos += len;
    } else {
      const limit = min(room, frameBlockMax);
      const lowPrefix = frameFlags & 0x20 ? dst + outPos : dst + frameOutStart;
      const r = decompressBlockExt(data, <i32>len, dst + outPos, <i32>limit, lowPrefix);
      if (r == LZ4_ERR_DST_TOO_SMALL) {
        if (limit < frameBlockMax) return LZ4F_ERR_NEED_OUTPUT;
        return fail(LZ4F_ERR_BLOCK_TOO_LARGE, inPos);
      }
      if (r < 0) return fail(LZ4F_ERR_CORRUPT, inPos);
      outPos += <usize>r;
    }
    // The content checksum takes the block's output while it is still in cache; a tail of
    // under 16 bytes waits in dst for the next block or the digest.
    if (frameFlags & 0x04) {
      const hashFrom = frameOutStart + frameHashed;
      frameHashed += xxh32Stripes(dst + hashFrom, outPos - hashFrom);
    }
    inPos += 4 + len + trailer;
    blockIndex++;
  }
}

let boundExact: bool = false;

/**
 * An upper bound of the decoded size of the frames in the input, so a caller can size its
 * output once: a frame's declared content size, or for a frame without one the most its blocks
 * can hold (raw blocks their size, compressed ones the block max, which only the last block of
 * a frame written as the format intends falls short of). -1 when the input has a legacy frame
 * or does not parse; LZ4F_ERR_CONTENT_SIZE (as a number) when a declared size is more than the
 * frame's blocks could ever hold. lz4f_bound_exact tells whether every frame declared its size.
 */
export function lz4f_output_bound(src: usize, srcLen: i32): f64 {
  boundExact = false;
  if (srcLen <= 0) return -1;
  const n = <usize>srcLen;
  let pos: usize = 0;
  let total: f64 = 0;
  let exact = true;
  while (pos < n) {
    if (n - pos < 8) return -1;
    const p = src + pos;
    const magic = load<u32>(p);
    if ((magic & 0xfffffff0) == MAGIC_SKIPPABLE) {
      const size = <usize>load<u32>(p, 4);
      if (size > n - pos - 8) return -1;
      pos += 8 + size;
      continue;
    }
    if (magic != MAGIC) return -1;
    const h = readHeader(p, n - pos);
    if (h < 0) return -1;
    pos += <usize>h;
    let most: f64 = 0;
    while (true) {
      if (n - pos < 4) return -1;
      const word = load<u32>(src + pos);
      if (word == 0) {
        pos += 4 + (frameFlags & 0x04 ? 4 : 0);
        break;
      }
      const len = <usize>(word & 0x7fffffff);
      most += word & 0x80000000 ? <f64>len : <f64>min(frameBlockMax, len * 255 + 16);
      const skip = len + (frameFlags & 0x10 ? 4 : 0);
      if (n - pos - 4 < skip) return -1;
      pos += 4 + skip;
    }
    if (frameContentSize >= 0) {
      const declared = <f64>(<u64>frameContentSize);
      if (declared > most) return <f64>LZ4F_ERR_CONTENT_SIZE;
      total += declared;
    } else {
      exact = false;
      total += most;
    }
  }
  boundExact = exact;
  return total;
}

/** 1 when the last lz4f_output_bound was the frames' declared content size, else 0. */
export function lz4f_bound_exact(): i32 {
  return boundExact ? 1 : 0;
}
