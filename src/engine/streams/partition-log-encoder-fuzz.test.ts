/**
 * Seeded fuzz of a partition log with a batch encoder that fails at random, on the Node disk
 * adapter (so pooled buffers are taken, moved and recycled as in the server): the encoder moves
 * each framed buffer away as a thread would (the sender's copy is detached), seals it late, out of
 * order, or declines, rejects or answers wrong offsets. Whatever happens, the log holds exactly the
 * acknowledged writes, each at its offsets, without a gap, also after close and reopen; a write
 * that failed is never visible.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { QuartzError } from '../../core/errors.js';
import { seededRandom } from '../../core/random-testing.js';
import { sealRun, type FramedRun, type SealRunOptions } from '../../core/segment.js';
import { init } from '../../node/core.js';
import { openDiskStorage } from '../../node/storage/disk-storage.js';
import type { BatchEncoder } from '../../ports/batch-encoder.js';
import { createTestContext } from '../testing.js';
import { PartitionLog, type PartitionConfig } from './partition-log.js';
import { SegmentCache } from './segment-cache.js';

const UNIT = 'log/t1/t/0';
const enc = new TextEncoder();
const dec = new TextDecoder();
const dirs: string[] = [];

beforeAll(async () => {
  await init();
});

afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

/** An encoder that takes each run's buffer over (detaching the sender's), then answers at random. */
function flakyEncoder(random: () => number): BatchEncoder & { taken: number; failed: number } {
  const encoder = {
    minBytes: 4096,
    taken: 0,
    failed: 0,
    sealRun(framed: FramedRun, options: Omit<SealRunOptions, 'output'>): Promise<Uint8Array> | undefined {
      const roll = random();
      if (roll < 0.1) return undefined;
      encoder.taken++;
      // Moved, as postMessage with a transfer list moves it: the log's own view reads as empty now.
      const { length, byteOffset } = framed.sections;
      const buffer = structuredClone(framed.sections.buffer as ArrayBuffer, { transfer: [framed.sections.buffer as ArrayBuffer] });
      const taken = { sections: new Uint8Array(buffer, byteOffset, length), layout: framed.layout };
      const delay = Math.floor(random() * 6);
      return new Promise((resolve, reject) => {
        setTimeout(() => {
          if (roll < 0.16) {
            encoder.failed++;
            return reject(new Error('thread exited'));
          }
          const wrong = roll < 0.18;
          if (wrong) encoder.failed++;
          // Sealed over the moved buffer when it has room, as the worker does.
          const output = (n: number) => (n <= buffer.byteLength ? new Uint8Array(buffer, 0, n) : new Uint8Array(n));
          try {
            resolve(sealRun(taken, { ...options, baseOffset: options.baseOffset + (wrong ? 1 : 0), output }).bytes);
          } catch (err) {
            reject(err);
          }
        }, delay);
      });
    },
    close: async () => {},
  };
  return encoder;
}

interface Write {
  values: string[];
  outcome?: number | 'failed';
}

async function fuzz(seed: number): Promise<{ taken: number; failed: number; acked: number }> {
  const random = seededRandom(seed);
  const dir = await mkdtemp(join(tmpdir(), 'qz-encoder-fuzz-'));
  dirs.push(dir);
  const config: PartitionConfig = { retentionMs: -1, retentionBytes: -1, segmentBytes: 64 * 1024 + Math.floor(random() * 256 * 1024), segmentMs: 3_600_000, codec: 'lz4' };
  const encoder = flakyEncoder(random);
  const ctx = createTestContext();
  let storage = await openDiskStorage({ dir });
  let log = await PartitionLog.open(UNIT, await storage.unit(UNIT), config, ctx.clock, ctx.scheduler, new SegmentCache(1 << 20), { onBytes() {} }, encoder);
  const writes: Write[] = [];
  const settling: Promise<void>[] = [];
  let n = 0;
  for (let wave = 0; wave < 8; wave++) {
    const inWave: Promise<void>[] = [];
    for (let i = Math.floor(random() * 12); i >= 0; i--) {
      const count = random() < 0.4 ? 1 + Math.floor(random() * 3) : 20 + Math.floor(random() * 300);
      const w: Write = { values: Array.from({ length: count }, () => `w${writes.length}-${n++}-`.padEnd(20 + Math.floor(random() * 600), 'xyz')) };
      writes.push(w);
      let appended: Promise<number>;
      try {
        appended = log.append(w.values.map((v) => ({ key: null, value: enc.encode(v), timestamp: 1_700_000_000_000 + n })));
      } catch (err) {
        appended = Promise.reject(err);
      }
      inWave.push(
        appended.then(
          (base) => void (w.outcome = base),
          (err: unknown) => {
            expect(err).toBeInstanceOf(QuartzError);
            w.outcome = 'failed';
          },
        ),
      );
    }
    // Some waves are awaited, others overlap the next one.
    if (random() < 0.5) await Promise.all(inWave);
    settling.push(...inWave);
  }
  // Closed with writes perhaps still away: close lets them settle.
  await log.close();
  await Promise.all(settling);
  await storage.close();

  storage = await openDiskStorage({ dir });
  log = await PartitionLog.open(UNIT, await storage.unit(UNIT), config, ctx.clock, ctx.scheduler, new SegmentCache(1 << 20), { onBytes() {} });
  const stored: string[] = [];
  for (let at = 0; at < log.highWatermark; ) {
    const page = await log.read(at, 1000, 1 << 24, 't/0');
    page.records.forEach((r, i) => expect(r.offset, `seed ${seed}`).toBe(at + i));
    for (const r of page.records) stored.push(dec.decode(r.value!));
    at = page.nextOffset;
  }
  // Exactly the acknowledged writes, in offset order: nothing lost, nothing of a failed write.
  const acked = writes.filter((w) => typeof w.outcome === 'number').sort((a, b) => (a.outcome as number) - (b.outcome as number));
  expect(stored, `seed ${seed}`).toEqual(acked.flatMap((w) => w.values));
  for (const w of acked) expect(stored.slice(w.outcome as number, (w.outcome as number) + w.values.length), `seed ${seed}`).toEqual(w.values);
  await log.close();
  await storage.close();
  return { taken: encoder.taken, failed: encoder.failed, acked: acked.length };
}

describe('a partition log whose batch encoder fails at random', () => {
  it('holds exactly the acknowledged writes, at their offsets, across close and reopen', async () => {
    let taken = 0;
    let failed = 0;
    let acked = 0;
    for (let seed = 1; seed <= 16; seed++) {
      const r = await fuzz(seed);
      taken += r.taken;
      failed += r.failed;
      acked += r.acked;
    }
    expect(taken).toBeGreaterThan(50);
    expect(failed).toBeGreaterThan(3);
    expect(acked).toBeGreaterThan(50);
  }, 60_000);
});
