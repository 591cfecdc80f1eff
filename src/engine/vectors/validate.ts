/**
 * Input checks for vector collections. Every failure is an INVALID_ARGUMENT (or TOO_LARGE)
 * QuartzError whose message names the collection and the offending record, so an HTTP client
 * can fix its request from the message alone.
 */
import { ErrorCode, QuartzError } from '../../core/errors.js';
import { hasLoneSurrogate, showValue } from '../../core/show-value.js';
import type { Metadata } from './filter.js';

export type Metric = 'cosine' | 'l2' | 'dot';

export const METRICS: readonly Metric[] = ['cosine', 'l2', 'dot'];
export const MAX_DIMS = 4096;
export const MAX_ID_BYTES = 512;
export const MAX_METADATA_BYTES = 10 * 1024;
export const MAX_K = 1000;
export const MAX_EF = 10_000;
/**
 * The largest magnitude of an l2 or dot value. Scores are summed in f32: past this an L2 distance
 * (squared) or a dot product of 4,096 such values could overflow to Infinity, which JSON writes as
 * null and which orders nothing. Cosine values need no bound (only their direction is kept).
 */
export const MAX_ABS_VALUE = 1e17;
/** The largest finite f32. */
const F32_MAX = 3.4028234663852886e38;
const NAME_PATTERN = /^[A-Za-z0-9._-]{1,128}$/;

const encoder = new TextEncoder();

function invalid(message: string): QuartzError {
  return new QuartzError(ErrorCode.INVALID_ARGUMENT, message);
}

export function validateCollectionName(name: unknown): string {
  if (typeof name !== 'string' || !NAME_PATTERN.test(name)) {
    const shown = typeof name === 'string' ? `'${name.slice(0, 140)}'` : typeof name;
    throw invalid(`collection name ${shown} is invalid: use 1–128 characters from A–Z, a–z, 0–9, '.', '_' and '-'`);
  }
  return name;
}

/**
 * A name for a new collection: validateCollectionName's rule, less `.` and `..`, which URLs resolve
 * as path segments, so no request could name the collection afterwards (Kafka refuses them as
 * topic names for the same reason).
 */
export function validateNewCollectionName(name: unknown): string {
  const valid = validateCollectionName(name);
  if (valid === '.' || valid === '..') throw invalid(`collection name '${valid}' is invalid: '.' and '..' are path segments in URLs, so requests could not name it`);
  return valid;
}

export function validateMetric(metric: unknown, collection: string): Metric {
  if (typeof metric !== 'string' || !(METRICS as readonly string[]).includes(metric)) {
    throw invalid(`collection '${collection}': metric must be one of ${METRICS.join(', ')}, got ${showValue(metric)}`);
  }
  return metric as Metric;
}

/** An integer in [min, max]; `what` names it in the message. */
export function validateInt(value: unknown, min: number, max: number, what: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw invalid(`${what} must be an integer from ${min} to ${max}, got ${showValue(value)}`);
  }
  return value;
}

/** Returns the id's UTF-8 bytes (the log stores them). */
export function validateId(id: unknown, collection: string): Uint8Array {
  if (typeof id !== 'string' || id.length === 0) {
    throw invalid(`collection '${collection}': vector ids must be non-empty strings, got ${typeof id === 'string' ? 'an empty string' : typeof id}`);
  }
  // A lone surrogate would not survive UTF-8 encoding, so the stored id would differ from the given one.
  if (hasLoneSurrogate(id)) throw invalid(`collection '${collection}': vector id '${id.slice(0, 64)}' is not valid Unicode`);
  const bytes = encoder.encode(id);
  if (bytes.length > MAX_ID_BYTES) {
    throw invalid(`collection '${collection}': vector id '${id.slice(0, 64)}…' is ${bytes.length} bytes; the limit is ${MAX_ID_BYTES}`);
  }
  return bytes;
}

/**
 * validateId for an id being stored: also refuses '.' and '..', which URLs resolve as path
 * segments, so no GET or DELETE of `/v1/collections/c/vectors/<id>` could name the vector (the
 * rule KV keys and collection names follow). Reads and deletes take them, for ids stored before.
 */
export function validateNewId(id: unknown, collection: string): Uint8Array {
  const bytes = validateId(id, collection);
  if (id === '.' || id === '..') throw invalid(`collection '${collection}': vector id '${id}' is not allowed: URLs resolve it as a path segment, so no request could name the vector`);
  return bytes;
}

/**
 * Converts to f32 (into `out` when given, e.g. a query's reused scratch) and rejects wrong length
 * or non-finite components (after rounding to f32), components beyond MAX_ABS_VALUE under l2 and
 * dot, and all-zero vectors under cosine, whose similarity is undefined.
 */
export function validateValues(values: unknown, dims: number, collection: string, id: string, metric?: Metric, out?: Float32Array): Float32Array {
  return checkedValues(values, dims, collection, `vector '${id}'`, metric, out, copyStoredValues);
}

/**
 * `validateValues` for a query's vector.
 *
 * NOTE: works around V8 boxing every query vector. Element reads compiled from one loop share
 * their type feedback; once that loop has seen upserted arrays of another elements kind (zod's
 * output is holey), optimized code turns each query array JSON.parse built (unboxed doubles) into
 * an array of heap numbers before reading it (~1.7 µs per 128-d query). Queries read through a
 * loop of their own.
 */
export function validateQueryValues(values: unknown, dims: number, collection: string, metric: Metric, out: Float32Array): Float32Array {
  // Named as such: "vector 'query'" read as a stored vector of that id.
  return checkedValues(values, dims, collection, 'the query vector', metric, out, copyQueryValues);
}

/** Copies `values` into `f32` up to the first non-number; returns how many were copied. */
type CopyValues = (values: ArrayLike<unknown>, f32: Float32Array) => number;

/** `subject` names the vector in messages: "vector 'a'" or "the query vector". */
function checkedValues(values: unknown, dims: number, collection: string, subject: string, metric: Metric | undefined, out: Float32Array | undefined, copy: CopyValues): Float32Array {
  if (!(values instanceof Float32Array) && !Array.isArray(values) && !(values instanceof Float64Array)) {
    throw invalid(`collection '${collection}': ${subject} values must be an array of numbers`);
  }
  if (values.length !== dims) {
    throw invalid(`collection '${collection}' expects ${dims} dimensions, got ${values.length} for ${subject}`);
  }
  const f32 = out !== undefined && out.length === dims ? out : new Float32Array(dims);
  // A Float32Array (the API's fast read gives one) is copied whole, and keeps the arrays' loops monomorphic.
  const copied = values instanceof Float32Array ? (f32.set(values), dims) : copy(values, f32);
  let zero = true;
  const bound = metric === 'l2' || metric === 'dot' ? MAX_ABS_VALUE : F32_MAX;
  for (let i = 0; i < copied; i++) {
    // The f32 value decides: 1e39 overflows to Infinity, 1e-50 underflows to 0.
    const x = f32[i]!;
    // One comparison in the loop: it is false for NaN and ±Infinity too.
    if (!(Math.abs(x) <= bound)) {
      if (!Number.isFinite(x)) throw invalid(`collection '${collection}': ${subject} has a non-finite value (${values[i] as number}) at index ${i}`);
      throw invalid(`collection '${collection}': ${subject} has a value (${values[i] as number}) at index ${i} beyond ±${MAX_ABS_VALUE.toExponential()}, where ${metric} scores could overflow`);
    }
    if (x !== 0) zero = false;
  }
  if (copied < dims) throw invalid(`collection '${collection}': ${subject} has a non-number at index ${copied}`);
  if (metric === 'cosine' && zero) {
    throw invalid(`collection '${collection}' uses cosine, which is undefined for the all-zero ${subject.replace(/^the /, '')}`);
  }
  return f32;
}

// The two copies below are the same on purpose: see validateQueryValues.
function copyStoredValues(values: ArrayLike<unknown>, f32: Float32Array): number {
  for (let i = 0; i < f32.length; i++) {
    const v = values[i];
    if (typeof v !== 'number') return i;
    f32[i] = v;
  }
  return f32.length;
}

function copyQueryValues(values: ArrayLike<unknown>, f32: Float32Array): number {
  for (let i = 0; i < f32.length; i++) {
    const v = values[i];
    if (typeof v !== 'number') return i;
    f32[i] = v;
  }
  return f32.length;
}

/** Returns the metadata's canonical JSON bytes; `undefined` metadata means `{}`. */
export function validateMetadata(metadata: unknown, collection: string, id: string): { value: Metadata; json: Uint8Array } {
  if (metadata === undefined) return { value: {}, json: encoder.encode('{}') };
  if (typeof metadata !== 'object' || metadata === null || Array.isArray(metadata)) {
    throw invalid(`collection '${collection}': vector '${id}' metadata must be a JSON object`);
  }
  let text: string;
  try {
    text = JSON.stringify(metadata);
  } catch (err) {
    // A RangeError is the engine's stack running out ("Maximum call stack size exceeded").
    const reason = err instanceof RangeError ? 'it nests too deeply' : (err as Error).message;
    throw invalid(`collection '${collection}': vector '${id}' metadata is not JSON-serialisable: ${reason}`);
  }
  // A toJSON (a Date's, or one returning undefined) can turn the object into something else.
  if (typeof text !== 'string' || !text.startsWith('{')) {
    throw invalid(`collection '${collection}': vector '${id}' metadata must be a JSON object, but its JSON is ${showValue(text)}`);
  }
  const json = encoder.encode(text);
  if (json.length > MAX_METADATA_BYTES) {
    throw new QuartzError(
      ErrorCode.TOO_LARGE,
      `collection '${collection}': vector '${id}' metadata is ${json.length} bytes of JSON; the limit is ${MAX_METADATA_BYTES}`,
    );
  }
  // Parse back so the stored object is plain JSON (no class instances, no undefined, no NaN).
  return { value: JSON.parse(text) as Metadata, json };
}
