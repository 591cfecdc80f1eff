/**
 * The backup archive ("QZBK", documented in docs/backup.md): a header, then one frame per
 * ordered-KV entry or blob, each tagged with its unit name and closed by a CRC-32, then an end
 * frame with the frame count. Units are named, not numbered, so restoring goes through the
 * Storage port and does not depend on how an adapter lays data out on disk.
 *
 *   header  0: magic "QZBK"  4: version u16 LE (1)  6: flags u16 (0)  8: created_at u64 LE (ms)
 *   kv      0: type u8 = 1   1: name_len u16 LE  3: name  +: key_len u32 LE, key  +: value_len u32 LE, value  +: crc32 u32 LE
 *   blob    0: type u8 = 2   1: name_len u16 LE  3: name  +: key_len u32 LE, key (UTF-8)  +: size u64 LE, bytes  +: crc32 u32 LE
 *   end     0: type u8 = 3   1: frames u64 LE    9: crc32 u32 LE
 * Each crc32 (zlib's CRC-32) covers its frame from the type byte up to the crc.
 */
import { crc32 } from 'node:zlib';
import { ErrorCode, QuartzError } from '../../core/errors.js';
import { MAX_ENTRY_BYTES, MAX_KEY_BYTES } from '../../ports/storage.js';

export const MAGIC = 'QZBK';
export const ARCHIVE_VERSION = 1;
export const HEADER_BYTES = 16;
export const FRAME_KV = 1;
export const FRAME_BLOB = 2;
export const FRAME_END = 3;
export const END_BYTES = 1 + 8 + 4;
/** Blobs are segments, snapshots and large values: far below this; a bigger size is damage. */
const MAX_BLOB_BYTES = 2 ** 32;
/** The most of a blob handed on at once. */
const BLOB_CHUNK_BYTES = 1024 * 1024;

const utf8 = new TextEncoder();
// fatal: our writer only writes UTF-8, and a name decoded with replacement characters would land the data in another unit.
const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

export function header(createdAt: number): Buffer {
  const b = Buffer.alloc(HEADER_BYTES);
  b.write(MAGIC, 0, 'latin1');
  b.writeUInt16LE(ARCHIVE_VERSION, 4);
  b.writeUInt16LE(0, 6);
  b.writeBigUInt64LE(BigInt(createdAt), 8);
  return b;
}

/** Bytes a kv frame takes. */
export function kvFrameBytes(nameBytes: number, keyBytes: number, valueBytes: number): number {
  return 1 + 2 + nameBytes + 4 + keyBytes + 4 + valueBytes + 4;
}

/** Bytes a blob frame takes. */
export function blobFrameBytes(nameBytes: number, keyBytes: number, size: number): number {
  return 1 + 2 + nameBytes + 4 + keyBytes + 8 + size + 4;
}

/** Writes what every frame starts with (type, unit name, key) into `b`; returns where it ends. */
function writeFrameStart(b: Buffer, type: number, name: Uint8Array, key: Uint8Array): number {
  let o = 0;
  b[o++] = type;
  b.writeUInt16LE(name.length, o);
  o += 2;
  b.set(name, o);
  o += name.length;
  b.writeUInt32LE(key.length, o);
  o += 4;
  b.set(key, o);
  return o + key.length;
}

export function kvFrame(name: Uint8Array, key: Uint8Array, value: Uint8Array): Buffer {
  const b = Buffer.allocUnsafe(kvFrameBytes(name.length, key.length, value.length));
  let o = writeFrameStart(b, FRAME_KV, name, key);
  b.writeUInt32LE(value.length, o);
  o += 4;
  b.set(value, o);
  o += value.length;
  b.writeUInt32LE(crc32(b.subarray(0, o)), o);
  return b;
}

/** A blob frame's head (everything before the bytes); the caller streams the bytes and then `blobTrailer`. */
export function blobFrameHead(name: Uint8Array, key: string, size: number): Buffer {
  const k = utf8.encode(key);
  const b = Buffer.allocUnsafe(1 + 2 + name.length + 4 + k.length + 8);
  b.writeBigUInt64LE(BigInt(size), writeFrameStart(b, FRAME_BLOB, name, k));
  return b;
}

export function crcTrailer(crc: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32LE(crc >>> 0, 0);
  return b;
}

export function endFrame(frames: number): Buffer {
  const b = Buffer.allocUnsafe(END_BYTES);
  b[0] = FRAME_END;
  b.writeBigUInt64LE(BigInt(frames), 1);
  b.writeUInt32LE(crc32(b.subarray(0, 9)), 9);
  return b;
}

/**
 * A blob's bytes come as `chunks`, read from the archive as they are taken, so a blob of any size
 * passes through in bounded memory; they must be taken before the next entry (what is left then
 * is read and dropped). The frame's checksum is checked after the last chunk: a consumer that
 * writes them learns of damage only then, and must undo what it wrote.
 */
export type ArchiveEntry =
  | { type: 'kv'; unit: string; key: Uint8Array; value: Uint8Array }
  | { type: 'blob'; unit: string; key: string; size: number; chunks: AsyncIterable<Uint8Array> };

function corrupt(where: string, message: string): QuartzError {
  return new QuartzError(ErrorCode.CORRUPT_DATA, `backup archive ${where}: ${message}`);
}

/** Pulls exact byte counts out of a stream of chunks. */
class ByteReader {
  private chunks: Buffer[] = [];
  private buffered = 0;
  /** Bytes consumed so far. */
  position = 0;
  /** Bytes received from the source so far. */
  received = 0;

  constructor(private readonly source: AsyncIterator<Uint8Array>) {}

  /** Exactly n bytes, or undefined when the input ends first. */
  async read(n: number): Promise<Buffer | undefined> {
    while (this.buffered < n) {
      const next = await this.source.next();
      if (next.done) return undefined;
      const chunk = Buffer.from(next.value.buffer, next.value.byteOffset, next.value.byteLength);
      this.chunks.push(chunk);
      this.buffered += chunk.length;
      this.received += chunk.length;
    }
    const all = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.buffered);
    const out = Buffer.from(all.subarray(0, n)); // a copy: callers keep it past the next read
    const rest = all.subarray(n);
    this.chunks = rest.length > 0 ? [rest] : [];
    this.buffered = rest.length;
    this.position += n;
    return out;
  }

  /** Between 1 and `max` bytes, a view of what has arrived (no gathering), or undefined when the input ends. */
  async readSome(max: number): Promise<Buffer | undefined> {
    while (this.buffered === 0) {
      const next = await this.source.next();
      if (next.done) return undefined;
      this.chunks.push(Buffer.from(next.value.buffer, next.value.byteOffset, next.value.byteLength));
      this.buffered += next.value.byteLength;
      this.received += next.value.byteLength;
    }
    const first = this.chunks[0]!;
    const out = first.subarray(0, max);
    if (out.length === first.length) this.chunks.shift();
    else this.chunks[0] = first.subarray(out.length);
    this.buffered -= out.length;
    this.position += out.length;
    return out;
  }
}

/**
 * Reads an archive's entries in order, checking the header, every frame's CRC and the end frame.
 * Throws CORRUPT_DATA naming the archive and byte position for anything else.
 *
 * @example
 * for await (const entry of readArchive(createReadStream('backup.qzb'), 'backup.qzb')) console.log(entry.unit);
 */
export async function* readArchive(source: AsyncIterable<Uint8Array>, where: string): AsyncGenerator<ArchiveEntry> {
  const r = new ByteReader(source[Symbol.asyncIterator]());
  const need = async (n: number, what: string): Promise<Buffer> => {
    const b = await r.read(n);
    if (b === undefined) throw corrupt(where, `truncated: it ends after ${r.received} bytes, in ${what}`);
    return b;
  };
  const head = await need(HEADER_BYTES, 'the header');
  if (head.toString('latin1', 0, 4) !== MAGIC) throw corrupt(where, 'not a QuartzDB backup (bad magic)');
  const version = head.readUInt16LE(4);
  if (version !== ARCHIVE_VERSION) throw new QuartzError(ErrorCode.UNSUPPORTED_FORMAT, `backup archive ${where}: version ${version} is not supported (this build reads ${ARCHIVE_VERSION})`);
  // No flag is defined yet: one set means a later writer changed the frames in a way this build cannot know.
  const flags = head.readUInt16LE(6);
  if (flags !== 0) throw new QuartzError(ErrorCode.UNSUPPORTED_FORMAT, `backup archive ${where}: header flags 0x${flags.toString(16).padStart(4, '0')} are not supported (this build knows none)`);
  let frames = 0;
  for (;;) {
    const at = r.position;
    const type = (await need(1, 'a frame type'))[0]!;
    if (type === FRAME_END) {
      const rest = await need(12, 'the end frame');
      if (crc32(Buffer.concat([Buffer.of(type), rest.subarray(0, 8)])) !== rest.readUInt32LE(8)) {
        throw corrupt(where, `end frame at byte ${at} fails its checksum`);
      }
      const count = Number(rest.readBigUInt64LE(0));
      if (count !== frames) throw corrupt(where, `end frame says ${count} frames, read ${frames}`);
      if ((await r.read(1)) !== undefined) throw corrupt(where, `data after the end frame at byte ${r.position - 1}`);
      return;
    }
    if (type !== FRAME_KV && type !== FRAME_BLOB) throw corrupt(where, `unknown frame type ${type} at byte ${at}`);
    const nameLen = await need(2, 'a unit name length');
    const name = await need(nameLen.readUInt16LE(0), 'a unit name');
    const keyLen = await need(4, 'a key length');
    if (keyLen.readUInt32LE(0) > MAX_KEY_BYTES) throw corrupt(where, `key length ${keyLen.readUInt32LE(0)} at byte ${at} is over ${MAX_KEY_BYTES}`);
    const key = await need(keyLen.readUInt32LE(0), 'a key');
    let crc = crc32(Buffer.of(type));
    crc = crc32(nameLen, crc);
    crc = crc32(name, crc);
    crc = crc32(keyLen, crc);
    crc = crc32(key, crc);
    const checkTrailer = async (): Promise<void> => {
      const stored = (await need(4, 'a frame checksum')).readUInt32LE(0);
      if (stored !== crc >>> 0) throw corrupt(where, `frame at byte ${at} fails its checksum`);
    };
    const text = (bytes: Buffer, what: string): string => {
      try {
        return strictUtf8.decode(bytes);
      } catch {
        throw corrupt(where, `the ${what} of the frame at byte ${at} is not UTF-8`);
      }
    };
    const unit = text(name, 'unit name');
    if (type === FRAME_KV) {
      const valueLen = await need(4, 'a value length');
      if (valueLen.readUInt32LE(0) > MAX_ENTRY_BYTES) throw corrupt(where, `value length ${valueLen.readUInt32LE(0)} at byte ${at} is over ${MAX_ENTRY_BYTES}`);
      const value = await need(valueLen.readUInt32LE(0), 'a value');
      crc = crc32(value, crc32(valueLen, crc));
      await checkTrailer();
      frames++;
      yield { type: 'kv', unit, key, value };
      continue;
    }
    const sizeField = await need(8, 'a blob size');
    const size = sizeField.readBigUInt64LE(0);
    if (size > BigInt(MAX_BLOB_BYTES)) throw corrupt(where, `blob size ${size} at byte ${at} is impossible`);
    crc = crc32(sizeField, crc);
    // Shared by every pass over the bytes, so whatever the consumer leaves is read (and checked) after it.
    let left = Number(size);
    let checked = false;
    async function* chunks(): AsyncGenerator<Uint8Array> {
      while (left > 0) {
        const part = await r.readSome(Math.min(left, BLOB_CHUNK_BYTES));
        if (part === undefined) throw corrupt(where, `truncated: it ends after ${r.received} bytes, in blob bytes`);
        left -= part.length;
        crc = crc32(part, crc);
        yield part;
      }
      if (!checked) {
        checked = true;
        await checkTrailer();
      }
    }
    frames++;
    yield { type: 'blob', unit, key: text(key, 'blob key'), size: Number(size), chunks: chunks() };
    for await (const _ of chunks());
  }
}
