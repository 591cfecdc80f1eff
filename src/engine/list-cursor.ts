/**
 * The list cursors every listing hands out (KV keys, vector ids, topics, collections, groups): the
 * last item's bytes in unpadded base64url. Decoding is strict, so only a cursor the server could
 * have emitted is taken: padding, `+`/`/`, whitespace, non-zero trailing bits (which atob ignores,
 * so several strings decode alike), over-long text and bytes that are not UTF-8 are refused.
 */
import { ErrorCode, QuartzError } from '../core/errors.js';
import { decodeUtf8 } from '../core/utf8.js';

const encoder = new TextEncoder();
const BASE64URL = /^[A-Za-z0-9_-]+$/;

/** Default and largest page of the catalog listings (topics, collections, groups), as KV list's. */
export const DEFAULT_PAGE_LIMIT = 1000;
export const MAX_PAGE_LIMIT = 1000;

export interface PageOptions {
  /** The `cursor` of the previous page; null or absent for the first. */
  cursor?: string | null;
  /** Items per page, 1 to MAX_PAGE_LIMIT (default DEFAULT_PAGE_LIMIT). */
  limit?: number;
}

/** The error every refused cursor gets: an INVALID_ARGUMENT that names `cursor`. */
export function badCursor(detail = 'it is not one this API returned; pass back the cursor of a previous page'): QuartzError {
  return new QuartzError(ErrorCode.INVALID_ARGUMENT, `cursor: ${detail}`);
}

/**
 * @example
 * cursorFromBytes(new TextEncoder().encode('orders')); // 'b3JkZXJz'
 */
export function cursorFromBytes(bytes: Uint8Array): string {
  let bin = '';
  for (let i = 0; i < bytes.length; i++) bin += String.fromCharCode(bytes[i]!);
  return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/**
 * The bytes of a cursor made by cursorFromBytes, 1 to `maxBytes` of them; anything else is
 * refused with badCursor.
 */
export function bytesFromCursor(cursor: unknown, maxBytes: number): Uint8Array {
  if (typeof cursor !== 'string') throw badCursor('expected a string');
  // Length first, so a huge cursor costs nothing to refuse; a length of 4n+1 is no base64 at all.
  if (cursor.length > Math.ceil((maxBytes * 4) / 3) || cursor.length % 4 === 1 || !BASE64URL.test(cursor)) throw badCursor();
  const bin = atob(cursor.replace(/-/g, '+').replace(/_/g, '/'));
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  // atob ignores the unused low bits of the last character: only the canonical spelling is ours.
  if (bytes.length > maxBytes || cursorFromBytes(bytes) !== cursor) throw badCursor();
  return bytes;
}

/** A name's cursor (its UTF-8 bytes). */
export function cursorFromName(name: string): string {
  return cursorFromBytes(encoder.encode(name));
}

/** The name a cursorFromName cursor holds, exactly (a leading U+FEFF kept); refused unless UTF-8. */
export function nameFromCursor(cursor: unknown, maxBytes: number): string {
  const bytes = bytesFromCursor(cursor, maxBytes);
  try {
    return decodeUtf8(bytes);
  } catch {
    throw badCursor();
  }
}

/** `limit` checked as an integer in 1..MAX_PAGE_LIMIT, DEFAULT_PAGE_LIMIT when absent. */
export function pageLimit(limit: unknown): number {
  if (limit === undefined) return DEFAULT_PAGE_LIMIT;
  if (!(Number.isSafeInteger(limit) && (limit as number) >= 1 && (limit as number) <= MAX_PAGE_LIMIT)) {
    throw new QuartzError(ErrorCode.INVALID_ARGUMENT, `limit must be an integer from 1 to ${MAX_PAGE_LIMIT}, got ${String(limit)}`);
  }
  return limit as number;
}
