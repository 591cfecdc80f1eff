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
 *           0 length of the body u32 | 4 crc32c of bytes 8..(12 + length) u32 | 8 epoch u32 | 12 body
 *         body: records back to back; a record is one put, delete or atomic batch:
 *           0 length of the rest u32 | 4 op count u32 | per op:
 *             type u8 (1 put, 2 delete) | key length u16 | value length u32 (puts only) | key | value
 *           (the key is lmdb's: unit id ‖ caller's key)
 * A file's epoch is one more than the file before it, so replay reads the older file, then the newer.
 * A file is closed by a seal (a frame with an empty body) before the writer moves on; bytes after a
 * file's last frame are an earlier epoch's leftovers, which fail the CRC or carry the wrong epoch, or
 * (behind a seal) whole frames written behind a write that failed (journal.ts `rewind`).
 */
import { constants, fstatSync, openSync, readSync, write, writeSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { crc32c } from '../../core/hash.js';

export const WAL_FILES = ['wal-0', 'wal-1'] as const;
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
  fd: number;
  /** The epoch in its header; 0 when the header is missing or damaged. */
  epoch: number;
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

export function openLogFiles(dir: string): LogFile[] {
  return WAL_FILES.map((name) => {
    // O_DSYNC: each pwrite returns once its bytes (and, while the file still grows, its size) are on disk.
    const fd = openSync(join(dir, name), constants.O_RDWR | constants.O_CREAT | constants.O_DSYNC, 0o644);
    const size = fstatSync(fd).size;
    const head = Buffer.alloc(16);
    const n = size >= 16 ? readSync(fd, head, 0, 16, 0) : 0;
    return { fd, epoch: n === 16 ? decodeHeader(head) : 0, size };
  });
}

export function closeLogFiles(files: LogFile[]): void {
  for (const f of files) closeSync(f.fd);
}

/** The bytes a record of `ops` takes in the log. */
export function recordBytes(ops: readonly LoggedOp[]): number {
  let n = RECORD_HEAD;
  for (const op of ops) n += op.type === OP_PUT ? 7 + op.key.length + op.value!.length : 3 + op.key.length;
  return n;
}

/** Writes the record of `ops` at `at`; returns its end. */
export function encodeRecord(buf: Buffer, at: number, ops: readonly LoggedOp[]): number {
  let p = at + 4;
  buf.writeUInt32LE(ops.length, p);
  p += 4;
  for (const op of ops) {
    buf[p] = op.type;
    buf.writeUInt16LE(op.key.length, p + 1);
    if (op.type === OP_PUT) {
      const value = op.value!;
      buf.writeUInt32LE(value.length, p + 3);
      p += 7;
      buf.set(op.key, p);
      p += op.key.length;
      buf.set(value, p);
      p += value.length;
    } else {
      p += 3;
      buf.set(op.key, p);
      p += op.key.length;
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

/** Fills in the frame head at buf[from, from + FRAME_HEAD) for the records up to `to`. */
export function stampFrame(buf: Buffer, from: number, to: number, epoch: number): void {
  buf.writeUInt32LE(to - from - FRAME_HEAD, from);
  buf.writeUInt32LE(epoch, from + 8);
  buf.writeUInt32LE(crc32c(buf.subarray(from + 8, to)), from + 4);
}

export function seal(epoch: number): Buffer {
  const frame = Buffer.alloc(SEAL_BYTES);
  stampFrame(frame, 0, SEAL_BYTES, epoch);
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

export interface Recovered {
  /** The ops of every frame after `after`, in log order, up to the first torn or damaged frame. */
  records: { ops: LoggedOp[]; end: LogPosition }[];
  /** The highest epoch any file's header names (the next writer starts above it). */
  maxEpoch: number;
}

/** The ops of the records in a frame body, or undefined if they do not parse. */
function parseFrame(body: Buffer): LoggedOp[] | undefined {
  const ops: LoggedOp[] = [];
  for (let r = 0; r < body.length; ) {
    if (r + RECORD_HEAD > body.length) return undefined;
    const end = r + 4 + body.readUInt32LE(r);
    if (end > body.length) return undefined;
    const count = body.readUInt32LE(r + 4);
    let p = r + RECORD_HEAD;
    for (let i = 0; i < count; i++) {
      if (p + 3 > end) return undefined;
      const type = body[p]!;
      const keyLength = body.readUInt16LE(p + 1);
      if (type === OP_PUT) {
        if (p + 7 > end) return undefined;
        const valueLength = body.readUInt32LE(p + 3);
        p += 7;
        if (p + keyLength + valueLength > end) return undefined;
        ops.push({ type, key: body.subarray(p, p + keyLength), value: body.subarray(p + keyLength, p + keyLength + valueLength) });
        p += keyLength + valueLength;
      } else if (type === OP_DELETE) {
        p += 3;
        if (p + keyLength > end) return undefined;
        ops.push({ type, key: body.subarray(p, p + keyLength) });
        p += keyLength;
      } else return undefined;
    }
    if (p !== end) return undefined;
    r = end;
  }
  return ops;
}

/**
 * Reads the frames written after `after` (lmdb's applied position), oldest file first. Stops at
 * the first frame that is torn, fails its CRC, or belongs to another epoch. Moving on to the next
 * file takes the older file's seal: without it the older file was damaged, and what follows it
 * would not continue what came before.
 */
export function recover(files: LogFile[], after: LogPosition): Recovered {
  const maxEpoch = Math.max(after.epoch, ...files.map((f) => f.epoch));
  const ordered = files.filter((f) => f.epoch !== 0 && f.epoch >= after.epoch).sort((a, b) => a.epoch - b.epoch);
  const records: Recovered['records'] = [];
  for (let i = 0; i < ordered.length; i++) {
    const file = ordered[i]!;
    if (i > 0 && file.epoch !== ordered[i - 1]!.epoch + 1) break;
    const bytes = Buffer.alloc(Math.max(0, file.size - HEADER_BYTES));
    for (let at = 0; at < bytes.length; ) {
      const n = readSync(file.fd, bytes, at, bytes.length - at, HEADER_BYTES + at);
      if (n === 0) break;
      at += n;
    }
    let sealed = false;
    for (let p = 0; p + FRAME_HEAD <= bytes.length; ) {
      const end = p + FRAME_HEAD + bytes.readUInt32LE(p);
      if (end > bytes.length || bytes.readUInt32LE(p + 8) !== file.epoch) break;
      if (crc32c(bytes.subarray(p + 8, end)) !== bytes.readUInt32LE(p + 4)) break;
      if (end === p + FRAME_HEAD) {
        sealed = true;
        break;
      }
      const ops = parseFrame(bytes.subarray(p + FRAME_HEAD, end));
      if (ops === undefined) break;
      p = end;
      const position = { epoch: file.epoch, offset: HEADER_BYTES + end };
      if (file.epoch > after.epoch || position.offset > after.offset) records.push({ ops, end: position });
    }
    if (!sealed) break;
  }
  return { records, maxEpoch };
}
