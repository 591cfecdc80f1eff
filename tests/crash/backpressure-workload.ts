/** What the backpressure crash child writes and the parent checks. */
import type { PartitionConfig } from '../../src/engine/streams/partition-log.js';
import { payload } from './workload.js';

export const UNIT = 'log/crash/backpressure/0';
/**
 * 64 KiB segments under a 1 MiB bound: the rolls (four small blobs, each fsync'd, per step) fall
 * behind six producers at once, so the producers spend most of their time waiting for room.
 */
export const CONFIG: PartitionConfig = { retentionMs: -1, retentionBytes: -1, segmentBytes: 64 * 1024, segmentMs: 3_600_000, codec: 'none', maxUnsealedBytes: 1024 * 1024 };
export const PRODUCERS = 6;
export const RECORDS_PER_WRITE = 50;

/** 4-byte big-endian sequence number, then 600-1,400 bytes derived from it. */
export function recordValue(seq: number): Uint8Array {
  const body = payload('bp', seq, 600 + (seq % 5) * 200);
  const out = new Uint8Array(4 + body.length);
  new DataView(out.buffer).setUint32(0, seq);
  out.set(body, 4);
  return out;
}

export function recordSeq(value: Uint8Array): number {
  return new DataView(value.buffer, value.byteOffset, value.byteLength).getUint32(0);
}
