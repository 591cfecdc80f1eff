/**
 * LZ4 from the WASM core: the block format and the frame format (interoperable with the
 * `lz4` CLI both ways). Whole buffers cross the boundary: one copy in, one copy out (a block
 * that is one literal run, as incompressible data is written, is copied straight out instead).
 * Decoding hostile bytes ends in a QuartzError, never a crash, and output sizes are capped
 * before anything is allocated.
 */
import { codecs, type QuartzExports } from './loader.js';
import { ErrorCode, QuartzError } from './errors.js';
import { memoryView, scratch, scratchIn, releaseLarge, swapSlots, takeOut } from './codec-scratch.js';

interface Lz4Exports extends QuartzExports {
  lz4_compress_bound(srcLen: number): number;
  lz4_compress_block_accel(src: number, srcLen: number, dst: number, dstCap: number, acceleration: number): number;
  lz4_decompress_block(src: number, srcLen: number, dst: number, dstCap: number): number;
  lz4f_compress_bound(srcLen: number, blockSizeId: number, flags: number): number;
  lz4f_compress(src: number, srcLen: number, dst: number, dstCap: number, blockSizeId: number, flags: number, acceleration: number): number;
  lz4f_decompress(src: number, srcLen: number, dst: number, dstCap: number, resume: number): number;
  lz4f_output_bound(src: number, srcLen: number): number;
  lz4f_bound_exact(): number;
  lz4f_error_block(): number;
  lz4f_error_offset(): number;
}

/** The reference's LZ4_MAX_INPUT_SIZE. */
export const LZ4_MAX_INPUT_SIZE = 0x7e000000;
/** Default cap on frame output whose size is not known up front. */
export const DEFAULT_MAX_OUTPUT_BYTES = 1 << 30;
/** The largest output any call can produce (the codec's sizes are i32). */
const HARD_MAX_OUTPUT = 0x7fffffff;

/** Frame block sizes (block max size ids 4..7 in the frame descriptor). */
export type Lz4BlockSize = 65536 | 262144 | 1048576 | 4194304 | '64K' | '256K' | '1M' | '4M';

const BLOCK_SIZE_IDS: Record<string, number> = {
  65536: 4,
  262144: 5,
  1048576: 6,
  4194304: 7,
  '64K': 4,
  '256K': 5,
  '1M': 6,
  '4M': 7,
};

export interface CompressBlockOptions {
  /** 1 (default) is the best ratio; higher values skip faster over poorly compressible data. */
  acceleration?: number;
}

/** Where `compressBlock` writes when the caller owns the output buffer. */
export interface CompressBlockInto extends CompressBlockOptions {
  /** The block lands at its start; its length is the output limit. */
  into: Uint8Array;
}

export interface CompressFrameOptions extends CompressBlockOptions {
  /** Block max size; default 64K as the CLI's `-B4`. */
  blockSize?: Lz4BlockSize;
  /** Independent blocks (default true); false links each block to the previous 64 KB (`-BD`). */
  blockIndependence?: boolean;
  /** An xxHash32 after each block (`-BX`); default false. */
  blockChecksum?: boolean;
  /** An xxHash32 of the content after the end mark; default true, as the CLI. */
  contentChecksum?: boolean;
  /** The content size in the header (`--content-size`); default false. */
  contentSize?: boolean;
}

export interface DecompressFrameOptions {
  /** Refuse to produce more than this many bytes; default 1 GiB. */
  maxOutputBytes?: number;
}

// Codes from assembly/lz4.ts and assembly/lz4-frame.ts; any other negative code (-1 first) is corrupt input.
const ERR_DST_TOO_SMALL = -2;
const ERR_INVALID_ARGUMENT = -3;
const F_ERR_NEED_OUTPUT = -21;
const F_ERR_CONTENT_SIZE = -18;

function checkBytes(what: string, src: unknown): asserts src is Uint8Array {
  if (!(src instanceof Uint8Array)) throw new QuartzError(ErrorCode.INVALID_ARGUMENT, `${what}: input must be a Uint8Array`);
  if (src.length > LZ4_MAX_INPUT_SIZE) {
    throw new QuartzError(ErrorCode.TOO_LARGE, `${what}: input of ${src.length} bytes is above the LZ4 limit of ${LZ4_MAX_INPUT_SIZE} bytes`);
  }
}

function acceleration(what: string, value: number | undefined): number {
  if (value === undefined) return 1;
  if (!Number.isInteger(value) || value < 1 || value > 65537) {
    throw new QuartzError(ErrorCode.INVALID_ARGUMENT, `${what}: acceleration must be an integer from 1 to 65537, got ${String(value)}`);
  }
  return value;
}

function maxBytes(what: string, name: string, value: number): number {
  if (!Number.isInteger(value) || value < 0 || value > HARD_MAX_OUTPUT) {
    throw new QuartzError(ErrorCode.INVALID_ARGUMENT, `${what}: ${name} must be an integer from 0 to ${HARD_MAX_OUTPUT}, got ${String(value)}`);
  }
  return value;
}

/** An LZ4 block expands at most ~255:1 (a length byte of 255 per input byte). */
function expansionBound(srcLen: number): number {
  return Math.min(HARD_MAX_OUTPUT, srcLen * 255 + 64);
}

/**
 * Compresses `src` as one raw LZ4 block (no header: keep the original size yourself). The
 * result is a new array of the block's size; with `{ into }` the block is written into that
 * buffer instead and the result is its prefix: no allocation per call, whose cost (V8's per
 * buffer work, then a page fault per fresh 4 KB) can pass the kernel's on small blocks.
 * @example
 * await init();
 * const packed = lz4.compressBlock(bytes);
 * const back = lz4.decompressBlock(packed, bytes.length);
 * const out = new Uint8Array(70000);
 * const view = lz4.compressBlock(bytes, { into: out }); // out.subarray(0, compressedLength)
 */
function compressBlock(src: Uint8Array, options?: CompressBlockOptions | CompressBlockInto): Uint8Array {
  checkBytes('lz4 block', src);
  const accel = acceleration('lz4 block', options?.acceleration);
  const into = (options as Partial<CompressBlockInto> | undefined)?.into;
  if (into !== undefined && !(into instanceof Uint8Array)) {
    throw new QuartzError(ErrorCode.INVALID_ARGUMENT, 'lz4 block: into must be a Uint8Array');
  }
  const wasm = codecs<Lz4Exports>();
  const cap = wasm.lz4_compress_bound(src.length);
  const srcPtr = scratchIn(wasm, 0, src);
  const dstPtr = scratch(wasm, 1, cap);
  // Always at the bound (the kernel's faster unchecked mode), even for a smaller into buffer.
  const n = wasm.lz4_compress_block_accel(srcPtr, src.length, dstPtr, cap, accel);
  if (n < 0) {
    releaseLarge(wasm);
    throw new QuartzError(ErrorCode.INTERNAL, `lz4 block: compression failed with code ${n}`);
  }
  let out: Uint8Array;
  if (into) {
    if (n > into.length) {
      releaseLarge(wasm);
      throw new QuartzError(ErrorCode.TOO_LARGE, `lz4 block: the compressed block (${n} bytes) is larger than the into buffer (${into.length} bytes)`, {
        details: { compressedBytes: n, intoBytes: into.length },
      });
    }
    into.set(memoryView(wasm).subarray(dstPtr, dstPtr + n));
    out = into.subarray(0, n);
  } else {
    out = takeOut(wasm, dstPtr, n);
  }
  releaseLarge(wasm);
  return out;
}

/**
 * Where the literals start if `src` is one literal run and nothing else, else -1. Compressors
 * write incompressible data that way, and such a block decodes to its own tail: copied straight
 * out of `src`, not through the codec's memory (two copies fewer, the kernel's own included).
 */
function literalRunStart(src: Uint8Array): number {
  const n = src.length;
  if (n === 0) return -1;
  let ll = src[0]! >>> 4;
  let at = 1;
  if (ll === 15) {
    let s: number;
    do {
      if (at >= n) return -1;
      s = src[at++]!;
      ll += s;
    } while (s === 255);
  }
  return at + ll === n ? at : -1;
}

/** Where `decompressBlock` writes when the caller owns the output buffer. */
export interface DecompressBlockInto {
  /** Decoded bytes land at its start; its length is the output limit. */
  into: Uint8Array;
}

/**
 * Decompresses one LZ4 block. `maxOutputBytes` is the known original size or an upper bound;
 * the result is a new array of the actual decoded length. With `{ into }` the block is decoded
 * into that buffer instead (no allocation per call) and the result is its decoded prefix.
 * @example
 * const back = lz4.decompressBlock(packed, originalLength);
 * const out = new Uint8Array(65536);
 * const view = lz4.decompressBlock(packed, { into: out }); // out.subarray(0, decodedLength)
 */
function decompressBlock(src: Uint8Array, maxOutputBytes: number): Uint8Array;
function decompressBlock(src: Uint8Array, target: DecompressBlockInto): Uint8Array;
function decompressBlock(src: Uint8Array, limitOrTarget: number | DecompressBlockInto): Uint8Array {
  checkBytes('lz4 block', src);
  let into: Uint8Array | undefined;
  let limit: number;
  if (typeof limitOrTarget === 'number') {
    limit = maxBytes('lz4 block', 'maxOutputBytes', limitOrTarget);
  } else {
    into = limitOrTarget?.into;
    if (!(into instanceof Uint8Array)) {
      throw new QuartzError(ErrorCode.INVALID_ARGUMENT, 'lz4 block: the second argument must be maxOutputBytes (a number) or { into: Uint8Array }');
    }
    limit = Math.min(into.length, HARD_MAX_OUTPUT);
  }
  const wasm = codecs<Lz4Exports>();
  const literals = literalRunStart(src);
  if (literals >= 0 && src.length - literals <= limit) {
    // A new array and set, not src.slice(): for a Node Buffer slice is a view.
    const out = into ?? new Uint8Array(src.length - literals);
    out.set(src.subarray(literals));
    return into ? into.subarray(0, src.length - literals) : out;
  }
  const cap = Math.min(limit, expansionBound(src.length));
  const srcPtr = scratchIn(wasm, 0, src);
  const dstPtr = scratch(wasm, 1, cap);
  const n = wasm.lz4_decompress_block(srcPtr, src.length, dstPtr, cap);
  if (n < 0) {
    releaseLarge(wasm);
    if (n === ERR_DST_TOO_SMALL) {
      const subject = into ? `the into buffer (${limit} bytes)` : `maxOutputBytes (${limit})`;
      throw new QuartzError(ErrorCode.TOO_LARGE, `lz4 block: decoded data is larger than ${subject}`, { details: { maxOutputBytes: limit } });
    }
    if (n === ERR_INVALID_ARGUMENT) throw new QuartzError(ErrorCode.INVALID_ARGUMENT, 'lz4 block: invalid input length');
    throw new QuartzError(ErrorCode.CORRUPT_DATA, src.length === 0 ? 'lz4 block: empty input (a block holds at least one token)' : 'lz4 block: malformed compressed data (truncated, bad match offset or bad length)');
  }
  let out: Uint8Array;
  if (into) {
    into.set(memoryView(wasm).subarray(dstPtr, dstPtr + n));
    out = into.subarray(0, n);
  } else {
    out = takeOut(wasm, dstPtr, n);
  }
  releaseLarge(wasm);
  return out;
}

function frameFlags(options: CompressFrameOptions): number {
  return (
    (options.blockIndependence ?? true ? 1 : 0) |
    (options.blockChecksum ? 2 : 0) |
    (options.contentChecksum ?? true ? 4 : 0) |
    (options.contentSize ? 8 : 0)
  );
}

/**
 * Compresses `src` as one LZ4 frame, readable by `lz4 -d`.
 * @example
 * await init();
 * const frame = lz4.compressFrame(bytes, { blockSize: '256K', contentSize: true });
 */
function compressFrame(src: Uint8Array, options: CompressFrameOptions = {}): Uint8Array {
  checkBytes('lz4 frame', src);
  const accel = acceleration('lz4 frame', options.acceleration);
  const sizeId = BLOCK_SIZE_IDS[String(options.blockSize ?? 65536)];
  if (sizeId === undefined) {
    throw new QuartzError(ErrorCode.INVALID_ARGUMENT, `lz4 frame: blockSize must be one of 64K, 256K, 1M, 4M (65536, 262144, 1048576, 4194304), got ${String(options.blockSize)}`);
  }
  const flags = frameFlags(options);
  const wasm = codecs<Lz4Exports>();
  const cap = wasm.lz4f_compress_bound(src.length, sizeId, flags);
  if (cap === 0) throw new QuartzError(ErrorCode.TOO_LARGE, `lz4 frame: input of ${src.length} bytes is too large for one frame`);
  const srcPtr = scratchIn(wasm, 0, src);
  const dstPtr = scratch(wasm, 1, cap);
  const n = wasm.lz4f_compress(srcPtr, src.length, dstPtr, cap, sizeId, flags, accel);
  if (n < 0) throw new QuartzError(ErrorCode.INTERNAL, `lz4 frame: compression failed with code ${n}`);
  const out = takeOut(wasm, dstPtr, n);
  releaseLarge(wasm);
  return out;
}

function frameError(wasm: Lz4Exports, code: number, limit: number): QuartzError {
  const block = wasm.lz4f_error_block();
  const at = wasm.lz4f_error_offset();
  const details = { code, block, offset: at };
  switch (code) {
    case -10:
      return new QuartzError(ErrorCode.UNSUPPORTED_FORMAT, `lz4 frame: unknown magic number at byte ${at} (not an LZ4 frame)`, { details });
    case -11:
      return new QuartzError(ErrorCode.UNSUPPORTED_FORMAT, `lz4 frame: unsupported frame version in the header at byte ${at}`, { details });
    case -12:
      return new QuartzError(ErrorCode.UNSUPPORTED_FORMAT, `lz4 frame: reserved bits set in the header at byte ${at}`, { details });
    case -13:
      return new QuartzError(ErrorCode.UNSUPPORTED_FORMAT, `lz4 frame: block max size id below 4 in the header at byte ${at}`, { details });
    case -14:
      return new QuartzError(ErrorCode.UNSUPPORTED_FORMAT, `lz4 frame: the frame at byte ${at} needs a dictionary, which is not supported`, { details });
    case -15:
      return new QuartzError(ErrorCode.CHECKSUM_MISMATCH, `lz4 frame: header checksum mismatch at byte ${at}`, { details });
    case -16:
      return new QuartzError(ErrorCode.CHECKSUM_MISMATCH, `lz4 frame: block checksum mismatch in block ${block}`, { details });
    case -17:
      return new QuartzError(ErrorCode.CHECKSUM_MISMATCH, `lz4 frame: content checksum mismatch at byte ${at}`, { details });
    case F_ERR_CONTENT_SIZE:
      return new QuartzError(ErrorCode.CORRUPT_DATA, `lz4 frame: decoded size differs from the header's content size (frame ending at byte ${at})`, { details });
    case -19:
      return new QuartzError(ErrorCode.CORRUPT_DATA, `lz4 frame: input ends inside a frame (at byte ${at}, block ${block})`, { details });
    case -20:
      return new QuartzError(ErrorCode.CORRUPT_DATA, `lz4 frame: block ${block} is larger than the frame's block max size`, { details });
    case F_ERR_NEED_OUTPUT:
      return new QuartzError(ErrorCode.TOO_LARGE, `lz4 frame: decoded data is larger than maxOutputBytes (${limit})`, { details: { ...details, maxOutputBytes: limit } });
    case ERR_INVALID_ARGUMENT:
      return new QuartzError(ErrorCode.INVALID_ARGUMENT, 'lz4 frame: invalid input length', { details });
    default:
      return new QuartzError(ErrorCode.CORRUPT_DATA, `lz4 frame: malformed data in block ${block} (at byte ${at})`, { details });
  }
}

/**
 * Decodes LZ4 frames (also concatenated, skippable and legacy frames, as `lz4 -d` does).
 * The output is sized once: exactly when the frames declare their content size, else from
 * their block table (within one block max of the decoded size); legacy frames grow it by
 * doubling. Never more than `maxOutputBytes`.
 * @example
 * const bytes = lz4.decompressFrame(frame, { maxOutputBytes: 64 << 20 });
 */
function decompressFrame(src: Uint8Array, options: DecompressFrameOptions = {}): Uint8Array {
  checkBytes('lz4 frame', src);
  const limit = maxBytes('lz4 frame', 'maxOutputBytes', options.maxOutputBytes ?? DEFAULT_MAX_OUTPUT_BYTES);
  const wasm = codecs<Lz4Exports>();
  const srcPtr = scratchIn(wasm, 0, src);
  const bound = wasm.lz4f_output_bound(srcPtr, src.length);
  if (bound === F_ERR_CONTENT_SIZE) {
    releaseLarge(wasm);
    throw new QuartzError(ErrorCode.CORRUPT_DATA, 'lz4 frame: the header declares a content size larger than its blocks can hold');
  }
  const exact = bound >= 0 && wasm.lz4f_bound_exact() === 1;
  if (exact && bound > limit) {
    releaseLarge(wasm);
    throw new QuartzError(ErrorCode.TOO_LARGE, `lz4 frame: content size ${bound} is larger than maxOutputBytes (${limit})`, { details: { contentSize: bound, maxOutputBytes: limit } });
  }
  // Sized once from the declared sizes or the block table; only legacy frames (no bound
  // without decoding) start from a guess and grow.
  let cap = Math.min(limit, bound >= 0 ? bound : Math.max(1 << 16, src.length * 4));
  let dstPtr = scratch(wasm, 1, cap);
  let n = wasm.lz4f_decompress(srcPtr, src.length, dstPtr, cap, 0);
  while (n === F_ERR_NEED_OUTPUT && !exact && cap < limit) {
    const grown = Math.min(limit, cap * 2);
    // Slot 2 takes the larger buffer; the written prefix moves with it, then the slots swap.
    const next = scratch(wasm, 2, grown);
    memoryView(wasm).copyWithin(next, dstPtr, dstPtr + cap);
    swapSlots(wasm, 1, 2);
    dstPtr = next;
    cap = grown;
    n = wasm.lz4f_decompress(srcPtr, src.length, dstPtr, cap, 1);
  }
  if (n < 0) {
    const err = n === F_ERR_NEED_OUTPUT && exact
      ? new QuartzError(ErrorCode.CORRUPT_DATA, `lz4 frame: decoded data is larger than the declared content size (${bound})`)
      : frameError(wasm, n, limit);
    releaseLarge(wasm);
    throw err;
  }
  const out = takeOut(wasm, dstPtr, n);
  releaseLarge(wasm);
  return out;
}

/** LZ4 block and frame codecs. */
export const lz4 = { compressBlock, decompressBlock, compressFrame, decompressFrame } as const;
