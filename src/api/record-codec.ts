/**
 * Records over JSON: produce bodies are checked and turned into engine records in one pass
 * (the hot path, so no schema library per record), and consumed records are written back with
 * a per-record `encoding`: utf8 when every byte field is valid UTF-8, base64 otherwise.
 */
import type { DecodedRecord } from '../core/segment.js';
import type { ProduceRecord } from '../engine/streams/stream-store.js';
import { invalid } from './validation.js';

const utf8 = new TextEncoder();
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });
const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const B64_INDEX = new Int16Array(128).fill(-1);
for (let i = 0; i < B64.length; i++) B64_INDEX[B64.charCodeAt(i)] = i;

/** Standard base64 (with or without padding) to bytes; undefined when it is not base64. */
export function fromBase64(s: string): Uint8Array | undefined {
  let end = s.length;
  while (end > 0 && s.charCodeAt(end - 1) === 61) end--; // '='
  if (s.length - end > 2 || end % 4 === 1 || (s.length !== end && s.length % 4 !== 0)) return undefined;
  const out = new Uint8Array(Math.floor((end * 3) / 4));
  let o = 0;
  let acc = 0;
  let bits = 0;
  for (let i = 0; i < end; i++) {
    const c = s.charCodeAt(i);
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

/** Bytes to standard padded base64. */
export function toBase64(bytes: Uint8Array): string {
  let s = '';
  let i = 0;
  for (; i + 2 < bytes.length; i += 3) {
    const n = (bytes[i]! << 16) | (bytes[i + 1]! << 8) | bytes[i + 2]!;
    s += B64[n >> 18]! + B64[(n >> 12) & 63]! + B64[(n >> 6) & 63]! + B64[n & 63]!;
  }
  const rest = bytes.length - i;
  if (rest === 1) {
    const n = bytes[i]! << 16;
    s += B64[n >> 18]! + B64[(n >> 12) & 63]! + '==';
  } else if (rest === 2) {
    const n = (bytes[i]! << 16) | (bytes[i + 1]! << 8);
    s += B64[n >> 18]! + B64[(n >> 12) & 63]! + B64[(n >> 6) & 63]! + '=';
  }
  return s;
}

function typeName(v: unknown): string {
  return v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v;
}

/**
 * UTF-8 bytes of one produce body's strings, packed into shared chunks that records get views
 * of: one allocation per chunk instead of one ArrayBuffer per key and value (TextEncoder.encode
 * per record was the largest cost of produce over HTTP). ASCII is copied in JS; anything else
 * goes through encodeInto. A full chunk is left to the views into it, never copied.
 */
class Utf8Arena {
  private chunk = new Uint8Array(0);
  private at = 0;

  bytes(s: string): Uint8Array {
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
    // Everything before i is ASCII, so slicing there cannot split a surrogate pair.
    if (i < n) o += utf8.encodeInto(s.slice(i), buf.subarray(o)).written;
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
  if (!base64) return arena.bytes(v);
  const bytes = fromBase64(v);
  if (bytes === undefined) throw invalid(`${path}: not valid base64 (encoding is base64)`);
  return bytes;
}

/**
 * Checks a produce body and returns the engine's records.
 *
 * @example
 * const records = parseProduceBody({ records: [{ key: 'k', value: 'aGk=', encoding: 'base64' }] });
 */
export function parseProduceBody(body: unknown): ProduceRecord[] {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw invalid(`body: expected object, received ${typeName(body)}`);
  const list = (body as { records?: unknown }).records;
  if (!Array.isArray(list)) throw invalid(`records: expected array, received ${typeName(list)}`);
  if (list.length === 0) throw invalid('records: must hold at least one record');
  const out = new Array<ProduceRecord>(list.length);
  const arena = new Utf8Arena();
  for (let i = 0; i < list.length; i++) {
    const r = list[i] as Record<string, unknown>;
    const at = `records[${i}]`;
    if (r === null || typeof r !== 'object' || Array.isArray(r)) throw invalid(`${at}: expected object, received ${typeName(r)}`);
    const enc = r.encoding;
    if (enc !== undefined && enc !== 'utf8' && enc !== 'base64') throw invalid(`${at}.encoding: expected "utf8" or "base64", received ${JSON.stringify(enc)}`);
    const base64 = enc === 'base64';
    if (!('value' in r)) throw invalid(`${at}.value: required (a string, or null for a tombstone)`);
    const rec: ProduceRecord = { key: bytesOf(r.key, base64, `${at}.key`, true, arena), value: bytesOf(r.value, base64, `${at}.value`, false, arena) };
    if (r.partition !== undefined) {
      if (typeof r.partition !== 'number' || !Number.isSafeInteger(r.partition) || r.partition < 0) {
        throw invalid(`${at}.partition: expected a non-negative integer, received ${JSON.stringify(r.partition)}`);
      }
      rec.partition = r.partition;
    }
    if (r.headers !== undefined) {
      if (!Array.isArray(r.headers)) throw invalid(`${at}.headers: expected array, received ${typeName(r.headers)}`);
      rec.headers = r.headers.map((h: unknown, j: number) => {
        const hp = `${at}.headers[${j}]`;
        if (h === null || typeof h !== 'object') throw invalid(`${hp}: expected object {key, value}, received ${typeName(h)}`);
        const { key, value } = h as { key?: unknown; value?: unknown };
        if (typeof key !== 'string') throw invalid(`${hp}.key: expected string, received ${typeName(key)}`);
        return { key, value: bytesOf(value, base64, `${hp}.value`, true, arena) };
      });
    }
    out[i] = rec;
  }
  return out;
}

export interface RecordJson {
  offset: number;
  timestamp: number;
  key: string | null;
  value: string | null;
  headers: Array<{ key: string; value: string | null }>;
  encoding: 'utf8' | 'base64';
}

function asUtf8(b: Uint8Array | null): string | null | undefined {
  if (b === null) return null;
  try {
    return strictUtf8.decode(b);
  } catch {
    return undefined;
  }
}

/**
 * A consumed record as JSON, utf8 when every byte field is valid UTF-8, base64 otherwise.
 *
 * @example
 * const json = records.map(recordToJson);
 */
export function recordToJson(r: DecodedRecord): RecordJson {
  const key = asUtf8(r.key);
  const value = key === undefined ? undefined : asUtf8(r.value);
  let headers: RecordJson['headers'] | undefined = [];
  if (value !== undefined) {
    for (const h of r.headers) {
      const v = asUtf8(h.value);
      if (v === undefined) {
        headers = undefined;
        break;
      }
      headers.push({ key: h.key, value: v });
    }
  }
  if (key !== undefined && value !== undefined && headers !== undefined) {
    return { offset: r.offset, timestamp: r.timestamp, key, value, headers, encoding: 'utf8' };
  }
  const b64 = (b: Uint8Array | null) => (b === null ? null : toBase64(b));
  return {
    offset: r.offset,
    timestamp: r.timestamp,
    key: b64(r.key),
    value: b64(r.value),
    headers: r.headers.map((h) => ({ key: h.key, value: b64(h.value) })),
    encoding: 'base64',
  };
}
