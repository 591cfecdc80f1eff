import { beforeAll, describe, expect, it } from 'vitest';
import { init, xxh32, crc32c, isQuartzError, ErrorCode } from '../node/core.js';
import { randomBytes } from '../../bench/lz4/corpus.js';
import { xxh32Reference } from './xxh32-testing.js';

beforeAll(async () => {
  await init();
});

const ascii = (s: string) => new TextEncoder().encode(s);

/** Bitwise CRC32C, the definition itself, to check the sliced tables against. */
function crc32cBitwise(bytes: Uint8Array, crc = 0): number {
  let c = ~crc >>> 0;
  for (const b of bytes) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
  }
  return ~c >>> 0;
}

describe('crc32c', () => {
  it('matches published check values', () => {
    expect(crc32c(ascii('123456789'))).toBe(0xe3069283);
    expect(crc32c(new Uint8Array(0))).toBe(0);
    // RFC 3720 (iSCSI) B.4 test patterns.
    expect(crc32c(new Uint8Array(32))).toBe(0x8a9136aa);
    expect(crc32c(new Uint8Array(32).fill(0xff))).toBe(0x62a8ab43);
    expect(crc32c(Uint8Array.from({ length: 32 }, (_, i) => i))).toBe(0x46dd794e);
    expect(crc32c(Uint8Array.from({ length: 32 }, (_, i) => 31 - i))).toBe(0x113fdb5c);
    expect(crc32c(ascii('The quick brown fox jumps over the lazy dog'))).toBe(0x22620404);
  });

  it('agrees with the bitwise definition at every length and alignment', () => {
    const data = randomBytes(300, 42);
    for (let start = 0; start < 9; start++) {
      for (let len = 0; len + start <= data.length; len += 7) {
        const part = data.subarray(start, start + len);
        expect(crc32c(part)).toBe(crc32cBitwise(part));
      }
    }
  });

  it('chains like zlib crc32: crc32c(b, crc32c(a)) == crc32c(a || b)', () => {
    const data = randomBytes(10_000, 43);
    const whole = crc32c(data);
    for (const cut of [0, 1, 7, 8, 4095, 9999, 10_000]) {
      expect(crc32c(data.subarray(cut), crc32c(data.subarray(0, cut)))).toBe(whole);
    }
  });

  it('rejects bad arguments with typed errors', () => {
    expect(() => crc32c('x' as unknown as Uint8Array)).toThrow(/crc32c: input must be a Uint8Array/);
    try {
      crc32c(new Uint8Array(1), -1);
      expect.unreachable();
    } catch (err) {
      expect(isQuartzError(err, ErrorCode.INVALID_ARGUMENT)).toBe(true);
    }
  });
});

describe('xxh32', () => {
  it('matches published check values', () => {
    expect(xxh32(new Uint8Array(0))).toBe(0x02cc5d05);
    expect(xxh32(new Uint8Array(0), 1)).toBe(0x0b2cb792);
    expect(xxh32(ascii('a'))).toBe(0x550d7456);
    expect(xxh32(ascii('abc'))).toBe(0x32d153ff);
    expect(xxh32(ascii('Nobody inspects the spammish repetition'))).toBe(0xe2293b2f);
    expect(xxh32(ascii('The quick brown fox jumps over the lazy dog'))).toBe(0xe85ea4de);
  });

  it('matches the xxHash sanity-check buffer values', () => {
    // xxHash's sanity test buffer: byteGen starts at PRIME32 and squares itself (as u32); byte = top 8 bits.
    const buf = new Uint8Array(101);
    let gen = 2654435761;
    for (let i = 0; i < buf.length; i++) {
      buf[i] = gen >>> 24;
      gen = Math.imul(gen, gen) >>> 0;
    }
    const PRIME32 = 2654435761;
    expect(xxh32(buf.subarray(0, 1))).toBe(0xb85cbee5);
    expect(xxh32(buf.subarray(0, 1), PRIME32)).toBe(0xd5845d64);
    expect(xxh32(buf.subarray(0, 14))).toBe(0xe5aa0ab4);
    expect(xxh32(buf.subarray(0, 14), PRIME32)).toBe(0x4481951d);
    expect(xxh32(buf)).toBe(0x1f1aa412);
    expect(xxh32(buf, PRIME32)).toBe(0x498ec8e2);
  });

  it('agrees with a plain-JS XXH32 at every length from 0 to 300, at several alignments and seeds', () => {
    const data = randomBytes(310, 46);
    for (const seed of [0, 1, 0x9e3779b1]) {
      for (let start = 0; start < 5; start++) {
        for (let len = 0; len + start <= 305; len++) {
          const part = data.subarray(start, start + len);
          expect(xxh32(part, seed)).toBe(xxh32Reference(part, seed));
        }
      }
    }
  });

  it('hashes inputs larger than one copy chunk as one input', () => {
    const data = randomBytes(1_500_003, 47);
    expect(xxh32(data, 5)).toBe(xxh32Reference(data, 5));
  });

  it('rejects a seed that is not a u32', () => {
    expect(() => xxh32(new Uint8Array(1), 2 ** 32)).toThrow(/xxh32: seed must be an integer/);
  });
});

describe('crc32c over large inputs', () => {
  it('gives the same CRC for inputs larger than one copy chunk as for their pieces', () => {
    const data = randomBytes(700_000, 44);
    const pieces = crc32c(data.subarray(300_000), crc32c(data.subarray(0, 300_000)));
    expect(crc32c(data)).toBe(pieces);
    expect(crc32c(data)).toBe(crc32cBitwise(data));
  });

  it('agrees with the bitwise definition around the three-stream split threshold', () => {
    const data = randomBytes(60_000, 45);
    for (const len of [1_535, 1_536, 1_537, 1_583, 6_001, 24_576, 50_001, 59_990]) {
      for (let start = 0; start < 4; start++) {
        const part = data.subarray(start, start + len);
        expect(crc32c(part, 0x1234)).toBe(crc32cBitwise(part, 0x1234));
      }
    }
  });
});
