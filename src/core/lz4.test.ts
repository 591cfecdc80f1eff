import { beforeAll, describe, expect, it } from 'vitest';
import { codecs, init, lz4, isQuartzError, ErrorCode, QuartzError, type CompressFrameOptions, type QuartzExports } from '../node/core.js';
import { jsonLogs, randomBytes, text } from '../../bench/lz4/corpus.js';
import { lz4Cli } from '../../tests/fixtures/lz4-cli.js';
import { compressSync as napiCompress, uncompressSync as napiUncompress } from 'lz4-napi';
import { xxh32Reference } from './xxh32-testing.js';

beforeAll(async () => {
  await init();
});

const MiB = 1 << 20;

interface RawLz4 extends QuartzExports {
  lz4_decompress_block(src: number, srcLen: number, dst: number, dstCap: number): number;
}
interface RawCompress extends QuartzExports {
  lz4_compress_bound(srcLen: number): number;
  lz4_compress_block(src: number, srcLen: number, dst: number, dstCap: number): number;
}
const tiny = Array.from({ length: 17 }, (_, n) => ({ name: `${n} bytes`, data: text(n, 100 + n) }));
const inputs: { name: string; data: Uint8Array }[] = [
  { name: 'text', data: text(150_000) },
  { name: 'json logs', data: jsonLogs(300_000) },
  { name: 'random', data: randomBytes(200_000) },
  { name: 'zeros', data: new Uint8Array(300_000) },
  { name: 'one repeated byte pattern', data: new TextEncoder().encode('abcdefg'.repeat(20_000)) },
  ...tiny,
];
const big = { name: 'json logs over 4 MiB', data: jsonLogs(4 * MiB + 12_345, 9) };
const bigRandom = { name: 'random over 4 MiB', data: randomBytes(4 * MiB + 777, 10) };

function expectError(fn: () => unknown, code: string, message?: RegExp): QuartzError {
  try {
    fn();
  } catch (err) {
    expect(isQuartzError(err), String(err)).toBe(true);
    const q = err as QuartzError;
    expect(q.code).toBe(code);
    if (message) expect(q.message).toMatch(message);
    return q;
  }
  throw new Error('expected a QuartzError');
}

describe('lz4 block', () => {
  it.each([...inputs, big, bigRandom])('round-trips $name', ({ data }) => {
    const packed = lz4.compressBlock(data);
    expectBytes(lz4.decompressBlock(packed, data.length), data);
    // An upper bound works as well as the exact size.
    expectBytes(lz4.decompressBlock(packed, data.length + 1000), data);
  });

  it.each([...inputs, big])('interoperates with lz4-napi (an independent implementation) both ways: $name', ({ data }) => {
    // lz4-napi's block API prefixes the raw block with its decoded size (u32 LE).
    const ours = lz4.compressBlock(data);
    const prefixed = new Uint8Array(4 + ours.length);
    new DataView(prefixed.buffer).setUint32(0, data.length, true);
    prefixed.set(ours, 4);
    expectBytes(napiUncompress(prefixed), data);
    const theirs = napiCompress(Buffer.from(data));
    expectBytes(lz4.decompressBlock(theirs.subarray(4), data.length), data);
  });

  it('compresses repetitive data and expands random data by at most the bound', () => {
    expect(lz4.compressBlock(new Uint8Array(300_000)).length).toBeLessThan(1300);
    const r = randomBytes(100_000);
    expect(lz4.compressBlock(r).length).toBeLessThanOrEqual(r.length + Math.floor(r.length / 255) + 16);
  });

  it('takes no match shorter than 6 bytes: 5-byte repeats stay literals', () => {
    // Every chunk repeats "vwxyz" but each 6-byte window holds the chunk's own index bytes.
    const data = new Uint8Array(171 * 7);
    for (let i = 0; i < 171; i++) data.set([i, 0x76, 0x77, 0x78, 0x79, 0x7a, 255 - i], i * 7);
    // One literal run: token, (1197 - 15) as 255-continued length bytes, the bytes themselves.
    expect(lz4.compressBlock(data).length).toBe(1 + 5 + data.length);
  });

  it('takes a 6-byte repeat as a match', () => {
    // The key twice, 7 apart, between bytes that differ so the match cannot grow either way.
    const key = [0x61, 0x62, 0x63, 0x64, 0x65, 0x66];
    const data = new Uint8Array([0x30, ...key, 0x31, ...key, 0x32, ...randomBytes(20, 41)]);
    const packed = lz4.compressBlock(data);
    // [token, 8 literals, offset 7, a 6-byte match] then [token, 1 length byte, 21 literals].
    expect(packed.length).toBe(1 + 8 + 2 + 1 + 1 + 21);
    expect(packed[0]).toBe((8 << 4) | (6 - 4));
    expect(packed[9]! | (packed[10]! << 8)).toBe(7);
    expectBytes(lz4.decompressBlock(packed, data.length), data);
  });

  it('extends a match backwards to where the repeat starts, also by more than 8 bytes', () => {
    // A repeat of the block's first 300 bytes after n random ones: the search reaches it with a
    // step grown to ~12, lands up to 11 bytes in, and must extend back to its start.
    const head = randomBytes(300, 51);
    for (let n = 5000; n < 5016; n++) {
      const data = new Uint8Array([...head, ...randomBytes(n, n), ...head]);
      const packed = lz4.compressBlock(data);
      const [first] = sequencesOf(packed);
      expect(first).toEqual({ literals: 300 + n, offset: 300 + n, matchLength: 300 - 5 });
      expectBytes(lz4.decompressBlock(packed, data.length), data);
    }
  });

  it('never extends a match backwards past the start of the block, whatever bytes lie before it', () => {
    const wasm = codecs<RawCompress>();
    // The 16 bytes before the block equal the 16 before the repeat of its first 300.
    const head = randomBytes(300, 52);
    const gap = randomBytes(2000, 53);
    const data = new Uint8Array([...head, ...gap, ...head]);
    const buffer = wasm.alloc(16 + data.length);
    const src = buffer + 16;
    const cap = wasm.lz4_compress_bound(data.length);
    const dst = wasm.alloc(cap);
    new Uint8Array(wasm.memory.buffer, buffer, 16).set(gap.subarray(gap.length - 16));
    new Uint8Array(wasm.memory.buffer, src, data.length).set(data);
    const n = wasm.lz4_compress_block(src, data.length, dst, cap);
    const packed = new Uint8Array(wasm.memory.buffer, dst, n).slice();
    wasm.free(buffer);
    wasm.free(dst);
    expect(sequencesOf(packed)[0]).toEqual({ literals: 2300, offset: 2300, matchLength: 300 - 5 });
    expectBytes(lz4.decompressBlock(packed, data.length), data);
  });

  it('matches at most 64 KB back in blocks above 64 KB: a 65535-byte period is found, a 65536-byte one is not', () => {
    for (const period of [65535, 65536]) {
      const unit = randomBytes(period, period);
      const data = new Uint8Array(3 * period + 1000);
      for (let at = 0; at < data.length; at += period) data.set(unit.subarray(0, Math.min(period, data.length - at)), at);
      const packed = lz4.compressBlock(data);
      expectBytes(lz4.decompressBlock(packed, data.length), data);
      expectBytes(lz4Cli(['-d'], lz4.compressFrame(data, { blockSize: '4M' })), data);
      if (period === 65535) expect(packed.length).toBeLessThan(period + 1000);
      else expect(packed.length).toBeGreaterThan(data.length);
    }
  });

  it('gives small blocks a table of their own size: correct after a large block, and as small as lz4-napi makes them', () => {
    let ours = 0;
    let theirs = 0;
    for (let size = 13; size <= 20_000; size = Math.ceil(size * 1.3)) {
      // A 64 KB block fills the whole table first: none of its positions may leak into the next.
      lz4.compressBlock(jsonLogs(65_000, size));
      const data = jsonLogs(size, size + 1);
      const packed = lz4.compressBlock(data);
      expectBytes(lz4.decompressBlock(packed, data.length), data);
      ours += packed.length;
      theirs += napiCompress(Buffer.from(data)).length - 4;
    }
    expect(ours).toBeLessThanOrEqual(theirs);
  });

  it('compresses into any capacity: the same block when it fits, else an error with nothing written past it', () => {
    const wasm = codecs<RawCompress>();
    const GUARD = 64;
    for (const data of [jsonLogs(65_536, 31), randomBytes(65_536, 32), text(65_000, 33), jsonLogs(70_000, 34), jsonLogs(3000, 35)]) {
      const bound = wasm.lz4_compress_bound(data.length);
      const whole = lz4.compressBlock(data);
      const n = whole.length;
      for (const cap of [bound + 100, bound, bound - 1, n + 16, n + 1, n, n - 1, n - 17, n >> 1, 0]) {
        const src = wasm.alloc(data.length);
        const dst = wasm.alloc(cap + GUARD);
        new Uint8Array(wasm.memory.buffer, src, data.length).set(data);
        new Uint8Array(wasm.memory.buffer, dst + cap, GUARD).fill(0xa5);
        const got = wasm.lz4_compress_block(src, data.length, dst, cap);
        const memory = new Uint8Array(wasm.memory.buffer);
        expect(memory.subarray(dst + cap, dst + cap + GUARD).every((x) => x === 0xa5), `cap ${cap}: wrote past it`).toBe(true);
        if (cap >= n) expectBytes(memory.slice(dst, dst + got), whole);
        else expect(got, `cap ${cap} < ${n}`).toBe(-2);
        wasm.free(src);
        wasm.free(dst);
      }
    }
  });

  it('compresses JSON logs and text at least as well as lz4 -1', () => {
    for (const data of [jsonLogs(MiB, 21), text(MiB, 22)]) {
      expect(lz4.compressFrame(data).length).toBeLessThanOrEqual(lz4Cli(['-1', '-B4'], data).length);
    }
  });

  it('round-trips with acceleration and trades ratio for it', () => {
    const data = jsonLogs(500_000);
    const fast = lz4.compressBlock(data, { acceleration: 8 });
    expectBytes(lz4.decompressBlock(fast, data.length), data);
    expect(fast.length).toBeGreaterThan(lz4.compressBlock(data).length);
  });

  it('decodes a hand-written block with overlapping matches of every short offset', () => {
    for (let off = 1; off <= 20; off++) {
      // literals "0123456789ABCDEFGHIJ"[0..off), then a match of 40 at `off`, then 5 literals.
      const lits = new TextEncoder().encode('0123456789ABCDEFGHIJ'.slice(0, off));
      const block = [(Math.min(off, 15) << 4) | 15];
      if (off >= 15) block.push(off - 15);
      block.push(...lits, off, 0, 40 - 4 - 15, 0x50, ...new TextEncoder().encode('vwxyz'));
      const out = lz4.decompressBlock(new Uint8Array(block), 1000);
      const expected = new Uint8Array(off + 40 + 5);
      for (let i = 0; i < off + 40; i++) expected[i] = lits[i % off]!;
      expected.set(new TextEncoder().encode('vwxyz'), off + 40);
      expectBytes(out, expected);
    }
  });

  it('decodes matches of 4 to 50 bytes at offsets from 16 up, where the fast loop copies them whole', () => {
    // 64 distinct literals, then one match per (length, offset) with no literals, then 40
    // literals to end the block: every match lies well inside the fast loop's bounds.
    const block: number[] = [0xf0, 64 - 15];
    const expected: number[] = [];
    for (let i = 0; i < 64; i++) expected.push((i * 37 + 11) & 255);
    block.push(...expected, 64, 0); // and a 4-byte match of the first literals
    expected.push(...expected.slice(0, 4));
    for (const off of [16, 17, 31, 32, 47, 48, 64]) {
      // Up to 18 bytes the token holds the length and the byte after the offset is the next
      // token, which must not count: the fast loop reads it whatever the token says.
      for (let ml = 4; ml <= 50; ml++) {
        if (ml < 19) block.push(ml - 4, off, 0);
        else block.push(0x0f, off, 0, ml - 19);
        for (let i = 0; i < ml; i++) expected.push(expected[expected.length - off]!);
      }
    }
    const tail = Array.from({ length: 40 }, (_, i) => (i * 7) & 255);
    block.push(0xf0, 40 - 15, ...tail);
    expected.push(...tail);
    expectBytes(lz4.decompressBlock(new Uint8Array(block), expected.length), new Uint8Array(expected));
  });

  it('decodes literal runs of 15 to 40 bytes and the matches after them at every distance from the end, writing nothing past the output', () => {
    // Runs of 15..32 literals (one length byte) take a path of their own in the fast loop, 33
    // and up the general one. Each run is followed by a match of 19 or 48 bytes, which the fast
    // loop copies as 48 (the longest it copies whole). The last literals' length moves those
    // sequences across the fast loop's input and output bounds one byte at a time, and the
    // capacity is exactly the output, so a wild copy past the bound would hit the guard bytes.
    const wasm = codecs<RawLz4>();
    const GUARD = 96;
    const byte = (i: number) => (i * 131 + 7) & 255;
    for (let ll = 15; ll <= 40; ll++) {
      for (const ml of [19, 48]) {
        for (let last = 5; last <= 130; last++) {
          // 20 literals and a 4-byte match first, so that every later offset has history.
          const expected: number[] = Array.from({ length: 20 }, (_, i) => byte(i));
          const block: number[] = [0xf0, 5, ...expected, 20, 0];
          expected.push(...expected.slice(0, 4));
          for (let s = 0; s < 3; s++) {
            const lits = Array.from({ length: ll }, (_, i) => byte(expected.length + i));
            block.push(0xff, ll - 15, ...lits, 16 + s, 0, ml - 4 - 15);
            expected.push(...lits);
            for (let i = 0; i < ml; i++) expected.push(expected[expected.length - 16 - s]!);
          }
          const tail = Array.from({ length: last }, (_, i) => byte(1000 + i));
          block.push(...(last >= 15 ? [0xf0, last - 15] : [last << 4]), ...tail);
          expected.push(...tail);
          const packed = new Uint8Array(block);
          expectBytes(lz4.decompressBlock(packed, expected.length), new Uint8Array(expected));
          const src = wasm.alloc(packed.length);
          const dst = wasm.alloc(expected.length + GUARD);
          new Uint8Array(wasm.memory.buffer, src, packed.length).set(packed);
          for (const cap of [expected.length, expected.length - 1]) {
            new Uint8Array(wasm.memory.buffer, dst + cap, GUARD).fill(0xa5);
            // Exactly the room needed decodes; one byte less stops short and says so.
            expect(wasm.lz4_decompress_block(src, packed.length, dst, cap)).toBe(cap === expected.length ? cap : -2);
            const guard = new Uint8Array(wasm.memory.buffer, dst + cap, GUARD);
            expect(guard.every((x) => x === 0xa5), `literals ${ll}, match ${ml}, last ${last}, capacity ${cap}: wrote past it`).toBe(true);
          }
          wasm.free(src);
          wasm.free(dst);
        }
      }
    }
  });

  it('decodes a block that is one literal run (incompressible data) to a copy of its literals, with the limits and errors of any block', () => {
    const literalRun = (n: number, fill: (i: number) => number): Uint8Array => {
      const head: number[] = [Math.min(n, 15) << 4];
      if (n >= 15) {
        let rest = n - 15;
        for (; rest >= 255; rest -= 255) head.push(255);
        head.push(rest);
      }
      return new Uint8Array([...head, ...Array.from({ length: n }, (_, i) => fill(i))]);
    };
    for (const n of [0, 1, 14, 15, 16, 269, 270, 271, 524, 525, 70_000]) {
      const block = literalRun(n, (i) => (i * 29 + n) & 255);
      const literals = block.subarray(block.length - n);
      // A Node Buffer's slice() is a view: the result must be a copy all the same.
      const buffer = Buffer.from(block);
      const out = lz4.decompressBlock(buffer, n);
      expectBytes(out, literals);
      expect(out.constructor).toBe(Uint8Array);
      buffer.fill(0);
      expectBytes(out, literals);
      expectBytes(lz4.decompressBlock(block, n + 100), literals);
      const into = new Uint8Array(n + 8).fill(0xee);
      const view = lz4.decompressBlock(block, { into });
      expect(view.buffer).toBe(into.buffer);
      expectBytes(view, literals);
      expect(into.subarray(n).every((b) => b === 0xee)).toBe(true);
      if (n > 0) {
        expectError(() => lz4.decompressBlock(block, n - 1), ErrorCode.TOO_LARGE, new RegExp(`maxOutputBytes \\(${n - 1}\\)`));
        expectError(() => lz4.decompressBlock(block, { into: new Uint8Array(n - 1) }), ErrorCode.TOO_LARGE, /into buffer/);
        // One literal short, or its length bytes cut off: malformed, as before.
        expectError(() => lz4.decompressBlock(block.subarray(0, block.length - 1), n), ErrorCode.CORRUPT_DATA);
      }
    }
    // An into buffer overlapping the block, a few bytes past it: the literals are read before
    // they are overwritten, as when the block went through the codec's memory.
    const lits = Array.from({ length: 40 }, (_, i) => i + 1);
    const shared = new Uint8Array([0xf0, 25, ...lits, 0, 0, 0, 0, 0, 0]);
    expectBytes(lz4.decompressBlock(shared.subarray(0, 42), { into: shared.subarray(5) }), new Uint8Array(lits));
    expectError(() => lz4.decompressBlock(new Uint8Array([0xf0, 255, 255]), 1000), ErrorCode.CORRUPT_DATA);
    // A run followed by anything (here a match and 5 literals) is not a literal run.
    const block = new Uint8Array([0x21, 65, 66, 2, 0, 0x50, 1, 2, 3, 4, 5]);
    expectBytes(lz4.decompressBlock(block, 100), new Uint8Array([65, 66, 65, 66, 65, 66, 65, 1, 2, 3, 4, 5]));
  });

  it('decodes into a caller-owned buffer, touching only the decoded prefix', () => {
    const data = jsonLogs(70_000, 4);
    const packed = lz4.compressBlock(data);
    const into = new Uint8Array(data.length + 50).fill(0xee);
    const out = lz4.decompressBlock(packed, { into });
    expect(out.buffer).toBe(into.buffer);
    expect(out.byteOffset).toBe(0);
    expectBytes(out, data);
    expect(into.subarray(data.length).every((b) => b === 0xee)).toBe(true);
    // A view into a larger buffer is written at its own offset, not at the buffer's start.
    const backing = new Uint8Array(data.length + 100).fill(7);
    const view = lz4.decompressBlock(packed, { into: backing.subarray(100) });
    expect(view.byteOffset).toBe(100);
    expectBytes(backing.subarray(100), data);
    expect(backing.subarray(0, 100).every((b) => b === 7)).toBe(true);
  });

  it('compresses into a caller-owned buffer the same bytes as the owned result, touching only their prefix', () => {
    for (const [data, accel] of [[jsonLogs(70_000, 8), 1], [randomBytes(5_000, 9), 1], [text(3_000), 4], [new Uint8Array(0), 1]] as const) {
      const owned = lz4.compressBlock(data, { acceleration: accel });
      const into = new Uint8Array(owned.length + 40).fill(0xee);
      const out = lz4.compressBlock(data, { into, acceleration: accel });
      expect(out.buffer).toBe(into.buffer);
      expect(out.byteOffset).toBe(0);
      expectBytes(out, owned);
      expect(into.subarray(owned.length).every((b) => b === 0xee)).toBe(true);
      // An exact fit is enough, although the kernel's worst case is larger.
      expectBytes(lz4.compressBlock(data, { into: new Uint8Array(owned.length), acceleration: accel }), owned);
    }
    // A view into a larger buffer (here over the input itself) is written at its own offset.
    const data = jsonLogs(20_000, 10);
    const owned = lz4.compressBlock(data);
    const backing = new Uint8Array(100 + data.length);
    backing.set(data, 100);
    const view = lz4.compressBlock(backing.subarray(100), { into: backing.subarray(100) });
    expect(view.byteOffset).toBe(100);
    expectBytes(view, owned);
    expectBytes(lz4.decompressBlock(view, data.length), data);
  });

  it('rejects a compress into buffer too small for the block, and a bad one, with typed errors', () => {
    const data = text(10_000);
    const owned = lz4.compressBlock(data);
    const into = new Uint8Array(owned.length - 1).fill(0xee);
    const err = expectError(() => lz4.compressBlock(data, { into }), ErrorCode.TOO_LARGE, new RegExp(`into buffer \\(${owned.length - 1} bytes\\)`));
    expect(err.details).toEqual({ compressedBytes: owned.length, intoBytes: owned.length - 1 });
    expect(into.every((b) => b === 0xee)).toBe(true);
    expectError(() => lz4.compressBlock(data, { into: [] as unknown as Uint8Array }), ErrorCode.INVALID_ARGUMENT, /into must be a Uint8Array/);
    // The codecs are usable after either.
    expectBytes(lz4.compressBlock(data), owned);
  });

  it('keeps plain results independent of later calls and of memory growth', () => {
    const a = jsonLogs(60_000, 5);
    const b = randomBytes(60_000, 6);
    const outA = lz4.decompressBlock(lz4.compressBlock(a), a.length);
    // A larger input grows the scratch regions (and possibly the memory) between the calls.
    const large = jsonLogs(3 * MiB, 7);
    expectBytes(lz4.decompressBlock(lz4.compressBlock(large), large.length), large);
    const outB = lz4.decompressBlock(lz4.compressBlock(b), b.length);
    expectBytes(outA, a);
    expectBytes(outB, b);
    expect(outA.buffer).not.toBe(outB.buffer);
  });

  it('rejects an into buffer too small for the block, and a bad target, with typed errors', () => {
    const data = text(10_000);
    const packed = lz4.compressBlock(data);
    const into = new Uint8Array(data.length - 1);
    expectError(() => lz4.decompressBlock(packed, { into }), ErrorCode.TOO_LARGE, /into buffer \(9999 bytes\)/);
    expectError(() => lz4.decompressBlock(packed, { into: [] as unknown as Uint8Array }), ErrorCode.INVALID_ARGUMENT, /into: Uint8Array/);
    expectError(() => lz4.decompressBlock(packed, null as unknown as number), ErrorCode.INVALID_ARGUMENT, /lz4 block/);
    expectError(() => lz4.decompressBlock(new Uint8Array([0x50, 1, 2]), { into: new Uint8Array(100) }), ErrorCode.CORRUPT_DATA, /lz4 block/);
  });

  it('rejects malformed blocks with typed errors', () => {
    expectError(() => lz4.decompressBlock(new Uint8Array(0), 10), ErrorCode.CORRUPT_DATA, /empty input/);
    // token says 5 literals, only 2 present
    expectError(() => lz4.decompressBlock(new Uint8Array([0x50, 1, 2]), 100), ErrorCode.CORRUPT_DATA, /lz4 block/);
    // a match whose offset reaches before the start of the output
    expectError(() => lz4.decompressBlock(new Uint8Array([0x10, 65, 9, 0, 0x00]), 100), ErrorCode.CORRUPT_DATA);
    // offset 0 is invalid
    expectError(() => lz4.decompressBlock(new Uint8Array([0x10, 65, 0, 0, 0x00]), 100), ErrorCode.CORRUPT_DATA);
    // the block ends with a match instead of literals
    expectError(() => lz4.decompressBlock(new Uint8Array([0x10, 65, 1, 0]), 100), ErrorCode.CORRUPT_DATA);
    const data = text(10_000);
    const packed = lz4.compressBlock(data);
    expectError(() => lz4.decompressBlock(packed, data.length - 1), ErrorCode.TOO_LARGE, /maxOutputBytes/);
  });

  it('rejects bad offsets and overlong matches deep inside a block, where the fast loop runs', () => {
    // Sequences (token, literals, offset, length bytes) of a real block, to patch one far
    // from both ends of the input and the output.
    const data = jsonLogs(20_000, 3);
    const packed = lz4.compressBlock(data);
    const sequences: { token: number; offset: number; out: number }[] = [];
    for (let p = 0, out = 0; ; ) {
      const token = p;
      let ll = packed[p++]! >> 4;
      if (ll === 15) for (let s = 255; s === 255; ll += s) s = packed[p++]!;
      p += ll;
      out += ll;
      if (p >= packed.length) break;
      const offset = p;
      p += 2;
      let ml = packed[token]! & 15;
      if (ml === 15) for (let s = 255; s === 255; ml += s) s = packed[p++]!;
      sequences.push({ token, offset, out });
      out += ml + 4;
    }
    const mid = sequences.find((s) => s.offset > packed.length / 2 && (packed[s.token]! & 15) < 15 && packed[s.token]! >> 4 < 15)!;
    const patched = (edit: (b: Uint8Array) => void) => {
      const b = packed.slice();
      edit(b);
      return b;
    };
    expectBytes(lz4.decompressBlock(packed, data.length), data);
    // Offset 0, and an offset reaching one byte before the start of the output.
    expectError(() => lz4.decompressBlock(patched((b) => b.set([0, 0], mid.offset)), data.length), ErrorCode.CORRUPT_DATA);
    const before = mid.out + 1;
    expectError(() => lz4.decompressBlock(patched((b) => b.set([before & 255, before >> 8], mid.offset)), data.length), ErrorCode.CORRUPT_DATA);
    // A match length that runs far past the output: 15 in the token, then 255-bytes.
    const long = patched((b) => {
      b[mid.token] = b[mid.token]! | 15;
      b.fill(255, mid.offset + 2, mid.offset + 200);
    });
    expectError(() => lz4.decompressBlock(long, data.length), ErrorCode.TOO_LARGE, /maxOutputBytes/);
    // A literal length that runs far past the input: 15 in the token, then 255-bytes.
    const longLiterals = patched((b) => {
      b[mid.token] = b[mid.token]! | 0xf0;
      b.fill(255, mid.token + 1, mid.token + 200);
    });
    expectError(() => lz4.decompressBlock(longLiterals, 1 << 20), ErrorCode.CORRUPT_DATA);
    // Room for exactly the output up to that sequence plus a little: never more is written.
    expectError(() => lz4.decompressBlock(packed, mid.out + 40), ErrorCode.TOO_LARGE);
  });

  it('validates arguments', () => {
    expectError(() => lz4.compressBlock('abc' as unknown as Uint8Array), ErrorCode.INVALID_ARGUMENT, /Uint8Array/);
    expectError(() => lz4.compressBlock(new Uint8Array(4), { acceleration: 0 }), ErrorCode.INVALID_ARGUMENT, /acceleration/);
    expectError(() => lz4.decompressBlock(new Uint8Array(4), -1), ErrorCode.INVALID_ARGUMENT, /maxOutputBytes/);
    expectError(() => lz4.decompressBlock(new Uint8Array(4), 1.5), ErrorCode.INVALID_ARGUMENT, /maxOutputBytes/);
  });
});

const frameOptionSets: [string, CompressFrameOptions][] = [
  ['defaults', {}],
  ['256K blocks, content size', { blockSize: '256K', contentSize: true }],
  ['1M linked blocks with block checksums', { blockSize: 1048576, blockIndependence: false, blockChecksum: true }],
  ['4M blocks, no content checksum', { blockSize: '4M', contentChecksum: false }],
  ['64K linked, everything on', { blockIndependence: false, blockChecksum: true, contentChecksum: true, contentSize: true }],
];

describe('lz4 frame: ours → lz4 -d', () => {
  for (const [label, options] of frameOptionSets) {
    it.each([...inputs.slice(0, 6), tiny[0]!, tiny[1]!, tiny[16]!])(`${label}: $name`, ({ data }) => {
      const frame = lz4.compressFrame(data, options);
      expectBytes(lz4Cli(['-d'], frame), data);
      expectBytes(lz4.decompressFrame(frame), data);
    });
  }

  it.each([big, bigRandom])('over 4 MiB: $name in 64K, linked and 4M frames', ({ data }) => {
    for (const options of [{}, { blockIndependence: false }, { blockSize: '4M', contentSize: true, blockChecksum: true }] as CompressFrameOptions[]) {
      const frame = lz4.compressFrame(data, options);
      expectBytes(lz4Cli(['-d'], frame), data);
      expectBytes(lz4.decompressFrame(frame), data);
    }
  });

  it('0 to 16 byte inputs go both ways through the CLI', () => {
    for (const { data } of tiny) {
      expectBytes(lz4Cli(['-d'], lz4.compressFrame(data, { blockChecksum: true, contentSize: true })), data);
      expectBytes(lz4.decompressFrame(lz4Cli(['-1', '-BX', '--content-size'], data)), data);
    }
  });

  it('writes the header the CLI writes for the same options', () => {
    // More than one block: the CLI marks single-block frames independent whatever -BD says.
    const data = text(100_000);
    expectBytes(lz4.compressFrame(data).subarray(0, 7), lz4Cli(['-1', '-B4'], data).subarray(0, 7));
    expectBytes(lz4.compressFrame(data, { blockIndependence: false, blockChecksum: true, contentSize: true }).subarray(0, 15), 
      lz4Cli(['-1', '-B4', '-BD', '-BX', '--content-size'], data).subarray(0, 15),
    );
  });

  it('rejects unknown block sizes', () => {
    expectError(() => lz4.compressFrame(new Uint8Array(1), { blockSize: 1000 as never }), ErrorCode.INVALID_ARGUMENT, /blockSize/);
  });
});

describe('lz4 frame: lz4 CLI → ours', () => {
  const cliOptionSets = [
    ['-1', '-B4'],
    ['-1', '-B5'],
    ['-1', '-B6'],
    ['-1', '-B7'],
    ['-1', '-B4', '-BD'],
    ['-1', '-B5', '--content-size'],
    ['-1', '-B4', '--no-frame-crc'],
    ['-1', '-B4', '-BX'],
    ['-1', '-B6', '-BD', '-BX', '--content-size', '--no-frame-crc'],
    ['-9', '-B4', '-BD'],
  ];
  for (const args of cliOptionSets) {
    it.each([...inputs.slice(0, 6), tiny[0]!, tiny[1]!, tiny[16]!])(`lz4 ${args.join(' ')}: $name`, ({ data }) => {
      expectBytes(lz4.decompressFrame(lz4Cli(args, data)), data);
    });
  }

  it.each([big, bigRandom])('over 4 MiB: $name', ({ data }) => {
    for (const args of [['-1', '-B4'], ['-1', '-B7', '-BD', '-BX'], ['-1', '-B5', '--content-size']]) {
      expectBytes(lz4.decompressFrame(lz4Cli(args, data)), data);
    }
  });

  it('decodes concatenated frames, skippable frames and legacy frames as lz4 -d does', () => {
    const a = text(70_000, 5);
    const b = jsonLogs(90_000, 6);
    const skippable = new Uint8Array([0x5a, 0x2a, 0x4d, 0x18, 3, 0, 0, 0, 9, 9, 9]);
    const joined = concat(skippable, lz4Cli(['-1'], a), lz4.compressFrame(b, { contentSize: true }), skippable);
    expectBytes(lz4Cli(['-d'], joined), concat(a, b));
    expectBytes(lz4.decompressFrame(joined), concat(a, b));
    const legacy = lz4Cli(['-l'], b);
    expectBytes(lz4.decompressFrame(legacy), b);
    expectBytes(lz4.decompressFrame(concat(legacy, lz4Cli([], a))), concat(b, a));
  });
});

describe('lz4 frame: hostile and limited input', () => {
  const data = jsonLogs(200_000, 7);

  it('reports a flipped byte in block 3 as a block checksum mismatch', () => {
    const frame = lz4.compressFrame(data, { blockChecksum: true });
    // Walk to block 3 and flip a byte inside its data.
    let pos = 7;
    for (let i = 0; i < 3; i++) pos += 4 + (readU32(frame, pos) & 0x7fffffff) + 4;
    const bad = frame.slice();
    bad[pos + 10]! ^= 0x40;
    expectError(() => lz4.decompressFrame(bad), ErrorCode.CHECKSUM_MISMATCH, /block checksum mismatch in block 3/);
  });

  it('reports content and header checksum mismatches', () => {
    const frame = lz4.compressFrame(data);
    const badContent = frame.slice();
    badContent[badContent.length - 1]! ^= 1;
    expectError(() => lz4.decompressFrame(badContent), ErrorCode.CHECKSUM_MISMATCH, /content checksum/);
    const badHeader = frame.slice();
    badHeader[5] = 0x50;
    expectError(() => lz4.decompressFrame(badHeader), ErrorCode.CHECKSUM_MISMATCH, /header checksum/);
  });

  it('checks the content checksum across blocks whose sizes are not multiples of 16, through output growth', () => {
    // 256 KB blocks (BD 0x50), independent, content checksum; raw and compressed blocks of odd
    // sizes, 500 KB of output from a few KB of input, so decoding resumes after growing.
    const parts = [randomBytes(7, 1), new Uint8Array(250_000), randomBytes(33, 2), new TextEncoder().encode('abcdefghij'.repeat(25_001)).subarray(0, 250_001), randomBytes(1, 4), new Uint8Array(17)];
    const blocks: number[] = [];
    for (const [i, part] of parts.entries()) {
      const packed = i % 2 === 1 ? lz4.compressBlock(part) : part;
      const word = packed.length | (packed === part ? 0x80000000 : 0);
      blocks.push(word & 0xff, (word >>> 8) & 0xff, (word >>> 16) & 0xff, word >>> 24, ...packed);
    }
    const content = concat(...parts);
    const sum = xxh32Reference(content);
    const frame = withHeader(0x64, 0x50, [], [...blocks, 0, 0, 0, 0, sum & 0xff, (sum >>> 8) & 0xff, (sum >>> 16) & 0xff, sum >>> 24]);
    expect(frame.length * 4).toBeLessThan(content.length / 2);
    expectBytes(lz4.decompressFrame(frame), content);
    expectBytes(lz4.decompressFrame(concat(frame, frame)), concat(content, content));
    const bad = frame.slice();
    bad[bad.length - 2]! ^= 1;
    expectError(() => lz4.decompressFrame(bad), ErrorCode.CHECKSUM_MISMATCH, /content checksum/);
  });

  it('rejects what is not a frame, and unsupported versions, reserved bits and dictionaries', () => {
    expectError(() => lz4.decompressFrame(new TextEncoder().encode('hello world')), ErrorCode.UNSUPPORTED_FORMAT, /magic/);
    expectError(() => lz4.decompressFrame(new Uint8Array(0)), ErrorCode.CORRUPT_DATA, /ends inside/);
    expectError(() => lz4.decompressFrame(withHeader(0x80, 0x40)), ErrorCode.UNSUPPORTED_FORMAT, /version/);
    expectError(() => lz4.decompressFrame(withHeader(0x42, 0x40)), ErrorCode.UNSUPPORTED_FORMAT, /reserved/);
    expectError(() => lz4.decompressFrame(withHeader(0x60, 0x30)), ErrorCode.UNSUPPORTED_FORMAT, /block max size/);
    expectError(() => lz4.decompressFrame(withHeader(0x61, 0x40, [1, 2, 3, 4])), ErrorCode.UNSUPPORTED_FORMAT, /dictionary/);
  });

  it('reports truncation at every length as a typed error', () => {
    const frame = lz4.compressFrame(text(3000), { blockChecksum: true, contentSize: true });
    for (let n = 1; n < frame.length; n++) {
      expectError(() => lz4.decompressFrame(frame.subarray(0, n)), ErrorCode.CORRUPT_DATA, /lz4 frame/);
    }
  });

  it('grows the output by doubling for legacy frames (no size before decoding), a content checksum spanning the growth', () => {
    const zeros = new Uint8Array(1 * MiB);
    const block = lz4.compressBlock(zeros);
    const size = [block.length & 0xff, (block.length >>> 8) & 0xff, (block.length >>> 16) & 0xff, block.length >>> 24];
    const legacy = new Uint8Array([0x02, 0x21, 0x4c, 0x18, ...size, ...block]);
    const logs = jsonLogs(700_000, 11);
    const input = concat(legacy, lz4.compressFrame(zeros), lz4.compressFrame(logs, { blockSize: '256K' }));
    expect(input.length * 4).toBeLessThan((2 * MiB + logs.length) / 2);
    expectBytes(lz4.decompressFrame(input), concat(zeros, zeros, logs));
    expectError(() => lz4.decompressFrame(input, { maxOutputBytes: 2 * MiB + 699_999 }), ErrorCode.TOO_LARGE, /maxOutputBytes/);
  });

  it('stops at maxOutputBytes when the size is unknown', () => {
    const frame = lz4.compressFrame(new Uint8Array(3 * MiB));
    expectBytes(lz4.decompressFrame(frame, { maxOutputBytes: 3 * MiB }), new Uint8Array(3 * MiB));
    expectError(() => lz4.decompressFrame(frame, { maxOutputBytes: 3 * MiB - 1 }), ErrorCode.TOO_LARGE, /maxOutputBytes/);
  });

  it('refuses a declared content size above the cap before allocating', () => {
    const frame = lz4.compressFrame(new Uint8Array(1000), { contentSize: true });
    expectError(() => lz4.decompressFrame(frame, { maxOutputBytes: 999 }), ErrorCode.TOO_LARGE, /content size 1000/);
    // 2^40 declared in a frame with one tiny block: impossible, refused without allocating.
    const lie = frame.slice();
    new DataView(lie.buffer).setBigUint64(6, 1n << 40n, true);
    fixHeaderChecksum(lie, 15);
    expectError(() => lz4.decompressFrame(lie, { maxOutputBytes: 0x7fffffff }), ErrorCode.CORRUPT_DATA, /content size/);
    // A declared size smaller than the data.
    const short = frame.slice();
    new DataView(short.buffer).setBigUint64(6, 999n, true);
    fixHeaderChecksum(short, 15);
    expectError(() => lz4.decompressFrame(short), ErrorCode.CORRUPT_DATA, /content size/);
  });

  it('rejects a block larger than the block max size', () => {
    const frame = withHeader(0x60, 0x40, [], [0x01, 0x00, 0x01, 0x80]);
    expectError(() => lz4.decompressFrame(frame), ErrorCode.CORRUPT_DATA, /larger than the frame's block max size|ends inside/);
  });
});

/** Byte equality without vitest's element-by-element diff, which is slow on megabytes. */
function expectBytes(actual: Uint8Array, expected: Uint8Array): void {
  if (Buffer.compare(actual, expected) === 0) return;
  let i = 0;
  while (i < actual.length && i < expected.length && actual[i] === expected[i]) i++;
  expect.fail(`bytes differ at ${i} (lengths ${actual.length} and ${expected.length})`);
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let pos = 0;
  for (const p of parts) {
    out.set(p, pos);
    pos += p.length;
  }
  return out;
}

function readU32(b: Uint8Array, pos: number): number {
  return (b[pos]! | (b[pos + 1]! << 8) | (b[pos + 2]! << 16) | (b[pos + 3]! << 24)) >>> 0;
}

function fixHeaderChecksum(frame: Uint8Array, headerLen: number): void {
  const hc = xxh32Reference(frame.subarray(4, headerLen - 1));
  frame[headerLen - 1] = (hc >>> 8) & 0xff;
}

/** A frame header with the given FLG/BD (and extra descriptor bytes), a valid HC, then `rest`. */
function withHeader(flg: number, bd: number, extra: number[] = [], rest: number[] = [0, 0, 0, 0]): Uint8Array {
  const desc = new Uint8Array([flg, bd, ...extra]);
  const hc = (xxh32Reference(desc) >>> 8) & 0xff;
  return new Uint8Array([0x04, 0x22, 0x4d, 0x18, ...desc, hc, ...rest]);
}

/** The sequences of a block: literal count, match offset and length (the last, literals only, has offset 0). */
function sequencesOf(packed: Uint8Array): { literals: number; offset: number; matchLength: number }[] {
  const out: { literals: number; offset: number; matchLength: number }[] = [];
  for (let p = 0; p < packed.length; ) {
    const token = packed[p++]!;
    let literals = token >> 4;
    if (literals === 15) for (let s = 255; s === 255; literals += s) s = packed[p++]!;
    p += literals;
    if (p >= packed.length) {
      out.push({ literals, offset: 0, matchLength: 0 });
      break;
    }
    const offset = packed[p]! | (packed[p + 1]! << 8);
    p += 2;
    let matchLength = token & 15;
    if (matchLength === 15) for (let s = 255; s === 255; matchLength += s) s = packed[p++]!;
    out.push({ literals, offset, matchLength: matchLength + 4 });
  }
  return out;
}
