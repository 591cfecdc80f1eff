/** What the engine crash child writes and the parent checks. */
import { payload } from './workload.js';

export const TOPIC = 'events';
export const PARTITIONS = 2;
/** 1 KiB segments (the minimum): a roll every few produces. */
export const TOPIC_OPTIONS = { partitions: PARTITIONS, segment_bytes: 1024 };
export const COLLECTION = 'docs';
/** Vector n goes to COLLECTIONS[n % 2]: under the 1-byte budget each upsert closes the other collection and reopens its own. */
export const COLLECTIONS = [COLLECTION, 'docs2'] as const;
export const DIMS = 8;
/**
 * A vector snapshot every 4 mutations, so kills land mid-snapshot often; an open-collection budget
 * of 1 byte, so kills land while a collection closes for the budget (waiting on its checkpoint) or reopens.
 */
export const CRASH_ENGINE_OPTIONS = { vectors: { snapshot: { everyMutations: 4 }, maxOpenBytes: 1 } };

/** 4-byte big-endian sequence number, then bytes derived from it. */
export function recordValue(seq: number): Uint8Array {
  return sequencedValue('r', seq, 20 + (seq % 7) * 60);
}

/** 4-byte big-endian `seq`, then `size` bytes derived from `tag` and `seq` (read back with `recordSeq`). */
export function sequencedValue(tag: string, seq: number, size: number): Uint8Array {
  const body = payload(tag, seq, size);
  const out = new Uint8Array(4 + body.length);
  new DataView(out.buffer).setUint32(0, seq);
  out.set(body, 4);
  return out;
}

export function recordSeq(value: Uint8Array): number {
  return new DataView(value.buffer, value.byteOffset, value.byteLength).getUint32(0);
}

export function kvKey(n: number): string {
  return `k/${String(n).padStart(8, '0')}`;
}

export function kvValue(n: number): Uint8Array {
  // Every fifth value is bigger than an entry may be, so it goes through the blob store.
  return payload('kv', n, n % 5 === 4 ? 1024 * 1024 + 100 : 50 + (n % 13) * 100);
}

/**
 * Vector operation n (the child runs them in order, one at a time, and runs the first
 * unacknowledged one again after a kill, which is harmless: each is idempotent). Most upsert a new
 * id; every fifth deletes an id upserted three operations before, every fifth replaces the values
 * and metadata of the id upserted two before. Id v<m> lives in COLLECTIONS[m % 2], and metadata
 * `{n}` names the operation that wrote it, so it is unique among live vectors.
 */
export type VectorOp = { kind: 'upsert'; id: number; n: number } | { kind: 'delete'; id: number };

export function vectorOp(n: number): VectorOp {
  if (n % 5 === 3) return { kind: 'delete', id: n - 3 };
  if (n % 5 === 4) return { kind: 'upsert', id: n - 2, n };
  return { kind: 'upsert', id: n, n };
}

export function vectorCollection(id: number): string {
  return COLLECTIONS[id % 2]!;
}

/** Small integers: exact in float32, so stored vectors compare equal. */
export function vector(n: number): number[] {
  return Array.from({ length: DIMS }, (_, i) => ((n * 7 + i * 13) % 97) - 48 || 1);
}
