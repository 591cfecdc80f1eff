/**
 * Random mutations of valid segments and batches: every outcome must be a typed QuartzError or
 * records identical to the originals at the same offsets — never a crash, a hang, or wrong data.
 */
import { describe, expect, it } from 'vitest';
import { init } from '../node/core.js';
import { QuartzError } from './errors.js';
import { crc32c } from './hash.js';
import { lz4 } from './lz4.js';
import { BATCH_HEADER_SIZE, SegmentReader, SegmentWriter, decodeBatch, encodeBatch, type DecodedRecord, type SegmentRecord } from './segment.js';
import { seededRandom } from './random-testing.js';

await init();

function records(next: () => number, n: number, start: number): SegmentRecord[] {
  const out: SegmentRecord[] = [];
  for (let i = 0; i < n; i++) {
    const len = Math.floor(next() * 40);
    const value = new Uint8Array(len);
    for (let j = 0; j < len; j++) value[j] = next() < 0.7 ? 0x61 + (j % 5) : Math.floor(next() * 256);
    out.push({
      key: next() < 0.3 ? null : new TextEncoder().encode(`k${start + i}`),
      value: next() < 0.1 ? null : value,
      headers: next() < 0.3 ? [{ key: next() < 0.5 ? 'h' : 'ĥ', value: next() < 0.5 ? null : value.subarray(0, 3) }] : undefined,
      timestamp: 1_000_000 + Math.floor(next() * 1000) - 500 + i * 3,
    });
  }
  return out;
}

function key(r: SegmentRecord | DecodedRecord): string {
  const bytes = (b: Uint8Array | null) => (b === null ? 'null' : Array.from(b).join(','));
  return `${r.timestamp}|${bytes(r.key)}|${bytes(r.value)}|${(r.headers ?? []).map((h) => `${h.key}=${bytes(h.value)}`).join(';')}`;
}

/** The decoded records as compared (offset and content), or the error code. */
function outcome(fn: () => DecodedRecord[]): string[] | string {
  try {
    return fn().map((r) => `${r.offset}|${key(r)}`);
  } catch (err) {
    if (err instanceof QuartzError) return err.code;
    throw err;
  }
}

type Mutation = (b: Uint8Array, next: () => number) => Uint8Array;
const pick = (next: () => number, n: number) => Math.floor(next() * n);
const mutations: Mutation[] = [
  (b, next) => {
    const c = b.slice();
    const bit = pick(next, c.length * 8);
    c[bit >> 3]! ^= 1 << (bit & 7);
    return c;
  },
  (b, next) => {
    const c = b.slice();
    for (let i = 1 + pick(next, 4); i > 0; i--) c[pick(next, c.length)] = pick(next, 256);
    return c;
  },
  (b, next) => b.slice(0, pick(next, b.length)),
  (b, next) => {
    const at = pick(next, b.length);
    const extra = new Uint8Array(1 + pick(next, 16)).map(() => pick(next, 256));
    const c = new Uint8Array(b.length + extra.length);
    c.set(b.subarray(0, at));
    c.set(extra, at);
    c.set(b.subarray(at), at + extra.length);
    return c;
  },
  (b, next) => {
    // Deletes up to 16 bytes from the middle.
    const at = pick(next, b.length);
    const len = Math.min(1 + pick(next, 16), b.length - at);
    const c = new Uint8Array(b.length - len);
    c.set(b.subarray(0, at));
    c.set(b.subarray(at + len), at);
    return c;
  },
  (b, next) => {
    // Extreme values in a 32-bit field: where lengths, counts and positions live.
    const c = b.slice();
    const at = pick(next, Math.max(1, c.length - 4));
    const v = [0, 0xffffffff, 0x7fffffff, 0x80000000, 60, pick(next, 2 ** 32)][pick(next, 6)]!;
    new DataView(c.buffer).setUint32(at, v, true);
    return c;
  },
];

function checkSegment(mutated: Uint8Array, original: Map<number, string>, total: number): 'error' | 'ok' {
  try {
    const r = SegmentReader.open(mutated);
    const got = r.readFrom(r.baseOffset, Number.MAX_SAFE_INTEGER);
    for (const rec of got) {
      if (original.get(rec.offset) !== key(rec)) throw new Error(`offset ${rec.offset} came back different`);
    }
    if (!r.recovered && got.length !== total) throw new Error(`an intact-looking segment gave ${got.length} of ${total} records`);
    if (r.recovered && r.nextOffset !== (got.length ? got[got.length - 1]!.offset + 1 : r.baseOffset)) throw new Error('recovered next offset is wrong');
    const t = r.findOffsetByTime(1_000_000);
    if (t !== null && (t < r.baseOffset || t >= r.nextOffset)) throw new Error(`findOffsetByTime gave ${t}`);
    return 'ok';
  } catch (err) {
    if (err instanceof QuartzError) return 'error';
    throw err;
  }
}

/**
 * A DecodeOptions.output that hands out one recycled buffer, filled with junk first so that a
 * section not wholly written by the decoder shows up as wrong records.
 */
function recycledOutput(): (length: number) => Uint8Array {
  let spare = new Uint8Array(0);
  return (length) => {
    if (spare.length < length) spare = new Uint8Array(length);
    return spare.subarray(0, length).fill(0xa5);
  };
}

/**
 * The object-storage path: tail → footer → one range read per batch, each decoded alone, into
 * recycled memory (each batch's records are checked before the next is decoded).
 */
function checkTail(mutated: Uint8Array, original: Map<number, string>): 'error' | 'ok' {
  const output = recycledOutput();
  try {
    const { reader } = SegmentReader.openTail(mutated, { size: mutated.length });
    if (!reader) throw new Error('the whole segment as tail did not cover the footer');
    for (let offset = reader.baseOffset; offset < reader.nextOffset; ) {
      const range = reader.batchRange(offset);
      if (range.offset + range.length > mutated.length) throw new Error('batch range outside the segment');
      const batch = decodeBatch(mutated.subarray(range.offset, range.offset + range.length), range, { output });
      for (const rec of batch.records) if (original.get(rec.offset) !== key(rec)) throw new Error(`offset ${rec.offset} came back different`);
      offset = range.nextOffset;
    }
    return 'ok';
  } catch (err) {
    if (err instanceof QuartzError) return 'error';
    throw err;
  }
}

/** A batch whose CRC matches `records` bytes put in place of its records section (a hostile writer). */
function forged(batch: Uint8Array, section: Uint8Array, uncompressedSize: number): Uint8Array {
  const out = new Uint8Array(BATCH_HEADER_SIZE + section.length);
  out.set(batch.subarray(0, BATCH_HEADER_SIZE));
  out.set(section, BATCH_HEADER_SIZE);
  const view = new DataView(out.buffer);
  view.setUint32(0, out.length, true);
  view.setUint32(56, uncompressedSize, true);
  view.setUint32(4, crc32c(out.subarray(8)), true);
  return out;
}

describe('segment fuzz', () => {
  it('10,000 random mutations of valid segments end in a typed error or correct records', () => {
    const next = seededRandom(20240601);
    const outcomes = { ok: 0, error: 0 };
    for (let s = 0; s < 20; s++) {
      const base = s * 1000;
      const w = new SegmentWriter({ baseOffset: base, codec: s % 2 ? 'lz4' : 'none', createdAt: s });
      const all: SegmentRecord[] = [];
      for (let b = 0; b < 1 + (s % 4); b++) {
        const recs = records(next, 1 + pick(next, 8), base + all.length);
        w.append(recs);
        all.push(...recs);
      }
      const seg = w.finish();
      const original = new Map(all.map((r, i) => [base + i, key(r)]));
      for (let i = 0; i < 500; i++) {
        const mutated = mutations[pick(next, mutations.length)]!(seg, next);
        let outcome: 'ok' | 'error';
        try {
          outcome = checkSegment(mutated, original, all.length);
          checkTail(mutated, original);
        } catch (err) {
          throw new Error(`segment ${s}, mutation ${i}: ${(err as Error).message}`, { cause: err });
        }
        outcomes[outcome]++;
      }
    }
    expect(outcomes.ok + outcomes.error).toBe(10_000);
    expect(outcomes.error).toBeGreaterThan(1000);
    expect(outcomes.ok).toBeGreaterThan(1000);
  }, 60_000);

  it('2,000 random mutations of single batches end in a typed error or the original records, with or without an output or a window', () => {
    const next = seededRandom(7);
    const output = recycledOutput();
    for (let s = 0; s < 10; s++) {
      const recs = records(next, 1 + pick(next, 12), 0);
      const batch = encodeBatch(recs, { baseOffset: 50, codec: s % 2 ? 'lz4' : 'none' });
      const want = recs.map((r, j) => `${50 + j}|${key(r)}`);
      for (let i = 0; i < 200; i++) {
        const mutated = mutations[pick(next, mutations.length)]!(batch, next);
        try {
          const fresh = outcome(() => decodeBatch(mutated).records);
          if (typeof fresh !== 'string') expect(fresh).toEqual(want);
          expect(outcome(() => decodeBatch(mutated, undefined, { output }).records)).toEqual(fresh);
          // A window answers the same error, or the same records from `from` on.
          const from = 50 + pick(next, recs.length + 1);
          const max = pick(next, 4);
          const windowed = typeof fresh === 'string' ? fresh : fresh.filter((r) => Number(r.split('|')[0]) >= from).slice(0, max);
          expect(outcome(() => decodeBatch(mutated, undefined, { from, maxRecords: max }).records)).toEqual(windowed);
        } catch (err) {
          throw new Error(`batch ${s}, mutation ${i}: ${(err as Error).message}`, { cause: err });
        }
      }
    }
  });

  it('2,000 mutations with a matching CRC end in a typed error or records; a page gives what a whole decode gives when that succeeds', () => {
    const next = seededRandom(20261206);
    let pagesServed = 0;
    for (let s = 0; s < 20; s++) {
      const recs = records(next, 20 + pick(next, 60), 0);
      const lz = s % 2 === 1;
      const batch = encodeBatch(recs, { baseOffset: 50, codec: lz ? 'lz4' : 'none' });
      const plainSection = encodeBatch(recs, { baseOffset: 50, codec: 'none' }).subarray(BATCH_HEADER_SIZE);
      for (let i = 0; i < 100; i++) {
        let mutated: Uint8Array;
        if (lz && i % 2 === 0) {
          // Damage to the LZ4 block itself.
          const block = mutations[pick(next, mutations.length)]!(batch.subarray(BATCH_HEADER_SIZE), next);
          mutated = forged(batch, block, plainSection.length);
        } else {
          // Damage to the records, stored as the batch's codec stores them: the parser's ground.
          const section = mutations[pick(next, mutations.length)]!(plainSection, next);
          const block = lz ? lz4.compressBlock(section) : section;
          mutated = forged(batch, block, section.length);
          mutated[8] = lz ? 1 : 0; // the codec, also where encodeBatch found a tiny batch not worth compressing
          new DataView(mutated.buffer).setUint32(4, crc32c(mutated.subarray(8)), true);
        }
        try {
          const whole = outcome(() => decodeBatch(mutated).records);
          for (let k = 0; k < 4; k++) {
            const from = 50 + pick(next, recs.length + 1);
            const max = 1 + pick(next, 12);
            const page = outcome(() => decodeBatch(mutated, undefined, { from, maxRecords: max }).records);
            if (typeof whole !== 'string') expect(page).toEqual(whole.filter((r) => Number(r.split('|')[0]) >= from).slice(0, max));
            else if (typeof page !== 'string') pagesServed++;
          }
        } catch (err) {
          throw new Error(`batch ${s}, mutation ${i}: ${(err as Error).message}`, { cause: err });
        }
      }
    }
    // Pages before a fault that a whole decode reports are served: the fault lies after them.
    expect(pagesServed).toBeGreaterThan(0);
  });
});

describe('segment fuzz: pages of damaged batches', () => {
  it('a page that fails fails as the whole decode does (same code, message and details), whether the records are stored plain or LZ4', () => {
    const next = seededRandom(777);
    const failure = (fn: () => unknown): QuartzError | undefined => {
      try {
        fn();
        return undefined;
      } catch (err) {
        if (err instanceof QuartzError) return err;
        throw err;
      }
    };
    let pagesFailed = 0;
    for (let s = 0; s < 30; s++) {
      const recs = records(next, 30 + pick(next, 60), 0);
      const base = 1000 + pick(next, 1000);
      const lz = s % 2 === 1;
      const batch = encodeBatch(recs, { baseOffset: base, codec: 'none' });
      const plainSection = batch.subarray(BATCH_HEADER_SIZE);
      for (let i = 0; i < 60; i++) {
        // One fault in the records, under a CRC that holds: what only a faulty writer stores.
        const section = mutations[pick(next, mutations.length)]!(plainSection, next);
        const block = lz ? lz4.compressBlock(section) : section;
        const mutated = new Uint8Array(BATCH_HEADER_SIZE + block.length);
        mutated.set(batch.subarray(0, BATCH_HEADER_SIZE));
        mutated.set(block, BATCH_HEADER_SIZE);
        const view = new DataView(mutated.buffer);
        view.setUint32(0, mutated.length, true);
        view.setUint32(56, section.length, true);
        mutated[8] = lz ? 1 : 0;
        view.setUint32(4, crc32c(mutated.subarray(8)), true);
        const whole = failure(() => decodeBatch(mutated));
        for (const [from, max] of [
          [base, 1],
          [base, recs.length],
          [base + recs.length - 1, 1],
          [base + recs.length, 5],
          [base - 3, 2],
          [base + pick(next, recs.length), 1 + pick(next, 10)],
          [base + pick(next, recs.length), 0],
        ] as const) {
          const page = failure(() => decodeBatch(mutated, undefined, { from, maxRecords: max }));
          if (page === undefined) continue;
          pagesFailed++;
          const label = `batch ${s} mutation ${i}, page ${from}+${max}`;
          expect(whole, label).toBeDefined();
          expect([page.code, page.message, page.details], label).toEqual([whole!.code, whole!.message, whole!.details]);
        }
      }
    }
    expect(pagesFailed).toBeGreaterThan(500);
  });
});
