/**
 * The vector query's body from its bytes. The usual body, `{"vector": [numbers], "k": 10}` with
 * optionally `ef`, `threshold`, `include_metadata`, `include_values` and an object `filter`, is
 * read in one pass with the vector's numbers going straight into a Float32Array (see
 * core/json-f32.ts), which costs a fraction of JSON.parse on the 17-digit numbers clients send;
 * only the filter's own text goes through JSON.parse. Any other body (other fields, `id`, escapes
 * in a name, a value of the wrong type or out of range) goes through JSON.parse and
 * parseQueryBody, which give every error; so do values the fast read does not take.
 */
import { JsonF32ArrayReader, jsonNumberEnd, skipWhitespace } from '../core/json-f32.js';
import { MAX_DIMS } from '../engine/vectors/validate.js';
import { parseJson } from './body.js';
import { parseQueryBody, type QueryBody } from './schemas/vectors.js';
import type { z } from 'zod';

/** parseQueryBody's answer, with the vector as read: numbers from JSON.parse, or already f32. */
export type QueryBodyValue = Omit<z.output<typeof QueryBody>, 'vector'> & { vector?: number[] | Float32Array };

// Byte values (plain constants: with isolatedModules a const enum stays an object to look up).
const QUOTE = 0x22;
const COMMA = 0x2c;
const COLON = 0x3a;
const ZERO = 0x30;
const NINE = 0x39;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const BACKSLASH = 0x5c;

// The fields the fast read takes, as bit flags. A repeated one keeps its last value, as in JSON.parse.
const VECTOR = 1;
const K = 2;
const EF = 4;
const THRESHOLD = 8;
const INCLUDE_METADATA = 16;
const INCLUDE_VALUES = 32;
const FILTER = 64;
/** Each field's name as bytes, with its flag: the name is matched in the body's bytes, no string made. */
const FIELDS: [Uint8Array, number][] = (
  [
    ['vector', VECTOR],
    ['k', K],
    ['ef', EF],
    ['threshold', THRESHOLD],
    ['include_metadata', INCLUDE_METADATA],
    ['include_values', INCLUDE_VALUES],
    ['filter', FILTER],
  ] as const
).map(([name, flag]) => [new TextEncoder().encode(name), flag]);

/** The flag of the field named by bytes[start, end) (no quote in between), or 0 for any other name. */
function fieldAt(bytes: Uint8Array, start: number, end: number): number {
  for (const [name, flag] of FIELDS) {
    if (name.length !== end - start) continue;
    let j = 0;
    while (j < name.length && bytes[start + j] === name[j]) j++;
    if (j === name.length) return flag;
  }
  return 0;
}

const reader = new JsonF32ArrayReader(MAX_DIMS);
// Fatal, as parseJson's: a filter that is not UTF-8 leaves the fast read, and parseJson refuses the body.
const decoder = new TextDecoder('utf-8', { fatal: true });

/**
 * The query body in `bytes`, with parseQueryBody's errors (and parseJson's) for a bad one.
 *
 * @example
 * const body = queryBodyFromBytes(await readDirectBody(request, limit));
 */
export function queryBodyFromBytes(bytes: Uint8Array): QueryBodyValue {
  return plainQueryBody(bytes) ?? parseQueryBody(parseJson(bytes));
}

/** The body when it is a plain, valid vector query; undefined for anything else. */
function plainQueryBody(bytes: Uint8Array): QueryBodyValue | undefined {
  let i = skipWhitespace(bytes, 0);
  if (bytes[i] !== OPEN_BRACE) return undefined;
  i = skipWhitespace(bytes, i + 1);
  const out: QueryBodyValue = { k: 0 };
  let seen = 0;
  for (;;) {
    if (bytes[i] !== QUOTE) return undefined;
    const nameStart = i + 1;
    for (i = nameStart; i < bytes.length && bytes[i] !== QUOTE; i++) {
      const c = bytes[i]!;
      if (c < 0x20 || c >= 0x7f || c === BACKSLASH || i - nameStart >= 16) return undefined;
    }
    const field = i < bytes.length ? fieldAt(bytes, nameStart, i) : 0;
    if (field === 0) return undefined;
    seen |= field;
    i = skipWhitespace(bytes, i + 1);
    if (bytes[i] !== COLON) return undefined;
    i = skipWhitespace(bytes, i + 1);
    switch (field) {
      case VECTOR:
        i = reader.read(bytes, i);
        if (i < 0) return undefined;
        out.vector = reader.values.slice(0, reader.length);
        break;
      case K:
      case EF: {
        const end = jsonNumberEnd(bytes, i);
        const n = end < 0 ? NaN : plainInteger(bytes, i, end);
        if (!(n >= 1 && n <= (field === K ? 1000 : 10_000))) return undefined;
        if (field === K) out.k = n;
        else out.ef = n;
        i = end;
        break;
      }
      case THRESHOLD: {
        const end = jsonNumberEnd(bytes, i);
        if (end < 0) return undefined;
        const threshold = Number(latin1(bytes, i, end));
        if (!Number.isFinite(threshold)) return undefined;
        out.threshold = threshold;
        i = end;
        break;
      }
      case FILTER: {
        // An object's text, parsed alone: the same value JSON.parse gives it inside the body.
        // Anything else (null, an array, text JSON.parse refuses) takes the general path's error.
        if (bytes[i] !== OPEN_BRACE) return undefined;
        const end = compositeEnd(bytes, i);
        if (end < 0) return undefined;
        try {
          out.filter = JSON.parse(decoder.decode(bytes.subarray(i, end))) as Record<string, unknown>;
        } catch {
          return undefined;
        }
        i = end;
        break;
      }
      default: {
        const flag = literalBoolean(bytes, i);
        if (flag === undefined) return undefined;
        if (field === INCLUDE_METADATA) out.include_metadata = flag;
        else out.include_values = flag;
        i += flag ? 4 : 5;
      }
    }
    i = skipWhitespace(bytes, i);
    if (bytes[i] === COMMA) {
      i = skipWhitespace(bytes, i + 1);
    } else if (bytes[i] === CLOSE_BRACE) {
      break;
    } else {
      return undefined;
    }
  }
  if (skipWhitespace(bytes, i + 1) !== bytes.length) return undefined;
  // Without both, parseQueryBody or the collection has an error to give.
  if ((seen & (VECTOR | K)) !== (VECTOR | K)) return undefined;
  return out;
}

/**
 * The index just past the object or array opening at `bytes[start]`: where its brackets balance,
 * strings (with their escapes) skipped; −1 if the body ends first. It does not check the text
 * between; JSON.parse does.
 */
function compositeEnd(bytes: Uint8Array, start: number): number {
  let depth = 0;
  for (let i = start; i < bytes.length; i++) {
    const c = bytes[i]!;
    if (c === QUOTE) {
      for (i++; i < bytes.length && bytes[i] !== QUOTE; i++) if (bytes[i] === BACKSLASH) i++;
    } else if (c === OPEN_BRACE || c === OPEN_BRACKET) {
      depth++;
    } else if ((c === CLOSE_BRACE || c === CLOSE_BRACKET) && --depth === 0) {
      return i + 1;
    }
  }
  return -1;
}

/** The value of the digits-only JSON number in [start, end), or NaN when it has a sign, fraction or exponent. */
function plainInteger(bytes: Uint8Array, start: number, end: number): number {
  if (end - start > 6) return NaN;
  let n = 0;
  for (let i = start; i < end; i++) {
    const c = bytes[i]!;
    if (c < ZERO || c > NINE) return NaN;
    n = n * 10 + (c - ZERO);
  }
  return n;
}

function literalBoolean(bytes: Uint8Array, i: number): boolean | undefined {
  // t r u e, f a l s e
  if (bytes[i] === 0x74 && bytes[i + 1] === 0x72 && bytes[i + 2] === 0x75 && bytes[i + 3] === 0x65) return true;
  if (bytes[i] === 0x66 && bytes[i + 1] === 0x61 && bytes[i + 2] === 0x6c && bytes[i + 3] === 0x73 && bytes[i + 4] === 0x65) return false;
  return undefined;
}

function latin1(bytes: Uint8Array, start: number, end: number): string {
  let text = '';
  for (let i = start; i < end; i++) text += String.fromCharCode(bytes[i]!);
  return text;
}
