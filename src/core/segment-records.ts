/**
 * The records section of a segment batch (docs/format.md, "Record"): sizing, writing straight
 * into one buffer, and parsing into records whose bytes are `subarray` views of that buffer.
 */
import { ErrorCode, QuartzError } from './errors.js';
import { decodeUtf8 } from './utf8.js';
import { VarintReader, varintSize, writeVarint, zigzag, unzigzag } from './varint.js';

/** A record header. Keys are UTF-8 strings; a value may be null (distinct from empty). */
export interface SegmentHeader {
  key: string;
  value: Uint8Array | null;
}

/** A record as produced: a null key or value is distinct from an empty one. */
export interface SegmentRecord {
  key: Uint8Array | null;
  value: Uint8Array | null;
  headers?: SegmentHeader[];
  /** Milliseconds since the Unix epoch; an integer within ±(2^51 − 1). */
  timestamp: number;
}

/**
 * A record as an encoder takes it: `key` may be absent (= null) and `timestamp` may be absent
 * when the encoder is given a default, so a producer's records are encoded as they are rather
 * than cloned into `SegmentRecord`s only to add a timestamp.
 */
export interface EncodableRecord {
  key?: Uint8Array | null;
  value: Uint8Array | null;
  headers?: SegmentHeader[];
  timestamp?: number;
}

/**
 * Records given as where their key and value lie in one byte array, with no object or view per
 * record: how the HTTP produce route hands over the records of a body it read (their bytes are
 * the body's). An object and a `Uint8Array` view per record were most of a 100-record produce's
 * garbage. None has headers or a timestamp of its own: each gets the encoder's default. The
 * encoder reads `bytes` when it writes the records, so they must not change until then.
 *
 * @example
 * const body = utf8('k1v1');
 * const records = new RecordSpans(body, Int32Array.of(0, 2, 2, 4, -1, -1, 2, 4)); // {k1: v1}, {null: v1}
 */
export class RecordSpans {
  /** Records described. */
  readonly length: number;

  /**
   * `spans` holds four numbers per record: its key's start and end in `bytes`, then its value's;
   * a start of -1 is a null field (its end is then not read).
   */
  constructor(
    readonly bytes: Uint8Array,
    readonly spans: Int32Array,
  ) {
    if (!(bytes instanceof Uint8Array)) invalid('RecordSpans: bytes must be a Uint8Array');
    if (!(spans instanceof Int32Array) || spans.length % 4 !== 0) invalid('RecordSpans: spans must be an Int32Array of four numbers per record');
    const n = bytes.length;
    for (let k = 0; k < spans.length; k += 2) {
      const s = spans[k]!;
      if (s === -1) continue;
      const e = spans[k + 1]!;
      if (s < 0 || e < s || e > n) invalid(`RecordSpans: record ${k >> 2}'s ${(k & 2) === 0 ? 'key' : 'value'} span [${s}, ${e}) is not within the ${n} bytes`);
    }
    this.length = spans.length >> 2;
  }

  /** Record `i`'s key length, or -1 for a null key. */
  keyLength(i: number): number {
    const s = this.spans[i * 4]!;
    return s === -1 ? -1 : this.spans[i * 4 + 1]! - s;
  }

  /** Record `i`'s value length, or -1 for a null value. */
  valueLength(i: number): number {
    const s = this.spans[i * 4 + 2]!;
    return s === -1 ? -1 : this.spans[i * 4 + 3]! - s;
  }

  /** Records `from` to `to` - 1, over the same bytes. */
  slice(from: number, to: number): RecordSpans {
    return new RecordSpans(this.bytes, this.spans.subarray(from * 4, to * 4));
  }
}

/** What an encoder takes: record objects, or spans of one byte array. */
export type EncodableRecords = readonly EncodableRecord[] | RecordSpans;

/**
 * A decoded record: its bytes are views into the batch's decoded buffer. Read-only: records
 * without headers share one frozen empty `headers` array.
 */
export interface DecodedRecord extends SegmentRecord {
  offset: number;
  headers: SegmentHeader[];
}

/** Timestamps are kept within ±2^51 so that zigzagged deltas stay exact in a JS number. */
export const MAX_TIMESTAMP = 2 ** 51 - 1;

/** What sizing found out, so the writer does not walk timestamps twice. */
export interface RecordsLayout {
  size: number;
  baseTimestamp: number;
  maxTimestamp: number;
}

function invalid(message: string): never {
  throw new QuartzError(ErrorCode.INVALID_ARGUMENT, message);
}

function checkBytes(v: unknown, what: string, i: number): number {
  if (v === null || v === undefined) return 0;
  if (!(v instanceof Uint8Array)) invalid(`record ${i}: ${what} must be a Uint8Array or null`);
  return v.length + 1;
}

/** UTF-8 length of a string without encoding it. */
function utf8Length(s: string): number {
  let n = s.length;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) continue;
    if (c < 0x800) n += 1;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      n += 2; // a surrogate pair: 4 bytes for 2 UTF-16 units
      i++;
    } else n += 2; // BMP char, or a lone surrogate which TextEncoder writes as U+FFFD (3 bytes)
  }
  return n;
}

/**
 * An upper bound on the bytes record `r` takes in a records section whose offset deltas are below
 * 2^14 (a batch of at most 16,383 records): sizes a run's batches before encoding. Malformed
 * fields count as empty; `encodeRecords` rejects them when the batch is encoded.
 */
export function recordBound(r: EncodableRecord): number {
  let n = BOUND_FIXED + (r?.key?.length ?? 0) + (r?.value?.length ?? 0);
  const headers = r?.headers;
  if (Array.isArray(headers)) for (const h of headers) n += 10 + 3 * (h?.key?.length ?? 0) + (h?.value?.length ?? 0);
  return n;
}

/** `recordBound` of record `i` of `spans`. */
export function spanBound(spans: RecordSpans, i: number): number {
  return BOUND_FIXED + Math.max(0, spans.keyLength(i)) + Math.max(0, spans.valueLength(i));
}

/** `recordBound`'s fixed fields: offset delta ≤ 2 bytes, timestamp delta ≤ 10, key and value lengths ≤ 5 each, header count ≤ 5. */
const BOUND_FIXED = 27;

const encoder = new TextEncoder();

/** Copies `src` into `buf` at `pos`; a plain loop beats `set`'s fixed cost for short keys. */
function copyBytes(buf: Uint8Array, pos: number, src: Uint8Array): number {
  const n = src.length;
  if (n < 48) for (let i = 0; i < n; i++) buf[pos + i] = src[i]!;
  else buf.set(src, pos);
  return pos + n;
}

/** Writes a bytes field that may be null: 0 for null, else its length + 1, then its bytes. */
function writeBytesField(buf: Uint8Array, pos: number, bytes: Uint8Array | null | undefined): number {
  if (bytes == null) {
    buf[pos] = 0;
    return pos + 1;
  }
  return copyBytes(buf, writeVarint(buf, pos, bytes.length + 1), bytes);
}

function writeHeaderKey(buf: Uint8Array, pos: number, key: string, byteLength: number): number {
  if (byteLength === key.length) {
    // ASCII: copying code units is faster than encodeInto for the short keys headers have.
    for (let i = 0; i < key.length; i++) buf[pos + i] = key.charCodeAt(i);
    return pos + byteLength;
  }
  encoder.encodeInto(key, buf.subarray(pos, pos + byteLength));
  return pos + byteLength;
}

/** Writes one header: its key's UTF-8 length and bytes, then its value as a bytes field. */
function writeHeader(buf: Uint8Array, pos: number, key: string, value: Uint8Array | null | undefined): number {
  const keyLen = utf8Length(key);
  pos = writeVarint(buf, pos, keyLen);
  return writeBytesField(buf, writeHeaderKey(buf, pos, key, keyLen), value);
}

/** Where `encodeRecords` writes: a byte view and the free room in it. */
export interface RecordsRoom {
  buf: Uint8Array;
  /** The next byte to write. */
  pos: number;
  /** The end of the room: `buf` may be written up to here. */
  end: number;
}

/**
 * Makes `need` bytes free at `room.pos`, moving `room` (the bytes already written move with it).
 * `least` is at least the bytes the record about to be written takes, so a grower can refuse a
 * batch that will be too large before it allocates for it.
 */
export type GrowRoom = (room: RecordsRoom, need: number, least: number) => void;

/** Largest varints of a record's fixed fields: offset delta 5, timestamp delta 10, key and value lengths 5 each, header count 5. */
const RECORD_FIELDS_BOUND = 30;

/** What `recordRoom` adds to a record's `recordBound`: its fixed fields' varints, 5 bytes more. */
const ROOM_OVER_BOUND = RECORD_FIELDS_BOUND + 2 - BOUND_FIXED;

/**
 * The room `encodeRecords` makes sure of before it writes `r`, from its `recordBound` (`bound`):
 * records framed into a buffer of the sum of their rooms never call its `grow`, so that buffer can
 * be sized without a pass that checks and sizes every record first. `encodeRecords` asks for a bytes
 * field's length + 1 (`recordBound` counts the length) and 5-byte varints for the fixed fields
 * (`recordBound` 2 for the offset delta): 5 bytes more per record and 1 per header.
 */
export function recordRoom(r: EncodableRecord, bound: number): number {
  const headers = r?.headers;
  return bound + ROOM_OVER_BOUND + (Array.isArray(headers) ? headers.length : 0);
}

/** `recordRoom` of a record of spans (no headers), from its `spanBound`. */
export function spanRoom(bound: number): number {
  return bound + ROOM_OVER_BOUND;
}

/**
 * Checks and writes a records section in one pass over the records: each record is checked and
 * written at `room.pos`, after `grow` has made room for it when the room left may be too small. Returns the layout; the
 * records section is the `size` bytes before `room.pos`. A record that fails its checks throws
 * after the records before it were written: the room is scratch, nothing is committed.
 */
export function encodeRecords(records: EncodableRecords, defaultTimestamp: number | undefined, room: RecordsRoom, grow: GrowRoom): RecordsLayout {
  if (records instanceof RecordSpans) return encodeSpans(records, defaultTimestamp, room, grow);
  if (!Array.isArray(records) || records.length === 0) invalid('a batch needs at least one record');
  const first = records[0]!;
  const baseTimestamp = first?.timestamp ?? defaultTimestamp;
  let maxTimestamp = -Infinity;
  let buf = room.buf;
  let pos = room.pos;
  let end = room.end;
  /** Where the section starts: moves with the written bytes when `grow` moves them. */
  let start = pos;
  for (let i = 0; i < records.length; i++) {
    const r = records[i]!;
    if (typeof r !== 'object' || r === null) invalid(`record ${i} is not an object`);
    const ts = r.timestamp ?? defaultTimestamp;
    if (!Number.isInteger(ts) || Math.abs(ts!) > MAX_TIMESTAMP) invalid(`record ${i}: timestamp must be an integer within ±2^51 ms, got ${String(ts)}`);
    if (ts! > maxTimestamp) maxTimestamp = ts!;
    const key = r.key;
    const keyField = checkBytes(key, 'key', i);
    const value = r.value;
    const valueField = checkBytes(value, 'value', i);
    const headers = r.headers;
    let need = RECORD_FIELDS_BOUND + keyField + valueField;
    let least = keyField + valueField + 3;
    if (headers !== undefined && headers !== null) {
      if (!Array.isArray(headers)) invalid(`record ${i}: headers must be an array`);
      for (let j = 0; j < headers.length; j++) {
        const h = headers[j]!;
        if (typeof h !== 'object' || h === null || typeof h.key !== 'string') invalid(`record ${i} header ${j}: key must be a string`);
        const hv = checkBytes(h.value, `header '${h.key}' value`, i);
        // A UTF-16 code unit takes 1 to 3 UTF-8 bytes; length varints at most 5 bytes each.
        need += 10 + 3 * h.key.length + hv;
        least += 2 + h.key.length + hv;
      }
    }
    if (end - pos < need) {
      room.pos = pos;
      grow(room, need, pos - start + least);
      start += room.pos - pos;
      buf = room.buf;
      pos = room.pos;
      end = room.end;
    }
    // A length-tracking view of a resizable buffer (or one detached since) can change length while
    // a later field's getter runs: its length prefix and its room were counted from the checked one.
    if ((keyField !== 0 && key!.length !== keyField - 1) || (valueField !== 0 && value!.length !== valueField - 1)) {
      invalid(`record ${i}: the records changed while they were written`);
    }
    pos = writeVarint(buf, pos, i); // offset delta
    pos = writeVarint(buf, pos, zigzag(ts! - baseTimestamp!)); // timestamp delta
    pos = writeBytesField(buf, pos, key);
    pos = writeBytesField(buf, pos, value);
    if (headers == null) {
      buf[pos++] = 0;
      continue;
    }
    pos = writeVarint(buf, pos, headers.length);
    for (let j = 0; j < headers.length; j++) {
      // Read again, so checked again: `buf` may be all of wasm memory, and a header that grew
      // since its room was counted (a getter) must not write past the room.
      const h = headers[j]!;
      const hk = h?.key;
      const hv = h?.value;
      if (typeof hk !== 'string' || (hv != null && !(hv instanceof Uint8Array)) || end - pos < 10 + 3 * hk.length + (hv?.length ?? 0)) {
        invalid(`record ${i} header ${j}: the records changed while they were written`);
      }
      pos = writeHeader(buf, pos, hk, hv);
    }
  }
  room.pos = pos;
  return { size: pos - start, baseTimestamp: baseTimestamp!, maxTimestamp };
}

/** Copies `src[s, e)` into `buf` at `pos`: a loop for short fields, `set` of a view (an allocation) only for long ones. */
function copyRange(buf: Uint8Array, pos: number, src: Uint8Array, s: number, e: number): number {
  const n = e - s;
  if (n < 256) for (let i = 0; i < n; i++) buf[pos + i] = src[s + i]!;
  else buf.set(src.subarray(s, e), pos);
  return pos + n;
}

/** `encodeRecords` of spans: the same bytes as of records with those keys and values, no headers and the default timestamp. */
function encodeSpans(records: RecordSpans, defaultTimestamp: number | undefined, room: RecordsRoom, grow: GrowRoom): RecordsLayout {
  const count = records.length;
  if (count === 0) invalid('a batch needs at least one record');
  const ts = defaultTimestamp;
  if (!Number.isInteger(ts) || Math.abs(ts!) > MAX_TIMESTAMP) invalid(`record 0: timestamp must be an integer within ±2^51 ms, got ${String(ts)}`);
  const src = records.bytes;
  const spans = records.spans;
  const n = src.length;
  let buf = room.buf;
  let pos = room.pos;
  let end = room.end;
  let start = pos;
  for (let i = 0; i < count; i++) {
    const ks = spans[i * 4]!;
    const ke = spans[i * 4 + 1]!;
    const vs = spans[i * 4 + 2]!;
    const ve = spans[i * 4 + 3]!;
    // Checked again as they are read: `spans` is the caller's array, and a span past `bytes` would read garbage.
    if ((ks !== -1 && (ks < 0 || ke < ks || ke > n)) || (vs !== -1 && (vs < 0 || ve < vs || ve > n))) invalid(`record ${i}: the records changed while they were written`);
    const keyField = ks === -1 ? 0 : ke - ks + 1;
    const valueField = vs === -1 ? 0 : ve - vs + 1;
    const need = RECORD_FIELDS_BOUND + keyField + valueField;
    if (end - pos < need) {
      room.pos = pos;
      grow(room, need, pos - start + keyField + valueField + 3);
      start += room.pos - pos;
      buf = room.buf;
      pos = room.pos;
      end = room.end;
    }
    pos = writeVarint(buf, pos, i); // offset delta
    buf[pos++] = 0; // timestamp delta: every record has the default
    if (ks === -1) buf[pos++] = 0;
    else pos = copyRange(buf, writeVarint(buf, pos, keyField), src, ks, ke);
    if (vs === -1) buf[pos++] = 0;
    else pos = copyRange(buf, writeVarint(buf, pos, valueField), src, vs, ve);
    buf[pos++] = 0; // no headers
  }
  room.pos = pos;
  return { size: pos - start, baseTimestamp: ts!, maxTimestamp: ts! };
}

/**
 * The headers of every decoded record that has none: one frozen array instead of one per record,
 * which at 1 KB records is a measurable share of what a decode leaves to the garbage collector.
 */
const NO_HEADERS = Object.freeze([]) as unknown as SegmentHeader[];

/**
 * NOTE: decoded records are built by `new` rather than as an object literal, because V8 tracks
 * literals per allocation site: a young-generation GC that runs while a page's records are still
 * held (one set off early by a decode's array buffers, say) finds nearly all that site's recent
 * records alive, and V8 then allocates every later record straight in the old generation. Each
 * one became old garbage, and the views it held survived young GCs: 55-60% of the segment bench's
 * decode time went to GC from then on, in about a third of its runs. Objects built by a
 * constructor are not tracked. The prototype is Object.prototype, so a record is the same plain
 * object a literal was (same keys in the same order, same prototype).
 */
const DecodedRecordObject = function (
  this: DecodedRecord,
  offset: number,
  timestamp: number,
  key: Uint8Array | null,
  value: Uint8Array | null,
  headers: SegmentHeader[],
) {
  this.offset = offset;
  this.timestamp = timestamp;
  this.key = key;
  this.value = value;
  this.headers = headers;
} as unknown as new (offset: number, timestamp: number, key: Uint8Array | null, value: Uint8Array | null, headers: SegmentHeader[]) => DecodedRecord;
DecodedRecordObject.prototype = Object.prototype;

function readHeaderKey(buf: Uint8Array, start: number, end: number, r: VarintReader): string {
  let ascii = end - start <= 64;
  for (let i = start; ascii && i < end; i++) if (buf[i]! >= 0x80) ascii = false;
  if (ascii) {
    let s = '';
    for (let i = start; i < end; i++) s += String.fromCharCode(buf[i]!);
    return s;
  }
  try {
    return decodeUtf8(buf.subarray(start, end));
  } catch {
    r.pos = start;
    return r.fail('a header key is not valid UTF-8');
  }
}

/** The headers of record `i` from `r.pos` on (a header count, then the headers), views of `buf`. */
function readHeaders(buf: Uint8Array, r: VarintReader, i: number): SegmentHeader[] {
  const end = r.end;
  const headerCount = r.varint();
  if (headerCount === 0) return NO_HEADERS;
  // Each header takes at least 2 bytes, so a count above that cannot be honest.
  if (headerCount > (end - r.pos) / 2) r.fail(`record ${i} declares ${headerCount} headers, more than the bytes left`);
  const ab = buf.buffer;
  const base = buf.byteOffset;
  const headers: SegmentHeader[] = new Array(headerCount);
  for (let j = 0; j < headerCount; j++) {
    const keyLen = r.varint();
    if (keyLen > end - r.pos) r.fail(`record ${i} header ${j} key runs past the end`);
    const hk = readHeaderKey(buf, r.pos, r.pos + keyLen, r);
    r.pos += keyLen;
    const vl = r.varint();
    let hv: Uint8Array | null = null;
    if (vl !== 0) {
      if (vl - 1 > end - r.pos) r.fail(`record ${i} header ${j} value runs past the end`);
      hv = new Uint8Array(ab, base + r.pos, vl - 1);
      r.pos += vl - 1;
    }
    headers[j] = { key: hk, value: hv };
  }
  return headers;
}

/** Facts from the batch header that the records must agree with. */
export interface RecordsExpectation {
  recordCount: number;
  baseOffset: number;
  lastOffsetDelta: number;
  baseTimestamp: number;
  maxTimestamp: number;
}

/**
 * Which records of a section to build: those from offset `from` on, at most `maxRecords` of them.
 * The records before them are parsed and checked but not built; the parse stops once the page is
 * built, so records after it are not read at all (the whole section is read, and checked against
 * the batch header, only when the page runs to its end).
 */
export interface RecordsPage {
  from: number;
  maxRecords: number;
  /**
   * Set by the parse: where in `buf` the built records lie, from the first one's start to the
   * last one's end (`spanStart` = `spanEnd` when none is built), for `ownRecordBytes`.
   */
  spanStart?: number;
  spanEnd?: number;
}

/**
 * Parses a records section `buf[start, end)`. Keys, values and header values are views of
 * `buf`. Fails with CORRUPT_DATA naming `subject` on anything that disagrees with the batch header.
 * With `page`, the records before the page are checked the same way, only the page's records are
 * built, and nothing after the page is read (see `RecordsPage`).
 */
export function readRecords(buf: Uint8Array, start: number, end: number, expect: RecordsExpectation, subject: string, page?: RecordsPage): DecodedRecord[] {
  return parseRecords(buf, start, end, expect, subject, page);
}

/**
 * `readRecords` of a page when only the section's first bytes, `buf[start, available)` of
 * `buf[start, end)`, are present (an LZ4 section decompressed only as far as a page needs):
 * undefined when the page may need more of the section. Never reads past `available`; any
 * failure inside the prefix is also undefined, to be reported by a parse of the whole section.
 */
export function readRecordsPrefix(buf: Uint8Array, start: number, end: number, available: number, expect: RecordsExpectation, subject: string, page: RecordsPage): DecodedRecord[] | undefined {
  if (available >= end) return parseRecords(buf, start, end, expect, subject, page);
  try {
    return parseRecords(buf, start, available, expect, subject, page, true);
  } catch (err) {
    if (err instanceof QuartzError) return undefined;
    throw err;
  }
}

/** `readRecords`; `cut`: `end` is where the bytes present stop, not the section's end. */
function parseRecords(buf: Uint8Array, start: number, end: number, expect: RecordsExpectation, subject: string, page?: RecordsPage, cut = false): DecodedRecord[] {
  const r = new VarintReader(buf, start, end, subject);
  const { recordCount: count, baseOffset, lastOffsetDelta, baseTimestamp } = expect;
  // Views made from the buffer directly: `subarray` measured ~1.6x slower per view in V8 (it
  // looks up the species constructor), and a batch makes two or more views per record.
  const ab = buf.buffer;
  const base = buf.byteOffset;
  const from = page === undefined ? baseOffset : page.from;
  const wanted = page === undefined ? count : Math.min(count, page.maxRecords);
  const out: DecodedRecord[] = page === undefined ? new Array(count) : [];
  // A page stops the parse once built; a whole section never does.
  const stopAt = page === undefined ? -1 : wanted;
  let spanStart = start;
  let spanEnd = start;
  let built = 0;
  let prevDelta = -1;
  let maxTimestamp = -Infinity;
  // The position lives in a local and one-byte varints (nearly every length prefix, delta and
  // header count) are read inline; `r` takes the rare longer ones and reports failures.
  let p = start;
  let b = 0;
  let c = 0;
  for (let i = 0; i < count; i++) {
    if (built === stopAt) {
      page!.spanStart = spanStart;
      page!.spanEnd = spanEnd;
      return out;
    }
    const recordStart = p;
    let offsetDelta: number;
    if (p < end && (b = buf[p]!) < 0x80) (offsetDelta = b), p++;
    // Two bytes: the offset delta of records 128 to 16,383, the length of values up to 16 KB.
    else if (p + 1 < end && (c = buf[p + 1]!) < 0x80) (offsetDelta = (b & 0x7f) | (c << 7)), (p += 2);
    else (r.pos = p), (offsetDelta = r.varint()), (p = r.pos);
    if (offsetDelta <= prevDelta || offsetDelta > lastOffsetDelta) (r.pos = p), r.fail(`record ${i} has offset delta ${offsetDelta} out of order`);
    prevDelta = offsetDelta;
    const build = built < wanted && baseOffset + offsetDelta >= from;
    let z: number;
    if (p < end && (b = buf[p]!) < 0x80) (z = b), p++;
    else (r.pos = p), (z = r.varint()), (p = r.pos);
    const timestamp = baseTimestamp + unzigzag(z);
    if (Math.abs(timestamp) > MAX_TIMESTAMP) (r.pos = p), r.fail(`record ${i} has a timestamp out of range`);
    if (timestamp > maxTimestamp) maxTimestamp = timestamp;
    let len: number;
    if (p < end && (b = buf[p]!) < 0x80) (len = b), p++;
    else (r.pos = p), (len = r.varint()), (p = r.pos);
    let key: Uint8Array | null = null;
    if (len !== 0) {
      if (len - 1 > end - p) (r.pos = p), r.fail(`record ${i} key length ${len - 1} runs past the end`);
      if (build) key = new Uint8Array(ab, base + p, len - 1);
      p += len - 1;
    }
    if (p < end && (b = buf[p]!) < 0x80) (len = b), p++;
    else if (p + 1 < end && (c = buf[p + 1]!) < 0x80) (len = (b & 0x7f) | (c << 7)), (p += 2);
    else (r.pos = p), (len = r.varint()), (p = r.pos);
    let value: Uint8Array | null = null;
    if (len !== 0) {
      if (len - 1 > end - p) (r.pos = p), r.fail(`record ${i} value length ${len - 1} runs past the end`);
      if (build) value = new Uint8Array(ab, base + p, len - 1);
      p += len - 1;
    }
    let headers = NO_HEADERS;
    if (p < end && buf[p] === 0) p++;
    else {
      r.pos = p;
      // Parsed (and their keys' UTF-8 checked) for skipped records too: headers are rare.
      headers = readHeaders(buf, r, i);
      p = r.pos;
    }
    if (build) {
      if (built === 0) spanStart = recordStart;
      spanEnd = p;
      out[built++] = new DecodedRecordObject(baseOffset + offsetDelta, timestamp, key, value, headers);
    }
  }
  if (page !== undefined) {
    page.spanStart = spanStart;
    page.spanEnd = spanEnd;
  }
  r.pos = p;
  // Every record parsed from a cut section: what follows them is not known to be their end.
  if (cut) r.fail('the section is cut before its end');
  if (prevDelta !== lastOffsetDelta) r.fail(`the last record has offset delta ${prevDelta}, the batch header says ${lastOffsetDelta}`);
  if (maxTimestamp !== expect.maxTimestamp) r.fail(`the records' max timestamp ${maxTimestamp} differs from the batch header's ${expect.maxTimestamp}`);
  if (r.pos !== end) r.fail(`${end - r.pos} bytes left after the last record`);
  return out;
}

/**
 * Pages of at most PAGE_SLAB_PIECE_MAX bytes are copied into a shared slab rather than an array of
 * their own, as Node's Buffer pool does for small buffers: an ArrayBuffer costs about a
 * microsecond to make and collect whatever its size, more than copying a page of 10 records. A
 * slab lives while any record cut from it does, so a page held long keeps at most one slab alive.
 */
export const PAGE_SLAB_BYTES = 16 * 1024;
export const PAGE_SLAB_PIECE_MAX = 4 * 1024;
let pageSlab = new ArrayBuffer(0);
let pageSlabUsed = PAGE_SLAB_BYTES;

/**
 * Moves the bytes `records` view into one array of their own (only the span they cover, not the
 * buffer they were parsed from) and points their keys and values there. For a few records built
 * from a large section that must not be kept alive, or that will be overwritten. With `parsed`
 * and `page`: the records are a page a parse of `parsed` built, and the span it noted is copied
 * rather than found from the records' views (a view's `buffer` and `byteOffset` cost a call each).
 */
export function ownRecordBytes(records: DecodedRecord[], parsed?: Uint8Array, page?: RecordsPage): void {
  if (parsed !== undefined && page?.spanStart !== undefined && page.spanEnd! > page.spanStart) {
    copyRecordBytes(records, parsed.buffer, parsed.byteOffset + page.spanStart, parsed.byteOffset + page.spanEnd!);
    return;
  }
  // Plain loops, no closures: this runs on every random read of a few records.
  let lo = Infinity;
  let hi = -Infinity;
  let source: ArrayBufferLike | undefined;
  for (let i = 0; i < records.length; i++) {
    const rec = records[i]!;
    const key = rec.key;
    if (key !== null) {
      source = key.buffer;
      if (key.byteOffset < lo) lo = key.byteOffset;
      if (key.byteOffset + key.length > hi) hi = key.byteOffset + key.length;
    }
    const value = rec.value;
    if (value !== null) {
      source = value.buffer;
      if (value.byteOffset < lo) lo = value.byteOffset;
      if (value.byteOffset + value.length > hi) hi = value.byteOffset + value.length;
    }
    const headers = rec.headers;
    for (let j = 0; j < headers.length; j++) {
      const v = headers[j]!.value;
      if (v === null) continue;
      source = v.buffer;
      if (v.byteOffset < lo) lo = v.byteOffset;
      if (v.byteOffset + v.length > hi) hi = v.byteOffset + v.length;
    }
  }
  if (source === undefined) return;
  copyRecordBytes(records, source, lo, hi);
}

/** `ownRecordBytes` of records whose bytes lie in `source[lo, hi)`. */
function copyRecordBytes(records: DecodedRecord[], source: ArrayBufferLike, lo: number, hi: number): void {
  const size = hi - lo;
  // Only empty fields (an empty key, say): no byte to move, and views of a slab not made yet
  // (the first page of a process) would be out of its bounds.
  if (size === 0) return;
  let ab: ArrayBufferLike;
  let at: number;
  if (size > PAGE_SLAB_PIECE_MAX) {
    ab = new Uint8Array(source, lo, size).slice().buffer;
    at = 0;
  } else {
    if (pageSlabUsed + size > PAGE_SLAB_BYTES) {
      pageSlab = new ArrayBuffer(PAGE_SLAB_BYTES);
      pageSlabUsed = 0;
    }
    ab = pageSlab;
    at = pageSlabUsed;
    pageSlabUsed += size;
    new Uint8Array(ab, at, size).set(new Uint8Array(source, lo, size));
  }
  const shift = at - lo;
  for (let i = 0; i < records.length; i++) {
    const rec = records[i]!;
    const key = rec.key;
    if (key !== null) rec.key = new Uint8Array(ab, key.byteOffset + shift, key.length);
    const value = rec.value;
    if (value !== null) rec.value = new Uint8Array(ab, value.byteOffset + shift, value.length);
    const headers = rec.headers;
    for (let j = 0; j < headers.length; j++) {
      const h = headers[j]!;
      if (h.value !== null) h.value = new Uint8Array(ab, h.value.byteOffset + shift, h.value.length);
    }
  }
}

/** One run of records cut by `cutRecords`, rewritten as the records section of a batch of its own. */
export interface RecordsBlock {
  /** Index in the source section of the run's first record (a producer's base sequence advances by it). */
  firstIndex: number;
  /** The run's base offset − the source batch's base offset. */
  baseDelta: number;
  /** The run's last offset − its base offset. */
  lastOffsetDelta: number;
  recordCount: number;
  /** The run's first record's timestamp: its batch's base timestamp. */
  baseTimestamp: number;
  maxTimestamp: number;
  /** Bytes of the rewritten section, at the `outPos` given to `cutRecords`. */
  size: number;
}

/** Copies `src[from, to)` to `out[pos]`; a loop beats `set`/`copyWithin`'s fixed cost for short runs. */
function copyRun(out: Uint8Array, pos: number, src: Uint8Array, from: number, to: number): void {
  if (to - from < 64) for (let i = from; i < to; i++) out[pos++] = src[i]!;
  else if (src.buffer === out.buffer) out.copyWithin(pos, from + src.byteOffset - out.byteOffset, to + src.byteOffset - out.byteOffset);
  else out.set(src.subarray(from, to), pos);
}

/**
 * Cuts a whole records section `src[start, end)` into runs of consecutive records of at most
 * `blockBytes` bytes each (a record larger than that gets a run of its own), for a batch that is
 * stored as several smaller ones. Each run is rewritten at `out[outPos]`: offset and timestamp
 * deltas against the run's own base offset and first timestamp, the rest of each record copied
 * as it is. `emit` gets each run before the next overwrites it. A run is cut only where offsets
 * are contiguous, so consecutive runs leave no gap (a run's last offset delta is then that of
 * its last record). The section is checked as `readRecords` checks it (header keys' UTF-8
 * aside: their bytes are copied unchanged) and fails with CORRUPT_DATA naming `subject`; runs
 * emitted before a failure must be discarded. `out` needs `max(blockBytes, end − start) + 18`
 * bytes: a lone record's two deltas may each grow to a 10-byte varint.
 */
export function cutRecords(
  src: Uint8Array,
  start: number,
  end: number,
  expect: RecordsExpectation,
  blockBytes: number,
  out: Uint8Array,
  outPos: number,
  subject: string,
  emit: (block: RecordsBlock) => void,
): void {
  const r = new VarintReader(src, start, end, subject);
  const { recordCount: count, lastOffsetDelta, baseTimestamp } = expect;
  let prevDelta = -1;
  let maxTimestamp = -Infinity;
  // The run being filled.
  let runFirst = 0;
  let runBaseDelta = 0;
  let runBaseTs = 0;
  let runMaxTs = -Infinity;
  let runCount = 0;
  let used = 0;
  for (let i = 0; i < count; i++) {
    const offsetDelta = r.varint();
    if (offsetDelta <= prevDelta || offsetDelta > lastOffsetDelta) r.fail(`record ${i} has offset delta ${offsetDelta} out of order`);
    const timestamp = baseTimestamp + unzigzag(r.varint());
    if (Math.abs(timestamp) > MAX_TIMESTAMP) r.fail(`record ${i} has a timestamp out of range`);
    if (timestamp > maxTimestamp) maxTimestamp = timestamp;
    const rest = r.pos;
    const keyLen = r.varint();
    if (keyLen !== 0) {
      if (keyLen - 1 > end - r.pos) r.fail(`record ${i} key length ${keyLen - 1} runs past the end`);
      r.pos += keyLen - 1;
    }
    const valueLen = r.varint();
    if (valueLen !== 0) {
      if (valueLen - 1 > end - r.pos) r.fail(`record ${i} value length ${valueLen - 1} runs past the end`);
      r.pos += valueLen - 1;
    }
    const headerCount = r.varint();
    if (headerCount > (end - r.pos) / 2) r.fail(`record ${i} declares ${headerCount} headers, more than the bytes left`);
    for (let j = 0; j < headerCount; j++) {
      const hk = r.varint();
      if (hk > end - r.pos) r.fail(`record ${i} header ${j} key runs past the end`);
      r.pos += hk;
      const hv = r.varint();
      if (hv !== 0) {
        if (hv - 1 > end - r.pos) r.fail(`record ${i} header ${j} value runs past the end`);
        r.pos += hv - 1;
      }
    }
    if (runCount > 0 && offsetDelta === prevDelta + 1) {
      const need = varintSize(offsetDelta - runBaseDelta) + varintSize(zigzag(timestamp - runBaseTs)) + r.pos - rest;
      if (used + need > blockBytes) {
        emit({ firstIndex: runFirst, baseDelta: runBaseDelta, lastOffsetDelta: prevDelta - runBaseDelta, recordCount: runCount, baseTimestamp: runBaseTs, maxTimestamp: runMaxTs, size: used });
        runCount = 0;
        used = 0;
        runFirst = i;
        runBaseDelta = offsetDelta;
      }
    }
    if (runCount === 0) {
      runBaseTs = timestamp;
      runMaxTs = timestamp;
    }
    let p = writeVarint(out, outPos + used, offsetDelta - runBaseDelta);
    p = writeVarint(out, p, zigzag(timestamp - runBaseTs));
    copyRun(out, p, src, rest, r.pos);
    used = p + r.pos - rest - outPos;
    if (timestamp > runMaxTs) runMaxTs = timestamp;
    runCount++;
    prevDelta = offsetDelta;
  }
  if (prevDelta !== lastOffsetDelta) r.fail(`the last record has offset delta ${prevDelta}, the batch header says ${lastOffsetDelta}`);
  if (maxTimestamp !== expect.maxTimestamp) r.fail(`the records' max timestamp ${maxTimestamp} differs from the batch header's ${expect.maxTimestamp}`);
  if (r.pos !== end) r.fail(`${end - r.pos} bytes left after the last record`);
  emit({ firstIndex: runFirst, baseDelta: runBaseDelta, lastOffsetDelta: lastOffsetDelta - runBaseDelta, recordCount: runCount, baseTimestamp: runBaseTs, maxTimestamp: runMaxTs, size: used });
}
