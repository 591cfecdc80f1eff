/**
 * kill -9 while produce waits for room (the partition's unsealed bytes at their bound, the rolls
 * behind): a child runs six producers against rolls that cannot keep up, acking each resolved
 * append; we SIGKILL it at random moments, reopen, and check that every acked record is at its
 * acked offset byte-identical, offsets are contiguous from 0 and no record is stored twice.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PartitionLog } from '../../src/engine/streams/partition-log.js';
import { SegmentCache } from '../../src/engine/streams/segment-cache.js';
import { init } from '../../src/node/core.js';
import { openDiskStorage } from '../../src/node/storage/disk-storage.js';
import { systemClock, timerScheduler } from '../../src/ports/system-clock.js';
import { CONFIG, UNIT, recordSeq, recordValue } from './backpressure-workload.js';
import { killAfter } from './harness.js';
import { parseAcks } from './workload.js';

const ROUNDS = Number(process.env.QUARTZ_CRASH_ROUNDS ?? 6);
const dirs: string[] = [];
beforeAll(async () => {
  await init();
});
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

const same = (a: Uint8Array | null | undefined, b: Uint8Array) => a != null && Buffer.from(a).equals(Buffer.from(b));

describe('kill -9: produce waiting for the roll (Node disk home)', () => {
  it(`keeps every acknowledged record across ${ROUNDS} SIGKILLs`, async () => {
    const root = await mkdtemp(join(tmpdir(), 'quartz-crash-backpressure-'));
    dirs.push(root);
    const dataDir = join(root, 'data');
    const ackFile = join(root, 'acks.jsonl');
    let ackedBefore = 0;
    /** Rounds whose last ack saw writes waiting for room: the kill came during backpressure. */
    let killedWhileWaiting = 0;
    let segments = 0;
    for (let round = 0; round < ROUNDS; round++) {
      await killAfter(new URL('./backpressure-child.ts', import.meta.url), [dataDir, ackFile], 50 + Math.random() * 500, { ackFile, acks: 30 });
      const acks = parseAcks(await readFile(ackFile, 'utf8'));
      const last = acks[acks.length - 1]!;
      if ((last.waiting as number) > 0) killedWhileWaiting++;
      expect(acks.length).toBeGreaterThan(ackedBefore);
      ackedBefore = acks.length;

      const storage = await openDiskStorage({ dir: dataDir });
      const log = await PartitionLog.open(UNIT, await storage.unit(UNIT), CONFIG, systemClock, timerScheduler, new SegmentCache(8 << 20), { onBytes() {} });
      try {
        expect(log.logStartOffset).toBe(0);
        segments = log.segmentCount;
        const seen = new Map<number, number>(); // seq → offset
        for (let offset = 0; offset < log.highWatermark; ) {
          const page = await log.read(offset, 1000, 8 << 20, UNIT);
          expect(page.records.length, `readable at ${offset}`).toBeGreaterThan(0);
          for (const r of page.records) {
            expect(r.offset, 'contiguous offsets').toBe(offset);
            const seq = recordSeq(r.value!);
            expect(seen.has(seq), `record ${seq} stored twice`).toBe(false);
            expect(same(r.value, recordValue(seq)), `record ${seq} intact`).toBe(true);
            seen.set(seq, offset);
            offset++;
          }
        }
        for (const a of acks) {
          for (let i = 0; i < (a.count as number); i++) expect(seen.get(a.n + i), `acked record ${a.n + i}`).toBe((a.offset as number) + i);
        }
      } finally {
        await log.close();
        await storage.close();
      }
    }
    // The kills must have come while producers waited for room, and rolls must have sealed, or this proves little.
    expect(killedWhileWaiting).toBeGreaterThan(0);
    expect(segments).toBeGreaterThan(3);
    console.log(`backpressure crash test: ${ackedBefore} acked writes, ${segments} segments, ${killedWhileWaiting} of ${ROUNDS} kills while writes waited for room`);
  }, 300_000);
});
