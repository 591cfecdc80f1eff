/**
 * A partition log with a home's batch encoder: runs sealed out of order, late or declined still
 * commit in offset order, to the same bytes as runs sealed inline; a run the encoder fails (or
 * answers wrongly) fails its write with a typed error and the log goes on.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { ErrorCode, QuartzError } from '../../core/errors.js';
import { sealRun, type FramedRun, type SealRunOptions } from '../../core/segment.js';
import { seededRandom } from '../../core/random-testing.js';
import { init } from '../../node/core.js';
import type { BatchEncoder } from '../../ports/batch-encoder.js';
import type { MemoryStorage } from '../../ports/memory-storage.js';
import { createTestContext } from '../testing.js';
import { PartitionLog, recordSize, type PartitionConfig } from './partition-log.js';
import { SegmentCache } from './segment-cache.js';

const UNIT = 'log/t1/t/0';
const enc = new TextEncoder();
const dec = new TextDecoder();

beforeAll(async () => {
  await init();
});

const config: PartitionConfig = { retentionMs: -1, retentionBytes: -1, segmentBytes: 256 * 1024, segmentMs: 3_600_000, codec: 'lz4' };

/** The Node home's line for the backlog hop: one write of 1,000 × 100 B (124 KB of records) is under it. */
const NODE_MIN_BYTES = 256 * 1024;

/** Write number `w`: 1,000 records of 100 B, each value naming its write and record. */
const write = (w: number) => Array.from({ length: 1000 }, (_, i) => ({ key: null, value: enc.encode(`w${w} r${i} `.padEnd(100, 'x')), timestamp: 1 }));

type Answer = 'seal' | 'decline' | 'reject' | 'wrong-offsets' | 'empty';

/** Seals on a timer of random length, so runs finish out of order; `answer` picks what it does with each run. */
function fakeEncoder(answer: (n: number) => Answer, minBytes = 2048): BatchEncoder & { runs: number } {
  const random = seededRandom(11);
  const encoder = {
    minBytes,
    runs: 0,
    sealRun(framed: FramedRun, options: Omit<SealRunOptions, 'output'>): Promise<Uint8Array> | undefined {
      const what = answer(encoder.runs++);
      if (what === 'decline') return undefined;
      // As a thread would, it takes the sections' buffer over: the caller must not read it meanwhile.
      const taken = { sections: framed.sections.slice(), layout: framed.layout };
      framed.sections.fill(0xee);
      return new Promise((resolve, reject) => {
        setTimeout(() => {
          if (what === 'reject') reject(new Error('thread died'));
          else if (what === 'empty') resolve(new Uint8Array(0));
          else resolve(sealRun(taken, { ...options, baseOffset: options.baseOffset + (what === 'wrong-offsets' ? 1 : 0) }).bytes);
        }, Math.floor(random() * 8));
      });
    },
    close: async () => {},
  };
  return encoder;
}

/** Produce writes of 1 to 200 records of 20-400 bytes: some above the encoder's minBytes, some under. */
function writes(count: number): { key: null; value: Uint8Array; timestamp: number }[][] {
  const random = seededRandom(5);
  let n = 0;
  return Array.from({ length: count }, () =>
    Array.from({ length: 1 + Math.floor(random() * (random() < 0.5 ? 5 : 200)) }, () => {
      const i = n++;
      return { key: null, value: enc.encode(`record ${i} `.padEnd(20 + Math.floor(random() * 380), 'abc')), timestamp: 1_700_000_000_000 + i };
    }),
  );
}

async function run(encoder: BatchEncoder | undefined): Promise<{ storage: MemoryStorage; offsets: number[]; values: string[] }> {
  const ctx = createTestContext();
  const log = await PartitionLog.open(UNIT, ctx.storage.unit(UNIT), config, ctx.clock, ctx.scheduler, new SegmentCache(1 << 20), { onBytes() {} }, encoder);
  const all = writes(80);
  // all in flight at once, the raw size given for some, as the stream store gives it
  const offsets = await Promise.all(all.map((w, i) => log.append(w, i % 2 === 0 ? w.reduce((s, r) => s + recordSize(r), 0) : undefined)));
  const values: string[] = [];
  for (let at = 0; at < log.highWatermark; ) {
    const page = await log.read(at, 1000, 1 << 24, 't/0');
    for (const r of page.records) values.push(dec.decode(r.value!));
    at = page.nextOffset;
  }
  await log.roll();
  await log.close();
  return { storage: ctx.storage, offsets, values };
}

async function blobs(storage: MemoryStorage): Promise<Uint8Array[]> {
  const unit = storage.unit(UNIT).blobs;
  const out: Uint8Array[] = [];
  for (const { key } of await unit.list('seg/')) out.push((await unit.get(key))!);
  return out;
}

describe('a partition log with a batch encoder', () => {
  it('commits every write in offset order, to the bytes sealed inline, whether the encoder seals or declines', async () => {
    const inline = await run(undefined);
    const expectedOffsets = writes(80).reduce<number[]>((acc, w, i) => (acc.push(i === 0 ? 0 : acc[i - 1]! + writes(80)[i - 1]!.length), acc), []);
    expect(inline.offsets).toEqual(expectedOffsets);
    expect(inline.values).toEqual(writes(80).flat().map((r) => dec.decode(r.value)));
    const inlineBlobs = await blobs(inline.storage);
    for (const mix of [() => 'seal' as Answer, (n: number): Answer => (n % 3 === 1 ? 'decline' : 'seal')]) {
      const encoder = fakeEncoder(mix);
      const got = await run(encoder);
      expect(encoder.runs).toBeGreaterThan(10);
      expect(got.offsets).toEqual(inline.offsets);
      expect(got.values).toEqual(inline.values);
      const sealed = await blobs(got.storage);
      expect(sealed.length).toBe(inlineBlobs.length);
      sealed.forEach((b, i) => expect(Buffer.compare(b, inlineBlobs[i]!), `segment ${i}`).toBe(0));
    }
  });

  it('fails a write whose run the encoder fails or answers wrongly (and the writes queued behind it), then goes on', async () => {
    const failing: Answer[] = ['reject', 'wrong-offsets', 'empty'];
    for (const bad of failing) {
      const ctx = createTestContext();
      const encoder = fakeEncoder((n) => (n === 6 ? bad : 'seal'));
      const log = await PartitionLog.open(UNIT, ctx.storage.unit(UNIT), config, ctx.clock, ctx.scheduler, new SegmentCache(1 << 20), { onBytes() {} }, encoder);
      const all = writes(40);
      const results = await Promise.allSettled(all.map((w) => log.append(w)));
      const failed = results.filter((r) => r.status === 'rejected');
      expect(failed.length, bad).toBeGreaterThan(0);
      for (const r of failed) expect((r as PromiseRejectedResult).reason).toBeInstanceOf(QuartzError);
      expect((failed[0] as PromiseRejectedResult).reason.code).toBe(ErrorCode.INTERNAL);
      const after = await log.append([{ key: null, value: enc.encode('after'), timestamp: 1 }]);
      // every acknowledged write reads back at its offsets, offsets stay contiguous, 'after' is last
      const values: string[] = [];
      for (let at = 0; at < log.highWatermark; ) {
        const page = await log.read(at, 1000, 1 << 24, 't/0');
        page.records.forEach((r, i) => expect(r.offset).toBe(at + i));
        for (const r of page.records) values.push(dec.decode(r.value!));
        at = page.nextOffset;
      }
      expect(values.length).toBe(after + 1);
      expect(values[after]).toBe('after');
      results.forEach((r, i) => {
        if (r.status === 'fulfilled') expect(values.slice(r.value, r.value + all[i]!.length)).toEqual(all[i]!.map((x) => dec.decode(x.value)));
      });
      await log.close();
    }
  });

  it('seals a write under minBytes inline, and on the encoder once 8 writes wait for a commit (a producer pipeline)', async () => {
    const ctx = createTestContext();
    const encoder = fakeEncoder(() => 'seal', NODE_MIN_BYTES);
    const log = await PartitionLog.open(UNIT, ctx.storage.unit(UNIT), config, ctx.clock, ctx.scheduler, new SegmentCache(1 << 20), { onBytes() {} }, encoder);
    expect(await log.append(write(0))).toBe(0);
    expect(encoder.runs).toBe(0); // alone: nothing waited, sealed inline
    const bases = await Promise.all(Array.from({ length: 24 }, (_, w) => log.append(write(w + 1))));
    expect(bases).toEqual(Array.from({ length: 24 }, (_, w) => (w + 1) * 1000));
    // the first writes found a short queue and stayed inline; those behind 8 waiting ones hopped
    expect(encoder.runs).toBeGreaterThan(0);
    expect(encoder.runs).toBeLessThan(24);
    const values: string[] = [];
    for (let at = 0; at < log.highWatermark; ) {
      const page = await log.read(at, 5000, 1 << 24, 't/0');
      for (const r of page.records) values.push(dec.decode(r.value!));
      at = page.nextOffset;
    }
    expect(values).toEqual(Array.from({ length: 25 }, (_, w) => write(w).map((r) => dec.decode(r.value))).flat());
    await log.close();
  });

  it('counts the writes being committed as waiting: a write released by a commit hops while the next group is on disk', async () => {
    const ctx = createTestContext();
    const encoder = fakeEncoder(() => 'seal', NODE_MIN_BYTES);
    const log = await PartitionLog.open(UNIT, ctx.storage.unit(UNIT), config, ctx.clock, ctx.scheduler, new SegmentCache(1 << 20), { onBytes() {} }, encoder);
    // w0 commits alone; w1-w7 queue behind it (inline: fewer than 8 wait), and from w8 on 7 queued
    // and 1 committing make 8: w8-w15 hop
    const first = log.append(write(0));
    const rest = Array.from({ length: 15 }, (_, w) => log.append(write(w + 1)));
    expect(encoder.runs).toBe(8);
    // w0 is answered once the next group (w1-w7, sealed inline) is committing, w8-w15 queued behind
    // it: its producer's next write finds 15 in play, a pipeline, and hops
    await first;
    const next = log.append(write(16));
    expect(encoder.runs).toBe(9);
    expect(await Promise.all([...rest, next])).toEqual(Array.from({ length: 16 }, (_, w) => (w + 1) * 1000));
    await log.close();
  });

  it('hands out no offsets for a write whose records are bad, even with an encoder', async () => {
    const ctx = createTestContext();
    const log = await PartitionLog.open(UNIT, ctx.storage.unit(UNIT), config, ctx.clock, ctx.scheduler, new SegmentCache(1 << 20), { onBytes() {} }, fakeEncoder(() => 'seal'));
    const good = Array.from({ length: 100 }, (_, i) => ({ key: null, value: enc.encode(`v${i}`.padEnd(100)), timestamp: 1 }));
    const bad = [...good, { key: null, value: 'not bytes' as unknown as Uint8Array, timestamp: 1 }];
    const first = log.append(good);
    expect(() => log.append(bad)).toThrow(/value/);
    expect(await Promise.all([first, log.append(good)])).toEqual([0, 100]);
    await log.close();
  });
});

describe('a partition log with the Node home\'s encoder threads, on disk', () => {
  /** `n` writes of 1,000 × ~100 B (a backlog hop when 8 wait) and, between them, writes of a few records (inline). */
  function mixed(n: number): { key: null; value: Uint8Array; timestamp: number }[][] {
    return Array.from({ length: n }, (_, w) =>
      Array.from({ length: w % 3 === 2 ? 3 : 1000 }, (_, i) => ({ key: null, value: enc.encode(`w${w} r${i} `.padEnd(100, 'xyz')), timestamp: 1_700_000_000_000 + w })),
    );
  }

  async function readAll(log: PartitionLog): Promise<string[]> {
    const values: string[] = [];
    for (let at = log.logStartOffset; at < log.highWatermark; ) {
      const page = await log.read(at, 5000, 1 << 24, 't/0');
      page.records.forEach((r, i) => expect(r.offset).toBe(at + i));
      for (const r of page.records) values.push(dec.decode(r.value!));
      at = page.nextOffset;
    }
    return values;
  }

  it('commits inline and hopped writes of one partition in offset order, and fails only writes cut by the threads closing', async () => {
    const { mkdtempSync, rmSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const { openDiskStorage } = await import('../../node/storage/disk-storage.js');
    const { BatchEncoderPool } = await import('../../node/batch-encoder-pool.js');
    const { ManualClock } = await import('../../ports/manual-clock.js');
    const dir = mkdtempSync(join(tmpdir(), 'quartz-hop-'));
    const storage = await openDiskStorage({ dir });
    const clock = new ManualClock();
    const pool = new BatchEncoderPool({ threads: 1 });
    let sealed = 0;
    const counting: BatchEncoder = { minBytes: pool.minBytes, close: () => pool.close(), sealRun: (f, o) => (sealed++, pool.sealRun(f, o)) };
    const big = { ...config, segmentBytes: 64 << 20 };
    try {
      const log = await PartitionLog.open(UNIT, await storage.unit(UNIT), big, clock, clock, new SegmentCache(1 << 20), { onBytes() {} }, counting);
      const first = mixed(30);
      const bases = await Promise.all(first.map((w) => log.append(w)));
      let at = 0;
      bases.forEach((b, w) => {
        expect(b).toBe(at);
        at += first[w]!.length;
      });
      expect(sealed).toBeGreaterThan(0); // some went to the thread, the first ones and the small ones did not
      expect(await readAll(log)).toEqual(first.flat().map((r) => dec.decode(r.value)));

      // Shutdown with hops in flight: the threads close under them.
      const second = mixed(24);
      const hopsBefore = sealed;
      const results = Promise.allSettled(second.map((w) => log.append(w)));
      expect(sealed).toBeGreaterThan(hopsBefore);
      await pool.close();
      const settled = await results;
      // Whether a hop is still on a thread when it closes is a race (an idle machine may finish
      // them all first), so no count of failures is asserted: those cut fail typed, the rest land.
      for (const r of settled) if (r.status === 'rejected') expect(r.reason).toBeInstanceOf(QuartzError);
      // What was acknowledged reads back at its offsets; the log goes on (inline now) after the failed ones.
      const after = await log.append([{ key: null, value: enc.encode('after'), timestamp: 1 }]);
      const values = await readAll(log);
      expect(values.length).toBe(after + 1);
      expect(values[after]).toBe('after');
      settled.forEach((r, i) => {
        if (r.status === 'fulfilled') expect(values.slice(r.value, r.value + second[i]!.length)).toEqual(second[i]!.map((x) => dec.decode(x.value)));
      });
      await log.close();
    } finally {
      await pool.close();
      await storage.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
