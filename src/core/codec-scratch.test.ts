/**
 * The codec's reusable regions (codec-scratch.ts) as the batch encoder grows them while it writes
 * records: round trips whose records cross every growth step, regions too large for wasm32 and
 * allocations that fail (a typed error, the codec still usable), and a record getter that runs
 * the codecs while its batch is being written (refused, never a batch of someone else's bytes).
 */
import { describe, expect, it } from 'vitest';
import { init } from '../node/core.js';
import { ErrorCode } from './errors.js';
import { codecs } from './loader.js';
import { scratch, scratchGrow, scratchSize } from './codec-scratch.js';
import { decodeBatch, encodeBatch, frameRun, sealRun, type SegmentRecord } from './segment.js';
import { seededRandom } from './random-testing.js';
import { expectQuartzError } from '../../tests/fixtures/expect-error.js';

await init();

function bytes(next: () => number, n: number): Uint8Array {
  const b = new Uint8Array(n);
  let x = Math.floor(next() * 2 ** 32) >>> 0;
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    // Half compressible runs, half noise: LZ4 output sizes vary too.
    b[i] = (i >> 10) & 1 ? 0x61 + (i % 7) : x >>> 24;
  }
  return b;
}

function same(a: Uint8Array | null, b: Uint8Array | null | undefined): boolean {
  if (a === null || b == null) return a === (b ?? null);
  return Buffer.from(a.buffer, a.byteOffset, a.length).equals(Buffer.from(b.buffer, b.byteOffset, b.length));
}

function roundTrip(records: SegmentRecord[], codec: 'lz4' | 'none'): void {
  const batch = encodeBatch(records, { baseOffset: 7, codec });
  // sealRun sizes the records before it writes them: an independent encoding of the same batch.
  expect(same(batch, sealRun(frameRun(records), { baseOffset: 7, codec }).bytes)).toBe(true);
  const decoded = decodeBatch(batch).records;
  expect(decoded.length).toBe(records.length);
  for (let i = 0; i < records.length; i++) {
    const want = records[i]!;
    const got = decoded[i]!;
    expect(got.offset).toBe(7 + i);
    expect(got.timestamp).toBe(want.timestamp);
    expect(same(got.key, want.key)).toBe(true);
    expect(same(got.value, want.value)).toBe(true);
    expect(got.headers.length).toBe(want.headers?.length ?? 0);
    got.headers.forEach((h, j) => expect([h.key, same(h.value, want.headers![j]!.value)]).toEqual([want.headers![j]!.key, true]));
  }
}

describe('the batch encoder growing its output region', () => {
  it('round-trips batches whose random records cross every growth step, up to past the retained 4 MiB', () => {
    const next = seededRandom(14);
    for (let iteration = 0; iteration < 40; iteration++) {
      // Sizes spread over orders of magnitude: most batches end between 4 KiB and 8 MiB.
      const count = 1 + Math.floor(next() * 60);
      const scale = 2 ** Math.floor(next() * 18);
      const records: SegmentRecord[] = [];
      for (let i = 0; i < count; i++) {
        const size = Math.floor(next() * scale);
        records.push({
          key: next() < 0.3 ? null : bytes(next, Math.floor(next() * 40)),
          value: next() < 0.05 ? null : bytes(next, size),
          headers: next() < 0.2 ? [{ key: next() < 0.5 ? 'trace' : 'ключ', value: next() < 0.3 ? null : bytes(next, Math.floor(next() * scale) >> 2) }] : undefined,
          timestamp: 1_700_000_000_000 + Math.floor(next() * 10_000) - 5_000,
        });
      }
      roundTrip(records, iteration % 2 === 0 ? 'lz4' : 'none');
    }
  });

  it('refuses a region larger than wasm32 can address with TOO_LARGE, and keeps the slot it had', () => {
    const w = codecs();
    const ptr = scratchGrow(w, 2, 1000, 0);
    const size = scratchSize(w, 2);
    // 3 GiB would double to 2^32, which the allocator's u32 size reads as 0 bytes.
    expectQuartzError(() => scratchGrow(w, 2, 3 * 2 ** 30, 0), ErrorCode.TOO_LARGE);
    expectQuartzError(() => scratch(w, 2, 2 ** 32), ErrorCode.TOO_LARGE);
    expect(scratchGrow(w, 2, 1000, 0)).toBe(ptr);
    expect(scratchSize(w, 2)).toBe(size);
  });

  it('a failed allocation is TOO_LARGE and leaves no slot holding a freed block', () => {
    const w = codecs();
    for (const take of [scratch, (wasm: typeof w, slot: number, size: number) => scratchGrow(wasm, slot, size, 0)]) {
      take(w, 0, 100);
      // Within the u32 the allocator takes, beyond the memory it can grow to.
      expectQuartzError(() => take(w, 0, 2 ** 32 - 2 ** 17), ErrorCode.TOO_LARGE);
      // Two live slots never share bytes: the failed one did not keep a block it gave back.
      const a = scratch(w, 0, 100);
      const b = scratch(w, 2, scratchSize(w, 2) + 1);
      const aEnd = a + scratchSize(w, 0);
      const bEnd = b + scratchSize(w, 2);
      expect(aEnd <= b || bEnd <= a).toBe(true);
    }
    const records = Array.from({ length: 50 }, (_, i): SegmentRecord => ({ key: null, value: new TextEncoder().encode(`after ${i}`), timestamp: i }));
    roundTrip(records, 'lz4');
  });

  it('refuses a record whose getter runs the codecs mid-batch, and encodes the next batch right', () => {
    const enc = new TextEncoder();
    const plainRecords = Array.from({ length: 200 }, (_, i): SegmentRecord => ({ key: null, value: enc.encode(`value-${i}`), timestamp: 1 }));
    for (const innerSize of [300, 1 << 20]) {
      let ran = false;
      const tricky = {
        key: null,
        timestamp: 1,
        get value() {
          if (!ran) {
            ran = true;
            // Another caller of the shared codec instance, reached from inside this batch's records.
            encodeBatch([{ key: null, value: new Uint8Array(innerSize).fill(65), timestamp: 1 }], { baseOffset: 0, codec: 'none' });
          }
          return enc.encode('tricky');
        },
      };
      const records = [...plainRecords.slice(0, 100), tricky as unknown as SegmentRecord, ...plainRecords.slice(100)];
      for (const codec of ['none', 'lz4'] as const) {
        ran = false;
        expectQuartzError(() => encodeBatch(records, { baseOffset: 0, codec }), ErrorCode.INVALID_ARGUMENT);
        roundTrip(plainRecords, codec);
      }
    }
  });
});

interface ResizableBuffer extends ArrayBuffer {
  resize(n: number): void;
}

describe('records that change while their batch is written', () => {
  it('refuses a key or value whose length changed since it was checked (a resizable buffer grown by a header getter)', () => {
    for (const field of ['key', 'value'] as const) {
      for (const grownTo of [40, 5000]) {
        // ES2024's resizable ArrayBuffer (Node 20 has it; the project's TS lib predates it).
        const buffer = new (ArrayBuffer as unknown as new (n: number, o: { maxByteLength: number }) => ResizableBuffer)(4, { maxByteLength: 1 << 16 });
        const bytes = new Uint8Array(buffer).fill(66); // length-tracking: follows the buffer's size
        const header = {
          key: 'h',
          get value() {
            buffer.resize(grownTo);
            return null;
          },
        };
        const record = { key: field === 'key' ? bytes : null, value: field === 'value' ? bytes : new Uint8Array(1), headers: [header], timestamp: 1 };
        for (const codec of ['none', 'lz4'] as const) {
          buffer.resize(4);
          expectQuartzError(() => encodeBatch([record as unknown as SegmentRecord, { key: null, value: new Uint8Array(3), timestamp: 1 }], { baseOffset: 0, codec }), ErrorCode.INVALID_ARGUMENT);
        }
      }
    }
    roundTrip([{ key: null, value: new Uint8Array(10).fill(1), timestamp: 5 }], 'lz4');
  });
});
