/**
 * Checksums from the WASM core: xxHash32 (the LZ4 frame's checksum) and CRC32C (Castagnoli,
 * the segment format's checksum). Inputs cross the boundary in one copy, in cache-sized chunks.
 */
import { codecs, type QuartzExports } from './loader.js';
import { ErrorCode, QuartzError } from './errors.js';
import { scratchIn } from './codec-scratch.js';

/** Copy-in chunk: small enough to stay in cache until the hash reads it (a multiple of 16). */
const CHUNK = 256 << 10;

interface HashExports extends QuartzExports {
  xxh32(ptr: number, len: number, seed: number): number;
  xxh32_init(seed: number): void;
  xxh32_stripes(ptr: number, len: number): number;
  xxh32_digest(tail: number, total: number): number;
  crc32c(crc: number, ptr: number, len: number): number;
}

function checkBytes(name: string, bytes: unknown): asserts bytes is Uint8Array {
  if (!(bytes instanceof Uint8Array)) throw new QuartzError(ErrorCode.INVALID_ARGUMENT, `${name}: input must be a Uint8Array`);
}

function checkU32(name: string, what: string, value: unknown): asserts value is number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > 0xffffffff) {
    throw new QuartzError(ErrorCode.INVALID_ARGUMENT, `${name}: ${what} must be an integer from 0 to 0xFFFFFFFF, got ${String(value)}`);
  }
}

/**
 * xxHash32 of `bytes` with `seed` (default 0), as an unsigned 32-bit number.
 * @example
 * await init();
 * xxh32(new Uint8Array(0)); // 0x02CC5D05
 */
export function xxh32(bytes: Uint8Array, seed = 0): number {
  checkBytes('xxh32', bytes);
  checkU32('xxh32', 'seed', seed);
  const wasm = codecs<HashExports>();
  if (bytes.length <= CHUNK) return wasm.xxh32(scratchIn(wasm, 0, bytes), bytes.length, seed) >>> 0;
  // Larger inputs stream through one cache-sized region: whole chunks are whole stripes, and
  // the last chunk's tail of under 16 bytes is still in the region for the digest.
  wasm.xxh32_init(seed);
  let ptr = 0;
  let taken = 0;
  for (let pos = 0; pos < bytes.length; pos += CHUNK) {
    const part = bytes.subarray(pos, pos + CHUNK);
    ptr = scratchIn(wasm, 0, part);
    taken = wasm.xxh32_stripes(ptr, part.length);
  }
  return wasm.xxh32_digest(ptr + taken, bytes.length) >>> 0;
}

/**
 * CRC32C (Castagnoli) of `bytes`, continuing from `crc` (the result of a previous call;
 * default 0), so crc32c(b, crc32c(a)) equals crc32c(a followed by b).
 * @example
 * await init();
 * crc32c(new TextEncoder().encode('123456789')); // 0xE3069283
 */
export function crc32c(bytes: Uint8Array, crc = 0): number {
  checkBytes('crc32c', bytes);
  checkU32('crc32c', 'crc', crc);
  const wasm = codecs<HashExports>();
  // Chunks small enough to stay in cache between the copy in and the CRC, and a scratch
  // region that never grows with the input.
  let c = crc;
  for (let pos = 0; pos < bytes.length; pos += CHUNK) {
    const part = bytes.subarray(pos, pos + CHUNK);
    const ptr = scratchIn(wasm, 0, part);
    c = wasm.crc32c(c, ptr, part.length) >>> 0;
  }
  return c;
}
