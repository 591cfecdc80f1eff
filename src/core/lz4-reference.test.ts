/**
 * The LZ4 block decoder against a plain byte-by-byte reference, on generated blocks rather than a
 * compressor's output: sequences shaped for the fast loop's edges (literal runs of 0-14, 15-32 and
 * longer, matches at offsets 1-15 right after them, last runs ending just inside or outside the
 * fast loop's input margin), some truncated or damaged, decoded with exact, short and generous
 * output capacities. The same answers (bytes, or the same kind of error) are expected.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { codecs, init, isQuartzError, lz4, type QuartzExports } from '../node/core.js';
import { rng } from '../../bench/lz4/corpus.js';

interface RawLz4 extends QuartzExports {
  lz4_decompress_block(src: number, srcLen: number, dst: number, dstCap: number): number;
  lz4_decompress_prefix(src: number, srcLen: number, dst: number, dstCap: number, want: number): number;
}

beforeAll(async () => {
  await init();
});

/** What the block format says `src` decodes to within `cap` bytes, read one field at a time. */
function reference(src: Uint8Array, cap: number): { bytes: Uint8Array; ends: number[] } | 'corrupt' | 'too-small' {
  const out: number[] = [];
  // Where each sequence's output ends: a prefix decode stops at the first one at or past `want`.
  const ends: number[] = [];
  const n = src.length;
  let ip = 0;
  const length = (base: number): number => {
    let len = base;
    if (base !== 15) return len;
    for (;;) {
      if (ip >= n) return -1;
      const s = src[ip++]!;
      len += s;
      if (s !== 255) return len;
    }
  };
  if (n === 0) return 'corrupt';
  for (;;) {
    if (ip >= n) return 'corrupt';
    const token = src[ip++]!;
    const ll = length(token >>> 4);
    if (ll < 0 || ll > n - ip) return 'corrupt';
    if (ll > cap - out.length) return 'too-small';
    for (let i = 0; i < ll; i++) out.push(src[ip++]!);
    if (ip === n) {
      ends.push(out.length);
      return { bytes: Uint8Array.from(out), ends };
    }
    if (n - ip < 2) return 'corrupt';
    const off = src[ip]! | (src[ip + 1]! << 8);
    ip += 2;
    if (off === 0 || off > out.length) return 'corrupt';
    const ml = length(token & 15);
    if (ml < 0) return 'corrupt';
    if (ml + 4 > cap - out.length) return 'too-small';
    for (let i = 0; i < ml + 4; i++) out.push(out[out.length - off]!);
    ends.push(out.length);
  }
}

function lengthBytes(n: number): number[] {
  const out: number[] = [];
  for (; n >= 255; n -= 255) out.push(255);
  out.push(n);
  return out;
}

/** A block of `sequences` literal/match pairs and a last literal run, with its decoded size. */
function generated(rand: () => number): { block: Uint8Array; size: number } {
  const pick = (n: number) => Math.floor(rand() * n);
  const bytes: number[] = [];
  let size = 0;
  const sequences = pick(10);
  for (let s = 0; s <= sequences; s++) {
    const last = s === sequences;
    const r = rand();
    // Short runs, the fast loop's 15-32 runs, just past them, and long ones (two length bytes too).
    const ll = r < 0.3 ? pick(15) : r < 0.65 ? 15 + pick(18) : r < 0.85 ? 33 + pick(40) : pick(600);
    const ml = last ? 0 : rand() < 0.5 ? 4 + pick(15) : 19 + pick(rand() < 0.8 ? 30 : 400);
    // The last token's match nibble means nothing; writers leave it 0, a hostile one need not.
    const matchNibble = last ? (rand() < 0.2 ? pick(16) : 0) : Math.min(ml - 4, 15);
    bytes.push((Math.min(ll, 15) << 4) | matchNibble);
    if (ll >= 15) bytes.push(...lengthBytes(ll - 15));
    for (let i = 0; i < ll; i++) bytes.push(pick(256));
    size += ll;
    if (last) break;
    // Overlapping offsets 1-15 half the time; now and then one before the output's start, or 0.
    let off = rand() < 0.5 ? 1 + pick(15) : 1 + pick(Math.max(1, size));
    if (rand() < 0.03) off = rand() < 0.5 ? 0 : size + 1 + pick(4);
    bytes.push(off & 255, off >>> 8);
    if (ml - 4 >= 15) bytes.push(...lengthBytes(ml - 19));
    size += ml;
  }
  let block = Uint8Array.from(bytes);
  const damage = rand();
  if (damage < 0.1) block = block.subarray(0, pick(block.length + 1));
  else if (damage < 0.2) block[pick(block.length)] = pick(256);
  return { block, size };
}

function outcome(fn: () => Uint8Array): Uint8Array | string {
  try {
    return fn();
  } catch (err) {
    if (!isQuartzError(err)) throw err;
    return err.code;
  }
}

describe('lz4 block decoder against a reference', () => {
  it('a last run of 15-80 literals decodes whatever the output room (a run just past the fast loop once read an offset beyond the input)', () => {
    const rand = rng(7);
    for (let run = 15; run <= 80; run++) {
      // 200 equal bytes (one match), then `run` random bytes that the compressor leaves as literals.
      const data = Uint8Array.from([...new Array<number>(200).fill(97), ...Array.from({ length: run }, () => Math.floor(rand() * 256))]);
      const block = lz4.compressBlock(data);
      for (const max of [data.length, data.length + 1, data.length + 200, 65536]) {
        expect(Buffer.compare(lz4.decompressBlock(block, max), data), `run ${run}, max ${max}`).toBe(0);
      }
      // A frame's last block is decoded into the room of a whole block.
      expect(Buffer.compare(lz4.decompressFrame(lz4.compressFrame(data)), data), `frame, run ${run}`).toBe(0);
    }
  });

  it('generated blocks decode to what the reference reads, or fail as it does, at exact, short and generous capacities', () => {
    const rand = rng(20261206);
    const wasm = codecs<RawLz4>();
    const seen = new Map<string, number>();
    for (let i = 0; i < 6000; i++) {
      const { block, size } = generated(rand);
      for (const cap of [size, size - 1, size + 1, size + 100, Math.floor(rand() * (size + 1))]) {
        if (cap < 0) continue;
        const want = reference(block, cap);
        const got = outcome(() => lz4.decompressBlock(block, cap));
        const kind = typeof want === 'string' ? want : 'ok';
        seen.set(kind, (seen.get(kind) ?? 0) + 1);
        const label = `block ${i} (${Buffer.from(block).toString('hex')}), cap ${cap}`;
        if (typeof want === 'string') expect(got, label).toBe(want === 'corrupt' ? 'corrupt_data' : 'too_large');
        else {
          expect(typeof got, label).not.toBe('string');
          expect(Buffer.compare(got as Uint8Array, want.bytes), label).toBe(0);
        }
        if (typeof want === 'string' || i % 4 !== 0) continue;
        // The same block as a pooled Node Buffer (a view at an offset into a shared pool), into a
        // pooled Buffer of exactly `cap` bytes and into one a byte too small.
        const pooled = Buffer.from(block);
        const into = Buffer.from(new Uint8Array(cap));
        expect(Buffer.compare(lz4.decompressBlock(pooled, { into }), want.bytes), `${label}, pooled into`).toBe(0);
        expect(Buffer.compare(into.subarray(0, want.bytes.length), want.bytes), label).toBe(0);
        if (want.bytes.length > 0) expect(outcome(() => lz4.decompressBlock(pooled, { into: into.subarray(0, want.bytes.length - 1) })), label).toBe('too_large');
        // An owned result is the caller's own: not a view of the input (a Buffer's slice is one).
        const owned = lz4.decompressBlock(pooled, cap);
        pooled.fill(0);
        expect(Buffer.compare(owned, want.bytes), `${label}, owned from a Buffer`).toBe(0);
        // A prefix decode stops at the end of the first sequence that reaches `want`, with the same bytes.
        const src = wasm.alloc(block.length);
        const dst = wasm.alloc(cap + 1);
        new Uint8Array(wasm.memory.buffer, src, block.length).set(block);
        for (const wanted of [0, 1, cap - 1, cap, Math.floor(rand() * cap)]) {
          if (wanted < 0) continue;
          const n = wasm.lz4_decompress_prefix(src, block.length, dst, cap, wanted);
          const expected = wanted >= cap ? want.bytes.length : wanted === 0 ? 0 : (want.ends.find((end) => end >= wanted) ?? want.bytes.length);
          expect(n, `${label}, want ${wanted}`).toBe(expected);
          expect(Buffer.compare(new Uint8Array(wasm.memory.buffer, dst, n), want.bytes.subarray(0, n)), `${label}, want ${wanted}`).toBe(0);
        }
        wasm.free(src);
        wasm.free(dst);
      }
    }
    // All three outcomes occur often.
    for (const kind of ['ok', 'corrupt', 'too-small']) expect(seen.get(kind) ?? 0, kind).toBeGreaterThan(2000);
  });
});
