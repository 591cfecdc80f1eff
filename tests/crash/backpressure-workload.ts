/** What the backpressure crash child writes and the parent checks. */
import type { PartitionConfig } from '../../src/engine/streams/partition-log.js';
import { recordSeq, sequencedValue } from './engine-workload.js';

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
  return sequencedValue('bp', seq, 600 + (seq % 5) * 200);
}

export { recordSeq };
