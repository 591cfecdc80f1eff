/**
 * Segment format v1 (docs/format.md): the blob format stream records live in.
 * Batch level: `encodeBatch` / `decodeBatch` / `readBatchHeader` — a batch is encoded once, stored
 * as one ordered-KV entry, and later copied verbatim into a segment by `SegmentWriter.appendBatch`.
 * Segment level: `SegmentWriter` (header + batches + footer + trailer) and `SegmentReader`
 * (whole blob, torn-tail recovery, or opened from its tail for range reads).
 * LZ4 and CRC32C run in the shared WASM codec instance; records are written straight into WASM
 * memory and decoded records are `subarray` views of one decompressed buffer.
 */
import { ErrorCode, QuartzError } from './errors.js';
import { codecs, type QuartzExports } from './loader.js';
import { holdScratch, memoryView, releaseLarge, scratch, scratchEpoch, scratchGrow, scratchIn, scratchSize } from './codec-scratch.js';
import {
  cutRecords,
  encodeRecords,
  recordBound,
  recordRoom,
  spanBound,
  spanRoom,
  RecordSpans,
  ownRecordBytes,
  readRecords,
  readRecordsPrefix,
  MAX_TIMESTAMP,
  type DecodedRecord,
  type EncodableRecord,
  type EncodableRecords,
  type RecordsBlock,
  type RecordsLayout,
  type RecordsPage,
  type RecordsRoom,
  type SegmentRecord,
} from './segment-records.js';

export type { DecodedRecord, EncodableRecord, EncodableRecords, SegmentRecord, SegmentHeader } from './segment-records.js';
export { RecordSpans } from './segment-records.js';

export const SEGMENT_VERSION = 1;
export const SEGMENT_HEADER_SIZE = 32;
export const BATCH_HEADER_SIZE = 60;
export const SEGMENT_TRAILER_SIZE = 20;
const FOOTER_FIXED_SIZE = 36;
const FOOTER_ENTRY_SIZE = 20;
/** Largest records section a batch may declare (docs/format.md, "Limits"). */
export const MAX_BATCH_UNCOMPRESSED = 2 ** 30;
export const MAX_SEGMENT_SIZE = 2 ** 32 - 1;
/** The smallest record is 5 one-byte varints (offset, timestamp, key, value, header count). */
const MIN_RECORD_SIZE = 5;
/** LZ4 expands at most ~255:1, so a larger claimed ratio is corrupt before anything is allocated. */
const LZ4_MAX_RATIO = 255;

const MAGIC_STRM = 0x4d525453; // "STRM" read as a little-endian u32
const MAGIC_SIDX = 0x58444953; // "SIDX"

export type SegmentCodec = 'none' | 'lz4';
const CODEC_NONE = 0;
const CODEC_LZ4 = 1;

export interface EncodeBatchOptions {
  baseOffset: number;
  codec: SegmentCodec;
  producerId?: number;
  producerEpoch?: number;
  baseSequence?: number;
  /** Timestamp (ms since the epoch) of the records that have none. */
  timestamp?: number;
  /**
   * Where the batch is copied out to: returns an array of exactly `length` bytes that the caller
   * owns (e.g. a recycled buffer), without calling the codec. Default: a fresh array.
   */
  output?: (length: number) => Uint8Array;
  /**
   * Encode a **run**: batches back to back, consecutive in offsets, each holding records of at
   * most this many bytes (a larger record gets a batch of its own), rather than one batch of all
   * of them. A reader of a few records then decodes one small batch. Each batch keeps the producer
   * id and epoch; its base sequence (when set) advances by the records before it. Read a run's
   * batches with `readBatchRun`. At most 16,383 records per batch (an upper bound sizes them).
   */
  blockBytes?: number;
}

/** The fixed batch header, read without touching the records (docs/format.md, "Record batch"). */
export interface BatchHeader {
  /** Bytes of the whole batch. */
  length: number;
  crc: number;
  codec: SegmentCodec;
  producerEpoch: number;
  lastOffsetDelta: number;
  baseOffset: number;
  /** Last offset + 1. */
  nextOffset: number;
  baseTimestamp: number;
  maxTimestamp: number;
  producerId: number;
  baseSequence: number;
  recordCount: number;
  uncompressedSize: number;
}

export interface DecodedBatch {
  baseOffset: number;
  lastOffsetDelta: number;
  nextOffset: number;
  baseTimestamp: number;
  maxTimestamp: number;
  records: DecodedRecord[];
}

export interface DecodeOptions {
  /**
   * Where the records section of an LZ4 batch is decompressed to: returns an array of exactly
   * `length` bytes that the caller owns (e.g. a view of a buffer it recycles), so decoding
   * allocates no section of its own. The batch's keys and values are then views of it and stay
   * valid only while the caller leaves that memory alone. Called once per LZ4 batch, after its
   * CRC is checked; not for uncompressed batches, whose records are views of the input bytes.
   * Default: a fresh array per batch, which the records own.
   */
  output?: (length: number) => Uint8Array;
  /**
   * Only the records from this offset on (at most `maxRecords`, default all): the whole stored
   * batch is still CRC-checked, and the records up to the page's last one are parsed and checked,
   * but only the page's are built and nothing after the page is read: an LZ4 batch without
   * `output` is decompressed only as far as the page needs (the whole batch when the page runs to
   * its end). Their bytes are then copied into an array that holds only them, rather than the
   * whole decompressed section: for random reads of a few records out of a large batch.
   */
  from?: number;
  /** With `from`: how many records to build at most. */
  maxRecords?: number;
}

interface CodecExports extends QuartzExports {
  crc32c(crc: number, ptr: number, len: number): number;
  lz4_compress_bound(srcLen: number): number;
  lz4_compress_block(src: number, srcLen: number, dst: number, dstCap: number): number;
  lz4_decompress_block(src: number, srcLen: number, dst: number, dstCap: number): number;
  lz4_decompress_prefix(src: number, srcLen: number, dst: number, dstCap: number, want: number): number;
}

function wasm(): CodecExports {
  return codecs<CodecExports>();
}

function fail(code: ErrorCode, message: string, position?: number): never {
  throw new QuartzError(code, position === undefined ? message : `${message} (byte ${position})`, position === undefined ? undefined : { details: { position } });
}

function invalid(message: string): never {
  throw new QuartzError(ErrorCode.INVALID_ARGUMENT, message);
}

function checkOffset(n: unknown, what: string): number {
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) invalid(`${what} must be a non-negative safe integer, got ${String(n)}`);
  return n;
}

function checkInt(n: unknown, fallback: number, min: number, max: number, what: string): number {
  if (n === undefined) return fallback;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > max) invalid(`${what} must be an integer in [${min}, ${max}], got ${String(n)}`);
  return n;
}

// Little-endian field access on plain byte arrays: shifts, no DataView on hot paths.
function u16(b: Uint8Array, at: number): number {
  return b[at]! | (b[at + 1]! << 8);
}
function u32(b: Uint8Array, at: number): number {
  return (b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16) | (b[at + 3]! << 24)) >>> 0;
}
function i32(b: Uint8Array, at: number): number {
  return b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16) | (b[at + 3]! << 24);
}
/** u64 as a JS number, or -1 when it is above 2^53 − 1. */
function u64(b: Uint8Array, at: number): number {
  const hi = u32(b, at + 4);
  return hi >= 0x200000 ? -1 : hi * 0x100000000 + u32(b, at);
}
/** i64 as a JS number; values beyond ±2^53 come back inexact and are rejected by range checks. */
function i64(b: Uint8Array, at: number): number {
  return i32(b, at + 4) * 0x100000000 + u32(b, at);
}
function put16(b: Uint8Array, at: number, v: number): void {
  b[at] = v;
  b[at + 1] = v >>> 8;
}
function put32(b: Uint8Array, at: number, v: number): void {
  b[at] = v;
  b[at + 1] = v >>> 8;
  b[at + 2] = v >>> 16;
  b[at + 3] = v >>> 24;
}
/** Two's complement i64/u64 from a safe integer: low word by ToUint32, high word by floor division. */
function put64(b: Uint8Array, at: number, v: number): void {
  put32(b, at, v >>> 0);
  put32(b, at + 4, Math.floor(v / 0x100000000) | 0);
}

/** CRC32C of `bytes[start, end)`, copying them into the codec's input scratch for the kernel. */
function crcOf(bytes: Uint8Array, start: number, end: number): number {
  const w = wasm();
  const ptr = scratchIn(w, 0, bytes.subarray(start, end));
  const crc = w.crc32c(0, ptr, end - start) >>> 0;
  releaseLarge(w);
  return crc;
}

/**
 * Encodes one record batch exactly as it appears in a segment, CRC included. Offsets are dense
 * from `baseOffset`. With codec 'lz4' a batch LZ4 does not shrink is stored uncompressed.
 * @example
 * const batch = encodeBatch([{ key: null, value: utf8('hi'), timestamp: Date.now() }], { baseOffset: 0, codec: 'lz4' });
 * decodeBatch(batch).records[0].offset; // → 0
 */
export function encodeBatch(records: EncodableRecords, options: EncodeBatchOptions): Uint8Array {
  return encodeBatchRun(records, options).bytes;
}

/** What `encodeBatchRun` wrote: the bytes and the header of each batch in them. */
export interface EncodedRun {
  bytes: Uint8Array;
  /** One per batch, in order: what `readBatchRun(bytes)` would read back. */
  batches: BatchHeader[];
}

/**
 * `encodeBatch` that also returns the headers of the batches it wrote (a run of several with
 * `blockBytes`), so a caller need not parse back what it has just encoded.
 * @example
 * const { bytes, batches } = encodeBatchRun(records, { baseOffset: 0, codec: 'lz4', blockBytes: 16384 });
 * batches[batches.length - 1].nextOffset; // → records.length
 */
export function encodeBatchRun(records: EncodableRecords, options: EncodeBatchOptions): EncodedRun {
  const w = wasm();
  if (options?.blockBytes !== undefined) {
    const starts = runStarts(records, options.blockBytes);
    if (starts.length > 1) return encodeRun(w, records, starts, options);
  }
  try {
    const encoded = encodeBatchView(w, records, options);
    const view = encoded.bytes;
    const output = options.output;
    if (output === undefined) return { bytes: view.slice(), batches: [encoded.header] };
    const epoch = scratchEpoch(w);
    const out = output(view.length);
    if (!(out instanceof Uint8Array) || out.length !== view.length) invalid(`output must return a Uint8Array of ${view.length} bytes`);
    // A callback that ran the codecs has reused the region the batch was encoded into (one that
    // grew wasm memory has detached `view`): encode again, or view the region afresh.
    const batch = scratchEpoch(w) !== epoch ? encodeBatchView(w, records, options).bytes : new Uint8Array(w.memory.buffer, view.byteOffset, view.length);
    if (batch.length !== out.length) invalid('output: the records changed while it ran');
    out.set(batch);
    return { bytes: out, batches: [encoded.header] };
  } finally {
    releaseLarge(w);
  }
}

/** Largest records a batch of a run holds: its offset deltas stay within `recordBound`'s two bytes. */
const RUN_MAX_RECORDS = 0x3fff;

/**
 * Index of the first record of each batch of a run of `records` cut at `blockBytes` (one batch
 * without it). With `room`, also adds up there the room `encodeRecords` wants for the records.
 */
function runStarts(records: EncodableRecords, blockBytes: number | undefined, room?: { bytes: number }): number[] {
  if (blockBytes !== undefined && (!Number.isSafeInteger(blockBytes) || blockBytes < 1)) invalid(`blockBytes must be a positive integer, got ${String(blockBytes)}`);
  const spans = records instanceof RecordSpans ? records : undefined;
  if (spans === undefined && !Array.isArray(records)) return [0]; // encodeRecords reports it
  const limit = blockBytes ?? Infinity;
  const starts = [0];
  let size = 0;
  let count = 0;
  for (let i = 0; i < records.length; i++) {
    const r = spans === undefined ? (records as readonly EncodableRecord[])[i]! : undefined;
    const n = r === undefined ? spanBound(spans!, i) : recordBound(r);
    if (count > 0 && (size + n > limit || (count === RUN_MAX_RECORDS && blockBytes !== undefined))) {
      starts.push(i);
      size = 0;
      count = 0;
    }
    size += n;
    count++;
    if (room !== undefined) room.bytes += r === undefined ? spanRoom(n) : recordRoom(r, n);
  }
  return starts;
}

/** Where a run's batches are gathered before they are copied out in one piece; grows by doubling. */
let runStaging = new Uint8Array(64 * 1024);

/** The first `total` staged bytes in an array of their own, or in the one `output` gives. */
function stagedRun(total: number, output: ((bytes: number) => Uint8Array) | undefined): Uint8Array {
  const out = output === undefined ? new Uint8Array(total) : output(total);
  if (!(out instanceof Uint8Array) || out.length !== total) invalid(`output must return a Uint8Array of ${total} bytes`);
  out.set(runStaging.subarray(0, total));
  return out;
}

/** Copies a run's batch into `runStaging` at `at`, growing it when needed (the batches before it kept). */
function stage(batch: Uint8Array, at: number): void {
  if (runStaging.length < at + batch.length) {
    let size = runStaging.length * 2;
    while (size < at + batch.length) size *= 2;
    const grown = new Uint8Array(size);
    grown.set(runStaging.subarray(0, at));
    runStaging = grown;
  }
  runStaging.set(batch, at);
}

/** `encodeBatchRun` of a run whose batches start at `starts` (at least two). */
function encodeRun(w: CodecExports, records: EncodableRecords, starts: number[], options: EncodeBatchOptions): EncodedRun {
  const baseOffset = checkOffset(options.baseOffset, 'baseOffset');
  const baseSequence = checkInt(options.baseSequence, -1, -1, 0x7fffffff, 'baseSequence');
  const batches: BatchHeader[] = [];
  let total = 0;
  try {
    for (let k = 0; k < starts.length; k++) {
      const from = starts[k]!;
      const chunk = records.slice(from, starts[k + 1] ?? records.length);
      // Kafka's sequence numbers wrap to 0 after 2^31 − 1.
      const sequence = baseSequence < 0 ? baseSequence : (baseSequence + from) % 0x80000000;
      const { bytes: view, header } = encodeBatchView(w, chunk, { ...options, baseOffset: baseOffset + from, baseSequence: sequence });
      stage(view, total);
      total += view.length;
      batches.push(header);
    }
  } finally {
    releaseLarge(w);
  }
  return { bytes: stagedRun(total, options.output), batches };
}

/**
 * A run's records framed but not yet sealed: each batch's records section written (`frameRun`),
 * to be compressed, headed and CRC'd by `sealRun`, perhaps on another thread. Plain numbers and
 * one byte array, so it crosses a thread boundary as one transferable buffer.
 */
export interface FramedRun {
  /** The records sections of the run's batches, back to back. */
  sections: Uint8Array;
  /** Four numbers per batch: record count, section bytes, base timestamp, max timestamp. */
  layout: number[];
}

/** `frameRun`'s options: `encodeBatchRun`'s that the records sections depend on. */
export interface FrameRunOptions {
  /** Timestamp (ms since the epoch) of the records that have none. */
  timestamp?: number;
  /** Cut the run into batches of at most this many record bytes (see `EncodeBatchOptions.blockBytes`). */
  blockBytes?: number;
  /**
   * Where the sections are written: returns an array of exactly `length` bytes, room enough for
   * the records (a bound counted from their fields; the sections are its first bytes, and
   * `FramedRun.sections` views them). `batches` is how many batches the run has, so a caller can
   * leave room to seal it in place (see `sealRun`'s `output`). Default: a fresh array.
   */
  output?: (length: number, batches: number) => Uint8Array;
}

/** `sealRun`'s options: `encodeBatchRun`'s that the batch headers depend on. */
export type SealRunOptions = Pick<EncodeBatchOptions, 'baseOffset' | 'codec' | 'producerId' | 'producerEpoch' | 'baseSequence' | 'output'>;

/**
 * The first half of `encodeBatchRun`: checks the records (throwing as it would) and writes each
 * batch's records section, without the codec. Offsets are not assigned yet: a section holds only
 * offset deltas. `sealRun(frameRun(records, o), o)` gives `encodeBatchRun(records, o)`'s bytes.
 * @example
 * const framed = frameRun(records, { blockBytes: 16384 });
 * const { bytes } = sealRun(framed, { baseOffset: 0, codec: 'lz4' }); // here or on a worker thread
 */
export function frameRun(records: EncodableRecords, options: FrameRunOptions = {}): FramedRun {
  if (!(Array.isArray(records) || records instanceof RecordSpans) || records.length === 0) invalid('a batch needs at least one record');
  const room = { bytes: 0 };
  const starts = runStarts(records, options.blockBytes, room);
  const defaultTimestamp = options.timestamp;
  // Checked and written in one pass, into room enough for every record (sizing them exactly
  // first was a second pass over the records).
  const out = options.output === undefined ? new Uint8Array(room.bytes) : options.output(room.bytes, starts.length);
  if (!(out instanceof Uint8Array) || out.length !== room.bytes) invalid(`output must return a Uint8Array of ${room.bytes} bytes`);
  const at: RecordsRoom = { buf: out, pos: 0, end: out.length };
  const layout: number[] = [];
  for (let k = 0; k < starts.length; k++) {
    const chunk = starts.length === 1 ? records : records.slice(starts[k], starts[k + 1] ?? records.length);
    const l = encodeRecords(chunk, defaultTimestamp, at, outgrown);
    if (l.size > MAX_BATCH_UNCOMPRESSED) fail(ErrorCode.TOO_LARGE, `batch records take ${l.size} bytes, more than the ${MAX_BATCH_UNCOMPRESSED}-byte limit`);
    layout.push(chunk.length, l.size, l.baseTimestamp, l.maxTimestamp);
  }
  return { sections: out.subarray(0, at.pos), layout };
}

/** `frameRun`'s room was counted from the same records: a record that needs more changed meanwhile (a getter). */
function outgrown(): never {
  invalid('frameRun: the records changed while they were written');
}

/**
 * The second half of `encodeBatchRun`: compresses each framed section (codec 'lz4'), heads it
 * with `baseOffset`'s offsets and the CRC, and gathers the run. Needs only the WASM core, so a
 * home can run it off the thread that framed the records. `output` is called once every section
 * has been read, so it may return the sections' own memory: a sealed run takes at most
 * `BATCH_HEADER_SIZE` bytes per batch more than its sections (a batch LZ4 cannot shrink is
 * stored as it is).
 */
export function sealRun(framed: FramedRun, options: SealRunOptions): EncodedRun {
  const w = wasm();
  const fields = batchFields(options);
  const { sections, layout } = framed;
  if (!(sections instanceof Uint8Array) || !Array.isArray(layout) || layout.length === 0 || layout.length % 4 !== 0) invalid('sealRun: not a framed run');
  const batches: BatchHeader[] = [];
  let total = 0;
  let from = 0;
  let records = 0;
  try {
    for (let k = 0; k < layout.length; k += 4) {
      const count = layout[k]!;
      const size = layout[k + 1]!;
      if (from + size > sections.length) invalid('sealRun: the layout runs past the sections');
      const sequence = fields.baseSequence < 0 ? fields.baseSequence : (fields.baseSequence + records) % 0x80000000;
      const region = batchRegion(w, fields.codec, size);
      memoryView(w).set(sections.subarray(from, from + size), region.records);
      const { bytes: view, header } = sealBatchView(w, region, { ...fields, baseOffset: fields.baseOffset + records, baseSequence: sequence }, count, {
        size,
        baseTimestamp: layout[k + 2]!,
        maxTimestamp: layout[k + 3]!,
      });
      stage(view, total);
      total += view.length;
      batches.push(header);
      from += size;
      records += count;
    }
  } finally {
    releaseLarge(w);
  }
  return { bytes: stagedRun(total, options.output), batches };
}

/**
 * The headers of a run of batches (`encodeBatch` with `blockBytes`; a single batch is a run of
 * one), checked to follow each other in offsets and to fill `bytes` exactly; CRCs are not checked.
 * @example
 * let at = 0;
 * for (const h of readBatchRun(run)) {
 *   const { records } = decodeBatch(run.subarray(at, (at += h.length)));
 * }
 */
export function readBatchRun(bytes: Uint8Array, subject = 'batch run'): BatchHeader[] {
  const run: BatchHeader[] = [];
  let at = 0;
  do {
    const h = readBatchHeader(bytes, at, subject);
    const prev = run[run.length - 1];
    if (prev !== undefined && h.baseOffset !== prev.nextOffset) fail(ErrorCode.CORRUPT_DATA, `${subject}: a batch starts at offset ${h.baseOffset}, the one before ends at ${prev.nextOffset - 1}`, at);
    run.push(h);
    at += h.length;
  } while (at < bytes.length);
  return run;
}

/**
 * `encodeBatch` without the copy out: the batch as a view of WASM memory, valid until the next
 * codec call (the caller copies it and then calls `releaseLarge`), and its header.
 */
function encodeBatchView(w: CodecExports, records: EncodableRecords, options: EncodeBatchOptions): { bytes: Uint8Array; header: BatchHeader } {
  const fields = batchFields(options);
  // The records are checked and written in one pass (sizing them first was a second walk over
  // every record), at BATCH_HEADER_SIZE into the output region, which grows as they need: codec
  // none's batch is then the region's start, header and records; LZ4's block goes after them.
  let ptr = scratchGrow(w, 1, BATCH_HEADER_SIZE, 0);
  const room: RecordsRoom = { buf: memoryView(w), pos: ptr + BATCH_HEADER_SIZE, end: ptr + scratchSize(w, 1) };
  // Reading a record's fields may run a caller's getter: held, the region cannot be taken by a
  // codec call from there (it would move or overwrite the records written so far).
  holdScratch(w, true);
  let layout: RecordsLayout;
  try {
    layout = encodeRecords(records, options.timestamp, room, (r, need, least) => {
      if (least > MAX_BATCH_UNCOMPRESSED) fail(ErrorCode.TOO_LARGE, `batch records take more than the ${MAX_BATCH_UNCOMPRESSED}-byte limit`);
      const written = r.pos - ptr;
      holdScratch(w, false);
      ptr = scratchGrow(w, 1, written + need, written);
      holdScratch(w, true);
      r.buf = memoryView(w);
      r.pos = ptr + written;
      r.end = ptr + scratchSize(w, 1);
    });
  } finally {
    holdScratch(w, false);
  }
  // Something else grew wasm memory meanwhile (a getter's allocation): writes since went to a detached view.
  if (room.buf.buffer !== w.memory.buffer) invalid('wasm memory grew while the batch was encoded (a record field read allocated in it)');
  const size = layout.size;
  if (size > MAX_BATCH_UNCOMPRESSED) fail(ErrorCode.TOO_LARGE, `batch records take ${size} bytes, more than the ${MAX_BATCH_UNCOMPRESSED}-byte limit`);
  if (fields.codec === 'none') return sealBatchView(w, { ptr, cap: size, records: ptr + BATCH_HEADER_SIZE }, fields, records.length, layout);
  const cap = w.lz4_compress_bound(size);
  if (cap < 0) fail(ErrorCode.TOO_LARGE, `batch records of ${size} bytes are too large for LZ4`);
  const written = BATCH_HEADER_SIZE + size;
  ptr = scratchGrow(w, 1, written + BATCH_HEADER_SIZE + cap, written);
  return sealBatchView(w, { ptr: ptr + written, cap, records: ptr + BATCH_HEADER_SIZE }, fields, records.length, layout);
}

/** A batch's fields that come from the caller's options rather than its records, checked. */
interface BatchFields {
  baseOffset: number;
  codec: SegmentCodec;
  producerId: number;
  producerEpoch: number;
  baseSequence: number;
}

function batchFields(options: EncodeBatchOptions | SealRunOptions): BatchFields {
  const baseOffset = checkOffset(options?.baseOffset, 'baseOffset');
  const codec = options.codec;
  if (codec !== 'none' && codec !== 'lz4') invalid(`codec must be 'none' or 'lz4', got ${String(codec)}`);
  const producerId = checkInt(options.producerId, -1, -1, Number.MAX_SAFE_INTEGER, 'producerId');
  const producerEpoch = checkInt(options.producerEpoch, -1, -1, 0x7fff, 'producerEpoch');
  const baseSequence = checkInt(options.baseSequence, -1, -1, 0x7fffffff, 'baseSequence');
  return { baseOffset, codec, producerId, producerEpoch, baseSequence };
}

/** Where a batch of `size` record bytes is built in WASM memory: `ptr` (the batch) and `records` (where its records section goes). */
interface BatchRegion {
  ptr: number;
  /** Room for the compressed block (LZ4) or the records (none) after the header. */
  cap: number;
  records: number;
}

function batchRegion(w: CodecExports, codec: SegmentCodec, size: number): BatchRegion {
  if (size > MAX_BATCH_UNCOMPRESSED) fail(ErrorCode.TOO_LARGE, `batch records take ${size} bytes, more than the ${MAX_BATCH_UNCOMPRESSED}-byte limit`);
  // One region (reused across calls): the batch (header + records, or header + compressed
  // block) then, for LZ4, the uncompressed records it is compressed from.
  const cap = codec === 'lz4' ? w.lz4_compress_bound(size) : size;
  if (cap < 0) fail(ErrorCode.TOO_LARGE, `batch records of ${size} bytes are too large for LZ4`);
  const batchCap = BATCH_HEADER_SIZE + Math.max(cap, size);
  const ptr = scratch(w, 1, batchCap + (codec === 'lz4' ? size : 0));
  return { ptr, cap, records: codec === 'lz4' ? ptr + batchCap : ptr + BATCH_HEADER_SIZE };
}

/**
 * Compresses (LZ4) the records section already written at `region.records`, writes the header
 * and the CRC: the batch as a view of WASM memory (see `encodeBatchView`), and its header.
 */
function sealBatchView(w: CodecExports, region: BatchRegion, fields: BatchFields, recordCount: number, layout: RecordsLayout): { bytes: Uint8Array; header: BatchHeader } {
  const { ptr, cap } = region;
  const { baseOffset, producerId, producerEpoch, baseSequence } = fields;
  const size = layout.size;
  const lastOffsetDelta = recordCount - 1;
  if (baseOffset + lastOffsetDelta > Number.MAX_SAFE_INTEGER) invalid(`batch at offset ${baseOffset} would pass offset 2^53 − 1`);
  let stored = size;
  let codecId = CODEC_NONE;
  if (fields.codec === 'lz4') {
    const src = region.records;
    const n = w.lz4_compress_block(src, size, ptr + BATCH_HEADER_SIZE, cap);
    if (n < 0) fail(ErrorCode.INTERNAL, `LZ4 compression of a ${size}-byte batch failed with code ${n}`);
    if (n < size) {
      stored = n;
      codecId = CODEC_LZ4;
    } else {
      new Uint8Array(w.memory.buffer).copyWithin(ptr + BATCH_HEADER_SIZE, src, src + size);
    }
  }
  const length = BATCH_HEADER_SIZE + stored;
  const b = new Uint8Array(w.memory.buffer, ptr, length);
  // 0: length u32  4: crc u32  8: attributes u16  10: producer epoch i16  12: last offset delta u32
  // 16: base offset u64  24: base timestamp i64  32: max timestamp i64  40: producer id i64
  // 48: base sequence i32  52: record count u32  56: uncompressed size u32  60: records
  put32(b, 0, length);
  put16(b, 8, codecId);
  put16(b, 10, producerEpoch);
  put32(b, 12, lastOffsetDelta);
  put64(b, 16, baseOffset);
  put64(b, 24, layout.baseTimestamp);
  put64(b, 32, layout.maxTimestamp);
  put64(b, 40, producerId);
  put32(b, 48, baseSequence);
  put32(b, 52, recordCount);
  put32(b, 56, size);
  const crc = w.crc32c(0, ptr + 8, length - 8) >>> 0;
  put32(b, 4, crc);
  const header: BatchHeader = {
    length,
    crc,
    codec: codecId === CODEC_NONE ? 'none' : 'lz4',
    producerEpoch,
    lastOffsetDelta,
    baseOffset,
    nextOffset: baseOffset + lastOffsetDelta + 1,
    baseTimestamp: layout.baseTimestamp,
    maxTimestamp: layout.maxTimestamp,
    producerId,
    baseSequence,
    recordCount,
    uncompressedSize: size,
  };
  return { bytes: b, header };
}

/**
 * Reads and checks the fixed header of the batch starting at `bytes[at]`, without checking its
 * CRC or touching its records. Fails with a typed error naming `subject` if it cannot be honest.
 * @example
 * const h = readBatchHeader(batch);
 * h.baseOffset + h.lastOffsetDelta; // the batch's last offset
 */
export function readBatchHeader(bytes: Uint8Array, at = 0, subject = 'batch'): BatchHeader {
  if (!(bytes instanceof Uint8Array)) invalid(`${subject}: bytes must be a Uint8Array`);
  const present = bytes.length - at;
  if (present < BATCH_HEADER_SIZE) fail(ErrorCode.CORRUPT_DATA, `${subject}: ${present} bytes, shorter than the ${BATCH_HEADER_SIZE}-byte batch header`, at);
  const length = u32(bytes, at);
  if (length < BATCH_HEADER_SIZE) fail(ErrorCode.CORRUPT_DATA, `${subject}: batch length ${length} is shorter than its header`, at);
  if (length > present) fail(ErrorCode.CORRUPT_DATA, `${subject}: batch length ${length} runs past the ${present} bytes present`, at);
  const attributes = u16(bytes, at + 8);
  const codecId = attributes & 0xf;
  if (codecId > CODEC_LZ4 || attributes >> 4 !== 0) fail(ErrorCode.UNSUPPORTED_FORMAT, `${subject}: unknown codec or attribute bits 0x${attributes.toString(16)}`, at + 8);
  const lastOffsetDelta = u32(bytes, at + 12);
  const baseOffset = u64(bytes, at + 16);
  if (baseOffset < 0 || baseOffset + lastOffsetDelta > Number.MAX_SAFE_INTEGER) fail(ErrorCode.CORRUPT_DATA, `${subject}: offsets beyond 2^53 − 1`, at + 16);
  const baseTimestamp = i64(bytes, at + 24);
  const maxTimestamp = i64(bytes, at + 32);
  if (Math.abs(baseTimestamp) > MAX_TIMESTAMP || Math.abs(maxTimestamp) > MAX_TIMESTAMP || maxTimestamp < baseTimestamp) {
    fail(ErrorCode.CORRUPT_DATA, `${subject}: timestamps out of range`, at + 24);
  }
  const recordCount = u32(bytes, at + 52);
  const uncompressedSize = u32(bytes, at + 56);
  const stored = length - BATCH_HEADER_SIZE;
  if (uncompressedSize > MAX_BATCH_UNCOMPRESSED) fail(ErrorCode.CORRUPT_DATA, `${subject}: uncompressed size ${uncompressedSize} is over the limit`, at + 56);
  if (codecId === CODEC_NONE ? uncompressedSize !== stored : uncompressedSize > stored * LZ4_MAX_RATIO) {
    fail(ErrorCode.CORRUPT_DATA, `${subject}: uncompressed size ${uncompressedSize} cannot come from ${stored} stored bytes`, at + 56);
  }
  if (recordCount === 0 || recordCount > uncompressedSize / MIN_RECORD_SIZE || recordCount - 1 > lastOffsetDelta) {
    fail(ErrorCode.CORRUPT_DATA, `${subject}: record count ${recordCount} does not fit the batch`, at + 52);
  }
  return {
    length,
    crc: u32(bytes, at + 4),
    codec: codecId === CODEC_NONE ? 'none' : 'lz4',
    producerEpoch: (u16(bytes, at + 10) << 16) >> 16,
    lastOffsetDelta,
    baseOffset,
    nextOffset: baseOffset + lastOffsetDelta + 1,
    baseTimestamp,
    maxTimestamp,
    producerId: i64(bytes, at + 40),
    baseSequence: i32(bytes, at + 48),
    recordCount,
    uncompressedSize,
  };
}

/**
 * Whether the batch at `bytes[at]`, already decoded, is stored uncompressed: its records are then
 * views of `bytes` (see `decodeBatch`).
 * @example
 * if (storedUncompressed(bytes)) copyOut(records); // before `bytes` is reused
 */
export function storedUncompressed(bytes: Uint8Array, at = 0): boolean {
  return (bytes[at + 8]! & 0xf) === CODEC_NONE;
}

/** Whether the CRC of the batch at `bytes[at]` (header already read) holds. */
function batchCrcHolds(bytes: Uint8Array, at: number, h: BatchHeader): boolean {
  return crcOf(bytes, at + 8, at + h.length) === h.crc;
}

/**
 * Copies the batch at `bytes[at]` (header already read) into the codec's input region and checks
 * its CRC there; returns the wasm address of the batch (valid until the next codec call).
 */
function checkedBatchIn(w: CodecExports, bytes: Uint8Array, at: number, h: BatchHeader, subject: string): number {
  const ptr = scratchIn(w, 0, bytes.subarray(at + 8, at + h.length));
  if (w.crc32c(0, ptr, h.length - 8) >>> 0 !== h.crc) fail(ErrorCode.CHECKSUM_MISMATCH, `${subject}: CRC32C does not match`, at);
  return ptr - 8;
}

/**
 * CRC-checks the LZ4 batch at `bytes[at]` and decompresses its records section into the codec's
 * output region; returns where it starts (valid until the next codec call).
 */
function decompressSection(w: CodecExports, bytes: Uint8Array, at: number, h: BatchHeader, subject: string): number {
  const batch = checkedBatchIn(w, bytes, at, h, subject);
  // The output region is sized only once the CRC vouches for the declared uncompressed size.
  const dst = scratch(w, 1, h.uncompressedSize);
  decompressRecords(w, batch, dst, h, subject, at);
  return dst;
}

/**
 * Bytes of a records section of `h` to decompress first for `page`: the page ends by record
 * (from − base offset) + maxRecords (exactly there when offsets are dense, as the engine writes
 * them), so its share of the section, plus two records' worth and a little so that records of
 * about equal size rarely need the rest; the whole section when the page may reach its end.
 */
function pagePrefix(h: BatchHeader, page: RecordsPage): number {
  const size = h.uncompressedSize;
  const records = Math.max(0, page.from - h.baseOffset) + page.maxRecords;
  if (records >= h.recordCount) return size;
  return Math.min(size, Math.ceil(((records + 2) * size) / h.recordCount) + 64);
}

/**
 * `page`'s records of the LZ4 batch at `bytes[at]`, parsed in the codec's memory and their bytes
 * then copied out (`ownRecordBytes`). The CRC is checked over the whole stored batch, then only the
 * start of the records section that the page needs is decompressed and parsed (`pagePrefix`):
 * the records after the page are neither decompressed nor read. A prefix that falls short, or
 * fails, is followed by a decode of the whole section, which reports any fault as a full decode
 * does.
 */
function decodePage(w: CodecExports, bytes: Uint8Array, at: number, h: BatchHeader, subject: string, page: RecordsPage): DecodedRecord[] {
  const batch = checkedBatchIn(w, bytes, at, h, subject);
  const size = h.uncompressedSize;
  const dst = scratch(w, 1, size);
  // Positions in errors count from the section's start, as a whole decode's do.
  const section = new Uint8Array(w.memory.buffer, dst, size);
  const want = pagePrefix(h, page);
  if (want < size) {
    const n = w.lz4_decompress_prefix(batch + BATCH_HEADER_SIZE, h.length - BATCH_HEADER_SIZE, dst, size, want);
    // Fewer than `want` bytes: the block ended early, which the whole decode reports.
    if (n >= want) {
      const records = readRecordsPrefix(section, 0, size, n, h, subject, page);
      if (records !== undefined) {
        ownRecordBytes(records, section, page);
        return records;
      }
    }
  }
  decompressRecords(w, batch, dst, h, subject, at);
  const records = readRecords(section, 0, size, h, subject, page);
  ownRecordBytes(records, section, page);
  return records;
}

/** Decompresses the records of the CRC-checked LZ4 batch at wasm address `batch` to `dst`, exactly `h.uncompressedSize` bytes. */
function decompressRecords(w: CodecExports, batch: number, dst: number, h: BatchHeader, subject: string, at: number): void {
  const n = w.lz4_decompress_block(batch + BATCH_HEADER_SIZE, h.length - BATCH_HEADER_SIZE, dst, h.uncompressedSize);
  if (n !== h.uncompressedSize) fail(ErrorCode.CORRUPT_DATA, `${subject}: LZ4 block decodes to ${n < 0 ? `error ${n}` : `${n} bytes`}, the header says ${h.uncompressedSize}`, at);
}

/**
 * Checks the CRC, decompresses if needed and parses the batch at `bytes[at]` (only the records of
 * `page` when given).
 */
function decodeBatchAt(bytes: Uint8Array, at: number, h: BatchHeader, subject: string, output?: DecodeOptions['output'], page?: RecordsPage): DecodedRecord[] {
  const stored = h.length - BATCH_HEADER_SIZE;
  const w = wasm();
  if (h.codec === 'none') {
    if (!batchCrcHolds(bytes, at, h)) fail(ErrorCode.CHECKSUM_MISMATCH, `${subject}: CRC32C does not match`, at);
    // The records are views of the caller's bytes: no copy for uncompressed batches.
    const start = at + BATCH_HEADER_SIZE;
    return readRecords(bytes, start, start + stored, h, subject, page);
  }
  const size = h.uncompressedSize;
  let section: Uint8Array;
  try {
    if (output === undefined && page !== undefined) {
      // Parsed where it was decompressed; only the page's bytes are copied out.
      return decodePage(w, bytes, at, h, subject, page);
    }
    let dst = decompressSection(w, bytes, at, h, subject);
    if (output === undefined) {
      section = new Uint8Array(w.memory.buffer, dst, size).slice();
    } else {
      const epoch = scratchEpoch(w);
      section = output(size);
      if (!(section instanceof Uint8Array) || section.length !== size) invalid(`output must return a Uint8Array of ${size} bytes`);
      // A callback that used the codecs has reused the region the section was decoded into.
      if (scratchEpoch(w) !== epoch) dst = decompressSection(w, bytes, at, h, subject);
      section.set(new Uint8Array(w.memory.buffer, dst, size));
    }
  } finally {
    releaseLarge(w);
  }
  return readRecords(section, 0, size, h, subject, page);
}

/**
 * Decodes the batches of `run` (headers read from `bytes`, the first at `start`, the others back
 * to back after it). They are copied into the codec's memory once and every CRC is
 * checked there before anything is decompressed or parsed (output regions are sized only once
 * the CRCs vouch for the declared sizes). Then, in pieces of at most RUN_STORED_BYTES stored (at
 * least one batch), the LZ4 batches of a piece decompress into one section, one array that their
 * records view; records of uncompressed batches view `bytes`. Returns each batch's records.
 * `subject(i)` names batch i of `run` in errors; positions are from the start of `bytes`.
 */
function decodeRunAt(bytes: Uint8Array, start: number, run: readonly BatchHeader[], subject: (i: number) => string): DecodedRecord[][] {
  const end = run.length;
  let storedBytes = 0;
  for (let i = 0; i < end; i++) storedBytes += run[i]!.length;
  const out: DecodedRecord[][] = new Array(end);
  const w = wasm();
  try {
    const input = scratchIn(w, 0, bytes.subarray(start, start + storedBytes));
    let at = 0;
    for (let i = 0; i < end; i++) {
      const h = run[i]!;
      if (w.crc32c(0, input + at + 8, h.length - 8) >>> 0 !== h.crc) fail(ErrorCode.CHECKSUM_MISMATCH, `${subject(i)}: CRC32C does not match`, start + at);
      at += h.length;
    }
    at = 0;
    for (let piece = 0; piece < end; ) {
      let stop = piece + 1;
      let stored = run[piece]!.length;
      while (stop < end && stored + run[stop]!.length <= RUN_STORED_BYTES) stored += run[stop++]!.length;
      let sectionBytes = 0;
      for (let i = piece; i < stop; i++) if (run[i]!.codec === 'lz4') sectionBytes += run[i]!.uncompressedSize;
      let section: Uint8Array | undefined;
      if (sectionBytes > 0) {
        const dst = scratch(w, 1, sectionBytes);
        let into = dst;
        for (let i = piece, p = at; i < stop; p += run[i++]!.length) {
          const h = run[i]!;
          if (h.codec !== 'lz4') continue;
          decompressRecords(w, input + p, into, h, subject(i), start + p);
          into += h.uncompressedSize;
        }
        section = memoryView(w).slice(dst, dst + sectionBytes);
      }
      let from = 0;
      for (let i = piece; i < stop; i++) {
        const h = run[i]!;
        if (h.codec === 'lz4') {
          out[i] = readRecords(section!, from, from + h.uncompressedSize, h, subject(i));
          from += h.uncompressedSize;
        } else {
          const p = start + at + BATCH_HEADER_SIZE;
          out[i] = readRecords(bytes, p, p + h.length - BATCH_HEADER_SIZE, h, subject(i));
        }
        at += h.length;
      }
      piece = stop;
    }
  } finally {
    releaseLarge(w);
  }
  return out;
}

/**
 * Every record of a run of batches held in one buffer (`encodeBatchRun`'s bytes; a single batch
 * is a run of one), in offset order, decoded as `SegmentReader.readFrom` decodes a run: copied into
 * the codec's memory once, every CRC checked before anything is decompressed or returned, LZ4
 * batches decompressed into one array per RUN_STORED_BYTES of stored batches that their records
 * view (uncompressed batches' records view `bytes`). Fails as `readBatchRun` and `decodeBatch` do,
 * naming `subject`.
 * @example
 * const { bytes } = encodeBatchRun(records, { baseOffset: 0, codec: 'lz4', blockBytes: 16384 });
 * decodeBatchRun(bytes).length; // → records.length
 */
export function decodeBatchRun(bytes: Uint8Array, subject = 'batch run'): DecodedRecord[] {
  const run = readBatchRun(bytes, subject);
  const batches = decodeRunAt(bytes, 0, run, run.length === 1 ? () => subject : (i) => `${subject}, batch ${i}`);
  if (batches.length === 1) return batches[0]!;
  let count = 0;
  for (const h of run) count += h.recordCount;
  // Copied by a loop: Array.prototype.flat measured ~60 ns per record slower.
  const records: DecodedRecord[] = new Array(count);
  let n = 0;
  for (const batch of batches) for (let i = 0; i < batch.length; i++) records[n++] = batch[i]!;
  return records;
}

function checkOutput(options: DecodeOptions | undefined): DecodeOptions['output'] {
  const output = options?.output;
  if (output !== undefined && typeof output !== 'function') invalid('output must be a function returning a Uint8Array');
  return output;
}

function checkMaxRecords(maxRecords: number): void {
  if (!Number.isSafeInteger(maxRecords) || maxRecords < 0) invalid(`maxRecords must be a non-negative integer, got ${String(maxRecords)}`);
}

function checkPage(options: DecodeOptions | undefined): RecordsPage | undefined {
  const from = options?.from;
  const maxRecords = options?.maxRecords;
  if (from === undefined) {
    if (maxRecords !== undefined) invalid('maxRecords needs from');
    return undefined;
  }
  checkOffset(from, 'from');
  if (maxRecords !== undefined) checkMaxRecords(maxRecords);
  return { from, maxRecords: maxRecords ?? Number.MAX_SAFE_INTEGER };
}

/**
 * Decodes one complete batch (as made by `encodeBatch`), checking its CRC first. Keys and values
 * are views of one buffer (the input itself for uncompressed batches; for LZ4, a fresh array,
 * or the caller's `output`). Pass the `BatchRange` the bytes were read from to also check that
 * they are the batch the segment index promised.
 * @example
 * for (const r of decodeBatch(batch).records) console.log(r.offset, r.value);
 * const { records } = decodeBatch(await blobs.get(name, { offset: range.offset, length: range.length }), range);
 * // Records used before the next decode: decompress into one recycled buffer.
 * let spare = new Uint8Array(1 << 20);
 * const output = (n: number) => (spare.length >= n ? spare : (spare = new Uint8Array(n))).subarray(0, n);
 * for (const r of decodeBatch(batch, undefined, { output }).records) send(r.value);
 * // A page of 10 from offset 1234 on, without building the batch's other records:
 * const page = decodeBatch(batch, undefined, { from: 1234, maxRecords: 10 }).records;
 */
export function decodeBatch(bytes: Uint8Array, expected?: Pick<BatchRange, 'baseOffset' | 'nextOffset'>, options?: DecodeOptions): DecodedBatch {
  const output = checkOutput(options);
  const page = checkPage(options);
  const h = readBatchHeader(bytes);
  if (h.length !== bytes.length) fail(ErrorCode.CORRUPT_DATA, `batch: ${bytes.length - h.length} bytes follow the ${h.length}-byte batch`, h.length);
  if (expected && (h.baseOffset !== expected.baseOffset || h.nextOffset !== expected.nextOffset)) {
    fail(ErrorCode.CORRUPT_DATA, `batch: holds offsets ${h.baseOffset}..${h.nextOffset - 1}, the segment index says ${expected.baseOffset}..${expected.nextOffset - 1}`, 0);
  }
  const records = decodeBatchAt(bytes, 0, h, 'batch', output, page);
  return { baseOffset: h.baseOffset, lastOffsetDelta: h.lastOffsetDelta, nextOffset: h.nextOffset, baseTimestamp: h.baseTimestamp, maxTimestamp: h.maxTimestamp, records };
}

export interface AppendBatchOptions {
  /**
   * The bytes come from `encodeBatch` in this process and were never stored and read back, so
   * their CRC is not re-checked (header sanity and offset continuity still are).
   */
  verified?: boolean;
  /**
   * Stores a batch whose records section is larger than this many bytes as several batches of at
   * most this many bytes of records each (a single larger record gets one of its own), so that a
   * reader of a few records decodes a small batch rather than the producer's whole one. Each keeps
   * the batch's codec, producer id and epoch; its base sequence (when set) advances by the records
   * before it. Smaller batches, and batches of one record, are appended as they are.
   */
  blockBytes?: number;
}

/** Bytes a rewritten record may grow by: its offset and timestamp deltas, each up to a 10-byte varint. */
const RECUT_GROWTH = 18;

export interface SegmentWriterOptions {
  baseOffset: number;
  /** Codec `append` uses; `appendBatch` keeps each batch's own. Default 'lz4'. */
  codec?: SegmentCodec;
  /** Milliseconds since the epoch for the header; default `Date.now()`. */
  createdAt?: number;
}

/** Smallest and largest staging chunk `append` copies batches into. */
const STAGING_MIN = 256 << 10;
const STAGING_MAX = 8 << 20;
/** Staging bytes kept between writers: enough for a default 8 MiB segment with room to spare. */
const STAGING_RETAIN = 32 << 20;
/**
 * Staging chunks of finished writers, reused by the next. Without them every `append`ed batch was
 * allocated twice (its own copy, then the segment), and that off-heap churn set off full GCs.
 */
const spareChunks: Uint8Array[] = [];

function takeChunk(min: number): Uint8Array {
  for (let i = 0; i < spareChunks.length; i++) {
    if (spareChunks[i]!.length >= min) return spareChunks.splice(i, 1)[0]!;
  }
  return new Uint8Array(min);
}

function returnChunks(chunks: readonly Uint8Array[]): void {
  let kept = 0;
  for (const c of spareChunks) kept += c.length;
  for (const c of chunks) {
    if (kept + c.length > STAGING_RETAIN) break;
    spareChunks.push(c);
    kept += c.length;
  }
}

/**
 * Builds one segment in memory: header, batches, footer (offset and time index), trailer.
 * @example
 * const w = new SegmentWriter({ baseOffset: 0 });
 * w.append(records);
 * const blob = w.finish();
 */
export class SegmentWriter {
  readonly baseOffset: number;
  readonly codec: SegmentCodec;
  readonly createdAt: number;
  /** Each batch: the caller's bytes (`appendBatch`) or a view of a staging chunk (`append`). */
  private readonly batches: Uint8Array[] = [];
  private readonly batchMaxTs: number[] = [];
  /** Staging chunks never move once allocated, so views of them stay valid until `finish`. */
  private readonly chunks: Uint8Array[] = [];
  private chunkUsed = 0;
  private next: number;
  private bytes = SEGMENT_HEADER_SIZE;
  private records = 0;
  private finished = false;

  constructor(options: SegmentWriterOptions) {
    this.baseOffset = checkOffset(options?.baseOffset, 'baseOffset');
    this.codec = options.codec ?? 'lz4';
    if (this.codec !== 'none' && this.codec !== 'lz4') invalid(`codec must be 'none' or 'lz4', got ${String(this.codec)}`);
    this.createdAt = checkInt(options.createdAt, Date.now(), -MAX_TIMESTAMP, MAX_TIMESTAMP, 'createdAt');
    this.next = this.baseOffset;
  }

  /** The offset the next record gets. */
  get nextOffset(): number {
    return this.next;
  }

  get recordCount(): number {
    return this.records;
  }

  /** Bytes the finished segment will take with what is appended so far. */
  get byteLength(): number {
    return this.bytes + FOOTER_FIXED_SIZE + FOOTER_ENTRY_SIZE * this.batchMaxTs.length + SEGMENT_TRAILER_SIZE;
  }

  /**
   * Encodes `records` as one batch at the next offset; returns that batch's base offset.
   * @example
   * const first = writer.append([{ key: null, value: bytes, timestamp: Date.now() }]);
   */
  append(records: readonly SegmentRecord[]): number {
    this.checkOpen();
    const base = this.next;
    const w = wasm();
    try {
      const { bytes: encoded, header: h } = encodeBatchView(w, records, { baseOffset: base, codec: this.codec });
      this.checkRoom(encoded.length, 'append');
      const batch = this.stage(encoded.length);
      batch.set(encoded);
      this.push(batch, h.maxTimestamp, h.recordCount, h.nextOffset);
    } finally {
      releaseLarge(w);
    }
    return base;
  }

  /** `n` bytes of staging; chunks grow by doubling and a batch never straddles two. */
  private stage(n: number): Uint8Array {
    let chunk = this.chunks[this.chunks.length - 1];
    if (chunk === undefined || chunk.length - this.chunkUsed < n) {
      chunk = takeChunk(Math.max(n, chunk === undefined ? STAGING_MIN : Math.min(chunk.length * 2, STAGING_MAX)));
      this.chunks.push(chunk);
      this.chunkUsed = 0;
    }
    const view = chunk.subarray(this.chunkUsed, this.chunkUsed + n);
    this.chunkUsed += n;
    return view;
  }

  private checkRoom(length: number, what: string): void {
    if (this.byteLength + length + FOOTER_ENTRY_SIZE > MAX_SEGMENT_SIZE) {
      fail(ErrorCode.TOO_LARGE, `${what}: the segment would pass ${MAX_SEGMENT_SIZE} bytes`);
    }
  }

  /**
   * Appends a batch made by `encodeBatch` verbatim, after checking its header, that it starts at
   * `nextOffset` and (unless `verified`) its CRC. The bytes are kept by reference until
   * `finish()`: do not change them.
   *
   * `verified: true` is for bytes this process encoded itself and kept in memory since: the CRC
   * would only re-check `encodeBatch`'s own work (~15% of sealing time for uncompressed
   * batches). Bytes read back from storage must never be passed as verified.
   * @example
   * const sealer = new SegmentWriter({ baseOffset: tail[0].base });
   * for (const entry of tail) sealer.appendBatch(entry.bytes, { verified: entry.encodedHere });
   * const blob = sealer.finish();
   */
  appendBatch(encoded: Uint8Array, options?: AppendBatchOptions): void {
    this.checkOpen();
    const blockBytes = options?.blockBytes;
    if (blockBytes !== undefined && (!Number.isSafeInteger(blockBytes) || blockBytes < 1)) invalid(`blockBytes must be a positive integer, got ${String(blockBytes)}`);
    const h = readBatchHeader(encoded, 0, 'appended batch');
    if (h.length !== encoded.length) fail(ErrorCode.CORRUPT_DATA, `appended batch: ${encoded.length - h.length} bytes follow the ${h.length}-byte batch`, h.length);
    const verified = options?.verified === true;
    // A batch that is cut has its CRC checked as it is decompressed (appendCut).
    const cut = blockBytes !== undefined && h.uncompressedSize > blockBytes && h.recordCount > 1;
    if (!cut && !verified && !batchCrcHolds(encoded, 0, h)) {
      fail(ErrorCode.CHECKSUM_MISMATCH, `appended batch at offset ${h.baseOffset}: CRC32C does not match`, 0);
    }
    if (h.baseOffset !== this.next) invalid(`appended batch starts at offset ${h.baseOffset}, the segment's next offset is ${this.next}`);
    if (cut) {
      this.appendCut(encoded, h, blockBytes, verified);
      return;
    }
    this.checkRoom(encoded.length, 'appendBatch');
    this.push(encoded, h.maxTimestamp, h.recordCount, h.nextOffset);
  }

  /**
   * `appendBatch` of a batch cut into batches of at most `blockBytes` of records: its section is
   * CRC-checked (LZ4 always: it is decompressed), cut and rewritten by `cutRecords` in the codec's
   * spare region, and each block encoded there (compressed, header, CRC) and staged. Nothing is
   * appended unless the whole section checks out.
   */
  private appendCut(encoded: Uint8Array, h: BatchHeader, blockBytes: number, verified: boolean): void {
    const subject = `appended batch at offset ${h.baseOffset}`;
    const w = wasm();
    const lz4 = h.codec === 'lz4';
    const size = h.uncompressedSize;
    const blocks: Uint8Array[] = [];
    const facts: RecordsBlock[] = [];
    /** Bytes the blocks staged so far will add to the segment, their index entries included. */
    let pending = 0;
    try {
      let section = BATCH_HEADER_SIZE;
      if (lz4) section = decompressSection(w, encoded, 0, h, subject);
      else if (!verified && !batchCrcHolds(encoded, 0, h)) fail(ErrorCode.CHECKSUM_MISMATCH, `${subject}: CRC32C does not match`, 0);
      // Spare region: a block's records, then the block as stored (header + compressed records).
      const rawCap = Math.max(blockBytes, size) + RECUT_GROWTH;
      const storedCap = lz4 ? w.lz4_compress_bound(rawCap) : rawCap;
      const raw = scratch(w, 2, rawCap + BATCH_HEADER_SIZE + storedCap);
      const dst = raw + rawCap;
      const mem = memoryView(w);
      const src = lz4 ? mem : encoded;
      cutRecords(src, section, section + size, h, blockBytes, mem, raw, subject, (block) => {
        let stored = block.size;
        let codecId = CODEC_NONE;
        if (lz4) {
          const n = w.lz4_compress_block(raw, block.size, dst + BATCH_HEADER_SIZE, storedCap);
          if (n < 0) fail(ErrorCode.INTERNAL, `LZ4 compression of a ${block.size}-byte block failed with code ${n}`);
          if (n < block.size) {
            stored = n;
            codecId = CODEC_LZ4;
          }
        }
        if (codecId === CODEC_NONE) mem.copyWithin(dst + BATCH_HEADER_SIZE, raw, raw + block.size);
        const length = BATCH_HEADER_SIZE + stored;
        const b = mem.subarray(dst, dst + length);
        // The fields of encodeBatchView's header, for the block's own records.
        put32(b, 0, length);
        put16(b, 8, codecId);
        put16(b, 10, h.producerEpoch);
        put32(b, 12, block.lastOffsetDelta);
        put64(b, 16, h.baseOffset + block.baseDelta);
        put64(b, 24, block.baseTimestamp);
        put64(b, 32, block.maxTimestamp);
        put64(b, 40, h.producerId);
        put32(b, 48, h.baseSequence < 0 ? h.baseSequence : (h.baseSequence + block.firstIndex) % 0x80000000);
        put32(b, 52, block.recordCount);
        put32(b, 56, block.size);
        put32(b, 4, w.crc32c(0, dst + 8, length - 8) >>> 0);
        this.checkRoom(pending + length, 'appendBatch');
        pending += length + FOOTER_ENTRY_SIZE;
        const staged = this.stage(length);
        staged.set(b);
        blocks.push(staged);
        facts.push(block);
      });
    } finally {
      releaseLarge(w);
    }
    for (let k = 0; k < blocks.length; k++) {
      const f = facts[k]!;
      this.push(blocks[k]!, f.maxTimestamp, f.recordCount, h.baseOffset + f.baseDelta + f.lastOffsetDelta + 1);
    }
  }

  private push(batch: Uint8Array, maxTimestamp: number, recordCount: number, nextOffset: number): void {
    this.batches.push(batch);
    this.batchMaxTs.push(maxTimestamp);
    this.bytes += batch.length;
    this.records += recordCount;
    this.next = nextOffset;
  }

  private checkOpen(): void {
    if (this.finished) invalid('this segment writer is finished');
  }

  /**
   * The complete segment. The writer cannot be used afterwards.
   * @example
   * await blobs.put(`seg/${writer.baseOffset}`, writer.finish());
   */
  finish(): Uint8Array {
    const parts = this.seal();
    let size = 0;
    for (const p of parts) size += p.length;
    const out = new Uint8Array(size);
    let pos = 0;
    for (const p of parts) {
      out.set(p, pos);
      pos += p.length;
    }
    returnChunks(this.chunks);
    this.chunks.length = 0;
    return out;
  }

  /**
   * The complete segment as parts whose concatenation is `finish()`'s bytes: the header, every
   * batch as appended (the caller's bytes, or views of staging chunks, which are then left to
   * the garbage collector rather than reused), then footer and trailer. For a blob store that
   * writes parts (writev), it saves copying a whole segment. The writer cannot be used afterwards.
   * @example
   * await blobs.putParts(`seg/${writer.baseOffset}`, writer.finishParts());
   */
  finishParts(): Uint8Array[] {
    const parts = this.seal();
    this.chunks.length = 0;
    return parts;
  }

  /** Header, batches, footer + trailer; marks the writer finished. */
  private seal(): Uint8Array[] {
    this.checkOpen();
    this.finished = true;
    const n = this.batches.length;
    const head = new Uint8Array(SEGMENT_HEADER_SIZE);
    // Header — 0: magic "STRM"  4: version u16  6: flags u16  8: base offset u64  16: created-at i64
    // 24: record count u32  28: header CRC32C u32
    put32(head, 0, MAGIC_STRM);
    put16(head, 4, SEGMENT_VERSION);
    put16(head, 6, 0);
    put64(head, 8, this.baseOffset);
    put64(head, 16, this.createdAt);
    put32(head, 24, this.records);
    put32(head, 28, crcOf(head, 0, 28));
    const footerPos = this.bytes;
    const footerLen = FOOTER_FIXED_SIZE + FOOTER_ENTRY_SIZE * n;
    const foot = new Uint8Array(footerLen + SEGMENT_TRAILER_SIZE);
    // Footer — 0: magic "SIDX"  4: n u32  8: base offset u64  16: next offset u64  24: max timestamp i64
    // 32: offset index n × (offset delta u32, position u32)  32+8n: time index n × (running max ts i64, offset delta u32)
    // 32+20n: footer CRC32C u32
    put32(foot, 0, MAGIC_SIDX);
    put32(foot, 4, n);
    put64(foot, 8, this.baseOffset);
    put64(foot, 16, this.next);
    let pos = SEGMENT_HEADER_SIZE;
    let runningMax = -MAX_TIMESTAMP - 1;
    const timeIndex = 32 + 8 * n;
    for (let k = 0; k < n; k++) {
      const batch = this.batches[k]!;
      const delta = u64(batch, 16) - this.baseOffset;
      put32(foot, 32 + 8 * k, delta);
      put32(foot, 36 + 8 * k, pos);
      runningMax = Math.max(runningMax, this.batchMaxTs[k]!);
      put64(foot, timeIndex + 12 * k, runningMax);
      put32(foot, timeIndex + 12 * k + 8, delta);
      pos += batch.length;
    }
    // An empty segment has no timestamps: i64 min marks "none".
    if (n === 0) put32(foot, 28, 0x80000000);
    else put64(foot, 24, runningMax);
    put32(foot, footerLen - 4, crcOf(foot, 0, footerLen - 4));
    // Trailer — 0: footer position u32  4: footer length u32  8: version u16  10: reserved u16
    // 12: trailer CRC32C u32  16: magic "STRM"
    const t = footerLen;
    put32(foot, t, footerPos);
    put32(foot, t + 4, footerLen);
    put16(foot, t + 8, SEGMENT_VERSION);
    put32(foot, t + 12, crcOf(foot, t, t + 12));
    put32(foot, t + 16, MAGIC_STRM);
    const parts = [head, ...this.batches, foot];
    this.batches.length = 0;
    return parts;
  }
}

/** Where a batch lives inside a segment blob, for a range read. */
export interface BatchRange {
  /** Byte position of the batch from the segment start. */
  offset: number;
  length: number;
  baseOffset: number;
  nextOffset: number;
}

export interface SegmentTrailer {
  footerPosition: number;
  footerLength: number;
  /** Bytes from the footer start to the segment end: what a tail read must cover. */
  tailLength: number;
}

/**
 * Parses the trailer from the last 20 bytes of `tail`, the end of a `size`-byte segment.
 * @example
 * const t = readTrailer(await blobs.get(name, { offset: size - 20, length: 20 }), size);
 */
export function readTrailer(tail: Uint8Array, size: number): SegmentTrailer {
  if (!(tail instanceof Uint8Array)) invalid('segment tail must be a Uint8Array');
  if (!Number.isSafeInteger(size) || size < tail.length) invalid(`segment size ${String(size)} does not fit a ${tail.length}-byte tail`);
  if (tail.length < SEGMENT_TRAILER_SIZE) fail(ErrorCode.CORRUPT_DATA, `segment trailer: ${tail.length} bytes, shorter than ${SEGMENT_TRAILER_SIZE}`);
  const t = tail.length - SEGMENT_TRAILER_SIZE;
  const where = size - SEGMENT_TRAILER_SIZE;
  if (u32(tail, t + 16) !== MAGIC_STRM) fail(ErrorCode.UNSUPPORTED_FORMAT, 'segment trailer: no "STRM" magic at the end', where + 16);
  if (crcOf(tail, t, t + 12) !== u32(tail, t + 12)) fail(ErrorCode.CHECKSUM_MISMATCH, 'segment trailer: CRC32C does not match', where + 12);
  const version = u16(tail, t + 8);
  if (version !== SEGMENT_VERSION || u16(tail, t + 10) !== 0) fail(ErrorCode.UNSUPPORTED_FORMAT, `segment trailer: format version ${version} (this reader knows ${SEGMENT_VERSION})`, where + 8);
  const footerPosition = u32(tail, t);
  const footerLength = u32(tail, t + 4);
  if (footerLength < FOOTER_FIXED_SIZE || (footerLength - FOOTER_FIXED_SIZE) % FOOTER_ENTRY_SIZE !== 0 || footerPosition < SEGMENT_HEADER_SIZE || footerPosition + footerLength + SEGMENT_TRAILER_SIZE !== size) {
    fail(ErrorCode.CORRUPT_DATA, `segment trailer: footer at ${footerPosition} of ${footerLength} bytes does not fit a ${size}-byte segment`, where);
  }
  return { footerPosition, footerLength, tailLength: footerLength + SEGMENT_TRAILER_SIZE };
}

/** The in-memory batch index, from a footer or rebuilt by a recovery scan. */
interface SegmentIndex {
  baseOffset: number;
  nextOffset: number;
  maxTimestamp: number;
  /** n + 1 entries: the last is the next offset. */
  offsets: number[];
  /** n + 1 entries: the last is where the batches end. */
  positions: number[];
  /** Running max timestamp through each batch. */
  runningMax: number[];
}

function readFooter(bytes: Uint8Array, at: number, length: number, trailer: SegmentTrailer): SegmentIndex {
  const subject = 'segment footer';
  const pos = trailer.footerPosition;
  if (u32(bytes, at) !== MAGIC_SIDX) fail(ErrorCode.CORRUPT_DATA, `${subject}: no "SIDX" magic`, pos);
  if (crcOf(bytes, at, at + length - 4) !== u32(bytes, at + length - 4)) fail(ErrorCode.CHECKSUM_MISMATCH, `${subject}: CRC32C does not match`, pos + length - 4);
  const n = u32(bytes, at + 4);
  if (FOOTER_FIXED_SIZE + FOOTER_ENTRY_SIZE * n !== length) fail(ErrorCode.CORRUPT_DATA, `${subject}: ${n} batches do not fill ${length} bytes`, pos + 4);
  const baseOffset = u64(bytes, at + 8);
  const nextOffset = u64(bytes, at + 16);
  if (baseOffset < 0 || nextOffset < baseOffset || (n === 0) !== (nextOffset === baseOffset)) fail(ErrorCode.CORRUPT_DATA, `${subject}: offsets ${baseOffset}..${nextOffset} are not a range`, pos + 8);
  const maxTimestamp = i64(bytes, at + 24);
  const offsets: number[] = new Array(n + 1);
  const positions: number[] = new Array(n + 1);
  const runningMax: number[] = new Array(n);
  const timeIndex = at + 32 + 8 * n;
  for (let k = 0; k < n; k++) {
    const o = baseOffset + u32(bytes, at + 32 + 8 * k);
    const p = u32(bytes, at + 36 + 8 * k);
    const ts = i64(bytes, timeIndex + 12 * k);
    const ok =
      (k === 0 ? o === baseOffset && p === SEGMENT_HEADER_SIZE : o > offsets[k - 1]! && p >= positions[k - 1]! + BATCH_HEADER_SIZE && ts >= runningMax[k - 1]!) &&
      o < nextOffset &&
      p + BATCH_HEADER_SIZE <= pos &&
      Math.abs(ts) <= MAX_TIMESTAMP &&
      u32(bytes, timeIndex + 12 * k + 8) === o - baseOffset;
    if (!ok) fail(ErrorCode.CORRUPT_DATA, `${subject}: index entry ${k} is out of order`, pos + 32 + 8 * k);
    offsets[k] = o;
    positions[k] = p;
    runningMax[k] = ts;
  }
  offsets[n] = nextOffset;
  positions[n] = pos;
  if (n > 0 && maxTimestamp !== runningMax[n - 1]) fail(ErrorCode.CORRUPT_DATA, `${subject}: max timestamp disagrees with the time index`, pos + 24);
  return { baseOffset, nextOffset, maxTimestamp: n === 0 ? -Infinity : maxTimestamp, offsets, positions, runningMax };
}

/** Index of the last entry of sorted `a[0, n)` that is ≤ `x` (−1 if none). */
function floorIndex(a: readonly number[], n: number, x: number): number {
  let lo = 0;
  let hi = n - 1;
  let found = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    if (a[mid]! <= x) {
      found = mid;
      lo = mid + 1;
    } else hi = mid - 1;
  }
  return found;
}

/**
 * Stored bytes of the batches decoded into one section (a run `SegmentReader.readFrom` decodes, a
 * piece of a tail entry's run): bounds the section a page's records keep alive (LZ4 batches
 * decompress to a few times this, ~150 KB on JSON). 64 KiB measured no slower than 256 KiB or
 * 1 MiB through the streams engine and often faster at 1 KB records (fewer ~1.1 µs/rec outliers),
 * as a section stays in cache while it is parsed; a tail entry of 1,000 1 KB records decoded ~10%
 * faster in 64 KiB pieces than in one 1 MB section.
 */
const RUN_STORED_BYTES = 64 << 10;

function batchSubject(k: number, r: BatchRange): string {
  return `segment batch ${k} (offsets ${r.baseOffset}..${r.nextOffset - 1})`;
}

/**
 * Index of the first of `records` whose offset is ≥ `offset`. Offsets ascend within a batch: a
 * binary search, so paging through a big batch in small pages does not rescan it from its start.
 */
function firstAtOrAfter(records: readonly DecodedRecord[], offset: number): number {
  let lo = 0;
  let hi = records.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (records[mid]!.offset < offset) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

export type OpenTailResult = { reader: SegmentReader; needBytes?: undefined } | { reader?: undefined; needBytes: number };

/**
 * Reads a segment. `open(bytes)` takes the whole blob (recovering a torn tail);
 * `openTail(tail, { size })` takes only its last bytes and serves `batchRange` for range reads.
 * @example
 * const r = SegmentReader.open(blob);
 * const page = r.readFrom(r.baseOffset, 100);
 */
export class SegmentReader {
  /** Bytes of the segment (the full size, also when opened from the tail). */
  readonly byteLength: number;
  /** Bytes cut from the end by recovery: 0 for an intact segment. */
  readonly droppedBytes: number;
  /** True when the footer could not be used and the batches were found by a recovery scan. */
  readonly recovered: boolean;
  /** Footer bytes plus the trailer: what a tail read needs. 0 after recovery (no footer). */
  readonly footerBytes: number;
  /** Created-at from the header, or undefined when opened from the tail. */
  readonly createdAt: number | undefined;
  private cachedBatch = -1;
  private cachedRecords: DecodedRecord[] = [];

  private constructor(
    private readonly bytes: Uint8Array | undefined,
    private readonly index: SegmentIndex,
    byteLength: number,
    droppedBytes: number,
    footerBytes: number,
    createdAt: number | undefined,
    /** DecodeOptions.output: where LZ4 batches are decompressed to (fresh arrays when unset). */
    private readonly output?: DecodeOptions['output'],
  ) {
    this.byteLength = byteLength;
    this.droppedBytes = droppedBytes;
    this.footerBytes = footerBytes;
    this.recovered = footerBytes === 0;
    this.createdAt = createdAt;
  }

  get baseOffset(): number {
    return this.index.baseOffset;
  }
  /** Last offset + 1. */
  get nextOffset(): number {
    return this.index.nextOffset;
  }
  get batchCount(): number {
    return this.index.offsets.length - 1;
  }
  /** Largest record timestamp, or -Infinity for an empty segment. */
  get maxTimestamp(): number {
    return this.index.maxTimestamp;
  }
  /** Footer length without the trailer, 0 after recovery. */
  get footerLength(): number {
    return this.footerBytes === 0 ? 0 : this.footerBytes - SEGMENT_TRAILER_SIZE;
  }

  /**
   * Opens a whole segment. If the trailer or footer is torn or damaged, falls back to scanning
   * batches from the start, keeping each whose CRC holds, and reports `droppedBytes`.
   * With `output` (see `DecodeOptions`), each LZ4 batch the reader decodes is decompressed into
   * what it returns, and records read from that batch are valid only while the caller leaves
   * that memory alone. One `readFrom` may decode several batches, one `output` call each: memory
   * handed out again within one call, or while earlier pages are in use, overwrites their records.
   * @example
   * const r = SegmentReader.open(blob);
   * if (r.droppedBytes > 0) console.warn(`recovered, ${r.droppedBytes} bytes lost`);
   */
  static open(bytes: Uint8Array, options?: DecodeOptions): SegmentReader {
    const output = checkOutput(options);
    if (!(bytes instanceof Uint8Array)) invalid('segment bytes must be a Uint8Array');
    const size = bytes.length;
    if (size > MAX_SEGMENT_SIZE) invalid(`segment of ${size} bytes is over the ${MAX_SEGMENT_SIZE}-byte limit`);
    if (size < SEGMENT_HEADER_SIZE) fail(ErrorCode.CORRUPT_DATA, `segment: ${size} bytes, shorter than its ${SEGMENT_HEADER_SIZE}-byte header`, 0);
    if (u32(bytes, 0) !== MAGIC_STRM) fail(ErrorCode.UNSUPPORTED_FORMAT, 'segment: no "STRM" magic at the start', 0);
    if (crcOf(bytes, 0, 28) !== u32(bytes, 28)) fail(ErrorCode.CHECKSUM_MISMATCH, 'segment header: CRC32C does not match', 28);
    const version = u16(bytes, 4);
    if (version !== SEGMENT_VERSION) fail(ErrorCode.UNSUPPORTED_FORMAT, `segment header: format version ${version} (this reader knows ${SEGMENT_VERSION})`, 4);
    if (u16(bytes, 6) !== 0) fail(ErrorCode.UNSUPPORTED_FORMAT, `segment header: unknown flags 0x${u16(bytes, 6).toString(16)}`, 6);
    const baseOffset = u64(bytes, 8);
    if (baseOffset < 0) fail(ErrorCode.CORRUPT_DATA, 'segment header: base offset beyond 2^53 − 1', 8);
    const createdAt = i64(bytes, 16);

    let index: SegmentIndex | undefined;
    let footerBytes = 0;
    if (size >= SEGMENT_HEADER_SIZE + FOOTER_FIXED_SIZE + SEGMENT_TRAILER_SIZE) {
      try {
        const trailer = readTrailer(bytes, size);
        index = readFooter(bytes, trailer.footerPosition, trailer.footerLength, trailer);
        if (index.baseOffset !== baseOffset) fail(ErrorCode.CORRUPT_DATA, `segment footer: base offset ${index.baseOffset} differs from the header's ${baseOffset}`, trailer.footerPosition + 8);
        footerBytes = trailer.tailLength;
      } catch (err) {
        // A torn or damaged tail is what recovery is for; anything else is a bug to surface.
        if (!(err instanceof QuartzError)) throw err;
        index = undefined;
      }
    }
    if (index) return new SegmentReader(bytes, index, size, 0, footerBytes, createdAt, output);
    const scanned = scanBatches(bytes, baseOffset);
    return new SegmentReader(bytes, scanned, size, size - scanned.positions[scanned.positions.length - 1]!, 0, createdAt, output);
  }

  /**
   * Opens from the last `tail.length` bytes of a `size`-byte segment. If they do not cover the
   * footer, returns `{ needBytes }`: read that many bytes from the end and call again.
   * @example
   * let tail = await blobs.get(name, { offset: size - 4096, length: 4096 });
   * let { reader, needBytes } = SegmentReader.openTail(tail, { size });
   */
  static openTail(tail: Uint8Array, options: { size: number }): OpenTailResult {
    const size = options?.size;
    if (!(tail instanceof Uint8Array)) invalid('segment tail must be a Uint8Array');
    if (!Number.isSafeInteger(size) || size > MAX_SEGMENT_SIZE || size < tail.length) invalid(`segment size ${String(size)} does not fit a ${tail.length}-byte tail`);
    if (size < SEGMENT_HEADER_SIZE + FOOTER_FIXED_SIZE + SEGMENT_TRAILER_SIZE) fail(ErrorCode.CORRUPT_DATA, `segment: ${size} bytes, too short to hold a footer`);
    const trailer = readTrailer(tail, size);
    if (tail.length < trailer.tailLength) return { needBytes: trailer.tailLength };
    const at = tail.length - trailer.tailLength;
    const index = readFooter(tail, at, trailer.footerLength, trailer);
    return { reader: new SegmentReader(undefined, index, size, 0, trailer.tailLength, undefined) };
  }

  private batchIndex(offset: number): number {
    checkOffset(offset, 'offset');
    const { baseOffset, nextOffset } = this.index;
    if (offset < baseOffset || offset >= nextOffset) {
      throw new QuartzError(ErrorCode.OFFSET_OUT_OF_RANGE, `offset ${offset} is not in this segment (${baseOffset}..${nextOffset - 1})`, {
        details: { baseOffset, nextOffset },
      });
    }
    return floorIndex(this.index.offsets, this.batchCount, offset);
  }

  private range(k: number): BatchRange {
    const { offsets, positions } = this.index;
    return { offset: positions[k]!, length: positions[k + 1]! - positions[k]!, baseOffset: offsets[k]!, nextOffset: offsets[k + 1]! };
  }

  /**
   * Byte range of the batch holding `offset`, found through the index alone; decode the bytes
   * read from it with `decodeBatch`.
   * @example
   * const { offset: at, length } = reader.batchRange(42);
   * const { records } = decodeBatch(await blobs.get(name, { offset: at, length }));
   */
  batchRange(offset: number): BatchRange {
    return this.range(this.batchIndex(offset));
  }

  /**
   * Byte range of the batch holding the first record with timestamp ≥ `timestamp`, or null if
   * every record is older.
   * @example
   * const range = reader.batchRangeByTime(Date.now() - 60_000);
   */
  batchRangeByTime(timestamp: number): BatchRange | null {
    const k = this.timeIndex(timestamp);
    return k < 0 ? null : this.range(k);
  }

  private timeIndex(timestamp: number): number {
    if (typeof timestamp !== 'number' || Number.isNaN(timestamp)) invalid(`timestamp must be a number, got ${String(timestamp)}`);
    const m = this.index.runningMax;
    let lo = 0;
    let hi = m.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (m[mid]! >= timestamp) hi = mid;
      else lo = mid + 1;
    }
    return lo < m.length ? lo : -1;
  }

  /** Decodes batch k, checking that it is the batch the index says. */
  private decode(k: number): DecodedRecord[] {
    // Consumers page through a batch in several reads; keep the last one decoded.
    if (k === this.cachedBatch) return this.cachedRecords;
    const records = this.decodeChecked(k);
    this.cachedBatch = k;
    this.cachedRecords = records;
    return records;
  }

  /** Batch k (only `page`'s records when given), checked against the index. */
  private decodeChecked(k: number, page?: RecordsPage): DecodedRecord[] {
    const bytes = this.segmentBytes();
    const r = this.range(k);
    const subject = batchSubject(k, r);
    const h = this.checkedHeader(bytes, k, r, subject);
    return decodeBatchAt(bytes, r.offset, h, subject, this.output, page);
  }

  private segmentBytes(): Uint8Array {
    const bytes = this.bytes;
    if (bytes === undefined) invalid('this segment was opened from its tail: read batchRange() and use decodeBatch()');
    return bytes;
  }

  /** Batch k's header, checked against the index (its offsets, length and the time index). */
  private checkedHeader(bytes: Uint8Array, k: number, r: BatchRange, subject: string): BatchHeader {
    const h = readBatchHeader(bytes, r.offset, subject);
    if (h.length !== r.length || h.baseOffset !== r.baseOffset || h.nextOffset !== r.nextOffset) {
      fail(ErrorCode.CORRUPT_DATA, `${subject}: the batch header disagrees with the segment index`, r.offset);
    }
    const prevMax = k === 0 ? -Infinity : this.index.runningMax[k - 1]!;
    if (Math.max(prevMax, h.maxTimestamp) !== this.index.runningMax[k]) fail(ErrorCode.CORRUPT_DATA, `${subject}: max timestamp disagrees with the time index`, r.offset + 32);
    return h;
  }

  /**
   * The end of the run of batches from `first` that a read of `want` records from `offset` may
   * need (offsets may have gaps, so the run can fall short and the caller reads on), at most
   * RUN_STORED_BYTES of stored batches but always at least one.
   */
  private runEnd(first: number, offset: number, want: number): number {
    const { offsets, positions } = this.index;
    const from = Math.max(offset, offsets[first]!);
    let end = first + 1;
    while (end < this.batchCount && offsets[end]! - from < want && positions[end + 1]! - positions[first]! <= RUN_STORED_BYTES) end++;
    return end;
  }

  /**
   * Batches first..end-1, each checked against the index, decoded by `decodeRunAt`: one copy into
   * the codec's memory and one section out for the run's LZ4 batches rather than one each, every
   * CRC checked first. A run of small batches (see `AppendBatchOptions.blockBytes`) costs about
   * what one batch of the same records did. Keeps the last batch for a reader paging on.
   */
  private decodeRun(first: number, end: number): DecodedRecord[][] {
    const bytes = this.segmentBytes();
    const headers: BatchHeader[] = new Array(end - first);
    const subjects: string[] = new Array(end - first);
    for (let k = first; k < end; k++) {
      const r = this.range(k);
      subjects[k - first] = batchSubject(k, r);
      headers[k - first] = this.checkedHeader(bytes, k, r, subjects[k - first]!);
    }
    const runs = decodeRunAt(bytes, this.index.positions[first]!, headers, (i) => subjects[i]!);
    this.cachedBatch = end - 1;
    this.cachedRecords = runs[runs.length - 1]!;
    return runs;
  }

  /**
   * Up to `maxRecords` records from `offset` on, from the one batch that holds `offset`: the batch's
   * CRC is checked whole, but only the records up to these are decompressed and parsed and only
   * these are built (see `DecodeOptions.from`), and nothing is kept, unlike `readFrom`. For random
   * reads of a few records, which rarely come back to a batch.
   * @example
   * const page = reader.readWindow(123_456, 10); // at most 10, fewer at the end of the batch
   */
  readWindow(offset: number, maxRecords: number): DecodedRecord[] {
    checkMaxRecords(maxRecords);
    if (offset === this.index.nextOffset) return [];
    const k = this.batchIndex(offset);
    if (k === this.cachedBatch) {
      const from = firstAtOrAfter(this.cachedRecords, offset);
      return this.cachedRecords.slice(from, from + maxRecords);
    }
    return this.decodeChecked(k, { from: offset, maxRecords });
  }

  /**
   * Up to `maxRecords` records from `offset` on (offset in this segment, or `nextOffset` for an
   * empty answer). Only the batches holding them are decoded; the last one is kept, so paging
   * through a batch decodes it once. Treat the records as read-only: later pages share them.
   * @example
   * const page = reader.readFrom(1000, 500);
   */
  readFrom(offset: number, maxRecords: number): DecodedRecord[] {
    checkMaxRecords(maxRecords);
    if (offset === this.index.nextOffset) return [];
    const out: DecodedRecord[] = [];
    for (let k = this.batchIndex(offset); k < this.batchCount && out.length < maxRecords; ) {
      // With `output`, each batch gets its own output call (see `open`).
      const end = k === this.cachedBatch || this.output !== undefined ? k + 1 : this.runEnd(k, offset, maxRecords - out.length);
      const batches = end === k + 1 ? [this.decode(k)] : this.decodeRun(k, end);
      for (const records of batches) {
        const lo = firstAtOrAfter(records, offset);
        const stop = Math.min(records.length, lo + maxRecords - out.length);
        for (let i = lo; i < stop; i++) out.push(records[i]!);
      }
      k = end;
    }
    return out;
  }

  /**
   * The first offset whose record timestamp is ≥ `timestamp`, or null if all are older.
   * Decodes only the one batch the time index points at.
   * @example
   * reader.findOffsetByTime(Date.parse('2025-01-01')); // → 1234 or null
   */
  findOffsetByTime(timestamp: number): number | null {
    const k = this.timeIndex(timestamp);
    if (k < 0) return null;
    for (const r of this.decode(k)) if (r.timestamp >= timestamp) return r.offset;
    const b = this.range(k);
    return fail(ErrorCode.CORRUPT_DATA, `segment batch ${k}: the time index promises a record at or after ${timestamp}, the batch has none`, b.offset);
  }
}

/**
 * Recovery: walks batches from the header, keeping each that fits, continues the offsets and
 * whose CRC holds, up to the first that does not.
 */
function scanBatches(bytes: Uint8Array, baseOffset: number): SegmentIndex {
  const offsets: number[] = [baseOffset];
  const positions: number[] = [SEGMENT_HEADER_SIZE];
  const runningMax: number[] = [];
  let p = SEGMENT_HEADER_SIZE;
  let expected = baseOffset;
  let max = -Infinity;
  while (bytes.length - p >= BATCH_HEADER_SIZE) {
    let h: BatchHeader;
    try {
      h = readBatchHeader(bytes, p);
    } catch {
      break;
    }
    if (h.baseOffset !== expected || !batchCrcHolds(bytes, p, h)) break;
    p += h.length;
    expected = h.nextOffset;
    max = Math.max(max, h.maxTimestamp);
    runningMax.push(max);
    offsets.push(expected);
    positions.push(p);
  }
  return { baseOffset, nextOffset: expected, maxTimestamp: max, offsets, positions, runningMax };
}
