/**
 * Argument checks shared by every Storage adapter, so each home rejects the same bad input
 * with the same QuartzError instead of crashing inside its backend.
 */
import { ErrorCode, QuartzError } from '../core/errors.js';
import { hasLoneSurrogate } from '../core/show-value.js';
import { MAX_ENTRY_BYTES, MAX_KEY_BYTES, type BatchOp, type BlobRange, type ScanOptions } from './storage.js';

/** Longest unit name or blob key, in UTF-8 bytes. */
export const MAX_NAME_BYTES = 1024;

const utf8 = new TextEncoder();

function invalid(message: string): QuartzError {
  return new QuartzError(ErrorCode.INVALID_ARGUMENT, message);
}

export function checkKey(key: unknown, what = 'key'): asserts key is Uint8Array {
  if (!(key instanceof Uint8Array)) throw invalid(`storage ${what} must be a Uint8Array`);
  if (key.length === 0) throw invalid(`storage ${what} must not be empty`);
  if (key.length > MAX_KEY_BYTES) {
    throw new QuartzError(ErrorCode.TOO_LARGE, `storage ${what} is ${key.length} bytes; the limit is ${MAX_KEY_BYTES}`, {
      details: { size: key.length, limit: MAX_KEY_BYTES },
    });
  }
}

export function checkValue(value: unknown): asserts value is Uint8Array {
  if (!(value instanceof Uint8Array)) throw invalid('storage value must be a Uint8Array');
  if (value.length > MAX_ENTRY_BYTES) {
    throw new QuartzError(
      ErrorCode.TOO_LARGE,
      `storage entry of ${value.length} bytes exceeds the ${MAX_ENTRY_BYTES}-byte limit; store it in the blob store`,
      { details: { size: value.length, limit: MAX_ENTRY_BYTES } },
    );
  }
}

/** Bounds are checked like keys, except that an empty bound is allowed (it means "from the start"). */
function checkBound(bound: unknown, what: string): void {
  if (bound === undefined) return;
  if (!(bound instanceof Uint8Array)) throw invalid(`scan ${what} must be a Uint8Array`);
  if (bound.length > MAX_KEY_BYTES) throw invalid(`scan ${what} is longer than ${MAX_KEY_BYTES} bytes`);
}

export function checkScan(options: ScanOptions | undefined): ScanOptions {
  if (options === undefined || options === null) return {};
  if (typeof options !== 'object') throw invalid('scan options must be an object');
  checkBound(options.prefix, 'prefix');
  checkBound(options.start, 'start');
  checkBound(options.end, 'end');
  if (options.prefix !== undefined && (options.start !== undefined || options.end !== undefined)) {
    throw invalid('scan takes either a prefix or start/end bounds, not both');
  }
  if (options.limit !== undefined && !(Number.isInteger(options.limit) && options.limit >= 0)) {
    throw invalid(`scan limit must be a non-negative integer, got ${String(options.limit)}`);
  }
  return options;
}

export function checkBatch(ops: unknown): asserts ops is BatchOp[] {
  if (!Array.isArray(ops)) throw invalid('batch takes an array of operations');
  for (const op of ops as BatchOp[]) {
    if (op === null || typeof op !== 'object') throw invalid('batch operation must be an object');
    if (op.type === 'put') {
      checkKey(op.key);
      checkValue(op.value);
    } else if (op.type === 'delete') {
      checkKey(op.key);
    } else {
      throw invalid(`batch operation type must be 'put' or 'delete', got ${String((op as { type?: unknown }).type)}`);
    }
  }
}

/** Names of units and blobs: non-empty, well-formed Unicode, at most MAX_NAME_BYTES of UTF-8. */
export function checkName(name: unknown, what: string): asserts name is string {
  if (typeof name !== 'string' || name.length === 0) throw invalid(`${what} must be a non-empty string`);
  if (hasLoneSurrogate(name)) throw invalid(`${what} ${JSON.stringify(name)} contains a lone surrogate`);
  const size = utf8.encode(name).length;
  if (size > MAX_NAME_BYTES) throw invalid(`${what} is ${size} bytes of UTF-8; the limit is ${MAX_NAME_BYTES}`);
}

/** Blob list prefixes may be empty (list everything). */
export function checkPrefix(prefix: unknown, what: string): asserts prefix is string {
  if (typeof prefix !== 'string') throw invalid(`${what} must be a string`);
  if (prefix.length > 0) checkName(prefix, what);
}

export function checkRange(range: BlobRange | undefined): { offset: number; length: number | undefined } {
  if (range === undefined) return { offset: 0, length: undefined };
  if (range === null || typeof range !== 'object') throw invalid('blob range must be an object');
  const { offset, length } = range;
  if (!(Number.isSafeInteger(offset) && offset >= 0)) throw invalid(`blob range offset must be a non-negative integer, got ${String(offset)}`);
  if (length !== undefined && !(Number.isSafeInteger(length) && length >= 0)) {
    throw invalid(`blob range length must be a non-negative integer, got ${String(length)}`);
  }
  return { offset, length };
}

export function checkBlob(bytes: unknown): asserts bytes is Uint8Array {
  if (!(bytes instanceof Uint8Array)) throw invalid('blob body must be a Uint8Array');
}

export function checkReadTarget(into: unknown): asserts into is Uint8Array {
  if (!(into instanceof Uint8Array)) throw invalid('blob read target must be a Uint8Array');
}

/** Bytewise comparison, the one order every home agrees on. */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const d = a[i]! - b[i]!;
    if (d !== 0) return d;
  }
  return a.length - b.length;
}

/** Orders strings by their UTF-8 bytes (which JS `<` on UTF-16 units does not do above U+FFFF). */
export function compareUtf8(a: string, b: string): number {
  return compareBytes(utf8.encode(a), utf8.encode(b));
}

/** The smallest key greater than every key with this prefix, or undefined when none exists (all 0xFF). */
export function prefixEnd(prefix: Uint8Array): Uint8Array | undefined {
  let i = prefix.length - 1;
  while (i >= 0 && prefix[i] === 0xff) i--;
  if (i < 0) return undefined;
  // An explicit copy: Buffer#slice is a view, and the increment would corrupt `prefix`.
  const end = new Uint8Array(prefix.subarray(0, i + 1));
  end[i]!++;
  return end;
}

export function closedError(what: string): QuartzError {
  return new QuartzError(ErrorCode.STORAGE_CLOSED, `${what} is closed`);
}
