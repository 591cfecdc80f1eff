/**
 * The bytes of one KV entry as the `kv/<tenant>` unit stores them, and the unit's key layout.
 * Binary on purpose: the record header is read on every get, so it must cost a few shifts, not
 * a JSON parse.
 *
 * Unit keys (first byte is the kind):
 *   'd' + key (UTF-8)                          → record (below)
 *   'x' + expires_at (u64 BE, ms) + key        → empty; the TTL index the sweep walks in time order
 *   'g' + blob name (UTF-8)                    → empty; "this blob is garbage": written before a
 *                                                blob upload and cleared atomically with the
 *                                                record that adopts it, so a crash leaves a marker,
 *                                                never an unreferenced blob nobody knows about
 *   'm' + 'version'                            → u64 BE high-water mark of issued versions
 *
 * Record:
 *   0: format u8 (1)   1: flags u8 (bit 0: value lives in the blob store; bit 1: the blob's CRC32C
 *      precedes its name)   2: content-type length u8
 *   3: version u64 BE   11: expires_at u64 BE (ms since epoch, 0 = never)   19: value size u32 BE
 *   23: content type (ASCII)   then: the value bytes; or, when bit 0 is set, the blob's CRC32C
 *      (u32 BE, only when bit 1 is set) and the blob name (UTF-8). Pointers written before the
 *      CRC have bit 1 clear: their blob is checked for length only.
 */
import { ErrorCode, QuartzError } from '../../core/errors.js';
import { decodeUtf8 } from '../../core/utf8.js';

export const TAG_DATA = 0x64; // 'd'
export const TAG_TTL = 0x78; // 'x'
export const TAG_GARBAGE = 0x67; // 'g'
export const TAG_META = 0x6d; // 'm'

export const RECORD_FORMAT = 1;
export const FLAG_BLOB = 1;
/** Set on every blob pointer written since pointers carry their blob's CRC32C. */
export const FLAG_BLOB_CRC = 2;
const KNOWN_FLAGS = FLAG_BLOB | FLAG_BLOB_CRC;
export const BLOB_CRC_BYTES = 4;
export const HEADER_BYTES = 23;

const utf8 = new TextEncoder();

/** Writes a non-negative integer below 2^53 as 8 bytes big-endian (bytewise order = numeric order). */
export function writeU64(buf: Uint8Array, at: number, v: number): void {
  const hi = Math.floor(v / 0x1_0000_0000);
  const lo = v >>> 0;
  buf[at] = hi >>> 24;
  buf[at + 1] = hi >>> 16;
  buf[at + 2] = hi >>> 8;
  buf[at + 3] = hi;
  buf[at + 4] = lo >>> 24;
  buf[at + 5] = lo >>> 16;
  buf[at + 6] = lo >>> 8;
  buf[at + 7] = lo;
}

export function readU64(buf: Uint8Array, at: number): number {
  const hi = ((buf[at]! << 24) | (buf[at + 1]! << 16) | (buf[at + 2]! << 8) | buf[at + 3]!) >>> 0;
  const lo = ((buf[at + 4]! << 24) | (buf[at + 5]! << 16) | (buf[at + 6]! << 8) | buf[at + 7]!) >>> 0;
  return hi * 0x1_0000_0000 + lo;
}

function readU32(buf: Uint8Array, at: number): number {
  return ((buf[at]! << 24) | (buf[at + 1]! << 16) | (buf[at + 2]! << 8) | buf[at + 3]!) >>> 0;
}

/** Fills in a record header; the caller has sized `rec` and placed the content type and body. */
export function writeHeader(rec: Uint8Array, flags: number, contentType: Uint8Array, version: number, expiresAt: number, size: number): void {
  rec[0] = RECORD_FORMAT;
  rec[1] = flags;
  rec[2] = contentType.length;
  writeU64(rec, 3, version);
  writeU64(rec, 11, expiresAt);
  rec[19] = size >>> 24;
  rec[20] = size >>> 16;
  rec[21] = size >>> 8;
  rec[22] = size;
  rec.set(contentType, HEADER_BYTES);
}

/**
 * Small zeroed buffers carved from a shared slab: a fresh ArrayBuffer per put costs more than the
 * put's own work. Pieces are never reused, so a slab lives until its last piece is dropped.
 */
export class Slab {
  private buffer: ArrayBuffer;
  private used = 0;

  constructor(
    private readonly slabBytes: number,
    /** Larger requests get an ArrayBuffer of their own. */
    private readonly maxPiece: number,
  ) {
    this.buffer = new ArrayBuffer(slabBytes);
  }

  alloc(n: number): Uint8Array {
    if (n > this.maxPiece) return new Uint8Array(n);
    if (this.used + n > this.slabBytes) {
      this.buffer = new ArrayBuffer(this.slabBytes);
      this.used = 0;
    }
    // A view constructor, not subarray: subarray goes through the species lookup and costs more.
    const piece = new Uint8Array(this.buffer, this.used, n);
    this.used += n;
    return piece;
  }
}

const recordSlab = new Slab(64 * 1024, 4096);
// Values handed to callers come from smaller slabs of their own, as Node's Buffer pool does: a
// caller may keep a value for long, and a kept piece pins its whole slab.
const valueSlab = new Slab(8 * 1024, 4 * 1024 - 1);

/** `n` zeroed bytes nobody else will ever write to. */
export function allocBytes(n: number): Uint8Array {
  return recordSlab.alloc(n);
}

/** `n` zeroed bytes for a value handed to a caller. */
export function allocValue(n: number): Uint8Array {
  return valueSlab.alloc(n);
}

/** A slab of a RecordPool: `live` pieces of it are still held; `carved` once no more fit in it. */
interface PoolSlab {
  readonly buffer: ArrayBuffer;
  live: number;
  carved: boolean;
}

/**
 * Pieces carved from slabs that are used again once every piece of them has been released.
 * NOTE: works around V8's full-GC trigger. V8 counts ArrayBuffer bytes allocated since the last
 * full GC (those of young, already dead buffers too, until a sweep after the next young GC frees
 * them) against the old generation's allocation limit. A fresh 1 KB record per put allocated
 * about as many ArrayBuffer bytes as JS heap, so the count reached the limit at about every
 * young GC and V8 followed almost every one with a full GC (1,000 1 KB puts in flight: 20-45 in 3 s
 * instead of 1, and 4-5 instead of 3 µs CPU per put). Reused slabs allocate nothing.
 * A piece never released (a write that failed) keeps its slab out of reuse, and the garbage
 * collector takes that slab as before.
 */
export class RecordPool {
  private slab: PoolSlab;
  private used = 0;
  private readonly free: PoolSlab[] = [];
  private readonly slabOf = new WeakMap<ArrayBuffer, PoolSlab>();

  constructor(
    private readonly slabBytes: number,
    /** Larger requests get an ArrayBuffer of their own, never reused. */
    private readonly maxPiece: number,
    /** Released slabs kept for reuse; more are left to the garbage collector. */
    private readonly maxFree: number,
  ) {
    this.slab = this.newSlab();
  }

  private newSlab(): PoolSlab {
    const slab: PoolSlab = { buffer: new ArrayBuffer(this.slabBytes), live: 0, carved: false };
    this.slabOf.set(slab.buffer, slab);
    return slab;
  }

  /** `n` bytes of unspecified content, which the caller overwrites. */
  alloc(n: number): Uint8Array {
    if (n > this.maxPiece) return new Uint8Array(n);
    if (this.used + n > this.slabBytes) {
      const full = this.slab;
      if (full.live > 0) {
        full.carved = true;
        this.slab = this.free.pop() ?? this.newSlab();
      }
      this.used = 0;
    }
    this.slab.live++;
    const piece = new Uint8Array(this.slab.buffer, this.used, n);
    this.used += n;
    return piece;
  }

  /** Gives back a piece from `alloc` that nobody (storage included) will read again. At most once per piece. */
  release(piece: Uint8Array): void {
    const slab = this.slabOf.get(piece.buffer as ArrayBuffer);
    if (slab === undefined || --slab.live > 0 || !slab.carved) return;
    slab.carved = false;
    if (this.free.length < this.maxFree) this.free.push(slab);
    else this.slabOf.delete(slab.buffer);
  }
}

// 64 slabs of 64 KiB: the records of a few thousand puts in flight.
const recordPool = new RecordPool(64 * 1024, 4096, 64);

/**
 * Allocates a record with room for the header, the content type and `body` bytes after them.
 * Its bytes are unspecified: the caller writes all of them (writeHeader, the body).
 */
export function allocRecord(contentType: Uint8Array, bodyBytes: number): Uint8Array {
  return recordPool.alloc(HEADER_BYTES + contentType.length + bodyBytes);
}

/** Returns a record from allocRecord for reuse once storage and the store are done with it (see RecordPool). */
export function releaseRecord(rec: Uint8Array): void {
  recordPool.release(rec);
}

export function bodyOffset(rec: Uint8Array): number {
  return HEADER_BYTES + rec[2]!;
}

/** Throws CORRUPT_DATA unless `rec` is a well-formed record (checked on every read: storage is input too). */
export function checkRecord(rec: Uint8Array, key: string): void {
  if (rec.length < HEADER_BYTES || rec[0] !== RECORD_FORMAT || rec.length < HEADER_BYTES + rec[2]!) {
    throw new QuartzError(ErrorCode.CORRUPT_DATA, `stored record for key '${key}' is not a format-${RECORD_FORMAT} KV record`);
  }
  const flags = rec[1]!;
  if ((flags & FLAG_BLOB) === 0 && rec.length - bodyOffset(rec) !== readU32(rec, 19)) {
    throw new QuartzError(ErrorCode.CORRUPT_DATA, `stored record for key '${key}' has a size that does not match its value`);
  }
  // An unknown flag could change how the body reads: refused rather than guessed at.
  const crcWithoutBlob = (flags & FLAG_BLOB_CRC) !== 0 && (flags & FLAG_BLOB) === 0;
  if ((flags & ~KNOWN_FLAGS) !== 0 || crcWithoutBlob || ((flags & FLAG_BLOB_CRC) !== 0 && rec.length < bodyOffset(rec) + BLOB_CRC_BYTES)) {
    throw new QuartzError(ErrorCode.CORRUPT_DATA, `stored record for key '${key}' has flags ${flags} this version does not read`);
  }
}

export const recordFlags = (rec: Uint8Array): number => rec[1]!;
export const recordVersion = (rec: Uint8Array): number => readU64(rec, 3);
export const recordExpiresAt = (rec: Uint8Array): number => readU64(rec, 11);
export const recordSize = (rec: Uint8Array): number => readU32(rec, 19);

/** Expired records are invisible at once, whether or not the sweep has purged them yet. */
export function isExpired(rec: Uint8Array, now: number): boolean {
  const at = readU64(rec, 11);
  return at !== 0 && at <= now;
}

// One-entry cache: a tenant mostly stores one or two content types, so decoding is usually a compare.
let lastTypeBytes = new Uint8Array(0);
let lastType = '';

export function recordContentType(rec: Uint8Array): string {
  const n = rec[2]!;
  if (n === lastTypeBytes.length) {
    let same = true;
    for (let i = 0; i < n; i++) {
      if (rec[HEADER_BYTES + i] !== lastTypeBytes[i]) {
        same = false;
        break;
      }
    }
    if (same) return lastType;
  }
  lastTypeBytes = rec.slice(HEADER_BYTES, HEADER_BYTES + n);
  lastType = String.fromCharCode(...lastTypeBytes);
  return lastType;
}

/** The CRC32C a blob pointer carries, or undefined for a pointer written before pointers carried one. */
export function recordBlobCrc(rec: Uint8Array): number | undefined {
  return (rec[1]! & FLAG_BLOB_CRC) === 0 ? undefined : readU32(rec, bodyOffset(rec));
}

/** Places a blob pointer's body (CRC32C, then the name) after a content type of `typeBytes` bytes. */
export function writeBlobPointer(rec: Uint8Array, typeBytes: number, crc: number, name: Uint8Array): void {
  const at = HEADER_BYTES + typeBytes;
  rec[at] = crc >>> 24;
  rec[at + 1] = crc >>> 16;
  rec[at + 2] = crc >>> 8;
  rec[at + 3] = crc;
  rec.set(name, at + BLOB_CRC_BYTES);
}

export function recordBlobName(rec: Uint8Array, key: string): string {
  try {
    return decodeUtf8(rec.subarray(bodyOffset(rec) + ((rec[1]! & FLAG_BLOB_CRC) === 0 ? 0 : BLOB_CRC_BYTES)));
  } catch (cause) {
    throw new QuartzError(ErrorCode.CORRUPT_DATA, `stored record for key '${key}' names an unreadable blob`, { cause });
  }
}

export function encodeUtf8(s: string): Uint8Array {
  return utf8.encode(s);
}

/** `tag` + the UTF-8 of `s`. */
export function tagged(tag: number, s: string): Uint8Array {
  const buf = new Uint8Array(1 + s.length * 3);
  buf[0] = tag;
  const { written } = utf8.encodeInto(s, buf.subarray(1));
  return buf.subarray(0, 1 + written);
}

/** 'x' + expires_at + key bytes (without the data tag). */
export function ttlKey(expiresAt: number, dataKey: Uint8Array): Uint8Array {
  const k = new Uint8Array(9 + dataKey.length - 1);
  // The data key's tag lands on the expiry's last byte, which is written over it next: no
  // subarray (a species lookup and a view per call, on every put with a TTL).
  k.set(dataKey, 8);
  k[0] = TAG_TTL;
  writeU64(k, 1, expiresAt);
  return k;
}
