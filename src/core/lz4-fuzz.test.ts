/**
 * Mutation fuzzing of the LZ4 block and frame decoders: 10,000 seeded mutations (bit flips,
 * truncations, insertions, deletions, size-field edits) of valid blocks and frames. Each must
 * end in a typed QuartzError or a result, never a crash, trap or hang; checksummed frames that
 * still decode must decode to the original; and the raw decoder must never write past the
 * capacity it was given (checked with guard bytes after the output).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { codecs, init, isQuartzError, lz4, type QuartzExports } from '../node/core.js';
import { jsonLogs, randomBytes, rng, text } from '../../bench/lz4/corpus.js';
import { lz4Cli } from '../../tests/fixtures/lz4-cli.js';

interface RawLz4 extends QuartzExports {
  lz4_decompress_block(src: number, srcLen: number, dst: number, dstCap: number): number;
  lz4_decompress_prefix(src: number, srcLen: number, dst: number, dstCap: number, want: number): number;
}

const ITERATIONS = 10_000;
const GUARD = 64;

interface Sample {
  kind: 'block' | 'frame';
  original: Uint8Array;
  packed: Uint8Array;
  /** A frame with a content checksum: any successful decode must be the original. */
  checked: boolean;
}

let samples: Sample[] = [];

beforeAll(async () => {
  await init();
  const datas = [text(5000, 11), jsonLogs(20_000, 12), randomBytes(3000, 13), new Uint8Array(4000), text(40, 14), jsonLogs(150_000, 15)];
  samples = [];
  for (const d of datas) {
    samples.push({ kind: 'block', original: d, packed: lz4.compressBlock(d), checked: false });
    samples.push({ kind: 'frame', original: d, packed: lz4.compressFrame(d, { blockChecksum: true, contentSize: true }), checked: true });
    samples.push({ kind: 'frame', original: d, packed: lz4.compressFrame(d, { blockIndependence: false, contentChecksum: false }), checked: false });
  }
  samples.push({ kind: 'frame', original: datas[5]!, packed: lz4Cli(['-1', '-B4', '-BD', '-BX', '--content-size'], datas[5]!), checked: true });
});

function mutate(src: Uint8Array, rand: () => number, kind: Sample['kind']): Uint8Array {
  const pos = (n: number) => Math.floor(rand() * n);
  const choice = pos(6);
  const b = src.slice();
  switch (choice) {
    case 0: {
      // 1-4 bit flips
      const flips = 1 + pos(4);
      for (let i = 0; i < flips && b.length; i++) b[pos(b.length)]! ^= 1 << pos(8);
      return b;
    }
    case 1:
      return b.subarray(0, pos(b.length));
    case 2: {
      // insert 1-8 random bytes
      const at = pos(b.length + 1);
      const extra = Uint8Array.from({ length: 1 + pos(8) }, () => pos(256));
      const out = new Uint8Array(b.length + extra.length);
      out.set(b.subarray(0, at));
      out.set(extra, at);
      out.set(b.subarray(at), at + extra.length);
      return out;
    }
    case 3: {
      // delete 1-8 bytes
      const at = pos(b.length);
      const n = 1 + pos(8);
      const tail = b.subarray(Math.min(b.length, at + n));
      const out = new Uint8Array(at + tail.length);
      out.set(b.subarray(0, at));
      out.set(tail, at);
      return out;
    }
    case 4: {
      // size-field edits: a frame's block size / content size words, or a block's length bytes
      if (kind === 'frame' && b.length > 12) {
        const view = new DataView(b.buffer, b.byteOffset, b.length);
        const targets = [6, 7, 10, 13, 15, 19, 23];
        const at = Math.min(targets[pos(targets.length)]!, b.length - 4);
        const values = [0, 1, 0x7fffffff, 0xffffffff, 0x80000000 | pos(1 << 20), pos(1 << 24), 0x10000, 0x400001];
        view.setUint32(at, values[pos(values.length)]! >>> 0, true);
      } else if (b.length) {
        b[pos(b.length)] = [0x00, 0xff, 0xf0, 0x0f, 0x1f, 0xfe][pos(6)]!;
      }
      return b;
    }
    default: {
      // overwrite a run with one byte (long length runs, zero offsets)
      const at = pos(b.length);
      b.fill([0, 0xff][pos(2)]!, at, at + 1 + pos(16));
      return b;
    }
  }
}

describe('lz4 fuzz', () => {
  it(`survives ${ITERATIONS} mutations of valid blocks and frames`, () => {
    const rand = rng(20260101);
    const wasm = codecs<RawLz4>();
    const outcomes = { ok: 0, error: 0 };
    for (let i = 0; i < ITERATIONS; i++) {
      const sample = samples[Math.floor(rand() * samples.length)]!;
      const bad = mutate(sample.packed, rand, sample.kind);
      let result: Uint8Array | undefined;
      try {
        if (sample.kind === 'block') {
          const max = rand() < 0.5 ? sample.original.length : sample.original.length * 3 + 100;
          result = lz4.decompressBlock(bad, max);
          expect(result.length).toBeLessThanOrEqual(max);
        } else {
          result = lz4.decompressFrame(bad, { maxOutputBytes: 4 << 20 });
          if (sample.checked) expect(Buffer.compare(result, sample.original), `iteration ${i}: checksummed frame decoded to other bytes`).toBe(0);
        }
        outcomes.ok++;
      } catch (err) {
        if (!isQuartzError(err)) throw new Error(`iteration ${i}: ${sample.kind} mutation threw a non-QuartzError: ${String(err)}`, { cause: err });
        expect(err.message).toMatch(/^lz4 (block|frame): /);
        outcomes.error++;
      }
      if (sample.kind === 'block' && i % 4 === 0) {
        // Raw call with guard bytes after the output: nothing may be written past dstCap.
        const cap = Math.floor(rand() * (sample.original.length + 32));
        const src = wasm.alloc(bad.length || 1);
        const dst = wasm.alloc(cap + GUARD);
        new Uint8Array(wasm.memory.buffer, src, bad.length).set(bad);
        new Uint8Array(wasm.memory.buffer, dst + cap, GUARD).fill(0xa5);
        const n = wasm.lz4_decompress_block(src, bad.length, dst, cap);
        const guard = new Uint8Array(wasm.memory.buffer, dst + cap, GUARD);
        expect(guard.every((x) => x === 0xa5), `iteration ${i}: wrote past dstCap ${cap} (returned ${n})`).toBe(true);
        expect(n).toBeLessThanOrEqual(cap);
        wasm.free(src);
        wasm.free(dst);
      }
    }
    // Both outcomes occur: the mutations are neither all harmless nor all fatal.
    expect(outcomes.ok).toBeGreaterThan(100);
    expect(outcomes.error).toBeGreaterThan(1000);
    // The instance is still sound afterwards.
    const d = jsonLogs(50_000, 99);
    expect(Buffer.compare(lz4.decompressFrame(lz4.compressFrame(d)), d)).toBe(0);
  }, 60_000);

  it('a prefix decode of valid and mutated blocks writes what a whole decode writes, up to want or the end, never past dstCap', () => {
    const rand = rng(20261206);
    const wasm = codecs<RawLz4>();
    const blocks = samples.filter((x) => x.kind === 'block');
    let stopped = 0;
    for (let i = 0; i < 3000; i++) {
      const sample = blocks[Math.floor(rand() * blocks.length)]!;
      const packed = i % 3 === 0 ? sample.packed : mutate(sample.packed, rand, 'block');
      const cap = rand() < 0.7 ? sample.original.length : Math.floor(rand() * (sample.original.length + 32));
      const want = Math.floor(rand() * (cap + 8));
      const src = wasm.alloc(packed.length || 1);
      const whole = wasm.alloc(cap + GUARD);
      const part = wasm.alloc(cap + GUARD);
      new Uint8Array(wasm.memory.buffer, src, packed.length).set(packed);
      new Uint8Array(wasm.memory.buffer, part + cap, GUARD).fill(0xa5);
      const n = wasm.lz4_decompress_block(src, packed.length, whole, cap);
      const p = wasm.lz4_decompress_prefix(src, packed.length, part, cap, want);
      const mem = new Uint8Array(wasm.memory.buffer);
      expect(mem.subarray(part + cap, part + cap + GUARD).every((x) => x === 0xa5), `${i}: wrote past dstCap ${cap} (returned ${p})`).toBe(true);
      expect(p).toBeLessThanOrEqual(cap);
      if (want >= cap) expect(p, `${i}: want ${want} >= cap ${cap} decodes whole`).toBe(n);
      else if (p >= 0) {
        // Stopped at or after want, or at the block's end; the same bytes as the whole decode.
        expect(p >= want || p === n || n < 0, `${i}: stopped at ${p} of want ${want} (whole ${n})`).toBe(true);
        if (p < n) stopped++;
        // The whole decode takes the same steps up to there, also when it fails later.
        const same = Buffer.compare(mem.subarray(part, part + p), mem.subarray(whole, whole + p)) === 0;
        expect(same, `${i}: prefix of ${p} bytes differs from the whole decode's (${n})`).toBe(true);
        if (i % 3 === 0) expect(Buffer.compare(mem.subarray(part, part + p), sample.original.subarray(0, p))).toBe(0);
      } else {
        // An error in the prefix is an error of the whole block too.
        expect(n, `${i}: prefix failed with ${p}, whole decode gave ${n}`).toBeLessThan(0);
      }
      wasm.free(src);
      wasm.free(whole);
      wasm.free(part);
    }
    expect(stopped).toBeGreaterThan(500);
  });
});
