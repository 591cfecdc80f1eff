/** What the edges crash child writes and the parent checks: the writes the engine crash test does not make. */
import { payload } from './workload.js';

/** Topic whose retention keeps moving the log start (tiny segments, a few KiB kept, ticks every 50 ms). */
export const RETAINED = 'retained';
export const RETAINED_OPTIONS = { partitions: 1, segment_bytes: 1024, segment_ms: 50, retention_bytes: 4096 };
/** Topic a group commits its position in after each produce. */
export const COMMITTED = 'committed';
export const GROUP = 'readers';
/** Topic created, written once and deleted over and over. */
export const CYCLED = 'cycled';

/**
 * KV operation n, in steps of six: a put, the delete of that key, a TTL put of a second, a put that
 * stays, a put replacing it (large values replace small ones and back), another TTL put.
 */
export type KvOp = { kind: 'put'; key: string } | { kind: 'delete'; key: string } | { kind: 'ttl'; key: string };

export function kvOp(n: number): KvOp {
  switch (n % 6) {
    case 1:
      return { kind: 'delete', key: `k/${n - 1}` };
    case 2:
    case 5:
      return { kind: 'ttl', key: `t/${n}` };
    case 4:
      return { kind: 'put', key: `k/${n - 1}` };
    default:
      return { kind: 'put', key: `k/${n}` };
  }
}

export function kvValue(n: number): Uint8Array {
  // Every other value is over the 1 MiB an entry holds, so it goes to the blob store.
  return payload('edge', n, n % 2 === 0 ? 1024 * 1024 + 10 : 40 + (n % 9) * 300);
}

/** A record whose first 4 bytes (big-endian) are its sequence number. */
export function recordValue(seq: number, size = 60): Uint8Array {
  const out = payload('rec', seq, size);
  new DataView(out.buffer).setUint32(0, seq);
  return out;
}

export function recordSeq(value: Uint8Array): number {
  return new DataView(value.buffer, value.byteOffset, value.byteLength).getUint32(0);
}
