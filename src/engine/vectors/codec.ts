/**
 * Byte formats of a vector collection's persistence (tables in docs/vectors.md):
 * change-log entries in the ordered KV and snapshot blobs. Records carry the internal u32 id
 * assigned when the mutation was planned, so replay reproduces the id map exactly whatever
 * the id allocator does. Floats are stored little-endian.
 */
import { ErrorCode, QuartzError } from '../../core/errors.js';
import { crc32c } from '../../core/hash.js';
import { decodeUtf8 } from '../../core/utf8.js';
import { MAX_ENTRY_BYTES } from '../../ports/storage.js';
import type { Metric } from './validate.js';

export const LOG_UPSERT = 1;
export const LOG_DELETE = 2;
const LOG_VERSION = 1;
const LOG_HEADER_BYTES = 8;
/** Room left under the port's entry limit, so a chunk never reaches it. */
const LOG_CHUNK_BYTES = MAX_ENTRY_BYTES - 4096;

const SNAPSHOT_MAGIC = 0x4e535651; // "QVSN" read as little-endian u32
const SNAPSHOT_VERSION = 1;
const SNAPSHOT_HEADER_BYTES = 36;
const METRIC_CODES: Record<Metric, number> = { cosine: 1, l2: 2, dot: 3 };
const METRIC_BY_CODE: Record<number, Metric> = { 1: 'cosine', 2: 'l2', 3: 'dot' };

/** On little-endian hosts (all current ones) floats move as raw bytes instead of one by one. */
const LITTLE_ENDIAN = new Uint8Array(Uint32Array.of(1).buffer)[0] === 1;

export interface UpsertRecord {
  internalId: number;
  id: string;
  idBytes: Uint8Array;
  metadataJson: Uint8Array;
  values: Float32Array;
}

export interface DeleteRecord {
  internalId: number;
  id: string;
  idBytes: Uint8Array;
}

export type LogEntry = { kind: typeof LOG_UPSERT; records: UpsertRecord[] } | { kind: typeof LOG_DELETE; records: DeleteRecord[] };

function corrupt(what: string): QuartzError {
  return new QuartzError(ErrorCode.CORRUPT_DATA, what);
}

/** A little-endian byte writer that grows by doubling. */
class Writer {
  bytes: Uint8Array;
  view: DataView;
  length = 0;

  constructor(capacity: number) {
    this.bytes = new Uint8Array(Math.max(64, capacity));
    this.view = new DataView(this.bytes.buffer);
  }

  reserve(n: number): void {
    if (this.length + n <= this.bytes.length) return;
    let size = this.bytes.length * 2;
    while (size < this.length + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.bytes.subarray(0, this.length));
    this.bytes = next;
    this.view = new DataView(next.buffer);
  }

  u16(v: number): void {
    this.reserve(2);
    this.view.setUint16(this.length, v, true);
    this.length += 2;
  }

  u32(v: number): void {
    this.reserve(4);
    this.view.setUint32(this.length, v, true);
    this.length += 4;
  }

  u64(v: number): void {
    this.reserve(8);
    this.view.setBigUint64(this.length, BigInt(v), true);
    this.length += 8;
  }

  raw(b: Uint8Array): void {
    this.reserve(b.length);
    this.bytes.set(b, this.length);
    this.length += b.length;
  }

  f32s(values: Float32Array): void {
    this.reserve(values.length * 4);
    if (LITTLE_ENDIAN) this.bytes.set(new Uint8Array(values.buffer, values.byteOffset, values.byteLength), this.length);
    else for (let i = 0; i < values.length; i++) this.view.setFloat32(this.length + i * 4, values[i]!, true);
    this.length += values.length * 4;
  }

  finish(): Uint8Array {
    return this.bytes.subarray(0, this.length);
  }
}

/** A bounds-checked little-endian reader: running off the end is CORRUPT_DATA, never a crash. */
class Reader {
  private readonly view: DataView;
  pos: number;

  constructor(
    private readonly bytes: Uint8Array,
    private readonly what: string,
    start = 0,
    private readonly end = bytes.length,
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.pos = start;
  }

  need(n: number): void {
    if (this.pos + n > this.end) throw corrupt(`${this.what} is truncated at byte ${this.pos}`);
  }

  u8(): number {
    this.need(1);
    return this.view.getUint8(this.pos++);
  }

  u16(): number {
    this.need(2);
    const v = this.view.getUint16(this.pos, true);
    this.pos += 2;
    return v;
  }

  u32(): number {
    this.need(4);
    const v = this.view.getUint32(this.pos, true);
    this.pos += 4;
    return v;
  }

  u64(): number {
    this.need(8);
    const v = this.view.getBigUint64(this.pos, true);
    this.pos += 8;
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw corrupt(`${this.what} has an out-of-range sequence number`);
    return Number(v);
  }

  raw(n: number): Uint8Array {
    this.need(n);
    const out = this.bytes.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  text(n: number): string {
    try {
      return decodeUtf8(this.raw(n));
    } catch {
      throw corrupt(`${this.what} holds invalid UTF-8 at byte ${this.pos - n}`);
    }
  }

  f32s(dims: number): Float32Array {
    this.need(dims * 4);
    const out = new Float32Array(dims);
    if (LITTLE_ENDIAN) new Uint8Array(out.buffer).set(this.bytes.subarray(this.pos, this.pos + dims * 4));
    else for (let i = 0; i < dims; i++) out[i] = this.view.getFloat32(this.pos + i * 4, true);
    this.pos += dims * 4;
    return out;
  }

  done(): boolean {
    return this.pos >= this.end;
  }
}

function upsertRecordBytes(r: UpsertRecord): number {
  return 4 + 2 + r.idBytes.length + 4 + r.metadataJson.length + r.values.length * 4;
}

function deleteRecordBytes(r: DeleteRecord): number {
  return 4 + 2 + r.idBytes.length;
}

/**
 * Encodes one mutation as one or more log chunks, each under the port's entry limit. The
 * caller writes all chunks in one atomic batch, so replay never sees part of a mutation.
 * Chunk layout: 0 kind u8 | 1 version u8 | 2 reserved u16 | 4 count u32 | 8 records…
 * upsert record: internal id u32 | id length u16 | id UTF-8 | metadata length u32 | metadata JSON | dims × f32
 * delete record: internal id u32 | id length u16 | id UTF-8
 */
export function encodeLogChunks(entry: LogEntry): Uint8Array[] {
  const chunks: Uint8Array[] = [];
  const size = entry.kind === LOG_UPSERT ? upsertRecordBytes : deleteRecordBytes;
  let start = 0;
  while (start < entry.records.length) {
    let end = start;
    let bytes = LOG_HEADER_BYTES;
    while (end < entry.records.length) {
      const next = size(entry.records[end] as UpsertRecord & DeleteRecord);
      if (end > start && bytes + next > LOG_CHUNK_BYTES) break;
      bytes += next;
      end++;
    }
    const w = new Writer(bytes);
    w.raw(new Uint8Array([entry.kind, LOG_VERSION]));
    w.u16(0);
    w.u32(end - start);
    for (let i = start; i < end; i++) {
      const r = entry.records[i]!;
      w.u32(r.internalId);
      w.u16(r.idBytes.length);
      w.raw(r.idBytes);
      if (entry.kind === LOG_UPSERT) {
        const u = r as UpsertRecord;
        w.u32(u.metadataJson.length);
        w.raw(u.metadataJson);
        w.f32s(u.values);
      }
    }
    chunks.push(w.finish().slice());
    start = end;
  }
  return chunks;
}

/** Decodes one chunk written by encodeLogChunks; `dims` comes from the collection's config. */
export function decodeLogChunk(bytes: Uint8Array, dims: number, what = 'vector change-log entry'): LogEntry {
  const r = new Reader(bytes, what);
  const kind = r.u8();
  const version = r.u8();
  if (version !== LOG_VERSION) throw new QuartzError(ErrorCode.UNSUPPORTED_FORMAT, `${what} has version ${version}; this build reads ${LOG_VERSION}`);
  r.u16();
  const count = r.u32();
  if (kind === LOG_UPSERT) {
    const records: UpsertRecord[] = [];
    for (let i = 0; i < count; i++) {
      const internalId = r.u32();
      const idLength = r.u16();
      const idBytes = r.raw(idLength);
      const id = decodeText(idBytes, what);
      const metadataJson = r.raw(r.u32());
      records.push({ internalId, id, idBytes, metadataJson, values: r.f32s(dims) });
    }
    if (!r.done()) throw corrupt(`${what} has trailing bytes`);
    return { kind, records };
  }
  if (kind === LOG_DELETE) {
    const records: DeleteRecord[] = [];
    for (let i = 0; i < count; i++) {
      const internalId = r.u32();
      const idBytes = r.raw(r.u16());
      records.push({ internalId, id: decodeText(idBytes, what), idBytes });
    }
    if (!r.done()) throw corrupt(`${what} has trailing bytes`);
    return { kind, records };
  }
  throw corrupt(`${what} has unknown kind ${kind}`);
}

function decodeText(bytes: Uint8Array, what: string): string {
  try {
    return decodeUtf8(bytes);
  } catch {
    throw corrupt(`${what} holds an id that is not valid UTF-8`);
  }
}

/** Log keys: "l" | seq u64 BE | chunk u32 BE, so a scan returns mutations in order. */
export function logKey(seq: number, chunk: number): Uint8Array {
  const key = new Uint8Array(13);
  const view = new DataView(key.buffer);
  key[0] = 0x6c;
  view.setBigUint64(1, BigInt(seq));
  view.setUint32(9, chunk);
  return key;
}

export function parseLogKey(key: Uint8Array): { seq: number; chunk: number } {
  if (key.length !== 13 || key[0] !== 0x6c) throw corrupt('vector change-log key is malformed');
  const view = new DataView(key.buffer, key.byteOffset, key.byteLength);
  return { seq: Number(view.getBigUint64(1)), chunk: view.getUint32(9) };
}

/** Pieces small enough not to grow the shared codec instance's memory for a big snapshot. */
const CRC_PIECE = 4 * 1024 * 1024;

function checksum(bytes: Uint8Array): number {
  let crc = 0;
  for (let at = 0; at < bytes.length; at += CRC_PIECE) crc = crc32c(bytes.subarray(at, at + CRC_PIECE), crc);
  return crc;
}

export interface SnapshotRecord {
  internalId: number;
  id: string;
  metadataJson: Uint8Array;
  values: Float32Array;
}

export interface SnapshotContents {
  dims: number;
  metric: Metric;
  /** The last change-log sequence number the snapshot covers (0: none). */
  seq: number;
  records: SnapshotRecord[];
  /** HnswIndex.serialize() bytes. */
  index: Uint8Array;
}

/**
 * Snapshot layout: 0 magic "QVSN" | 4 version u16 | 6 metric u16 | 8 dims u32 | 12 seq u64 |
 * 20 count u32 | 24 reserved u32 | 28 index length u32 | 32 reserved u32 | 36 records… |
 * index bytes | crc32c u32 of everything before it.
 */
export function encodeSnapshot(s: SnapshotContents): Uint8Array {
  let estimate = SNAPSHOT_HEADER_BYTES + s.index.length + 4;
  for (const r of s.records) estimate += 10 + r.metadataJson.length + r.id.length * 3 + s.dims * 4;
  const w = new Writer(estimate);
  w.u32(SNAPSHOT_MAGIC);
  w.u16(SNAPSHOT_VERSION);
  w.u16(METRIC_CODES[s.metric]);
  w.u32(s.dims);
  w.u64(s.seq);
  w.u32(s.records.length);
  w.u32(0);
  w.u32(s.index.length);
  w.u32(0);
  const encoder = new TextEncoder();
  for (const r of s.records) {
    const idBytes = encoder.encode(r.id);
    w.u32(r.internalId);
    w.u16(idBytes.length);
    w.raw(idBytes);
    w.u32(r.metadataJson.length);
    w.raw(r.metadataJson);
    w.f32s(r.values);
  }
  w.raw(s.index);
  const body = w.finish();
  w.u32(checksum(body));
  return w.finish().slice();
}

export function decodeSnapshot(bytes: Uint8Array, what = 'vector snapshot'): SnapshotContents {
  if (!(bytes instanceof Uint8Array)) throw new QuartzError(ErrorCode.INVALID_ARGUMENT, `${what} must be a Uint8Array`);
  if (bytes.length < SNAPSHOT_HEADER_BYTES + 4) throw corrupt(`${what} is too short (${bytes.length} bytes)`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (view.getUint32(0, true) !== SNAPSHOT_MAGIC) throw new QuartzError(ErrorCode.UNSUPPORTED_FORMAT, `${what} does not start with the QVSN magic`);
  const stored = view.getUint32(bytes.length - 4, true);
  if (checksum(bytes.subarray(0, bytes.length - 4)) !== stored) {
    throw new QuartzError(ErrorCode.CHECKSUM_MISMATCH, `${what} fails its CRC-32C check (torn or corrupted)`);
  }
  const r = new Reader(bytes, what, 4, bytes.length - 4);
  const version = r.u16();
  if (version !== SNAPSHOT_VERSION) {
    throw new QuartzError(ErrorCode.UNSUPPORTED_FORMAT, `${what} has version ${version}; this build reads ${SNAPSHOT_VERSION}`);
  }
  const metric = METRIC_BY_CODE[r.u16()];
  if (metric === undefined) throw corrupt(`${what} names an unknown metric`);
  const dims = r.u32();
  if (dims < 1 || dims > 4096) throw corrupt(`${what} has ${dims} dimensions`);
  const seq = r.u64();
  const count = r.u32();
  r.u32();
  const indexLength = r.u32();
  r.u32();
  const records: SnapshotRecord[] = [];
  for (let i = 0; i < count; i++) {
    const internalId = r.u32();
    const id = r.text(r.u16());
    const metadataJson = r.raw(r.u32()).slice();
    records.push({ internalId, id, metadataJson, values: r.f32s(dims) });
  }
  const index = r.raw(indexLength).slice();
  if (!r.done()) throw corrupt(`${what} has trailing bytes`);
  return { dims, metric, seq, records, index };
}
