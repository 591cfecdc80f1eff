import { describe, expect, it } from 'vitest';
import { ErrorCode } from '../../core/errors.js';
import { FLAG_BLOB, FLAG_BLOB_CRC, RECORD_FORMAT, RecordPool, checkRecord } from './kv-record.js';

describe('RecordPool', () => {
  it('reuses a slab only once it is full and every piece of it has been released', () => {
    const pool = new RecordPool(100, 50, 4);
    const a = pool.alloc(40);
    const b = pool.alloc(40);
    const c = pool.alloc(40); // does not fit: a second slab
    expect(c.buffer).not.toBe(a.buffer);
    pool.release(a);
    expect(pool.alloc(40).buffer).toBe(c.buffer);
    const e = pool.alloc(40); // the second slab is full, and the first still holds b: a third
    expect(e.buffer).not.toBe(a.buffer);
    expect(e.buffer).not.toBe(c.buffer);
    pool.release(b);
    expect(pool.alloc(40).buffer).toBe(e.buffer);
    const g = pool.alloc(40); // the third slab is full; the first is free now
    expect(g.buffer).toBe(a.buffer);
    expect(g.byteOffset).toBe(0);
  });

  it('never reuses a slab with a piece not released, nor pieces of their own', () => {
    const pool = new RecordPool(100, 50, 4);
    const kept = pool.alloc(40);
    const gone = pool.alloc(40);
    pool.release(gone);
    const next = pool.alloc(40);
    expect(next.buffer).not.toBe(kept.buffer);
    pool.alloc(40);
    expect(pool.alloc(40).buffer).not.toBe(kept.buffer);
    const large = pool.alloc(60);
    expect(large.byteOffset).toBe(0);
    expect(large.buffer.byteLength).toBe(60);
    pool.release(large); // a no-op
  });

  it('starts over in its current slab when every piece of it was released', () => {
    const pool = new RecordPool(100, 50, 4);
    const a = pool.alloc(40);
    const b = pool.alloc(40);
    pool.release(a);
    pool.release(b);
    const c = pool.alloc(40);
    expect(c.buffer).toBe(a.buffer);
    expect(c.byteOffset).toBe(0);
  });
});

describe('checkRecord', () => {
  const pointer = (flags: number, body: number[]) => Uint8Array.of(RECORD_FORMAT, flags, 0, ...new Array<number>(16).fill(0), 0, 0x10, 0, 0, ...body);

  it('takes blob pointers with and without a CRC, and refuses flags it does not know', () => {
    expect(() => checkRecord(pointer(FLAG_BLOB, [0x76]), 'k')).not.toThrow();
    expect(() => checkRecord(pointer(FLAG_BLOB | FLAG_BLOB_CRC, [1, 2, 3, 4, 0x76]), 'k')).not.toThrow();
    for (const [flags, body] of [
      [FLAG_BLOB | FLAG_BLOB_CRC, [1, 2, 3]], // too short for its CRC
      [FLAG_BLOB_CRC, [1, 2, 3, 4]], // a CRC without a blob
      [FLAG_BLOB | 4, [0x76]], // a flag from a later format
    ] as const) {
      expect(() => checkRecord(pointer(flags, [...body]), 'k'), `flags ${flags}`).toThrow(expect.objectContaining({ code: ErrorCode.CORRUPT_DATA, message: expect.stringContaining("key 'k'") }));
    }
  });
});
