/**
 * The write-ahead log of the Node disk storage: two files, `wal-0` and `wal-1`, used in turn.
 * A group of records is one O_DSYNC pwrite (one device flush), so an acknowledged write costs one
 * flush instead of lmdb's two (data, then meta) per commit. Once lmdb holds a file's records
 * (journal.ts applies them in batches, each fsync'd), the file is overwritten in place from the
 * start: the same blocks, so a flush has no size or extent metadata to write.
 *
 * File layout (little-endian):
 *   0     header: magic "QZWL" u32 | version u16 | reserved u16 | epoch u32 | crc32c of bytes 0-11 u32
 *   4096  frames, back to back; one frame is one write (a group of writes, all acknowledged together):
 *           0 length of the body u32 | 4 crc32c of bytes 8..(12 + length), xor the log key, u32 |
 *           8 epoch xor the log key u32 | 12 body
 *         body: records back to back; a record is one put, delete or atomic batch:
 *           0 length of the rest u32 | 4 op count u32 | per op:
 *             type u8 (1 put, 2 delete) | key length u16 | value length u32 (puts only) | key | value
 *           (the key is lmdb's: unit id ‖ caller's key)
 * A file's epoch is one more than the file before it, so replay reads the older file, then the newer.
 * A file is closed by a seal (a frame with an empty body) before the writer moves on, and at a
 * clean close where the log ends; bytes after a file's last frame are an earlier epoch's leftovers,
 * which fail the CRC or carry the wrong epoch, or (behind a seal) whole frames written behind a
 * write that failed (journal.ts `rewind`). Replay tells a crash's torn tail from damage with
 * acknowledged frames behind it (see `recover`).
 *
 * The log key: a random u32 per data directory, kept in lmdb (journal.ts LOG_KEY), xor'd into every
 * frame's epoch field and CRC. A stored value can hold bytes that read as whole frames or seals of
 * a later epoch (length, CRC32C and epoch are all computable), and they stay in a file until it is
 * overwritten; found behind a crash's torn tail, one such seal made the crash read as damage and
 * refused the open, and values packed with the epoch's four bytes made the search behind the stop
 * check a candidate frame at each (17x the CPU of an open). Without the key (never stored in the
 * files, never seen by a caller) a value can neither forge a frame nor place the search's tag.
 * 0 (directories from before it) is the plain epoch and CRC.
 */
import { constants, fstatSync, openSync, readSync, write, writeSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { crc32c } from '../../core/hash.js';
import type { BatchOp } from '../../ports/storage.js';

export const WAL_FILES = ['wal-0', 'wal-1'] as const;
/**
 * Group writes the journal keeps in flight at once, at consecutive positions; each is acknowledged
 * only once it and every frame before it are on disk. So after a crash at most this many frames
 * past the last acknowledged one can be on disk, whole or not: replay tells a torn tail from
 * damage by it (see `recover`). The disk overlaps flushes (measured with dd, 4 KiB O_DSYNC
 * overwrites: 7.2k/s from one writer, 16.5k/s from two, 18.5k/s from four), and with one write in
 * flight ten connections cannot fill groups fast enough to use it.
 */
export const WRITES_IN_FLIGHT = 3;
export const HEADER_BYTES = 4096;
/** A frame's head; the writer keeps this much room in front of the records it gathers. */
export const FRAME_HEAD = 12;
const RECORD_HEAD = 8;
/** A seal: a frame with no records. */
export const SEAL_BYTES = FRAME_HEAD;
const MAGIC = 0x4c575a51; // "QZWL" read as a little-endian u32
const VERSION = 1;
export const OP_PUT = 1;
export const OP_DELETE = 2;

/** A place in the log: the end of a record in the file of `epoch`. */
export interface LogPosition {
  epoch: number;
  offset: number;
}

export interface LoggedOp {
  type: typeof OP_PUT | typeof OP_DELETE;
  /** unit id ‖ key */
  key: Uint8Array;
  value?: Uint8Array;
}

export interface LogFile {
  /** Its name in the data directory (one of WAL_FILES). */
  name: string;
  fd: number;
  /**
   * The epoch in its header; when the header is damaged, the epoch of the frame right after it
   * (frames carry their epoch and CRC, the header holds nothing else); 0 when neither reads.
   */
  epoch: number;
  /** Its header did not read (then `epoch` came from its first frame, if any). */
  headerDamaged: boolean;
  size: number;
}

export function encodeHeader(epoch: number): Buffer {
  const head = Buffer.alloc(HEADER_BYTES);
  head.writeUInt32LE(MAGIC, 0);
  head.writeUInt16LE(VERSION, 4);
  head.writeUInt32LE(epoch, 8);
  head.writeUInt32LE(crc32c(head.subarray(0, 12)), 12);
  return head;
}

function decodeHeader(head: Buffer): number {
  if (head.length < 16 || head.readUInt32LE(0) !== MAGIC || head.readUInt16LE(4) !== VERSION) return 0;
  return crc32c(head.subarray(0, 12)) === head.readUInt32LE(12) ? head.readUInt32LE(8) : 0;
}

/** `key`: the log key the files' frames were written with (see the top of this file). */
export function openLogFiles(dir: string, key: number): LogFile[] {
  return WAL_FILES.map((name) => {
    // O_DSYNC: each pwrite returns once its bytes (and, while the file still grows, its size) are on disk.
    const fd = openSync(join(dir, name), constants.O_RDWR | constants.O_CREAT | constants.O_DSYNC, 0o644);
    const size = fstatSync(fd).size;
    const head = Buffer.alloc(16);
    const n = size >= 16 ? readSync(fd, head, 0, 16, 0) : 0;
    const epoch = n === 16 ? decodeHeader(head) : 0;
    // A new file is empty; one whose header does not read was damaged, or torn while a file
    // switch wrote it (its frames are then an epoch lmdb holds already).
    const headerDamaged = epoch === 0 && size > 0;
    return { name, fd, epoch: headerDamaged ? firstFrameEpoch(fd, size, key) : epoch, headerDamaged, size };
  });
}

/** The epoch of the frame at HEADER_BYTES if it reads whole, else 0. */
function firstFrameEpoch(fd: number, size: number, key: number): number {
  const head = Buffer.alloc(FRAME_HEAD);
  if (size < HEADER_BYTES + FRAME_HEAD || readSync(fd, head, 0, FRAME_HEAD, HEADER_BYTES) !== FRAME_HEAD) return 0;
  const length = head.readUInt32LE(0);
  if (HEADER_BYTES + FRAME_HEAD + length > size) return 0;
  const frame = Buffer.alloc(FRAME_HEAD + length);
  readSync(fd, frame, 0, frame.length, HEADER_BYTES);
  const epoch = (frame.readUInt32LE(8) ^ key) >>> 0;
  return epoch !== 0 && frameAt(frame, 0, epoch, key).kind !== 'bad' ? epoch : 0;
}

export function closeLogFiles(files: LogFile[]): void {
  for (const f of files) closeSync(f.fd);
}

/** The bytes the record of a unit's batch `ops` takes in the log (each key behind the 4-byte unit id). */
export function recordBytes(ops: readonly BatchOp[]): number {
  let n = RECORD_HEAD;
  for (const op of ops) n += op.type === 'put' ? 11 + op.key.length + op.value.length : 7 + op.key.length;
  return n;
}

/**
 * Writes the record of unit `id`'s batch `ops` at `at`; returns its end. Each op's key is logged as
 * `id ‖ key`, written here rather than built per op (a batch with a TTL holds three ops; a roll's
 * tail deletes thousands).
 */
export function encodeRecord(buf: Buffer, at: number, id: number, ops: readonly BatchOp[]): number {
  // 0: length u32 | 4: op count u32 | per op: type u8 | key length u16 | (put: value length u32) | id u32 BE | key | (put: value)
  let p = at + 4;
  buf.writeUInt32LE(ops.length, p);
  p += 4;
  for (const op of ops) {
    const key = op.key;
    if (op.type === 'put') {
      const value = op.value;
      buf[p] = OP_PUT;
      buf.writeUInt16LE(key.length + 4, p + 1);
      buf.writeUInt32LE(value.length, p + 3);
      buf.writeUInt32BE(id, p + 7);
      p += 11;
      buf.set(key, p);
      p += key.length;
      buf.set(value, p);
      p += value.length;
    } else {
      buf[p] = OP_DELETE;
      buf.writeUInt16LE(key.length + 4, p + 1);
      buf.writeUInt32BE(id, p + 3);
      p += 7;
      buf.set(key, p);
      p += key.length;
    }
  }
  buf.writeUInt32LE(p - at - 4, at);
  return p;
}

/** The record of one put, without an ops array (the hot path). */
export function encodePut(buf: Buffer, at: number, id: number, key: Uint8Array, value: Uint8Array): number {
  const k = key.length;
  const n = value.length;
  // 0: length u32 | 4: op count u32 = 1 | 8: type u8 | 9: key length u16 | 11: value length u32 | 15: id u32 BE | 19: key | value
  buf.writeUInt32LE(15 + k + n, at);
  buf.writeUInt32LE(1, at + 4);
  buf[at + 8] = OP_PUT;
  buf.writeUInt16LE(k + 4, at + 9);
  buf.writeUInt32LE(n, at + 11);
  buf.writeUInt32BE(id, at + 15);
  buf.set(key, at + 19);
  buf.set(value, at + 19 + k);
  return at + 19 + k + n;
}

/** The record of one delete. */
export function encodeDelete(buf: Buffer, at: number, id: number, key: Uint8Array): number {
  const k = key.length;
  // 0: length u32 | 4: op count u32 = 1 | 8: type u8 | 9: key length u16 | 11: id u32 BE | 15: key
  buf.writeUInt32LE(11 + k, at);
  buf.writeUInt32LE(1, at + 4);
  buf[at + 8] = OP_DELETE;
  buf.writeUInt16LE(k + 4, at + 9);
  buf.writeUInt32BE(id, at + 11);
  buf.set(key, at + 15);
  return at + 15 + k;
}

export function putBytes(key: Uint8Array, value: Uint8Array): number {
  return 19 + key.length + value.length;
}

export function deleteBytes(key: Uint8Array): number {
  return 15 + key.length;
}

/** Fills in the frame head at buf[from, from + FRAME_HEAD) for the records up to `to`; `key` is the log key. */
export function stampFrame(buf: Buffer, from: number, to: number, epoch: number, key: number): void {
  buf.writeUInt32LE(to - from - FRAME_HEAD, from);
  buf.writeUInt32LE((epoch ^ key) >>> 0, from + 8);
  buf.writeUInt32LE(frameCheck(buf.subarray(from + 8, to), key), from + 4);
}

/** What a frame's CRC field holds for its bytes from the epoch on. */
function frameCheck(bytes: Buffer, key: number): number {
  return (crc32c(bytes) ^ key) >>> 0;
}

export function seal(epoch: number, key: number): Buffer {
  const frame = Buffer.alloc(SEAL_BYTES);
  stampFrame(frame, 0, SEAL_BYTES, epoch, key);
  return frame;
}

export function recordLength(buf: Buffer, at: number): number {
  return 4 + buf.readUInt32LE(at);
}

/** One pwrite at `position`, resolved when it is on disk (the fd is O_DSYNC). */
export function writeAt(fd: number, buf: Buffer, from: number, to: number, position: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const step = (at: number, pos: number) =>
      write(fd, buf, at, to - at, pos, (err, n) => {
        if (err) reject(err);
        else if (at + n < to) step(at + n, pos + n);
        else resolve();
      });
    step(from, position);
  });
}

export function writeAtSync(fd: number, buf: Buffer, position: number): void {
  for (let at = 0; at < buf.length; ) at += writeSync(fd, buf, at, buf.length - at, position + at);
}

/** Where replay stopped before frames that were acknowledged (see `recover`). */
export interface LogDamage {
  /** The log file (one of WAL_FILES) and the byte offset in it where replay stopped. */
  file: string;
  offset: number;
  /** Why the bytes there do not read as the next frame. */
  reason: string;
  /** Whole frames (and the records in them: puts, deletes or batches) found after it, which replay leaves out. */
  frames: number;
  records: number;
}

export interface Recovered {
  /** The ops of every frame after `after`, in log order, up to the first torn or damaged frame. */
  records: { ops: LoggedOp[]; end: LogPosition }[];
  /** The highest epoch any file names (the next writer starts above it). */
  maxEpoch: number;
  /** Set when frames that must have been acknowledged lie beyond where replay stopped. */
  damage?: LogDamage;
}

/**
 * Walks the records in bytes[from, end): their number if they parse whole, else -1. `onOp` sees
 * each op (views of `bytes`) as it is read; replay builds ops this way, the damage search only counts.
 */
function walkRecords(bytes: Buffer, from: number, end: number, onOp?: (op: LoggedOp) => void): number {
  let records = 0;
  for (let r = from; r < end; records++) {
    if (r + RECORD_HEAD > end) return -1;
    const recordEnd = r + 4 + bytes.readUInt32LE(r);
    if (recordEnd > end) return -1;
    let p = r + RECORD_HEAD;
    for (let i = bytes.readUInt32LE(r + 4); i > 0; i--) {
      if (p + 3 > recordEnd) return -1;
      const type = bytes[p]!;
      const keyLength = bytes.readUInt16LE(p + 1);
      if (type === OP_PUT) {
        if (p + 7 > recordEnd) return -1;
        const valueLength = bytes.readUInt32LE(p + 3);
        p += 7;
        if (p + keyLength + valueLength > recordEnd) return -1;
        onOp?.({ type, key: bytes.subarray(p, p + keyLength), value: bytes.subarray(p + keyLength, p + keyLength + valueLength) });
        p += keyLength + valueLength;
      } else if (type === OP_DELETE) {
        p += 3;
        if (p + keyLength > recordEnd) return -1;
        onOp?.({ type, key: bytes.subarray(p, p + keyLength) });
        p += keyLength;
      } else return -1;
    }
    if (p !== recordEnd) return -1;
    r = recordEnd;
  }
  return records;
}

type FrameRead = { kind: 'frame'; end: number; records: number } | { kind: 'seal'; end: number } | { kind: 'bad' };

/** The frame of `epoch` at bytes[p] if it is whole: its length, epoch, records and CRC32C all check. */
function frameAt(bytes: Buffer, p: number, epoch: number, key: number): FrameRead {
  if (p < 0 || p + FRAME_HEAD > bytes.length) return { kind: 'bad' };
  const end = p + FRAME_HEAD + bytes.readUInt32LE(p);
  if (end > bytes.length || bytes.readUInt32LE(p + 8) !== (epoch ^ key) >>> 0) return { kind: 'bad' };
  // The layout first: it rules out most false starts of a scan (see framesFrom) before a CRC over them.
  const records = walkRecords(bytes, p + FRAME_HEAD, end);
  if (records < 0 || frameCheck(bytes.subarray(p + 8, end), key) !== bytes.readUInt32LE(p + 4)) return { kind: 'bad' };
  return records === 0 ? { kind: 'seal', end } : { kind: 'frame', end, records };
}

/** Why the bytes at bytes[p] are not a frame of `epoch`, for the damage report. */
function whyBad(bytes: Buffer, p: number, epoch: number, key: number): string {
  if (p + FRAME_HEAD > bytes.length) return 'the file ends there';
  const end = p + FRAME_HEAD + bytes.readUInt32LE(p);
  if (end > bytes.length) return 'its length runs past the end of the file';
  const found = (bytes.readUInt32LE(p + 8) ^ key) >>> 0;
  if (found !== epoch) return `its epoch is ${found}, not the file's ${epoch}`;
  if (frameCheck(bytes.subarray(p + 8, end), key) !== bytes.readUInt32LE(p + 4)) return 'its CRC32C does not match';
  return 'its records do not parse';
}

/**
 * The whole frames of `epoch` that start at or after bytes[from]: found by their epoch field (a
 * native search for the four bytes it holds, which only the log key's holder can place), each
 * checked whole, then followed frame to frame. Stops at a seal.
 */
function framesFrom(bytes: Buffer, from: number, epoch: number, key: number): { frames: number; records: number; sealed: boolean } {
  const tag = Buffer.alloc(4);
  tag.writeUInt32LE((epoch ^ key) >>> 0);
  let frames = 0;
  let records = 0;
  for (let search = from + 8; ; ) {
    const hit = bytes.indexOf(tag, search);
    if (hit < 0) return { frames, records, sealed: false };
    let p = hit - 8;
    for (let read = frameAt(bytes, p, epoch, key); read.kind !== 'bad'; read = frameAt(bytes, p, epoch, key)) {
      if (read.kind === 'seal') return { frames, records, sealed: true };
      frames++;
      records += read.records;
      p = read.end;
    }
    search = Math.max(hit, p + 8) + 1;
  }
}

/** The bytes of `file` from offset `from` to its end. */
function readFrom(file: LogFile, from: number): Buffer {
  const bytes = Buffer.alloc(Math.max(0, file.size - from));
  for (let at = 0; at < bytes.length; ) {
    const n = readSync(file.fd, bytes, at, bytes.length - at, from + at);
    if (n === 0) return bytes.subarray(0, at);
    at += n;
  }
  return bytes;
}

/**
 * Reads the frames written after `after` (lmdb's applied position), oldest file first, and stops
 * at the first frame that is torn, fails its CRC, or belongs to another epoch. Moving on to the
 * next file takes the older file's seal.
 *
 * A crash leaves a torn tail: the frames in flight, at most WRITES_IN_FLIGHT (none acknowledged,
 * since a frame is acknowledged only once every frame before it is on disk), so at most
 * WRITES_IN_FLIGHT - 1 whole ones behind the first that did not land, and never a seal (written
 * with nothing in flight) nor a newer file's header (written after the seal). Anything more
 * behind the stop means the frame there was once whole and acknowledged frames follow it: that
 * is `damage`, which the caller must not pass over silently. Frames before `after` are not read:
 * lmdb holds their records, so damage there loses nothing. A clean close seals the file where the
 * log ends (journal.ts), so a normal open searches nothing.
 */
export function recover(files: LogFile[], after: LogPosition, key: number): Recovered {
  const maxEpoch = Math.max(after.epoch, ...files.map((f) => f.epoch));
  const unread = unreadDamage(files, after, key);
  if (unread !== undefined) return { records: [], ...unread, maxEpoch: Math.max(maxEpoch, unread.maxEpoch) };
  const ordered = files.filter((f) => f.epoch !== 0 && f.epoch >= after.epoch).sort((a, b) => a.epoch - b.epoch);
  const missing = missingDamage(files, ordered, after, key);
  if (missing !== undefined) return { records: [], maxEpoch, damage: missing };
  const records: Recovered['records'] = [];
  for (let i = 0; i < ordered.length; i++) {
    const file = ordered[i]!;
    if (i > 0 && file.epoch !== ordered[i - 1]!.epoch + 1) break;
    // lmdb holds the records before `after`: neither they nor damage among them are read again.
    const start = file.epoch === after.epoch ? after.offset : HEADER_BYTES;
    const bytes = readFrom(file, start);
    let p = 0;
    let read = frameAt(bytes, p, file.epoch, key);
    for (; read.kind === 'frame'; read = frameAt(bytes, p, file.epoch, key)) {
      const ops: LoggedOp[] = [];
      walkRecords(bytes, p + FRAME_HEAD, read.end, (op) => ops.push(op)); // frameAt has checked it whole
      p = read.end;
      records.push({ ops, end: { epoch: file.epoch, offset: start + p } });
    }
    if (read.kind === 'seal') continue;
    const behind = framesFrom(bytes, p + 1, file.epoch, key);
    const newer = ordered[i + 1]?.epoch === file.epoch + 1 ? ordered[i + 1] : undefined;
    const lost = newer === undefined ? { frames: 0, records: 0 } : framesFrom(readFrom(newer, HEADER_BYTES), 0, newer.epoch, key);
    // A newer file with no frames and none here behind the stop loses nothing (a damaged seal, or
    // a switch whose header write reported a failure yet landed: the writer went on here).
    if (behind.sealed || behind.frames >= WRITES_IN_FLIGHT || (newer !== undefined && behind.frames + lost.frames > 0)) {
      // What shows that the stop is not a crash's torn tail.
      const evidence = behind.sealed
        ? 'its seal follows'
        : newer !== undefined
          ? `the file is not sealed, yet ${newer.name} holds the next epoch`
          : `${behind.frames} whole frames follow, more than the ${WRITES_IN_FLIGHT - 1} a crash can leave`;
      const reason = `${whyBad(bytes, p, file.epoch, key)}; ${evidence}`;
      return { records, maxEpoch, damage: { file: file.name, offset: start + p, reason, frames: behind.frames + lost.frames, records: behind.records + lost.records } };
    }
    return { records, maxEpoch };
  }
  return { records, maxEpoch };
}

/**
 * No file holds lmdb's epoch, yet the other holds a later one: the file lmdb's position points
 * into was deleted or replaced (the writer overwrites it only once lmdb's position has moved past
 * its epoch, and begins the next epoch only after sealing it), so its frames past that position
 * are gone and the later file's frames would be replayed without them.
 */
function missingDamage(files: LogFile[], ordered: LogFile[], after: LogPosition, key: number): LogDamage | undefined {
  const first = ordered[0];
  if (after.epoch === 0 || first === undefined || first.epoch === after.epoch) return undefined;
  // One that names no epoch may be that file: unreadDamage looked in it for frames past the position.
  if (files.some((f) => f.headerDamaged && f.epoch === 0)) return undefined;
  const other = files.find((f) => f !== first)!;
  const found = framesFrom(readFrom(first, HEADER_BYTES), 0, first.epoch, key);
  if (found.frames === 0 && !found.sealed) return undefined;
  const reason = `it holds no frames of epoch ${after.epoch}, where lmdb's position is (deleted or replaced?), yet ${first.name} holds epoch ${first.epoch}`;
  return { file: other.name, offset: after.offset, reason, frames: found.frames, records: found.records };
}

/**
 * A file whose header and first frame both fail to read names no epoch. It may hold the frames
 * of lmdb's epoch past its position (its file is the one damaged) or of the epoch after both
 * files': replay would leave either out. Other epochs in it are older, held by lmdb already.
 */
function unreadDamage(files: LogFile[], after: LogPosition, key: number): { damage: LogDamage; maxEpoch: number } | undefined {
  const unread = files.find((f) => f.headerDamaged && f.epoch === 0);
  if (unread === undefined) return undefined;
  const next = Math.max(...files.map((f) => f.epoch)) + 1;
  const candidates = new Map<number, number>([[after.epoch, after.offset]]);
  if (next > after.epoch) candidates.set(next, HEADER_BYTES);
  for (const [epoch, from] of candidates) {
    if (epoch === 0) continue;
    const found = framesFrom(readFrom(unread, from), 0, epoch, key);
    if (found.frames > 0 || found.sealed) {
      const damage = { file: unread.name, offset: 0, reason: `its header and first frame are damaged, and frames of epoch ${epoch} follow`, frames: found.frames, records: found.records };
      return { damage, maxEpoch: epoch };
    }
  }
  return undefined;
}
