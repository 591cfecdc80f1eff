import { describe, expect, it } from 'vitest';
import { readRecords, layoutRecords, writeRecords, type SegmentRecord } from './segment-records.js';

const utf8 = (s: string) => new TextEncoder().encode(s);

/** Writes `records` as one records section and parses it back. */
function roundTrip(records: SegmentRecord[]) {
  const layout = layoutRecords(records);
  const buf = new Uint8Array(layout.size);
  writeRecords(buf, 0, records, layout.baseTimestamp);
  const expect = { recordCount: records.length, baseOffset: 100, lastOffsetDelta: records.length - 1, baseTimestamp: layout.baseTimestamp, maxTimestamp: layout.maxTimestamp };
  return readRecords(buf, 0, buf.length, expect, 'test batch');
}

describe('readRecords headers', () => {
  it('gives records without headers one shared, frozen empty array', () => {
    const got = roundTrip([
      { key: utf8('a'), value: utf8('1'), timestamp: 1 },
      { key: utf8('b'), value: utf8('2'), headers: [], timestamp: 2 },
      { key: utf8('c'), value: utf8('3'), headers: [{ key: 'h', value: null }], timestamp: 3 },
    ]);
    expect(got[0]!.headers).toEqual([]);
    expect(got[1]!.headers).toBe(got[0]!.headers);
    expect(Object.isFrozen(got[0]!.headers)).toBe(true);
    // The shared array cannot be changed through one record and seen through another.
    expect(() => got[0]!.headers.push({ key: 'x', value: null })).toThrow(TypeError);
    expect(got[1]!.headers).toHaveLength(0);
    expect(got[2]!.headers).toEqual([{ key: 'h', value: null }]);
    expect(Object.isFrozen(got[2]!.headers)).toBe(false);
  });
});

describe('readRecords records', () => {
  it('are plain objects, as a literal would make them: same prototype, keys and order', () => {
    const [got] = roundTrip([{ key: null, value: utf8('v'), timestamp: 7 }]);
    expect(Object.getPrototypeOf(got)).toBe(Object.prototype);
    expect(got!.constructor).toBe(Object);
    expect(Object.keys(got!)).toEqual(['offset', 'timestamp', 'key', 'value', 'headers']);
    expect(JSON.stringify({ ...got!, value: [...got!.value!] })).toBe('{"offset":100,"timestamp":7,"key":null,"value":[118],"headers":[]}');
  });
});
