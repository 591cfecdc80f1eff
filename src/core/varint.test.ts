import { describe, expect, it } from 'vitest';
import { ErrorCode, QuartzError } from './errors.js';
import { VarintReader, unzigzag, varintSize, writeVarint, zigzag } from './varint.js';

describe('varint', () => {
  const values = [0, 1, 127, 128, 300, 16383, 16384, 2 ** 21 - 1, 2 ** 21, 2 ** 28 - 1, 2 ** 28, 2 ** 31 - 1, 2 ** 31, 2 ** 32, 2 ** 35 + 7, 2 ** 49, Number.MAX_SAFE_INTEGER];

  it('round-trips boundary values and sizes them exactly', () => {
    const buf = new Uint8Array(16 * values.length);
    let pos = 0;
    for (const v of values) {
      const end = writeVarint(buf, pos, v);
      expect(end - pos, `size of ${v}`).toBe(varintSize(v));
      pos = end;
    }
    const r = new VarintReader(buf, 0, pos, 'test');
    for (const v of values) expect(r.varint()).toBe(v);
    expect(r.pos).toBe(pos);
  });

  it('writes LEB128 bytes', () => {
    const buf = new Uint8Array(10);
    expect(Array.from(buf.subarray(0, writeVarint(buf, 0, 300)))).toEqual([0xac, 0x02]);
  });

  it('zigzags signed values exactly up to 2^52', () => {
    for (const v of [0, -1, 1, -2, 2 ** 31, -(2 ** 31), 2 ** 52 - 1, -(2 ** 52 - 1)]) {
      expect(zigzag(v)).toBeGreaterThanOrEqual(0);
      expect(unzigzag(zigzag(v))).toBe(v);
    }
    expect([0, -1, 1, -2].map(zigzag)).toEqual([0, 1, 2, 3]);
  });

  it('fails with CORRUPT_DATA on truncated, over-long and over-large varints', () => {
    const cases = [
      [0x80, 0x80],
      [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
      [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x10], // 2^53
    ];
    for (const bytes of cases) {
      const r = new VarintReader(new Uint8Array(bytes), 0, bytes.length, 'field x');
      try {
        r.varint();
        throw new Error('no error');
      } catch (err) {
        expect(err).toBeInstanceOf(QuartzError);
        expect((err as QuartzError).code).toBe(ErrorCode.CORRUPT_DATA);
        expect((err as QuartzError).message).toMatch(/^field x: /);
      }
    }
  });
});
