import { describe, expect, it } from 'vitest';
import { init } from '../node/core.js';
import { ErrorCode, QuartzError } from './errors.js';
import { crc32c } from './hash.js';
import { lz4 } from './lz4.js';
import { PAGE_SLAB_BYTES, PAGE_SLAB_PIECE_MAX } from './segment-records.js';
import {
  BATCH_HEADER_SIZE,
  SEGMENT_HEADER_SIZE,
  SEGMENT_TRAILER_SIZE,
  SegmentReader,
  SegmentWriter,
  decodeBatch,
  decodeBatchRun,
  encodeBatch,
  encodeBatchRun,
  frameRun,
  readBatchHeader,
  sealRun,
  storedUncompressed,
  readBatchRun,
  readTrailer,
  type DecodedRecord,
  type SegmentRecord,
} from './segment.js';
import { expectQuartzError } from '../../tests/fixtures/expect-error.js';

const utf8 = (s: string) => new TextEncoder().encode(s);

// Top-level, not beforeAll: the describe blocks build their fixtures while being collected.
await init();

function makeRecords(n: number, start = 0, ts = 1_700_000_000_000): SegmentRecord[] {
  const out: SegmentRecord[] = [];
  for (let i = start; i < start + n; i++) {
    out.push({
      key: i % 3 === 0 ? null : utf8(`key-${i}`),
      value: i % 7 === 0 ? new Uint8Array(0) : utf8(`{"n":${i},"text":"value number ${i} with some repeated text"}`),
      headers: i % 4 === 0 ? [{ key: 'trace-id', value: utf8(`t${i}`) }, { key: 'ünï', value: null }] : undefined,
      timestamp: ts + i * 10,
    });
  }
  return out;
}

/** Plain data for deep comparison: offsets, timestamps, bytes as arrays, headers normalised. */
function plain(records: readonly (SegmentRecord | DecodedRecord)[], firstOffset?: number) {
  return records.map((r, i) => ({
    offset: 'offset' in r ? r.offset : firstOffset! + i,
    timestamp: r.timestamp,
    key: r.key === null ? null : Array.from(r.key),
    value: r.value === null ? null : Array.from(r.value),
    headers: (r.headers ?? []).map((h) => ({ key: h.key, value: h.value === null ? null : Array.from(h.value) })),
  }));
}

function buildSegment(batches: SegmentRecord[][], codec: 'none' | 'lz4' = 'lz4', baseOffset = 100): Uint8Array {
  const w = new SegmentWriter({ baseOffset, codec, createdAt: 1234 });
  for (const b of batches) w.append(b);
  return w.finish();
}

function readAll(r: SegmentReader): DecodedRecord[] {
  return r.readFrom(r.baseOffset, Number.MAX_SAFE_INTEGER);
}

/** Rewrites a batch's CRC after a deliberate edit, so the edit reaches the structural checks. */
function recrc(batch: Uint8Array, at = 0): void {
  const len = new DataView(batch.buffer, batch.byteOffset).getUint32(at, true);
  new DataView(batch.buffer, batch.byteOffset).setUint32(at + 4, crc32c(batch.subarray(at + 8, at + len)), true);
}

/** An uncompressed batch (edited or not) stored again as an LZ4 batch with a CRC that holds. */
function asLz4Batch(stored: Uint8Array): Uint8Array {
  const block = lz4.compressBlock(stored.subarray(BATCH_HEADER_SIZE));
  const lz = new Uint8Array(BATCH_HEADER_SIZE + block.length);
  lz.set(stored.subarray(0, BATCH_HEADER_SIZE));
  lz.set(block, BATCH_HEADER_SIZE);
  new DataView(lz.buffer).setUint32(0, lz.length, true);
  lz[8] = 1; // codec LZ4
  recrc(lz);
  return lz;
}

describe('round trips', () => {
  for (const codec of ['none', 'lz4'] as const) {
    it(`1 and 1,000 records, codec ${codec}`, () => {
      for (const n of [1, 1000]) {
        const records = makeRecords(n);
        const seg = buildSegment([records], codec);
        const r = SegmentReader.open(seg);
        expect(r.baseOffset).toBe(100);
        expect(r.nextOffset).toBe(100 + n);
        expect(r.droppedBytes).toBe(0);
        expect(r.createdAt).toBe(1234);
        expect(plain(readAll(r))).toEqual(plain(records, 100));
      }
    });
  }

  it('1,000,000 records across many batches', () => {
    const n = 1_000_000;
    const records: SegmentRecord[] = new Array(n);
    const value = utf8('v');
    for (let i = 0; i < n; i++) records[i] = { key: null, value, timestamp: 1_000 + (i >> 4) };
    const w = new SegmentWriter({ baseOffset: 5, codec: 'lz4' });
    for (let i = 0; i < n; i += 50_000) w.append(records.slice(i, i + 50_000));
    const seg = w.finish();
    const r = SegmentReader.open(seg);
    expect(r.batchCount).toBe(20);
    expect(r.nextOffset).toBe(5 + n);
    const got = readAll(r);
    expect(got.length).toBe(n);
    for (let i = 0; i < n; i += 997) {
      expect(got[i]!.offset).toBe(5 + i);
      expect(got[i]!.timestamp).toBe(1_000 + (i >> 4));
      expect(got[i]!.value).toEqual(value);
      expect(got[i]!.key).toBeNull();
    }
    expect(r.readFrom(5 + 777_777, 3).map((x) => x.offset)).toEqual([5 + 777_777, 5 + 777_778, 5 + 777_779]);
  }, 30_000);

  it('keeps null and empty keys, values and header values apart', () => {
    const records: SegmentRecord[] = [
      { key: null, value: null, timestamp: 1 },
      { key: new Uint8Array(0), value: new Uint8Array(0), timestamp: 2 },
      { key: null, value: new Uint8Array(0), headers: [{ key: '', value: null }, { key: 'e', value: new Uint8Array(0) }], timestamp: 3 },
      { key: new Uint8Array(0), value: null, headers: [], timestamp: 4 },
    ];
    for (const codec of ['none', 'lz4'] as const) {
      const got = decodeBatch(encodeBatch(records, { baseOffset: 0, codec })).records;
      expect(got.map((r) => [r.key === null ? 'null' : r.key.length, r.value === null ? 'null' : r.value.length])).toEqual([
        ['null', 'null'],
        [0, 0],
        ['null', 0],
        [0, 'null'],
      ]);
      expect(got[2]!.headers).toEqual([
        { key: '', value: null },
        { key: 'e', value: new Uint8Array(0) },
      ]);
    }
  });

  it('carries headers with UTF-8 keys, including non-BMP characters', () => {
    const records: SegmentRecord[] = [
      { key: utf8('k'), value: utf8('v'), headers: [{ key: 'content-type', value: utf8('json') }, { key: 'é😀中', value: utf8('x') }, { key: 'x'.repeat(300), value: null }], timestamp: 9 },
    ];
    const got = decodeBatch(encodeBatch(records, { baseOffset: 3, codec: 'lz4' })).records;
    expect(plain(got)).toEqual(plain(records, 3));
  });

  it('keeps negative, unordered and extreme timestamps and large offsets', () => {
    const max = 2 ** 51 - 1;
    const records: SegmentRecord[] = [500, -max, max, 0, -1].map((timestamp) => ({ key: null, value: utf8('x'), timestamp }));
    const base = Number.MAX_SAFE_INTEGER - 10;
    const batch = encodeBatch(records, { baseOffset: base, codec: 'none' });
    const d = decodeBatch(batch);
    expect(d.records.map((r) => r.timestamp)).toEqual([500, -max, max, 0, -1]);
    expect(d.records.map((r) => r.offset)).toEqual([base, base + 1, base + 2, base + 3, base + 4]);
    expect(d.maxTimestamp).toBe(max);
    expect(plain(readAll(SegmentReader.open(buildSegment([records], 'lz4', base))))).toEqual(plain(records, base));
  });

  it('stores incompressible data uncompressed even when LZ4 is asked for', () => {
    const noise = new Uint8Array(4096);
    crypto.getRandomValues(noise);
    const batch = encodeBatch([{ key: null, value: noise, timestamp: 0 }], { baseOffset: 0, codec: 'lz4' });
    expect(readBatchHeader(batch).codec).toBe('none');
    expect(decodeBatch(batch).records[0]!.value).toEqual(noise);
  });

  it('writes and reads an empty segment', () => {
    const seg = new SegmentWriter({ baseOffset: 42 }).finish();
    expect(seg.length).toBe(SEGMENT_HEADER_SIZE + 36 + SEGMENT_TRAILER_SIZE);
    const r = SegmentReader.open(seg);
    expect([r.baseOffset, r.nextOffset, r.batchCount, r.droppedBytes]).toEqual([42, 42, 0, 0]);
    expect(r.readFrom(42, 10)).toEqual([]);
    expect(r.findOffsetByTime(0)).toBeNull();
  });
});

describe('batch API', () => {
  it('readBatchHeader reports offsets, timestamps, sizes and producer fields without decoding', () => {
    const records = makeRecords(10);
    const batch = encodeBatch(records, { baseOffset: 1000, codec: 'lz4', producerId: 77, producerEpoch: 3, baseSequence: 12 });
    const h = readBatchHeader(batch);
    expect(h).toMatchObject({
      length: batch.length,
      codec: 'lz4',
      baseOffset: 1000,
      lastOffsetDelta: 9,
      nextOffset: 1010,
      recordCount: 10,
      baseTimestamp: records[0]!.timestamp,
      maxTimestamp: records[9]!.timestamp,
      producerId: 77,
      producerEpoch: 3,
      baseSequence: 12,
    });
    const plainBatch = encodeBatch(records, { baseOffset: 0, codec: 'none' });
    expect(readBatchHeader(plainBatch)).toMatchObject({ codec: 'none', producerId: -1, producerEpoch: -1, baseSequence: -1, uncompressedSize: plainBatch.length - BATCH_HEADER_SIZE });
    const d = decodeBatch(batch);
    expect([d.baseOffset, d.lastOffsetDelta, d.nextOffset, d.maxTimestamp]).toEqual([1000, 9, 1010, records[9]!.timestamp]);
  });

  it('sealing encoded batches gives the same bytes as appending records', () => {
    const a = makeRecords(20, 0);
    const b = makeRecords(5, 20);
    const sealed = new SegmentWriter({ baseOffset: 100, createdAt: 1234 });
    sealed.appendBatch(encodeBatch(a, { baseOffset: 100, codec: 'lz4' }));
    sealed.appendBatch(encodeBatch(b, { baseOffset: 120, codec: 'none' }));
    expect(sealed.nextOffset).toBe(125);
    expect(sealed.recordCount).toBe(25);
    const seg = sealed.finish();
    expect(seg.length).toBe(sealed.byteLength);
    expect(plain(readAll(SegmentReader.open(seg)))).toEqual(plain([...a, ...b], 100));
    const viaRecords = new SegmentWriter({ baseOffset: 100, createdAt: 1234, codec: 'lz4' });
    viaRecords.append(a);
    const viaBatches = new SegmentWriter({ baseOffset: 100, createdAt: 1234 });
    viaBatches.appendBatch(encodeBatch(a, { baseOffset: 100, codec: 'lz4' }));
    expect(viaBatches.finish()).toEqual(viaRecords.finish());
  });

  it('finishParts are the bytes of finish, batches by reference, and end the writer', () => {
    const a = encodeBatch(makeRecords(20, 0), { baseOffset: 100, codec: 'lz4' });
    const b = encodeBatch(makeRecords(5, 20), { baseOffset: 120, codec: 'none' });
    const whole = new SegmentWriter({ baseOffset: 100, createdAt: 1234 });
    const parted = new SegmentWriter({ baseOffset: 100, createdAt: 1234 });
    for (const w of [whole, parted]) {
      w.appendBatch(a);
      w.appendBatch(b);
      w.append(makeRecords(3, 25));
    }
    const parts = parted.finishParts();
    expect(parts.length).toBe(5);
    expect(parts[1]).toBe(a);
    expect(parts[2]).toBe(b);
    const joined = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    parts.reduce((at, p) => (joined.set(p, at), at + p.length), 0);
    expect(joined).toEqual(whole.finish());
    expectQuartzError(() => parted.finishParts(), ErrorCode.INVALID_ARGUMENT);
    expectQuartzError(() => parted.finish(), ErrorCode.INVALID_ARGUMENT);
  });

  it('append gives the bytes of sealed batches across reused staging, interleaved writers and mixed appends', () => {
    // 300 KB batches overflow the first staging chunk, so batches land in several chunks; the
    // second round reuses the chunks the first round's writers gave back.
    const big = (n: number, start: number) => makeRecords(n, start).map((r, i) => ({ ...r, value: utf8(`${start + i}:`.padEnd(1000, String.fromCharCode(97 + (i % 26)))) }));
    const batches = [big(300, 0), makeRecords(3, 300), big(300, 303), big(40, 603)];
    for (let round = 0; round < 2; round++) {
      for (const codec of ['none', 'lz4'] as const) {
        const sealed = new SegmentWriter({ baseOffset: 100, createdAt: 1234 });
        const a = new SegmentWriter({ baseOffset: 100, createdAt: 1234, codec });
        const b = new SegmentWriter({ baseOffset: 100, createdAt: 1234, codec });
        let base = 100;
        batches.forEach((batch, k) => {
          const encoded = encodeBatch(batch, { baseOffset: base, codec });
          sealed.appendBatch(encoded);
          a.append(batch);
          if (k % 2 === 0) b.append(batch);
          else b.appendBatch(encoded);
          base += batch.length;
        });
        const expected = sealed.finish();
        const fromB = b.finish();
        // First differing byte (−1: none); toEqual on 600 KB arrays takes seconds.
        const diff = (x: Uint8Array) => (x.length !== expected.length ? -2 : x.findIndex((v, i) => v !== expected[i]));
        expect(diff(a.finish())).toBe(-1);
        expect(diff(fromB)).toBe(-1);
        if (round === 0) expect(readAll(SegmentReader.open(expected)).map((r) => r.offset)).toEqual(batches.flat().map((_, i) => 100 + i));
      }
    }
  });

  it('appendBatch refuses a gap, a bad CRC, trailing bytes and use after finish', () => {
    const w = new SegmentWriter({ baseOffset: 0 });
    expectQuartzError(() => w.appendBatch(encodeBatch(makeRecords(2), { baseOffset: 1, codec: 'none' })), ErrorCode.INVALID_ARGUMENT);
    const bad = encodeBatch(makeRecords(2), { baseOffset: 0, codec: 'none' });
    bad[bad.length - 1]! ^= 1;
    expectQuartzError(() => w.appendBatch(bad), ErrorCode.CHECKSUM_MISMATCH);
    const good = encodeBatch(makeRecords(2), { baseOffset: 0, codec: 'none' });
    const padded = new Uint8Array(good.length + 1);
    padded.set(good);
    expectQuartzError(() => w.appendBatch(padded), ErrorCode.CORRUPT_DATA);
    w.appendBatch(good);
    w.finish();
    expectQuartzError(() => w.append(makeRecords(1)), ErrorCode.INVALID_ARGUMENT);
    expectQuartzError(() => w.finish(), ErrorCode.INVALID_ARGUMENT);
  });

  it('appendBatch with verified: true skips only the CRC re-check', () => {
    const good = encodeBatch(makeRecords(3), { baseOffset: 0, codec: 'none' });
    const w = new SegmentWriter({ baseOffset: 0, createdAt: 1234 });
    w.appendBatch(good, { verified: true });
    const ref = new SegmentWriter({ baseOffset: 0, createdAt: 1234 });
    ref.appendBatch(good);
    expect(w.finish()).toEqual(ref.finish());

    // what a verified batch still has to pass: offset continuity, header sanity, exact length
    const v = new SegmentWriter({ baseOffset: 0 });
    expectQuartzError(() => v.appendBatch(encodeBatch(makeRecords(2), { baseOffset: 1, codec: 'none' }), { verified: true }), ErrorCode.INVALID_ARGUMENT);
    const badHeader = good.slice();
    badHeader[8] = 0x07; // unknown codec
    expectQuartzError(() => v.appendBatch(badHeader, { verified: true }), ErrorCode.UNSUPPORTED_FORMAT);
    expectQuartzError(() => v.appendBatch(good.subarray(0, good.length - 1), { verified: true }), ErrorCode.CORRUPT_DATA);
    // the CRC is exactly what `verified` vouches for: a flipped record byte passes, unverified it does not
    const flipped = good.slice();
    flipped[flipped.length - 1]! ^= 1;
    expectQuartzError(() => new SegmentWriter({ baseOffset: 0 }).appendBatch(flipped, { verified: false }), ErrorCode.CHECKSUM_MISMATCH);
    v.appendBatch(flipped, { verified: true });
    expect(v.nextOffset).toBe(3);
  });

  it('blockBytes: encodes a run of small batches that decode to the records, producer fields carried', () => {
    for (const codec of ['none', 'lz4'] as const) {
      const records = makeRecords(1000, 0);
      records[500] = { ...records[500]!, value: new Uint8Array(5000).fill(7) }; // larger than a block
      const run = encodeBatch(records, { baseOffset: 40, codec, blockBytes: 2048, producerId: 9, producerEpoch: 3, baseSequence: 0x7fffff00 });
      const headers = readBatchRun(run);
      expect(headers.length).toBeGreaterThan(20);
      let at = 0;
      let seen = 0;
      const decoded: DecodedRecord[] = [];
      for (const h of headers) {
        expect(h.uncompressedSize <= 2048 || h.recordCount === 1).toBe(true);
        expect(h.baseOffset).toBe(40 + seen);
        expect([h.producerId, h.producerEpoch, h.baseSequence]).toEqual([9, 3, (0x7fffff00 + seen) % 0x80000000]);
        const batch = decodeBatch(run.subarray(at, (at += h.length)));
        expect(batch.baseTimestamp).toBe(records[seen]!.timestamp);
        decoded.push(...batch.records);
        seen += h.recordCount;
      }
      expect(at).toBe(run.length);
      expect(plain(decoded)).toEqual(plain(records, 40));
      // a run that fits one block is exactly the single batch
      const small = makeRecords(3);
      expect(encodeBatch(small, { baseOffset: 0, codec, blockBytes: 2048 })).toEqual(encodeBatch(small, { baseOffset: 0, codec }));
    }
    expectQuartzError(() => encodeBatch(makeRecords(3), { baseOffset: 0, codec: 'lz4', blockBytes: 0 }), ErrorCode.INVALID_ARGUMENT);
  });

  it('encodeBatchRun returns the headers of the batches it wrote, as readBatchRun reads them', () => {
    for (const codec of ['none', 'lz4'] as const) {
      const records = makeRecords(600, 0);
      records[7] = { ...records[7]!, value: new Uint8Array(3000).fill(1) }; // stored uncompressed under lz4 too
      for (const options of [
        { baseOffset: 12, codec },
        { baseOffset: 12, codec, blockBytes: 1500, producerId: 5, producerEpoch: 2, baseSequence: 0x7ffffff0 },
        { baseOffset: 12, codec, blockBytes: 1500, output: (n: number) => new Uint8Array(n) },
      ]) {
        const { bytes, batches } = encodeBatchRun(records, options);
        expect(batches).toEqual(readBatchRun(bytes));
        expect(bytes).toEqual(encodeBatch(records, options));
      }
    }
  });

  it('decodeBatchRun: all records of a mixed-codec run, LZ4 batches in one section, every CRC checked first', () => {
    const recs = makeRecords(500, 0);
    recs[3] = { ...recs[3]!, value: crypto.getRandomValues(new Uint8Array(1500)) }; // an incompressible batch of its own
    const parts = [
      encodeBatchRun(recs.slice(0, 200), { baseOffset: 70, codec: 'lz4', blockBytes: 1024 }),
      encodeBatchRun(recs.slice(200, 260), { baseOffset: 270, codec: 'none', blockBytes: 1024 }),
      encodeBatchRun(recs.slice(260), { baseOffset: 330, codec: 'lz4', blockBytes: 1024 }),
    ];
    const run = new Uint8Array(parts.reduce((n, p) => n + p.bytes.length, 0));
    let at = 0;
    const starts: number[] = [];
    const headers = parts.flatMap((p) => p.batches);
    for (const p of parts) {
      run.set(p.bytes, at);
      for (const h of p.batches) starts.push((at += h.length) - h.length);
    }
    expect(headers.map((h) => h.codec)).toContain('none');
    expect(headers.filter((h) => h.codec === 'lz4').length).toBeGreaterThan(10);
    const read = decodeBatchRun(run);
    expect(plain(read)).toEqual(plain(recs, 70));
    // LZ4 batches' records view one array; uncompressed ones view the input.
    const sections = new Set(read.filter((r) => r.value !== null && r.value.length > 0).map((r) => r.value!.buffer));
    expect(sections.size).toBe(2);
    expect(sections.has(run.buffer)).toBe(true);
    expect(plain(decodeBatchRun(parts[0]!.bytes.subarray(0, headers[0]!.length)))).toEqual(plain(recs.slice(0, headers[0]!.recordCount), 70));
    // A flip in the first or last CRC-covered byte of any batch fails the run.
    headers.forEach((h, i) => {
      for (const pos of [starts[i]! + 10, starts[i]! + h.length - 1]) {
        const bad = run.slice();
        bad[pos]! ^= 0x10;
        const err = expectQuartzError(() => decodeBatchRun(bad, 'the run'), ErrorCode.CHECKSUM_MISMATCH);
        expect(err.message).toBe(`the run, batch ${i}: CRC32C does not match (byte ${starts[i]})`);
      }
    });
    // Every CRC before any decompression: an LZ4 block that fails to decode under a valid CRC in
    // the first batch loses to a bit flip in the last.
    const bad = run.slice();
    bad[starts[0]! + BATCH_HEADER_SIZE + 2]! ^= 0xff;
    recrc(bad, starts[0]!);
    expectQuartzError(() => decodeBatchRun(bad), ErrorCode.CORRUPT_DATA);
    bad[run.length - 1]! ^= 1;
    const err = expectQuartzError(() => decodeBatchRun(bad), ErrorCode.CHECKSUM_MISMATCH);
    expect(err.message).toContain(`batch ${headers.length - 1}:`);
    expectQuartzError(() => decodeBatchRun(run.subarray(0, run.length - 1)), ErrorCode.CORRUPT_DATA);
    // A run of several 64 KiB pieces, each decompressed into its own section, mixed codecs across them.
    const many = makeRecords(12_000, 0);
    for (let i = 1000; i < many.length; i += 1500) many[i] = { ...many[i]!, value: crypto.getRandomValues(new Uint8Array(5000)) };
    const long = encodeBatchRun(many, { baseOffset: 5, codec: 'lz4', blockBytes: 2048 });
    expect(long.bytes.length).toBeGreaterThan(3 * 65536);
    expect(long.batches.filter((h) => h.codec === 'none').length).toBeGreaterThan(3);
    const all = decodeBatchRun(long.bytes);
    expect(plain(all)).toEqual(plain(many, 5));
    expect(new Set(all.map((r) => r.value!.buffer)).size).toBeGreaterThan(4);
    const last = long.bytes.slice();
    last[last.length - 1]! ^= 1;
    expectQuartzError(() => decodeBatchRun(last), ErrorCode.CHECKSUM_MISMATCH);
  });

  it('readBatchRun refuses a gap between batches and a torn last batch', () => {
    const a = encodeBatch(makeRecords(3), { baseOffset: 0, codec: 'lz4' });
    const gap = encodeBatch(makeRecords(3), { baseOffset: 4, codec: 'lz4' });
    const joined = new Uint8Array(a.length + gap.length);
    joined.set(a);
    joined.set(gap, a.length);
    expectQuartzError(() => readBatchRun(joined), ErrorCode.CORRUPT_DATA);
    const run = encodeBatch(makeRecords(200), { baseOffset: 0, codec: 'lz4', blockBytes: 1024 });
    expect(readBatchRun(run).length).toBeGreaterThan(1);
    expectQuartzError(() => readBatchRun(run.subarray(0, run.length - 1)), ErrorCode.CORRUPT_DATA);
  });

  it('appendBatch with blockBytes cuts a large batch into small ones with the same records', () => {
    for (const codec of ['none', 'lz4'] as const) {
      // unordered timestamps: a block's base is its first record's, its deltas may grow
      const records = makeRecords(700, 0).map((r, i) => ({ ...r, timestamp: 1_700_000_000_000 + ((i * 7919) % 1000) * (i % 2 === 0 ? 1 : -1000) }));
      records[300] = { ...records[300]!, value: new Uint8Array(3000).fill(1) };
      const big = encodeBatch(records, { baseOffset: 5, codec, producerId: 5, producerEpoch: 1, baseSequence: 100 });
      const before = encodeBatch(makeRecords(5), { baseOffset: 0, codec });
      const w = new SegmentWriter({ baseOffset: 0, createdAt: 1 });
      w.appendBatch(before, { blockBytes: 1024 }); // small: appended as it is
      w.appendBatch(big, { blockBytes: 1024 });
      w.appendBatch(encodeBatch(makeRecords(2), { baseOffset: 705, codec }), { blockBytes: 1024 });
      const seg = w.finish();
      const r = SegmentReader.open(seg);
      expect(r.recovered).toBe(false);
      expect(r.batchCount).toBeGreaterThan(20);
      const all = readAll(r);
      expect(plain(all.slice(5, 705))).toEqual(plain(records, 5));
      expect(all.map((x) => x.offset)).toEqual(Array.from({ length: 707 }, (_, i) => i));
      let seen = 0;
      for (let at = SEGMENT_HEADER_SIZE + before.length; seen < 700; ) {
        const h = readBatchHeader(seg, at);
        expect(h.uncompressedSize <= 1024 || h.recordCount === 1).toBe(true);
        expect([h.producerId, h.producerEpoch, h.baseSequence]).toEqual([5, 1, 100 + seen]);
        seen += h.recordCount;
        at += h.length;
      }
      // the time index still finds the first record at or after a time
      const t = 1_700_000_000_000 + 500;
      const first = all.find((x) => x.timestamp >= t)!;
      expect(r.findOffsetByTime(t)).toBe(first.offset);
    }
  });

  it('appendBatch with blockBytes checks the CRC of the batch it cuts and appends nothing on failure', () => {
    for (const codec of ['none', 'lz4'] as const) {
      const big = encodeBatch(makeRecords(300), { baseOffset: 0, codec });
      const flipped = big.slice();
      flipped[flipped.length - 1]! ^= 1;
      const w = new SegmentWriter({ baseOffset: 0 });
      expectQuartzError(() => w.appendBatch(flipped, { blockBytes: 1024 }), ErrorCode.CHECKSUM_MISMATCH);
      expect([w.nextOffset, w.recordCount]).toEqual([0, 0]);
      // a forged batch whose CRC holds but whose records run past the section is CORRUPT_DATA
      const forged = encodeBatch(makeRecords(300), { baseOffset: 0, codec: 'none' });
      forged[BATCH_HEADER_SIZE + 2] = 0x7f; // the first record's key length
      recrc(forged);
      expectQuartzError(() => w.appendBatch(forged, { blockBytes: 1024 }), ErrorCode.CORRUPT_DATA);
      expect([w.nextOffset, w.recordCount]).toEqual([0, 0]);
      w.appendBatch(big, { blockBytes: 1024 });
      expect(w.nextOffset).toBe(300);
      expect(plain(readAll(SegmentReader.open(w.finish())))).toEqual(plain(makeRecords(300), 0));
    }
  });

  it('a batch whose records outgrow the output region while they are written keeps every byte written before the move', () => {
    // encodeBatch writes records straight into the codec's output region and moves it when the
    // next record may not fit; the retained region is at most 4 MiB, so these values move it
    // twice mid-batch, past the retained size. frameRun + sealRun size the records first.
    const big = (n: number, seed: number) => {
      const b = new Uint8Array(n);
      for (let i = 0; i < n; i++) b[i] = (i * seed) % 251 < 40 ? (i * 7) & 0xff : 65 + (i % 26);
      return b;
    };
    // Whole-array toEqual on megabytes is slow: compare bytes with one call, and the records' own bytes so.
    const same = (a: Uint8Array | null, b: Uint8Array | null) => (a === null || b === null ? a === b : a.length === b.length && a.every((x, i) => x === b[i]));
    const records: SegmentRecord[] = [
      ...makeRecords(2000, 0),
      { key: utf8('big-1'), value: big(6 << 20, 13), headers: [{ key: 'ключ', value: big(3000, 5) }], timestamp: 1_700_000_000_000 - 5 },
      ...makeRecords(500, 2000),
      { key: null, value: big(9 << 20, 29), timestamp: 1_700_000_100_000 },
      ...makeRecords(10, 2500),
    ];
    for (const codec of ['lz4', 'none'] as const) {
      const batch = encodeBatch(records, { baseOffset: 40, codec });
      expect(same(batch, sealRun(frameRun(records), { baseOffset: 40, codec }).bytes)).toBe(true);
      const decoded = decodeBatch(batch).records;
      expect(decoded.length).toBe(records.length);
      decoded.forEach((r, i) => {
        const want = records[i]!;
        expect([r.offset, r.timestamp, same(r.key, want.key), same(r.value, want.value), r.headers.length]).toEqual([40 + i, want.timestamp, true, true, want.headers?.length ?? 0]);
        r.headers.forEach((h, j) => expect([h.key, same(h.value, want.headers![j]!.value)]).toEqual([want.headers![j]!.key, true]));
      });
    }
  });

  it('a header value that grows between its check and its write (a getter) is refused, not written past its room', () => {
    let reads = 0;
    const header = {
      key: 'h',
      get value() {
        return ++reads === 1 ? new Uint8Array(1) : new Uint8Array(1 << 16);
      },
    };
    for (const codec of ['lz4', 'none'] as const) {
      reads = 0;
      expectQuartzError(() => encodeBatch([{ value: utf8('v'), headers: [header as unknown as { key: string; value: Uint8Array }], timestamp: 1 }], { baseOffset: 0, codec }), ErrorCode.INVALID_ARGUMENT);
      // The codec still encodes what it is given afterwards.
      expect(plain(decodeBatch(encodeBatch(makeRecords(3), { baseOffset: 0, codec })).records)).toEqual(plain(makeRecords(3), 0));
    }
  });

  it('a default timestamp gives records without one the bytes of explicit timestamps', () => {
    const ts = 1_700_000_000_123;
    const explicit = makeRecords(30, 0, ts).map((r, i) => (i % 3 === 0 ? r : { ...r, timestamp: ts }));
    const implicit = explicit.map((r, i) => (i % 3 === 0 ? r : { value: r.value, headers: r.headers, ...(r.key === null ? {} : { key: r.key }) }));
    for (const codec of ['lz4', 'none'] as const) {
      expect(encodeBatch(implicit, { baseOffset: 7, codec, timestamp: ts })).toEqual(encodeBatch(explicit, { baseOffset: 7, codec }));
    }
    expectQuartzError(() => encodeBatch([{ value: null }], { baseOffset: 0, codec: 'none' }), ErrorCode.INVALID_ARGUMENT);
    expectQuartzError(() => encodeBatch([{ value: null }], { baseOffset: 0, codec: 'none', timestamp: 0.5 }), ErrorCode.INVALID_ARGUMENT);
  });

  it('output: the batch is copied into the array the caller hands out', () => {
    const records = makeRecords(50);
    const pool = new Uint8Array(1 << 16).fill(0xee);
    let asked = -1;
    const out = encodeBatch(records, { baseOffset: 3, codec: 'lz4', output: (n) => pool.subarray(100, 100 + (asked = n)) });
    expect(out.buffer).toBe(pool.buffer);
    expect(out.length).toBe(asked);
    expect(out).toEqual(encodeBatch(records, { baseOffset: 3, codec: 'lz4' }));
    expect(pool[99]).toBe(0xee);
    expect(pool[100 + asked]).toBe(0xee);
    expectQuartzError(() => encodeBatch(records, { baseOffset: 3, codec: 'lz4', output: (n) => new Uint8Array(n + 1) }), ErrorCode.INVALID_ARGUMENT);
  });

  it('output: a callback that runs the codecs itself still gets the batch', () => {
    const records = makeRecords(200);
    const other = makeRecords(300, 1000);
    const want = encodeBatch(records, { baseOffset: 0, codec: 'lz4' });
    // Encoding another batch inside the callback reuses the codec's regions.
    const got = encodeBatch(records, {
      baseOffset: 0,
      codec: 'lz4',
      output: (n) => {
        encodeBatch(other, { baseOffset: 0, codec: 'lz4' });
        return new Uint8Array(n);
      },
    });
    expect(got).toEqual(want);
  });

  it('decode output: LZ4 records are views of the array the caller hands out, after the CRC check', () => {
    const records = makeRecords(50);
    const lz = encodeBatch(records, { baseOffset: 3, codec: 'lz4' });
    expect(readBatchHeader(lz).codec).toBe('lz4');
    const pool = new Uint8Array(1 << 16).fill(0xee);
    const asked: number[] = [];
    const output = (n: number) => {
      asked.push(n);
      return pool.subarray(100, 100 + n);
    };
    const got = decodeBatch(lz, undefined, { output });
    expect(asked).toEqual([readBatchHeader(lz).uncompressedSize]);
    expect(plain(got.records)).toEqual(plain(records, 3));
    for (const r of got.records) expect(r.value!.buffer).toBe(pool.buffer);
    expect(pool[99]).toBe(0xee);
    expect(pool[100 + asked[0]!]).toBe(0xee);
    const never = () => {
      throw new Error('output was called');
    };
    // Uncompressed batches stay views of the input bytes.
    const stored = encodeBatch(records, { baseOffset: 3, codec: 'none' });
    expect(plain(decodeBatch(stored, undefined, { output: never }).records)).toEqual(plain(records, 3));
    // A damaged batch fails before the caller is asked for memory.
    const bad = lz.slice();
    bad[BATCH_HEADER_SIZE + 5]! ^= 1;
    expectQuartzError(() => decodeBatch(bad, undefined, { output: never }), ErrorCode.CHECKSUM_MISMATCH);
    expectQuartzError(() => decodeBatch(lz, undefined, { output: (n) => new Uint8Array(n + 1) }), ErrorCode.INVALID_ARGUMENT);
    expectQuartzError(() => decodeBatch(lz, undefined, { output: 5 as unknown as () => Uint8Array }), ErrorCode.INVALID_ARGUMENT);
  });

  it('decode output: a callback that runs the codecs itself still gets its batch', () => {
    const records = makeRecords(200);
    const lz = encodeBatch(records, { baseOffset: 0, codec: 'lz4' });
    // Decoding another batch inside the callback reuses the codec's regions.
    const other = encodeBatch(makeRecords(300, 1000), { baseOffset: 0, codec: 'lz4' });
    const got = decodeBatch(lz, undefined, {
      output: (n) => {
        decodeBatch(other);
        return new Uint8Array(n);
      },
    });
    expect(plain(got.records)).toEqual(plain(records, 0));
  });

  it('decode from/maxRecords: builds only the records asked for, after checking the whole batch CRC', () => {
    const records = makeRecords(300);
    for (const codec of ['none', 'lz4'] as const) {
      const batch = encodeBatch(records, { baseOffset: 1000, codec });
      expect(readBatchHeader(batch).codec).toBe(codec);
      for (const [from, max] of [[1000, 10], [1150, 10], [1295, 10], [1299, 1], [1000, 300], [900, 3], [1150, 0], [1150, undefined]] as const) {
        const got = decodeBatch(batch, undefined, { from, maxRecords: max }).records;
        const first = Math.max(0, from - 1000);
        expect(plain(got), `${codec} ${from} ${max}`).toEqual(plain(records.slice(first, first + (max ?? 300)), 1000 + first));
      }
      // Past the batch: nothing to build, still checked.
      expect(decodeBatch(batch, undefined, { from: 5000, maxRecords: 10 }).records).toEqual([]);
    }
    // An LZ4 page holds only its own bytes, not the whole decompressed section.
    const lz = encodeBatch(records, { baseOffset: 1000, codec: 'lz4' });
    const page = decodeBatch(lz, undefined, { from: 1150, maxRecords: 10 }).records;
    // 10 of 300 records: a piece of a small shared slab, not the section (~20 KB) nor the codec's memory.
    expect(readBatchHeader(lz).uncompressedSize).toBeGreaterThan(PAGE_SLAB_BYTES);
    expect(page[0]!.value!.buffer.byteLength).toBe(PAGE_SLAB_BYTES);
    for (const r of page) for (const v of [r.key, r.value, ...r.headers.map((h) => h.value)]) if (v !== null) expect(v.buffer).toBe(page[0]!.value!.buffer);
    // Damage after the page is still reported by the CRC, which covers the whole stored batch.
    const flipped = lz.slice();
    flipped[flipped.length - 3]! ^= 1;
    expectQuartzError(() => decodeBatch(flipped, undefined, { from: 1000, maxRecords: 1 }), ErrorCode.CHECKSUM_MISMATCH);
    expectQuartzError(() => decodeBatch(lz, undefined, { from: -1, maxRecords: 1 }), ErrorCode.INVALID_ARGUMENT);
    expectQuartzError(() => decodeBatch(lz, undefined, { from: 1000, maxRecords: 1.5 }), ErrorCode.INVALID_ARGUMENT);
    expectQuartzError(() => decodeBatch(lz, undefined, { maxRecords: 1 }), ErrorCode.INVALID_ARGUMENT);
  });

  it('decode from/maxRecords: a page reads only the records up to its end; a malformed record after it (CRC matching) is not read', () => {
    const records = makeRecords(300);
    const stored = encodeBatch(records, { baseOffset: 1000, codec: 'none' });
    // The last record ends with its value length (1 byte), its value and a header count of 0.
    const lastValueLength = stored.length - 1 - records[299]!.value!.length - 1;
    expect(stored[lastValueLength]).toBe(records[299]!.value!.length + 1);
    stored[lastValueLength] = 0x7f; // now it runs past the end
    recrc(stored);
    // The same damaged section stored as an LZ4 block.
    const lz = asLz4Batch(stored);
    expect(lz.length).toBeLessThan(stored.length);
    for (const batch of [stored, lz]) {
      expect(plain(decodeBatch(batch, undefined, { from: 1000, maxRecords: 10 }).records)).toEqual(plain(records.slice(0, 10), 1000));
      expect(plain(decodeBatch(batch, undefined, { from: 1290, maxRecords: 9 }).records)).toEqual(plain(records.slice(290, 299), 1290));
      // A page that reaches the damaged record reports it as the whole decode does, same position.
      const whole = expectQuartzError(() => decodeBatch(batch), ErrorCode.CORRUPT_DATA);
      const paged = expectQuartzError(() => decodeBatch(batch, undefined, { from: 1290, maxRecords: 10 }), ErrorCode.CORRUPT_DATA);
      expect(paged.message).toBe(whole.message);
      expect(paged.details).toEqual(whole.details);
    }
  });

  it('decode from/maxRecords: pages of a batch with gaps in its offsets are what a full decode gives', () => {
    // 60 records of 25 bytes each (one-byte varints, a 20-byte value), offsets 0, 2, 4, ... 118.
    const records = Array.from({ length: 60 }, (_, i) => ({ key: null, value: utf8(`value-${String(i).padStart(14, '0')}`), timestamp: 9000 }));
    const stored = encodeBatch(records, { baseOffset: 500, codec: 'none' });
    for (let i = 0; i < 60; i++) {
      expect(stored[BATCH_HEADER_SIZE + 25 * i]).toBe(i);
      stored[BATCH_HEADER_SIZE + 25 * i] = 2 * i;
    }
    new DataView(stored.buffer).setUint32(12, 118, true); // last offset delta
    recrc(stored);
    const lz = asLz4Batch(stored);
    for (const batch of [stored, lz]) {
      const all = decodeBatch(batch).records;
      expect(all.map((r) => r.offset)).toEqual(Array.from({ length: 60 }, (_, i) => 500 + 2 * i));
      for (let from = 495; from <= 620; from++) {
        for (const max of [1, 4, 10]) {
          const got = decodeBatch(batch, undefined, { from, maxRecords: max }).records;
          expect(plain(got), `${from} ${max}`).toEqual(plain(all.filter((r) => r.offset >= from).slice(0, max)));
        }
      }
    }
  });

  it('decode from/maxRecords: pages are byte-identical to a full decode at every offset, whatever the record sizes', () => {
    const next = (() => {
      let seed = 12345;
      return () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32;
    })();
    const text = (n: number) => utf8('abcdefghij'.repeat(Math.ceil(n / 10)).slice(0, n));
    // Sizes that defeat a page's first guess at how much to decompress: even, growing, one huge
    // record late or early, and random with nulls, empties and headers.
    const shapes: Record<string, (i: number, n: number) => SegmentRecord> = {
      even: (i) => ({ key: utf8(`k${i}`), value: text(90), timestamp: 5000 + i }),
      growing: (i) => ({ key: null, value: text(i * 3), timestamp: 5000 + i }),
      hugeLate: (i, n) => ({ key: utf8(`k${i}`), value: text(i === n - 3 ? 9000 : 20), timestamp: 5000 + i }),
      hugeEarly: (i) => ({ key: utf8(`k${i}`), value: text(i === 2 ? 9000 : 20), timestamp: 5000 + i }),
      mixed: (i) => ({
        key: next() < 0.2 ? null : next() < 0.2 ? new Uint8Array(0) : utf8(`key-${i}`),
        value: next() < 0.1 ? null : next() < 0.1 ? new Uint8Array(0) : text(Math.floor(next() * 400)),
        headers: next() < 0.3 ? [{ key: next() < 0.5 ? 'trace' : 'ünï', value: next() < 0.5 ? null : text(Math.floor(next() * 30)) }] : undefined,
        timestamp: 5000 + Math.floor(next() * 100) - 50,
      }),
    };
    // Decoded between pages, so that what a page did not decompress holds other bytes, as after
    // a read of another batch.
    const other = encodeBatch(Array.from({ length: 200 }, (_, i) => ({ key: null, value: utf8(`other ${i} `.repeat(8)), timestamp: i })), { baseOffset: 0, codec: 'lz4' });
    for (const [name, shape] of Object.entries(shapes)) {
      const n = 120;
      const records = Array.from({ length: n }, (_, i) => shape(i, n));
      for (const codec of ['none', 'lz4'] as const) {
        const batch = encodeBatch(records, { baseOffset: 7000, codec });
        expect(readBatchHeader(batch).codec, name).toBe(codec);
        // Compared as strings: deep equality of thousands of pages of byte arrays took seconds.
        const sig = (recs: readonly DecodedRecord[]) => plain(recs).map((r) => JSON.stringify(r));
        const all = sig(decodeBatch(batch).records);
        for (let from = 7000; from <= 7000 + n; from++) {
          for (const max of [1, 3, 10, n]) {
            decodeBatch(other, undefined, { from: 199, maxRecords: 1 }); // decompressed whole
            const got = decodeBatch(batch, undefined, { from, maxRecords: max }).records;
            expect(sig(got), `${name} ${codec} ${from} ${max}`).toEqual(all.slice(from - 7000, from - 7000 + max));
          }
        }
      }
    }
  });

  it('storedUncompressed tells a batch whose records view the bytes they were decoded from', () => {
    const records = makeRecords(50);
    const none = encodeBatch(records, { baseOffset: 0, codec: 'none' });
    const lz = encodeBatch(records, { baseOffset: 0, codec: 'lz4' });
    expect(readBatchHeader(lz).codec).toBe('lz4');
    expect(storedUncompressed(none)).toBe(true);
    expect(storedUncompressed(lz)).toBe(false);
    const both = new Uint8Array(none.length + lz.length);
    both.set(none);
    both.set(lz, none.length);
    expect(storedUncompressed(both, none.length)).toBe(false);
    expect(decodeBatch(none).records[1]!.value!.buffer).toBe(none.buffer);
    expect(decodeBatch(lz).records[1]!.value!.buffer).not.toBe(lz.buffer);
  });

  it('decode from/maxRecords: pages share slabs without ever overwriting one another; a large page gets its own array', () => {
    const records = makeRecords(300);
    const lz = encodeBatch(records, { baseOffset: 0, codec: 'lz4' });
    // Far more pages than one slab holds, each checked again after all the others were cut.
    const pages = Array.from({ length: 200 }, (_, i) => ({ from: (i * 37) % 290, records: decodeBatch(lz, undefined, { from: (i * 37) % 290, maxRecords: 10 }).records }));
    const slabs = new Set<ArrayBufferLike>();
    for (const { from, records: got } of pages) {
      expect(plain(got)).toEqual(plain(records.slice(from, from + 10), from));
      slabs.add(got[1]!.value!.buffer);
    }
    expect(slabs.size).toBeGreaterThan(1);
    expect(slabs.size).toBeLessThan(pages.length / 4);
    const large = decodeBatch(lz, undefined, { from: 0, maxRecords: 300 }).records;
    expect(plain(large)).toEqual(plain(records, 0));
    // An array of its own: the page's records, here the whole section, never the codec's memory.
    expect(large[1]!.value!.buffer.byteLength).toBeGreaterThan(PAGE_SLAB_PIECE_MAX);
    expect(large[1]!.value!.buffer.byteLength).toBe(readBatchHeader(lz).uncompressedSize);
    for (const r of large) expect(r.value!.buffer).toBe(large[0]!.value!.buffer);
  });

  it('rejects bad input with INVALID_ARGUMENT', () => {
    const ok = { baseOffset: 0, codec: 'none' as const };
    expectQuartzError(() => encodeBatch([], ok), ErrorCode.INVALID_ARGUMENT);
    expectQuartzError(() => encodeBatch([{ key: null, value: null, timestamp: 1.5 }], ok), ErrorCode.INVALID_ARGUMENT);
    expectQuartzError(() => encodeBatch([{ key: null, value: null, timestamp: 2 ** 52 }], ok), ErrorCode.INVALID_ARGUMENT);
    expectQuartzError(() => encodeBatch([{ key: 'k' as unknown as Uint8Array, value: null, timestamp: 1 }], ok), ErrorCode.INVALID_ARGUMENT);
    expectQuartzError(() => encodeBatch([{ key: null, value: null, headers: [{ key: 5 as unknown as string, value: null }], timestamp: 1 }], ok), ErrorCode.INVALID_ARGUMENT);
    expectQuartzError(() => encodeBatch(makeRecords(1), { baseOffset: -1, codec: 'none' }), ErrorCode.INVALID_ARGUMENT);
    expectQuartzError(() => encodeBatch(makeRecords(1), { baseOffset: 0, codec: 'zstd' as 'lz4' }), ErrorCode.INVALID_ARGUMENT);
    expectQuartzError(() => encodeBatch(makeRecords(3), { baseOffset: Number.MAX_SAFE_INTEGER - 1, codec: 'none' }), ErrorCode.INVALID_ARGUMENT);
    expectQuartzError(() => new SegmentWriter({ baseOffset: 1.5 }), ErrorCode.INVALID_ARGUMENT);
    expectQuartzError(() => decodeBatch('x' as unknown as Uint8Array), ErrorCode.INVALID_ARGUMENT);
  });

  it('checks declared sizes before allocating: huge counts and lengths with a valid CRC are CORRUPT_DATA', () => {
    const batch = encodeBatch(makeRecords(3), { baseOffset: 0, codec: 'none' });
    const dv = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, b.byteLength);
    const cases: Array<[string, (b: Uint8Array) => void, string]> = [
      ['record count', (b) => dv(b).setUint32(52, 0xffffffff, true), ErrorCode.CORRUPT_DATA],
      ['zero records', (b) => dv(b).setUint32(52, 0, true), ErrorCode.CORRUPT_DATA],
      ['uncompressed size', (b) => dv(b).setUint32(56, 0xfffffff0, true), ErrorCode.CORRUPT_DATA],
      ['batch length', (b) => dv(b).setUint32(0, 0x7fffffff, true), ErrorCode.CORRUPT_DATA],
      ['codec', (b) => dv(b).setUint16(8, 7, true), ErrorCode.UNSUPPORTED_FORMAT],
      ['offset above 2^53', (b) => dv(b).setUint32(20, 0xffffffff, true), ErrorCode.CORRUPT_DATA],
      ['max timestamp below base', (b) => dv(b).setUint32(32, 0, true), ErrorCode.CORRUPT_DATA],
      ['last offset delta', (b) => dv(b).setUint32(12, 7, true), ErrorCode.CORRUPT_DATA],
      // A key length of 2^35 in the first record (after 1-byte offset and timestamp deltas).
      ['varint key length', (b) => b.set([0x80, 0x80, 0x80, 0x80, 0x80], BATCH_HEADER_SIZE + 2), ErrorCode.CORRUPT_DATA],
    ];
    for (const [name, edit, code] of cases) {
      const b = batch.slice();
      edit(b);
      if (name !== 'batch length') recrc(b);
      const err = expectQuartzError(() => decodeBatch(b), code);
      expect(err.message, name).toMatch(/batch/);
    }
    // An LZ4 batch claiming far more output than its block can expand to.
    const lz = encodeBatch(makeRecords(50), { baseOffset: 0, codec: 'lz4' });
    dv(lz).setUint32(56, 2 ** 30, true);
    recrc(lz);
    expectQuartzError(() => decodeBatch(lz), ErrorCode.CORRUPT_DATA);
    // A damaged LZ4 block with a matching CRC is caught by the decompressor or the record parser.
    const lz2 = encodeBatch(makeRecords(50), { baseOffset: 0, codec: 'lz4' });
    lz2.fill(0xff, BATCH_HEADER_SIZE + 10, BATCH_HEADER_SIZE + 30);
    recrc(lz2);
    expectQuartzError(() => decodeBatch(lz2), ErrorCode.CORRUPT_DATA);
  });
});

describe('reader', () => {
  const batches = [makeRecords(10, 0), makeRecords(1, 10), makeRecords(30, 11), makeRecords(5, 41)];
  const all = batches.flat();

  it('readFrom pages across batches and respects maxRecords', () => {
    const r = SegmentReader.open(buildSegment(batches));
    expect(r.batchCount).toBe(4);
    expect(plain(r.readFrom(105, 10))).toEqual(plain(all.slice(5, 15), 105));
    expect(plain(r.readFrom(145, 100))).toEqual(plain(all.slice(45), 145));
    const paged: DecodedRecord[] = [];
    for (let o = 100; o < 146; o = paged[paged.length - 1]!.offset + 1) paged.push(...r.readFrom(o, 3));
    expect(plain(paged)).toEqual(plain(all, 100));
    expect(r.readFrom(146, 0)).toEqual([]);
    expect(r.readFrom(146, 5)).toEqual([]); // next offset: nothing yet, not an error
    expectQuartzError(() => r.readFrom(99, 1), ErrorCode.OFFSET_OUT_OF_RANGE);
    expectQuartzError(() => r.readFrom(147, 1), ErrorCode.OFFSET_OUT_OF_RANGE);
    expectQuartzError(() => r.readFrom(100, -1), ErrorCode.INVALID_ARGUMENT);
  });

  it('readFrom decodes a run of small batches at once: mixed codecs, every CRC checked, the last batch kept', () => {
    const recs = makeRecords(300, 0);
    const w = new SegmentWriter({ baseOffset: 100, createdAt: 1234 });
    w.appendBatch(encodeBatch(recs.slice(0, 200), { baseOffset: 100, codec: 'lz4' }), { blockBytes: 1024 });
    w.appendBatch(encodeBatch(recs.slice(200, 250), { baseOffset: 300, codec: 'none' }), { blockBytes: 1024 });
    w.appendBatch(encodeBatch(recs.slice(250), { baseOffset: 350, codec: 'lz4' }), { blockBytes: 1024 });
    const seg = w.finish();
    const r = SegmentReader.open(seg);
    expect(r.batchCount).toBeGreaterThan(10);
    expect(plain(r.readFrom(157, 150))).toEqual(plain(recs.slice(57, 207), 157));
    const read = readAll(r);
    expect(plain(read)).toEqual(plain(recs, 100));
    expect(r.readWindow(399, 1)[0]).toBe(read[299]);
    // A flip in any batch of a run fails the read, also past the batch its first record is in.
    for (const at of [120, 260, 320, 390]) {
      const bad = seg.slice();
      const range = r.batchRange(at);
      bad[range.offset + range.length - 3]! ^= 1;
      const err = expectQuartzError(() => SegmentReader.open(bad).readFrom(100, 300), ErrorCode.CHECKSUM_MISMATCH);
      expect(err.message).toContain(`offsets ${range.baseOffset}..`);
    }
  });

  it('readWindow reads within one batch, builds only its records and keeps nothing', () => {
    const r = SegmentReader.open(buildSegment(batches));
    expect(plain(r.readWindow(115, 5))).toEqual(plain(all.slice(15, 20), 115));
    expect(plain(r.readWindow(138, 10))).toEqual(plain(all.slice(38, 41), 138)); // the batch ends at 141
    expect(r.readWindow(146, 5)).toEqual([]);
    expectQuartzError(() => r.readWindow(99, 1), ErrorCode.OFFSET_OUT_OF_RANGE);
    expectQuartzError(() => r.readWindow(100, -1), ErrorCode.INVALID_ARGUMENT);
    // Not kept: the same window twice is built twice. The batch readFrom keeps is served as it is.
    expect(r.readWindow(115, 1)[0]).not.toBe(r.readWindow(115, 1)[0]);
    const kept = r.readFrom(111, 30);
    expect(r.readWindow(115, 2)[0]).toBe(kept[4]);
  });

  it('open with output: LZ4 batches are decoded into arrays the caller hands out, one call per batch decoded', () => {
    const seg = buildSegment(batches);
    const plainReader = SegmentReader.open(seg);
    const lz4Batches = [100, 110, 111, 141].filter((o) => readBatchHeader(seg, plainReader.batchRange(o).offset).codec === 'lz4').length;
    expect(lz4Batches).toBeGreaterThan(1);
    const handed = new Set<ArrayBufferLike>();
    const r = SegmentReader.open(seg, { output: (n) => {
      const b = new Uint8Array(n);
      handed.add(b.buffer);
      return b;
    } });
    const read = readAll(r);
    expect(plain(read)).toEqual(plain(all, 100));
    expect(handed.size).toBe(lz4Batches);
    expect(read.filter((rec) => handed.has(rec.value!.buffer)).length).toBeGreaterThan(0);
    // The last batch is kept: paging through it again asks for nothing more.
    expect(plain(r.readFrom(141, 5))).toEqual(plain(all.slice(41), 141));
    expect(handed.size).toBe(lz4Batches);
    expectQuartzError(() => SegmentReader.open(seg, { output: 'x' as unknown as () => Uint8Array }), ErrorCode.INVALID_ARGUMENT);
  });

  it('findOffsetByTime returns the first offset at or after a time, even with unordered timestamps', () => {
    const ts = [50, 10, 20, 70, 30, 30, 90, 5, 95, 60];
    const recs = ts.map((timestamp) => ({ key: null, value: utf8('x'), timestamp }));
    const seg = buildSegment([recs.slice(0, 3), recs.slice(3, 6), recs.slice(6, 8), recs.slice(8)], 'none', 0);
    const r = SegmentReader.open(seg);
    const expected = (t: number) => {
      const i = ts.findIndex((x) => x >= t);
      return i < 0 ? null : i;
    };
    for (let t = 0; t <= 100; t++) expect(r.findOffsetByTime(t), `t=${t}`).toBe(expected(t));
    expect(r.findOffsetByTime(-Infinity)).toBe(0);
    expect(r.maxTimestamp).toBe(95);
  });

  it('finds a batch through the footer without decoding earlier ones', () => {
    const seg = buildSegment(batches);
    const r0 = SegmentReader.open(seg);
    const third = r0.batchRange(120);
    expect(third.baseOffset).toBe(111);
    // Wreck batches 0 and 1 entirely: reading batch 2 and 3 must still work.
    seg.fill(0xee, SEGMENT_HEADER_SIZE, third.offset);
    const r = SegmentReader.open(seg);
    expect(r.droppedBytes).toBe(0);
    expect(plain(r.readFrom(120, 100))).toEqual(plain(all.slice(20), 120));
    expect(r.findOffsetByTime(all[45]!.timestamp)).toBe(145);
    const err = expectQuartzError(() => r.readFrom(100, 1), ErrorCode.CORRUPT_DATA);
    expect(err.message).toMatch(/segment batch 0/);
  });

  it('reports a bit flip in a batch as CHECKSUM_MISMATCH naming where', () => {
    const seg = buildSegment(batches);
    const range = SegmentReader.open(seg).batchRange(111);
    seg[range.offset + 70]! ^= 4;
    const r = SegmentReader.open(seg);
    const err = expectQuartzError(() => r.readFrom(111, 1), ErrorCode.CHECKSUM_MISMATCH);
    expect(err.message).toContain(`byte ${range.offset}`);
    expect(plain(r.readFrom(100, 11))).toEqual(plain(all.slice(0, 11), 100));
  });

  it('opens from the tail with range reads: trailer → footer → one batch', () => {
    const seg = buildSegment(batches);
    const size = seg.length;
    const trailer = readTrailer(seg.subarray(size - SEGMENT_TRAILER_SIZE), size);
    expect(trailer.tailLength).toBe(36 + 20 * 4 + SEGMENT_TRAILER_SIZE);
    const first = SegmentReader.openTail(seg.subarray(size - SEGMENT_TRAILER_SIZE), { size });
    expect(first.reader).toBeUndefined();
    expect(first.needBytes).toBe(trailer.tailLength);
    const opened = SegmentReader.openTail(seg.subarray(size - first.needBytes!), { size });
    const r = opened.reader!;
    expect([r.baseOffset, r.nextOffset, r.batchCount, r.byteLength, r.footerBytes, r.footerLength]).toEqual([100, 146, 4, size, trailer.tailLength, trailer.footerLength]);
    // A bigger guess works in one read.
    expect(SegmentReader.openTail(seg.subarray(size - 400), { size }).reader!.nextOffset).toBe(146);
    for (const offset of [100, 110, 111, 140, 145]) {
      const range = r.batchRange(offset);
      const got = decodeBatch(seg.subarray(range.offset, range.offset + range.length), range);
      expect(got.baseOffset).toBe(range.baseOffset);
      expect(got.nextOffset).toBe(range.nextOffset);
      expect(got.records.some((x) => x.offset === offset)).toBe(true);
    }
    const wrong = r.batchRange(100);
    expectQuartzError(() => decodeBatch(seg.subarray(wrong.offset, wrong.offset + wrong.length), r.batchRange(140)), ErrorCode.CORRUPT_DATA);
    const byTime = r.batchRangeByTime(all[30]!.timestamp)!;
    expect(byTime.baseOffset).toBe(111);
    expect(r.batchRangeByTime(Number.MAX_SAFE_INTEGER)).toBeNull();
    expectQuartzError(() => r.readFrom(100, 1), ErrorCode.INVALID_ARGUMENT);
    expectQuartzError(() => r.batchRange(146), ErrorCode.OFFSET_OUT_OF_RANGE);
    // A damaged footer is an error from the tail (no recovery without the batches).
    const bad = seg.slice();
    bad[size - trailer.tailLength + 40]! ^= 1;
    expectQuartzError(() => SegmentReader.openTail(bad.subarray(size - trailer.tailLength), { size }), ErrorCode.CHECKSUM_MISMATCH);
    expectQuartzError(() => SegmentReader.openTail(seg.subarray(size - 100), { size: size + 1 }), ErrorCode.CORRUPT_DATA);
    expectQuartzError(() => SegmentReader.openTail(seg, { size: size - 1 }), ErrorCode.INVALID_ARGUMENT);
    expectQuartzError(() => readTrailer(seg, Number.NaN), ErrorCode.INVALID_ARGUMENT);
  });

  it('rejects wrong magic, newer versions and unknown flags', () => {
    const seg = buildSegment([makeRecords(3)]);
    const wrongMagic = seg.slice();
    wrongMagic[0] = 0x58;
    expectQuartzError(() => SegmentReader.open(wrongMagic), ErrorCode.UNSUPPORTED_FORMAT);
    for (const [at, value] of [[4, 2], [6, 1]] as const) {
      const b = seg.slice();
      b[at] = value;
      new DataView(b.buffer).setUint32(28, crc32c(b.subarray(0, 28)), true);
      expectQuartzError(() => SegmentReader.open(b), ErrorCode.UNSUPPORTED_FORMAT);
    }
    const newerTrailer = seg.slice();
    const t = newerTrailer.length - SEGMENT_TRAILER_SIZE;
    newerTrailer[t + 8] = 2;
    new DataView(newerTrailer.buffer).setUint32(t + 12, crc32c(newerTrailer.subarray(t, t + 12)), true);
    expectQuartzError(() => SegmentReader.openTail(newerTrailer, { size: newerTrailer.length }), ErrorCode.UNSUPPORTED_FORMAT);
    expectQuartzError(() => SegmentReader.open(seg.subarray(0, 10)), ErrorCode.CORRUPT_DATA);
  });
});

describe('recovery', () => {
  const batches = [makeRecords(3, 0), makeRecords(1, 3), makeRecords(4, 4)];
  const all = batches.flat();
  const seg = buildSegment(batches, 'lz4', 0);
  const full = SegmentReader.open(seg);
  const batchEnds: number[] = [];
  for (let off = 0; off < full.nextOffset; ) {
    const range = full.batchRange(off);
    batchEnds.push(range.offset + range.length);
    off = range.nextOffset;
  }
  const nextOffsets = [3, 4, 8];

  it('keeps every whole batch at every cut point of a torn tail and reports the dropped bytes', () => {
    for (let cut = 0; cut <= seg.length; cut++) {
      const torn = seg.slice(0, cut);
      if (cut < SEGMENT_HEADER_SIZE) {
        expectQuartzError(() => SegmentReader.open(torn), ErrorCode.CORRUPT_DATA);
        continue;
      }
      const r = SegmentReader.open(torn);
      if (cut === seg.length) {
        expect(r.droppedBytes).toBe(0);
        expect(plain(readAll(r))).toEqual(plain(all, 0));
        continue;
      }
      let kept = 0;
      while (kept < batchEnds.length && batchEnds[kept]! <= cut) kept++;
      const goodEnd = kept === 0 ? SEGMENT_HEADER_SIZE : batchEnds[kept - 1]!;
      const next = kept === 0 ? 0 : nextOffsets[kept - 1]!;
      expect(r.batchCount, `cut ${cut}`).toBe(kept);
      expect(r.droppedBytes, `cut ${cut}`).toBe(cut - goodEnd);
      expect(r.nextOffset).toBe(next);
      expect(plain(readAll(r))).toEqual(plain(all.slice(0, next), 0));
    }
  });

  it('detects every single bit flip of a small segment, or it does no harm', () => {
    const expected = plain(all, 0);
    let detected = 0;
    for (let bit = 0; bit < seg.length * 8; bit++) {
      const b = seg.slice();
      b[bit >> 3]! ^= 1 << (bit & 7);
      try {
        const r = SegmentReader.open(b);
        const got = plain(readAll(r));
        // Harmless: the trailer's closing magic is outside every CRC; recovery then reads every batch.
        expect(got, `bit ${bit}`).toEqual(expected);
        expect(r.findOffsetByTime(all[5]!.timestamp)).toBe(5);
      } catch (err) {
        if (!(err instanceof QuartzError)) throw err;
        expect([ErrorCode.CORRUPT_DATA, ErrorCode.CHECKSUM_MISMATCH, ErrorCode.UNSUPPORTED_FORMAT]).toContain(err.code);
        detected++;
      }
    }
    expect(detected).toBeGreaterThan(seg.length * 8 * 0.8);
  });
});
