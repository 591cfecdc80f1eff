/**
 * Records over JSON: produce bodies are checked and turned into engine records in one pass
 * (the hot path, so no schema library per record), and consumed records are written back with
 * a per-record `encoding`: utf8 when every byte field is valid UTF-8, base64 otherwise.
 */
import { ErrorCode, QuartzError } from '../core/errors.js';
import { hasLoneSurrogate } from '../core/show-value.js';
import { RecordSpans, type DecodedRecord } from '../core/segment.js';
import { unknownKeysMessage } from '../engine/known-options.js';
import { offsetRun, type ConsumeResult, type OffsetRun, type ProduceRecord, type ProduceResult } from '../engine/streams/stream-store.js';
import { parseJson } from './body.js';
import { invalid } from './validation.js';

const utf8 = new TextEncoder();
const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const B64_INDEX = new Int16Array(128).fill(-1);
for (let i = 0; i < B64.length; i++) B64_INDEX[B64.charCodeAt(i)] = i;

/** Standard base64 (with or without padding) to bytes; undefined when it is not base64. */
export function fromBase64(s: string): Uint8Array | undefined {
  // Anything outside ASCII becomes bytes of 0x80 and up, which are not base64 either.
  const bytes = utf8.encode(s);
  return base64Span(bytes, 0, bytes.length);
}

/** base64 text in bytes[start, end) to bytes; undefined when it is not base64. */
function base64Span(bytes: Uint8Array, start: number, stop: number): Uint8Array | undefined {
  let end = stop;
  while (end > start && bytes[end - 1] === 61) end--; // '='
  const len = end - start;
  const padded = stop - start;
  if (padded - len > 2 || len % 4 === 1 || (padded !== len && padded % 4 !== 0)) return undefined;
  const out = new Uint8Array(Math.floor((len * 3) / 4));
  let o = 0;
  let acc = 0;
  let bits = 0;
  for (let i = start; i < end; i++) {
    const c = bytes[i]!;
    const v = c < 128 ? B64_INDEX[c]! : -1;
    if (v < 0) return undefined;
    acc = (acc << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (acc >> bits) & 0xff;
    }
  }
  return out;
}

/**
 * Records one produce request may hold, as many as one consume answer may (`max_records`). The
 * body limit alone let 16 MiB of `{"value":""}` carry 1.3 million records: one request then held
 * the event loop for seconds (every record is an object, a view and an offset in the answer, which
 * came to 41 MB), and every other request on the server waited.
 */
export const MAX_PRODUCE_RECORDS = 100_000;

/** Headers one produce request may hold, all its records' together: each costs what a record does (7 records of 200,000 empty headers held the loop as long). */
export const MAX_PRODUCE_HEADERS = 100_000;

function tooMany(what: 'records' | 'headers', limit: number, count: number): QuartzError {
  return new QuartzError(ErrorCode.TOO_LARGE, `records: a request may hold at most ${limit} ${what}${what === 'headers' ? ' in all' : ''}, got ${count}`, { details: { limit } });
}

function typeName(v: unknown): string {
  return v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v;
}

const NO_BYTES = new Uint8Array(0);

/**
 * UTF-8 bytes of one produce body's strings, packed into shared chunks that records get views
 * of: one allocation per chunk instead of one ArrayBuffer per key and value (TextEncoder.encode
 * per record was the largest cost of produce over HTTP). ASCII is copied in JS; anything else
 * goes through encodeInto. A full chunk is left to the views into it, never copied.
 */
class Utf8Arena {
  /** Empty until the first string: most bodies need none. */
  private chunk = NO_BYTES;
  private at = 0;

  /** UTF-8 of `s`, or undefined for a lone surrogate, which UTF-8 cannot hold (TextEncoder would store U+FFFD). */
  bytes(s: string): Uint8Array | undefined {
    const n = s.length;
    // UTF-8 needs at most 3 bytes per UTF-16 code unit.
    if (this.at + n * 3 > this.chunk.length) {
      this.chunk = new Uint8Array(Math.max(n * 3, Math.min(1 << 20, this.chunk.length * 2), 4096));
      this.at = 0;
    }
    const buf = this.chunk;
    const start = this.at;
    let o = start;
    let i = 0;
    for (; i < n; i++) {
      const c = s.charCodeAt(i);
      if (c >= 0x80) break;
      buf[o++] = c;
    }
    if (i < n) {
      // Everything before i is ASCII, so slicing there cannot split a surrogate pair.
      const rest = s.slice(i);
      if (hasLoneSurrogate(rest)) return undefined;
      o += utf8.encodeInto(rest, buf.subarray(o)).written;
    }
    this.at = o;
    return buf.subarray(start, o);
  }
}

function bytesOf(v: unknown, base64: boolean, path: string, nullable: boolean, arena: Utf8Arena): Uint8Array | null {
  if (v === null || v === undefined) {
    if (nullable || v === null) return null;
    throw invalid(`${path}: expected string or null, received undefined`);
  }
  if (typeof v !== 'string') throw invalid(`${path}: expected string${nullable ? ' or null' : ''}, received ${typeName(v)}`);
  if (!base64) {
    const bytes = arena.bytes(v);
    if (bytes === undefined) throw invalid(`${path}: not well-formed Unicode (a lone surrogate, which UTF-8 cannot hold); send such bytes with "encoding": "base64"`);
    return bytes;
  }
  const bytes = fromBase64(v);
  if (bytes === undefined) throw invalid(`${path}: not valid base64 (encoding is base64)`);
  return bytes;
}

const BODY_FIELDS = ['records'];
const RECORD_FIELDS = ['key', 'value', 'headers', 'partition', 'encoding'];
const HEADER_FIELDS = ['key', 'value'];

/**
 * Refuses a field the object at `path` does not have: a misspelt `partition` or `encoding` would
 * otherwise send the record elsewhere or store its base64 text as the value.
 */
function refuseUnknownFields(object: object, known: readonly string[], path: string): void {
  let unknown: string[] | undefined;
  for (const key in object) if (!known.includes(key)) (unknown ??= []).push(key);
  if (unknown !== undefined) throw invalid(`${path}: ${unknownKeysMessage(unknown, known, 'field')}`);
}

/**
 * Checks a produce body and returns the engine's records.
 *
 * @example
 * const records = parseProduceBody({ records: [{ key: 'k', value: 'aGk=', encoding: 'base64' }] });
 */
export function parseProduceBody(body: unknown): ProduceRecord[] {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw invalid(`body: expected object, received ${typeName(body)}`);
  refuseUnknownFields(body, BODY_FIELDS, 'body');
  const list = (body as { records?: unknown }).records;
  if (!Array.isArray(list)) throw invalid(`records: expected array, received ${typeName(list)}`);
  if (list.length === 0) throw invalid('records: must hold at least one record');
  if (list.length > MAX_PRODUCE_RECORDS) throw tooMany('records', MAX_PRODUCE_RECORDS, list.length);
  // Counted before any record is checked, so that this is the answer whichever record is bad, as on the byte scanner's path.
  let headers = 0;
  for (const r of list) if (r !== null && typeof r === 'object' && Array.isArray((r as { headers?: unknown }).headers)) headers += (r as { headers: unknown[] }).headers.length;
  if (headers > MAX_PRODUCE_HEADERS) throw tooMany('headers', MAX_PRODUCE_HEADERS, headers);
  const out = new Array<ProduceRecord>(list.length);
  const arena = new Utf8Arena();
  for (let i = 0; i < list.length; i++) {
    const r = list[i] as Record<string, unknown>;
    const at = `records[${i}]`;
    if (r === null || typeof r !== 'object' || Array.isArray(r)) throw invalid(`${at}: expected object, received ${typeName(r)}`);
    refuseUnknownFields(r, RECORD_FIELDS, at);
    const enc = r.encoding;
    if (enc !== undefined && enc !== 'utf8' && enc !== 'base64') throw invalid(`${at}.encoding: expected "utf8" or "base64", received ${JSON.stringify(enc)}`);
    const base64 = enc === 'base64';
    if (!('value' in r)) throw invalid(`${at}.value: required (a string, or null for a tombstone)`);
    const rec: ProduceRecord = { key: bytesOf(r.key, base64, `${at}.key`, true, arena), value: bytesOf(r.value, base64, `${at}.value`, false, arena) };
    if (r.partition !== undefined) {
      if (typeof r.partition !== 'number' || !Number.isSafeInteger(r.partition) || r.partition < 0) {
        // String for numbers: JSON.stringify writes Infinity (a body's 1e400) as null.
        throw invalid(`${at}.partition: expected a non-negative integer, received ${typeof r.partition === 'number' ? String(r.partition) : JSON.stringify(r.partition)}`);
      }
      rec.partition = r.partition;
    }
    if (r.headers !== undefined) {
      if (!Array.isArray(r.headers)) throw invalid(`${at}.headers: expected array, received ${typeName(r.headers)}`);
      rec.headers = r.headers.map((h: unknown, j: number) => {
        const hp = `${at}.headers[${j}]`;
        if (h === null || typeof h !== 'object') throw invalid(`${hp}: expected object {key, value}, received ${typeName(h)}`);
        refuseUnknownFields(h, HEADER_FIELDS, hp);
        const { key, value } = h as { key?: unknown; value?: unknown };
        if (typeof key !== 'string') throw invalid(`${hp}.key: expected string, received ${typeName(key)}`);
        return { key, value: bytesOf(value, base64, `${hp}.value`, true, arena) };
      });
    }
    out[i] = rec;
  }
  return out;
}

/** 1 for the bytes a plain string (see ProduceScanner.scan) cannot hold: controls, backslash, 0x7f and above. */
const NOT_PLAIN = Uint8Array.from({ length: 256 }, (_, c) => (c < 0x20 || c === 0x5c || c >= 0x7f ? 1 : 0));

/** Any input the byte scanner does not take; the general path then parses it (and names what is wrong). */
const GIVE_UP = new Error('not taken by the byte scanner');
const latin1 = new TextDecoder('latin1');
const bodyText = new TextDecoder('utf-8', { fatal: true });

/** Where the scanner notes a body's spans before they are copied out at their size; grown by doubling up to MAX_SPAN_SCRATCH. */
let spanScratch = new Int32Array(256 * 4);
const MAX_SPAN_SCRATCH = 16_384 * 4;

// Field names as the scanner tells them apart.
const F_OTHER = 0;
const F_KEY = 1;
const F_VALUE = 2;
const F_HEADERS = 3;
const F_PARTITION = 4;
const F_ENCODING = 5;
const F_RECORDS = 6;
const FIELD_NAMES = new Map<string, number>([
  ['key', F_KEY],
  ['value', F_VALUE],
  ['headers', F_HEADERS],
  ['partition', F_PARTITION],
  ['encoding', F_ENCODING],
  ['records', F_RECORDS],
]);

/** A string field found in the body: its contents are b[s, e); plain when printable ASCII without escapes. */
interface Span {
  s: number;
  e: number;
  plain: boolean;
}

/** A record field as `record` found it: not there, null, or a string. */
const ABSENT = 0;
const NULL = 1;
const TEXT = 2;

/**
 * Produce bodies read straight from their bytes: a plain (printable ASCII, unescaped) utf8
 * string is where it lies in the body (a span while every record is plain, else a view), with no
 * string made from it and no copy; an escaped or non-ASCII string is decoded as JSON.parse would
 * and packed into the arena. It takes only
 * valid JSON of the documented shape (unknown fields are skipped; a repeated field keeps its
 * last value, as in JSON.parse) and gives up on anything else, so that the general path decides
 * and words the error.
 */
class ProduceScanner {
  i = 0;
  /** Records after the first MAX_PRODUCE_RECORDS: checked to the JSON grammar only, and counted. */
  beyondLimit = 0;
  /** Headers seen in the records read; those past MAX_PRODUCE_HEADERS are checked to the grammar only. */
  headerCount = 0;
  /** The last string `scan` read. */
  private start = 0;
  private end = 0;
  private plain = true;
  private readonly arena = new Utf8Arena();
  /** The body as words (see `wordsOf`), made when a long string is first checked. */
  private words: Int32Array | undefined = undefined;
  private shift = 0;

  constructor(private readonly b: Uint8Array) {}

  body(): ProduceRecord[] | RecordSpans {
    let records: ProduceRecord[] | RecordSpans | undefined;
    this.expect(0x7b); // {
    if (this.ws() !== 0x7d) {
      for (;;) {
        const name = this.fieldName();
        this.expect(0x3a); // :
        if (name === F_RECORDS) {
          // A repeated `records` keeps its last value, as JSON.parse (the general path) does; giving
          // up on it sent a body of up to the records limit through JSON.parse. What an earlier one
          // would be refused for (too many records or headers) is not counted against the last.
          this.beyondLimit = 0;
          this.headerCount = 0;
          records = this.records();
        } else throw GIVE_UP; // an unknown field: the general path names it
        if (!this.more(0x7d)) break;
      }
    } else this.i++;
    if (records === undefined || this.ws() !== -1) throw GIVE_UP;
    return records;
  }

  /**
   * The records as spans of the body (see RecordSpans) while every one is plain: a utf8 key and
   * value of plain text or null, no headers, no partition. From the first that is not, as record
   * objects (those before it too).
   */
  private records(): ProduceRecord[] | RecordSpans {
    this.expect(0x5b); // [
    if (this.ws() === 0x5d) throw GIVE_UP; // empty: the general path words it
    let spans = spanScratch;
    let count = 0;
    let out: ProduceRecord[] | undefined;
    for (;;) {
      if (count >= MAX_PRODUCE_RECORDS) {
        this.skipValue(0);
        this.beyondLimit++;
      } else if (this.record() && out === undefined) {
        if (count * 4 === spans.length) {
          const grown = new Int32Array(spans.length * 2);
          grown.set(spans);
          spans = grown;
          // Kept for the next body unless a rare huge one grew it.
          if (grown.length <= MAX_SPAN_SCRATCH) spanScratch = grown;
        }
        const k = count * 4;
        spans[k] = this.key === TEXT ? this.keyStart : -1;
        spans[k + 1] = this.keyEnd;
        spans[k + 2] = this.value === TEXT ? this.valueStart : -1;
        spans[k + 3] = this.valueEnd;
        count++;
      } else {
        out ??= this.recordObjects(spans, count);
        out.push(this.recordObject());
        count++;
      }
      // Copied out of the scratch: the engine may hold them until a store has opened.
      if (!this.more(0x5d)) return out ?? new RecordSpans(this.b, spans.slice(0, count * 4));
    }
  }

  /** The records `spans` describe, as record objects with views of the body. */
  private recordObjects(spans: Int32Array, count: number): ProduceRecord[] {
    const b = this.b;
    const out: ProduceRecord[] = [];
    for (let k = 0; k < count * 4; k += 4) {
      const ks = spans[k]!;
      const vs = spans[k + 2]!;
      out.push({
        key: ks === -1 ? null : new Uint8Array(b.buffer, b.byteOffset + ks, spans[k + 1]! - ks),
        value: vs === -1 ? null : new Uint8Array(b.buffer, b.byteOffset + vs, spans[k + 3]! - vs),
      });
    }
    return out;
  }

  // The record `record` read last: key and value as where their text lies (see `scan`), not as a Span object each.
  private key = ABSENT;
  private keyStart = 0;
  private keyEnd = 0;
  private keyPlain = true;
  private value = ABSENT;
  private valueStart = 0;
  private valueEnd = 0;
  private valuePlain = true;
  private recordHeaders: Array<{ key: string; value: Span | null }> | undefined;
  private partition: number | undefined;
  private base64: boolean | undefined;

  /** Reads a record into the fields above; true when spans can describe it (see `records`). */
  private record(): boolean {
    this.expect(0x7b);
    this.key = ABSENT;
    this.value = ABSENT;
    this.keyPlain = true;
    this.valuePlain = true;
    this.recordHeaders = undefined;
    this.partition = undefined;
    this.base64 = undefined;
    if (this.ws() === 0x7d) throw GIVE_UP; // no value
    for (;;) {
      const name = this.fieldName();
      this.expect(0x3a);
      // A repeated field keeps its last value, as in JSON.parse.
      switch (name) {
        case F_KEY:
          this.key = this.scanOrNull();
          this.keyStart = this.start;
          this.keyEnd = this.end;
          this.keyPlain = this.plain;
          break;
        case F_VALUE:
          this.value = this.scanOrNull();
          this.valueStart = this.start;
          this.valueEnd = this.end;
          this.valuePlain = this.plain;
          break;
        case F_PARTITION:
          this.partition = this.index();
          break;
        case F_ENCODING: {
          const enc = this.string();
          if (!enc.plain) throw GIVE_UP;
          this.base64 = this.is(enc.s, enc.e, 'base64');
          if (!this.base64 && !this.is(enc.s, enc.e, 'utf8')) throw GIVE_UP;
          break;
        }
        // Repeated headers go to the general path: their count is kept as they are read.
        case F_HEADERS:
          if (this.recordHeaders !== undefined) throw GIVE_UP;
          this.recordHeaders = this.headers();
          break;
        default:
          throw GIVE_UP; // an unknown field: the general path names it
      }
      if (!this.more(0x7d)) break;
    }
    if (this.value === ABSENT) throw GIVE_UP;
    // A null or absent field's plain flag is left true.
    return this.base64 !== true && this.recordHeaders === undefined && this.partition === undefined && (this.key !== TEXT || this.keyPlain) && (this.value !== TEXT || this.valuePlain);
  }

  /** The record `record` read last, as a record object. */
  private recordObject(): ProduceRecord {
    const b64 = this.base64 === true;
    const rec: ProduceRecord = {
      key: this.key === TEXT ? this.bytesAt(this.keyStart, this.keyEnd, this.keyPlain, b64) : null,
      value: this.value === TEXT ? this.bytesAt(this.valueStart, this.valueEnd, this.valuePlain, b64) : null,
    };
    if (this.partition !== undefined) rec.partition = this.partition;
    const headers = this.recordHeaders;
    if (headers !== undefined) rec.headers = headers.map((h) => ({ key: h.key, value: this.bytes(h.value, b64) }));
    return rec;
  }

  private headers(): Array<{ key: string; value: Span | null }> {
    this.expect(0x5b);
    const out: Array<{ key: string; value: Span | null }> = [];
    if (this.ws() === 0x5d) {
      this.i++;
      return out;
    }
    for (;;) {
      if (this.headerCount++ >= MAX_PRODUCE_HEADERS) {
        this.skipValue(0);
        if (!this.more(0x5d)) return out;
        continue;
      }
      this.expect(0x7b);
      let key: string | undefined;
      let value: Span | null | undefined;
      if (this.ws() === 0x7d) throw GIVE_UP;
      for (;;) {
        const name = this.fieldName();
        this.expect(0x3a);
        if (name === F_KEY) {
          if (key !== undefined) throw GIVE_UP;
          key = this.text(this.string());
        } else if (name === F_VALUE) {
          if (value !== undefined) throw GIVE_UP;
          value = this.stringOrNull();
        } else throw GIVE_UP; // an unknown field: the general path names it
        if (!this.more(0x7d)) break;
      }
      if (key === undefined) throw GIVE_UP;
      out.push({ key, value: value ?? null });
      if (!this.more(0x5d)) return out;
    }
  }

  /** The bytes a string field stands for, in its record's encoding. */
  private bytes(span: Span | null, base64: boolean): Uint8Array | null {
    return span === null ? null : this.bytesAt(span.s, span.e, span.plain, base64);
  }

  /** The bytes the string whose text is b[s, e) stands for. */
  private bytesAt(s: number, e: number, plain: boolean, base64: boolean): Uint8Array {
    const b = this.b;
    if (base64) {
      if (!plain) throw GIVE_UP;
      const bytes = base64Span(b, s, e);
      if (bytes === undefined) throw GIVE_UP;
      return bytes;
    }
    // Views are made from the buffer directly (subarray looks up the species constructor).
    if (plain) return new Uint8Array(b.buffer, b.byteOffset + s, e - s);
    const bytes = this.arena.bytes(this.text({ s, e, plain }));
    // A lone surrogate: the general path refuses it, naming the field.
    if (bytes === undefined) throw GIVE_UP;
    return bytes;
  }

  /** The JS string a string field stands for, as JSON.parse reads it. */
  private text(span: Span): string {
    const b = this.b;
    if (span.plain) return latin1.decode(b.subarray(span.s, span.e));
    // Quotes included; the body's bytes decode as they would whole (a quote is never inside a
    // UTF-8 sequence), and a bad escape throws, which gives up.
    return JSON.parse(bodyText.decode(b.subarray(span.s - 1, span.e + 1))) as string;
  }

  private is(s: number, e: number, word: string): boolean {
    if (e - s !== word.length) return false;
    for (let k = 0; k < word.length; k++) if (this.b[s + k] !== word.charCodeAt(k)) return false;
    return true;
  }

  private fieldName(): number {
    this.scan();
    const s = this.start;
    const e = this.end;
    if (!this.plain) return FIELD_NAMES.get(this.text({ s, e, plain: false })) ?? F_OTHER;
    switch (e - s) {
      case 3:
        return this.is(s, e, 'key') ? F_KEY : F_OTHER;
      case 5:
        return this.is(s, e, 'value') ? F_VALUE : F_OTHER;
      case 7:
        return this.is(s, e, 'headers') ? F_HEADERS : this.is(s, e, 'records') ? F_RECORDS : F_OTHER;
      case 8:
        return this.is(s, e, 'encoding') ? F_ENCODING : F_OTHER;
      case 9:
        return this.is(s, e, 'partition') ? F_PARTITION : F_OTHER;
      default:
        return F_OTHER;
    }
  }

  /** The next byte after whitespace, or -1 at the end. */
  private ws(): number {
    const b = this.b;
    let i = this.i;
    while (i < b.length) {
      const c = b[i]!;
      if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) break;
      i++;
    }
    this.i = i;
    return i < b.length ? b[i]! : -1;
  }

  private expect(c: number): void {
    if (this.ws() !== c) throw GIVE_UP;
    this.i++;
  }

  /** After a member: true on ',', false on `close`. */
  private more(close: number): boolean {
    const c = this.ws();
    this.i++;
    if (c === 0x2c) return true;
    if (c === close) return false;
    throw GIVE_UP;
  }

  private string(): Span {
    this.scan();
    return { s: this.start, e: this.end, plain: this.plain };
  }

  /**
   * Reads a string literal: its text is b[start, end), `plain` when it holds no escape and only
   * ASCII. No object per string: a Span for every field name and value was the largest share of
   * a produce body's parse garbage.
   */
  private scan(): void {
    if (this.ws() !== 0x22) throw GIVE_UP;
    const b = this.b;
    const s = ++this.i;
    // The usual string: the first quote after it ends it, and nothing before that quote is an
    // escape, a control or non-ASCII. memchr finds the quote; the check then goes a word at a time.
    const q = b.indexOf(0x22, s);
    if (q < 0) throw GIVE_UP;
    if (this.plainSpan(s, q)) {
      this.i = q + 1;
      this.start = s;
      this.end = q;
      this.plain = true;
      return;
    }
    let i = s;
    let plain = true;
    for (;;) {
      if (i >= b.length) throw GIVE_UP;
      const c = b[i]!;
      if (c === 0x22) break;
      if (c < 0x20) throw GIVE_UP; // raw control characters are not JSON
      if (c === 0x5c) {
        // The escape itself is checked when the string is decoded.
        plain = false;
        i += 2;
        continue;
      }
      if (c >= 0x7f) plain = false;
      i++;
    }
    this.i = i + 1;
    this.start = s;
    this.end = i;
    this.plain = plain;
  }

  /** Whether b[s, e) holds only printable ASCII other than backslash (0x20-0x7e but 0x5c). */
  private plainSpan(s: number, e: number): boolean {
    const b = this.b;
    let bad = 0;
    if (e - s < 16) {
      for (let i = s; i < e; i++) bad |= NOT_PLAIN[b[i]!]!;
      return bad === 0;
    }
    // Whole words of the body's buffer (word k holds body bytes 4k - shift to 4k - shift + 3).
    const words = this.words ?? this.wordsOf();
    const shift = this.shift;
    const w0 = (s + shift + 3) >> 2;
    const w1 = (e + shift) >> 2;
    for (let i = s; i < (w0 << 2) - shift; i++) bad |= NOT_PLAIN[b[i]!]!;
    for (let i = (w1 << 2) - shift; i < e; i++) bad |= NOT_PLAIN[b[i]!]!;
    if (bad !== 0) return false;
    for (let k = w0; k < w1; k++) {
      // Per byte, bit 7 of: the byte (>= 0x80), the byte + 1 (0x7f; a carry out of 0xff only
      // follows a byte already caught), "below 0x20", "equals '\\'" (the has-less / has-zero tests
      // of Bit Twiddling Hacks, exact as to whether any byte is).
      const w = words[k]!;
      const x = w ^ 0x5c5c5c5c;
      bad |= w | (w + 0x01010101) | ((w - 0x20202020) & ~w) | ((x - 0x01010101) & ~x);
    }
    return (bad & 0x80808080) === 0;
  }

  /** The body's buffer as 32-bit words from the word-aligned address at or before the body's start. */
  private wordsOf(): Int32Array {
    const b = this.b;
    this.shift = b.byteOffset & 3;
    const from = b.byteOffset - this.shift;
    this.words = new Int32Array(b.buffer, from, (b.byteOffset + b.length - from) >> 2);
    return this.words;
  }

  /** `scan` for a string that may be null: TEXT (start, end, plain set) or NULL. */
  private scanOrNull(): number {
    if (this.ws() === 0x6e) {
      this.literal('null');
      return NULL;
    }
    this.scan();
    return TEXT;
  }

  private stringOrNull(): Span | null {
    if (this.ws() === 0x6e) {
      this.literal('null');
      return null;
    }
    return this.string();
  }

  private literal(word: string): void {
    const b = this.b;
    for (let k = 0; k < word.length; k++) if (b[this.i + k] !== word.charCodeAt(k)) throw GIVE_UP;
    this.i += word.length;
  }

  /** A partition: a plain non-negative integer (anything else goes to the general path). */
  private index(): number {
    this.ws();
    const b = this.b;
    const s = this.i;
    let n = 0;
    let i = s;
    while (i < b.length && b[i]! >= 0x30 && b[i]! <= 0x39 && i - s < 15) n = n * 10 + b[i++]! - 0x30;
    // A fraction, exponent or 16th digit after these is not ',' or '}', so the record gives up.
    if (i === s || (b[s] === 0x30 && i - s > 1)) throw GIVE_UP;
    this.i = i;
    return n;
  }

  /** Any JSON value, checked to the grammar and dropped. */
  private skipValue(depth: number): void {
    if (depth > 64) throw GIVE_UP;
    const c = this.ws();
    if (c === 0x22) this.scan();
    else if (c === 0x7b) {
      this.i++;
      if (this.ws() === 0x7d) this.i++;
      else
        for (;;) {
          this.scan();
          if (!this.plain) this.text({ s: this.start, e: this.end, plain: false });
          this.expect(0x3a);
          this.skipValue(depth + 1);
          if (!this.more(0x7d)) break;
        }
    } else if (c === 0x5b) {
      this.i++;
      if (this.ws() === 0x5d) this.i++;
      else
        for (;;) {
          this.skipValue(depth + 1);
          if (!this.more(0x5d)) break;
        }
    } else if (c === 0x74) this.literal('true');
    else if (c === 0x66) this.literal('false');
    else if (c === 0x6e) this.literal('null');
    else this.number();
  }

  /** -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
  private number(): void {
    const b = this.b;
    let i = this.i;
    const digits = (): number => {
      const s = i;
      while (i < b.length && b[i]! >= 0x30 && b[i]! <= 0x39) i++;
      return i - s;
    };
    if (b[i] === 0x2d) i++;
    const first = i;
    const n = digits();
    if (n === 0 || (n > 1 && b[first] === 0x30)) throw GIVE_UP;
    if (b[i] === 0x2e) {
      i++;
      if (digits() === 0) throw GIVE_UP;
    }
    if (b[i] === 0x65 || b[i] === 0x45) {
      i++;
      if (b[i] === 0x2b || b[i] === 0x2d) i++;
      if (digits() === 0) throw GIVE_UP;
    }
    this.i = i;
  }
}

/**
 * A produce body's bytes to the engine's records: read straight from the bytes when they are a
 * well-formed body (as spans of the body when every record is plain, see ProduceScanner.records),
 * else parsed as JSON and checked field by field (parseProduceBody), which words the error.
 *
 * @example
 * const records = parseProduceJson(await readBody(c.req.raw, limit));
 */
export function parseProduceJson(bytes: Uint8Array): ProduceRecord[] | RecordSpans {
  const scanner = new ProduceScanner(bytes);
  let records: ProduceRecord[] | RecordSpans;
  try {
    records = scanner.body();
  } catch {
    // GIVE_UP, a bad escape (SyntaxError) or nesting too deep: the general path decides.
    return parseProduceBody(parseJson(bytes));
  }
  // Refused once the whole body is known to be JSON, so the general path's answer is the same.
  if (scanner.beyondLimit > 0) throw tooMany('records', MAX_PRODUCE_RECORDS, records.length + scanner.beyondLimit);
  if (scanner.headerCount > MAX_PRODUCE_HEADERS) throw tooMany('headers', MAX_PRODUCE_HEADERS, scanner.headerCount);
  return records;
}

/**
 * JSON text of records and offsets written as UTF-8 bytes into one growing scratch buffer:
 * no per-record objects or strings on the way (decoding each field to a string, then
 * JSON.stringify escaping it and encoding the answer back to bytes was most of a consume's CPU).
 * Strings come out byte for byte as JSON.stringify writes them; valid UTF-8 is copied as it is.
 */
class JsonBytes {
  buf = new Uint8Array(64 * 1024);
  /** `buf` as little-endian words (byte order does not matter to the per-byte tests run on them). */
  words = new Int32Array(this.buf.buffer, 0, this.buf.length >> 2);
  at = 0;

  /** Room for `n` more bytes. */
  reserve(n: number): void {
    if (this.at + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.at + n) size *= 2;
    const grown = new Uint8Array(size);
    grown.set(this.buf.subarray(0, this.at));
    this.buf = grown;
    this.words = new Int32Array(grown.buffer, 0, size >> 2);
  }

  /** ASCII text (names, punctuation). */
  ascii(s: string): void {
    this.reserve(s.length);
    const buf = this.buf;
    let o = this.at;
    for (let i = 0; i < s.length; i++) buf[o++] = s.charCodeAt(i);
    this.at = o;
  }

  /** A JS string as a JSON string literal (JSON.stringify's escaping; non-ASCII via encodeInto). */
  string(s: string): void {
    this.reserve(s.length + 2);
    const buf = this.buf;
    const start = this.at;
    let o = start;
    buf[o++] = 0x22;
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      if (c >= 0x80 || ESCAPE[c] !== 0) {
        // The rare case: let JSON.stringify escape and TextEncoder encode the whole string, over
        // what was copied of it so far.
        this.at = start;
        const text = JSON.stringify(s);
        this.reserve(text.length * 3);
        this.at += utf8.encodeInto(text, this.buf.subarray(this.at)).written;
        return;
      }
      buf[o++] = c;
    }
    buf[o++] = 0x22;
    this.at = o;
  }

  /** A safe integer, as String(n) writes it. */
  int(n: number): void {
    this.reserve(17);
    this.at = putInt(this.buf, this.at, n);
  }

  /**
   * Bytes as a JSON string literal if they are valid UTF-8 (false, with nothing written,
   * otherwise). Validity follows the WHATWG decoder's fatal mode: no overlongs, surrogates or
   * code points past U+10FFFF.
   */
  utf8(b: Uint8Array): boolean {
    const n = b.length;
    // Worst case: every byte a control character written as \u00XX.
    this.reserve(n * 6 + 2);
    const buf = this.buf;
    const o = this.at;
    buf[o] = 0x22;
    // Most values are printable ASCII: copy them whole (natively when long), then check that
    // no byte needed escaping or UTF-8 decoding; only if one did is the value redone byte by byte.
    let special = 0;
    if (n > 32) {
      buf.set(b, o + 1);
      for (let i = 0; i < n; i++) special |= SPECIAL[b[i]!]!;
    } else {
      for (let i = 0; i < n; i++) {
        const c = b[i]!;
        special |= SPECIAL[c]!;
        buf[o + 1 + i] = c;
      }
    }
    if (special === 0) {
      buf[o + 1 + n] = 0x22;
      this.at = o + n + 2;
      return true;
    }
    return this.utf8Escaped(b);
  }

  private utf8Escaped(b: Uint8Array): boolean {
    const n = b.length;
    const buf = this.buf;
    let o = this.at + 1;
    let i = 0;
    while (i < n) {
      const c = b[i]!;
      if (c < 0x80) {
        const e = ESCAPE[c]!;
        if (e === 0) buf[o++] = c;
        else if (e === 1) {
          // \u00XX, lowercase hex as JSON.stringify writes it
          buf[o++] = 0x5c;
          buf[o++] = 0x75;
          buf[o++] = 0x30;
          buf[o++] = 0x30;
          buf[o++] = HEX[c >> 4]!;
          buf[o++] = HEX[c & 15]!;
        } else {
          buf[o++] = 0x5c;
          buf[o++] = e;
        }
        i++;
        continue;
      }
      let len: number;
      let lo = 0x80;
      let hi = 0xbf;
      if (c >= 0xc2 && c <= 0xdf) len = 2;
      else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        if (c === 0xe0) lo = 0xa0;
        else if (c === 0xed) hi = 0x9f;
      } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        if (c === 0xf0) lo = 0x90;
        else if (c === 0xf4) hi = 0x8f;
      } else return false;
      if (i + len > n) return false;
      const c1 = b[i + 1]!;
      if (c1 < lo || c1 > hi) return false;
      if (len > 2 && (b[i + 2]! & 0xc0) !== 0x80) return false;
      if (len > 3 && (b[i + 3]! & 0xc0) !== 0x80) return false;
      for (let k = 0; k < len; k++) buf[o++] = b[i + k]!;
      i += len;
    }
    buf[o++] = 0x22;
    this.at = o;
    return true;
  }

  /** Bytes as a JSON string of standard padded base64. */
  base64(b: Uint8Array): void {
    const n = b.length;
    this.reserve(Math.ceil(n / 3) * 4 + 2);
    const buf = this.buf;
    let o = this.at;
    buf[o++] = 0x22;
    let i = 0;
    for (; i + 2 < n; i += 3) {
      const v = (b[i]! << 16) | (b[i + 1]! << 8) | b[i + 2]!;
      buf[o++] = B64_BYTES[v >> 18]!;
      buf[o++] = B64_BYTES[(v >> 12) & 63]!;
      buf[o++] = B64_BYTES[(v >> 6) & 63]!;
      buf[o++] = B64_BYTES[v & 63]!;
    }
    const rest = n - i;
    if (rest > 0) {
      const v = (b[i]! << 16) | (rest === 2 ? b[i + 1]! << 8 : 0);
      buf[o++] = B64_BYTES[v >> 18]!;
      buf[o++] = B64_BYTES[(v >> 12) & 63]!;
      buf[o++] = rest === 2 ? B64_BYTES[(v >> 6) & 63]! : 0x3d;
      buf[o++] = 0x3d;
    }
    buf[o++] = 0x22;
    this.at = o;
  }

  /** The bytes written, copied out (the scratch buffer is reused by the next answer). */
  take(): Uint8Array {
    const out = this.buf.slice(0, this.at);
    this.at = 0;
    // A rare huge answer does not keep its buffer for good.
    if (this.buf.length > 4 * 1024 * 1024) {
      this.buf = new Uint8Array(64 * 1024);
      this.words = new Int32Array(this.buf.buffer, 0, this.buf.length >> 2);
    }
    return out;
  }
}

/** Per ASCII byte: 0 copied as is, 1 written \u00XX, else the letter after a backslash. */
const ESCAPE = new Uint8Array(128);
for (let c = 0; c < 0x20; c++) ESCAPE[c] = 1;
ESCAPE[0x08] = 0x62; // \b
ESCAPE[0x09] = 0x74; // \t
ESCAPE[0x0a] = 0x6e; // \n
ESCAPE[0x0c] = 0x66; // \f
ESCAPE[0x0d] = 0x72; // \r
ESCAPE[0x22] = 0x22; // \"
ESCAPE[0x5c] = 0x5c; // \\
/** 1 for the bytes a JSON string cannot hold as they are: controls, '"', '\\', and all non-ASCII. */
const SPECIAL = Uint8Array.from({ length: 256 }, (_, c) => (c >= 0x80 || ESCAPE[c] !== 0 ? 1 : 0));
const HEX = Uint8Array.from('0123456789abcdef', (ch) => ch.charCodeAt(0));
const B64_BYTES = Uint8Array.from(B64, (ch) => ch.charCodeAt(0));

/** `v` (0 <= v < 1e8) in decimal at `o`; returns the end. */
function writeDigits(buf: Uint8Array, o: number, v: number): number {
  const len = v < 10 ? 1 : v < 100 ? 2 : v < 1000 ? 3 : v < 10000 ? 4 : v < 100000 ? 5 : v < 1000000 ? 6 : v < 10000000 ? 7 : 8;
  for (let d = o + len - 1; d >= o; d--) {
    const q = (v / 10) | 0;
    buf[d] = 0x30 + v - q * 10;
    v = q;
  }
  return o + len;
}

/** A safe integer at `o` as String(n) writes it, with int32 math only (no float modulo); returns the end. */
function putInt(buf: Uint8Array, o: number, n: number): number {
  if (n < 0) {
    buf[o++] = 0x2d; // '-'
    n = -n;
  }
  if (n < 1e8) return writeDigits(buf, o, n | 0);
  // Below 2^53 the high part is below 2^31 too.
  const hi = Math.floor(n / 1e8);
  o = writeDigits(buf, o, hi | 0);
  let lo = (n - hi * 1e8) | 0;
  for (let d = o + 7; d >= o; d--) {
    const q = (lo / 10) | 0;
    buf[d] = 0x30 + lo - q * 10;
    lo = q;
  }
  return o + 8;
}

const ascii = (s: string): Uint8Array => Uint8Array.from(s, (ch) => ch.charCodeAt(0));
const OFFSET_TEXT = ascii('{"offset":');
const TIMESTAMP_TEXT = ascii(',"timestamp":');
const KEY_TEXT = ascii(',"key":');
const VALUE_TEXT = ascii(',"value":');
const PLAIN_END_TEXT = ascii(',"headers":[],"encoding":"utf8"}');
/** What a record without headers adds besides its key and value: the texts above, two integers and a comma. */
const PLAIN_FIXED = OFFSET_TEXT.length + TIMESTAMP_TEXT.length + KEY_TEXT.length + VALUE_TEXT.length + PLAIN_END_TEXT.length + 2 * 17 + 1;
const PARTITION_TEXT = ascii('{"partition":');
const PRODUCED_OFFSET_TEXT = ascii(',"offset":');
/** Room for one produced offset: ',', both names, two safe integers (17 characters each, sign included) and '}'. */
const PRODUCED_FIXED = 1 + PARTITION_TEXT.length + PRODUCED_OFFSET_TEXT.length + 2 * 17 + 1;

function putText(buf: Uint8Array, o: number, text: Uint8Array): number {
  for (let i = 0; i < text.length; i++) buf[o + i] = text[i]!;
  return o + text.length;
}

/**
 * `b` as a JSON string at `o` in `out.buf` when none of its bytes needs escaping or UTF-8
 * checks (null as `null`); returns the end, or -1 when some byte does (what was written is then
 * garbage). Short values are copied and checked byte by byte; longer ones are copied natively
 * and checked four bytes at a time in the copy (a per-byte table lookup was most of a consume's
 * JSON time at 100 B values).
 */
function putPlain(buf: Uint8Array, o: number, b: Uint8Array | null): number {
  if (b === null) {
    buf[o] = 0x6e; // null
    buf[o + 1] = 0x75;
    buf[o + 2] = 0x6c;
    buf[o + 3] = 0x6c;
    return o + 4;
  }
  const n = b.length;
  buf[o++] = 0x22;
  const end = o + n;
  let bad = 0;
  if (n < 16) {
    for (let i = 0; i < n; i++) {
      const c = b[i]!;
      bad |= SPECIAL[c]!;
      buf[o + i] = c;
    }
  } else {
    buf.set(b, o);
    const w0 = (o + 3) >> 2;
    const w1 = end >> 2;
    for (let i = o; i < w0 << 2; i++) bad |= SPECIAL[buf[i]!]!;
    for (let i = w1 << 2; i < end; i++) bad |= SPECIAL[buf[i]!]!;
    bad = bad === 0 ? 0 : 0x80;
    const words = out.words;
    for (let k = w0; k < w1; k++) {
      // Per byte, bit 7 of: the byte itself (>= 0x80), "below 0x20", "equals '\"'", "equals '\\'"
      // (the has-less / has-zero tests of Bit Twiddling Hacks: exact as to whether any byte is).
      const w = words[k]!;
      const q = w ^ 0x22222222;
      const bs = w ^ 0x5c5c5c5c;
      bad |= w | ((w - 0x20202020) & ~w) | ((q - 0x01010101) & ~q) | ((bs - 0x01010101) & ~bs);
    }
    bad &= 0x80808080;
  }
  if (bad !== 0) return -1;
  buf[end] = 0x22;
  return end + 1;
}

const out = new JsonBytes();

/** One record into `out`, utf8 when every byte field is valid UTF-8, base64 otherwise. */
function writeRecord(r: DecodedRecord): void {
  out.ascii('{"offset":');
  out.int(r.offset);
  out.ascii(',"timestamp":');
  out.int(r.timestamp);
  out.ascii(',"key":');
  const fieldsAt = out.at;
  if (writeFields(r, false)) {
    out.ascii(',"encoding":"utf8"}');
    return;
  }
  out.at = fieldsAt;
  writeFields(r, true);
  out.ascii(',"encoding":"base64"}');
}

/** key, value and headers of a record (after `"key":`); false when utf8 was asked and some field is not UTF-8. */
function writeFields(r: DecodedRecord, base64: boolean): boolean {
  if (!bytesField(r.key, base64)) return false;
  out.ascii(',"value":');
  if (!bytesField(r.value, base64)) return false;
  const headers = r.headers;
  if (headers.length === 0) {
    out.ascii(',"headers":[]');
    return true;
  }
  out.ascii(',"headers":[');
  for (let j = 0; j < headers.length; j++) {
    const h = headers[j]!;
    out.ascii(j === 0 ? '{"key":' : ',{"key":');
    out.string(h.key);
    out.ascii(',"value":');
    if (!bytesField(h.value, base64)) return false;
    out.ascii('}');
  }
  out.ascii(']');
  return true;
}

function bytesField(b: Uint8Array | null, base64: boolean): boolean {
  if (b === null) {
    out.ascii('null');
    return true;
  }
  if (base64) {
    out.base64(b);
    return true;
  }
  return out.utf8(b);
}

/**
 * A consume answer as JSON bytes: `{records:[{offset, timestamp, key, value, headers, encoding}],
 * next_offset, high_watermark, log_start_offset}`, each record utf8 when every byte field is
 * valid UTF-8, base64 otherwise. Same text as JSON.stringify of those objects.
 *
 * @example
 * return plainResponse(c, deps, consumeResultJson(await streams.consume('orders', 0, 0)), 200, { 'content-type': 'application/json' });
 */
export function consumeResultJson(result: ConsumeResult): Uint8Array {
  out.at = 0;
  out.ascii('{"records":[');
  const records = result.records;
  for (let i = 0; i < records.length; i++) {
    const r = records[i]!;
    const key = r.key;
    const value = r.value;
    // Room for the record as the fast path writes it: no headers, key and value copied as they are.
    out.reserve(PLAIN_FIXED + (key === null ? 4 : key.length + 2) + (value === null ? 4 : value.length + 2));
    const buf = out.buf;
    let o = out.at;
    if (i > 0) buf[o++] = 0x2c; // ','
    const start = o;
    if (r.headers.length === 0) {
      o = putText(buf, o, OFFSET_TEXT);
      o = putInt(buf, o, r.offset);
      o = putText(buf, o, TIMESTAMP_TEXT);
      o = putInt(buf, o, r.timestamp);
      o = putText(buf, o, KEY_TEXT);
      o = putPlain(buf, o, key);
      if (o >= 0) o = putPlain(buf, putText(buf, o, VALUE_TEXT), value);
      if (o >= 0) {
        out.at = putText(buf, o, PLAIN_END_TEXT);
        continue;
      }
    }
    out.at = start;
    writeRecord(r);
  }
  out.ascii('],"next_offset":');
  out.int(result.next_offset);
  out.ascii(',"high_watermark":');
  out.int(result.high_watermark);
  out.ascii(',"log_start_offset":');
  out.int(result.log_start_offset);
  out.ascii('}');
  return out.take();
}

/**
 * A produce answer as JSON bytes, `{offsets:[{partition, offset}]}`, the text JSON.stringify
 * writes. Written into the scratch buffer: built by string concatenation, the answer of a
 * 100-record produce allocated ~18 KB of ropes and number strings, the largest share of the
 * server's allocations under the mixed HTTP load (young-generation GCs).
 *
 * @example
 * const body = produceResultJson(await streams.produce('orders', records));
 */
export function produceResultJson(result: Pick<ProduceResult, 'offsets'>): Uint8Array {
  out.at = 0;
  out.ascii('{"offsets":[');
  const run = offsetRun(result);
  if (run !== undefined) putOffsetRun(run);
  else {
    const offsets = result.offsets;
    for (let i = 0; i < offsets.length; i++) {
      const o = offsets[i]!;
      out.reserve(PRODUCED_FIXED);
      const buf = out.buf;
      let at = out.at;
      if (i > 0) buf[at++] = 0x2c; // ','
      at = putInt(buf, putText(buf, at, PARTITION_TEXT), o.partition);
      at = putInt(buf, putText(buf, at, PRODUCED_OFFSET_TEXT), o.offset);
      buf[at++] = 0x7d; // '}'
      out.at = at;
    }
  }
  out.ascii(']}');
  return out.take();
}

/** Scratch for `putOffsetRun`: the text every entry starts with, and the digits of the current offset. */
const runHead = new Uint8Array(PARTITION_TEXT.length + 17 + PRODUCED_OFFSET_TEXT.length);
const runDigits = new Uint8Array(17);

/**
 * `{"partition":P,"offset":N}` for N = base, base + 1, …: the text before N is the same for every
 * entry, and N's digits are counted up in place rather than written out from a number each time.
 */
function putOffsetRun(run: OffsetRun): void {
  const headLength = putText(runHead, putInt(runHead, putText(runHead, 0, PARTITION_TEXT), run.partition), PRODUCED_OFFSET_TEXT);
  let digits = putInt(runDigits, 0, run.base);
  out.reserve(run.count * PRODUCED_FIXED);
  const buf = out.buf;
  let at = out.at;
  for (let k = 0; k < run.count; k++) {
    if (k > 0) buf[at++] = 0x2c; // ','
    for (let h = 0; h < headLength; h++) buf[at++] = runHead[h]!;
    for (let d = 0; d < digits; d++) buf[at++] = runDigits[d]!;
    buf[at++] = 0x7d; // '}'
    let d = digits - 1;
    while (d >= 0 && runDigits[d] === 0x39) runDigits[d--] = 0x30; // '9' carries
    if (d >= 0) runDigits[d] = runDigits[d]! + 1;
    else digits = putInt(runDigits, 0, run.base + k + 1); // 99…9 + 1: one digit more
  }
  out.at = at;
}
