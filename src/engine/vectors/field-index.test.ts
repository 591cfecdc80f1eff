import { describe, expect, it } from 'vitest';
import { FieldIndexes, MAX_INDEXED_FIELDS } from './field-index.js';
import { compileFilter, type Metadata } from './filter.js';

const records: Metadata[] = [
  { genre: 'jazz', n: 1, tags: ['a', 'b'] },
  { genre: 'soul', n: 2, tags: ['b'] },
  { genre: 'jazz', n: 3 },
  { genre: 'rock', n: 1, nested: { k: 'x' } },
];

function live(): Iterable<[number, Metadata]> {
  return records.map((m, i) => [i, m] as [number, Metadata]);
}

function ids(indexes: FieldIndexes, filter: unknown): number[] | undefined {
  const c = indexes.candidates(compileFilter(filter).plan, live);
  return c === undefined ? undefined : [...c.ids].sort((a, b) => a - b);
}

describe('FieldIndexes', () => {
  it('answers equality, $in, AND by the most selective part, and OR of indexed parts', () => {
    const f = new FieldIndexes();
    expect(ids(f, { genre: 'jazz' })).toEqual([0, 2]);
    expect(ids(f, { genre: { $in: ['soul', 'rock', 'polka'] } })).toEqual([1, 3]);
    expect(ids(f, { tags: 'b' })).toEqual([0, 1]);
    expect(ids(f, { 'nested.k': 'x' })).toEqual([3]);
    expect(ids(f, { genre: 'jazz', n: 3 })).toEqual([2]);
    expect(ids(f, { $and: [{ genre: 'jazz' }, { n: { $gt: 0 } }] })).toEqual([0, 2]);
    expect(ids(f, { $or: [{ genre: 'soul' }, { n: 3 }] })).toEqual([1, 2]);
    expect(ids(f, { genre: 'polka' })).toEqual([]);
  });

  it('leaves filters with no equality part to a scan', () => {
    const f = new FieldIndexes();
    expect(ids(f, { n: { $gt: 1 } })).toBeUndefined();
    expect(ids(f, { genre: { $ne: 'jazz' } })).toBeUndefined();
    expect(ids(f, { $or: [{ genre: 'soul' }, { n: { $lt: 2 } }] })).toBeUndefined();
    expect(ids(f, {})).toBeUndefined();
    expect(f.size).toBe(0); // an OR with a scanned part builds no index
  });

  it('follows adds and removes once a field is indexed', () => {
    const f = new FieldIndexes();
    expect(ids(f, { genre: 'jazz' })).toEqual([0, 2]);
    f.remove(0, records[0]!);
    f.add(7, { genre: 'jazz', tags: ['z'] });
    expect(ids(f, { genre: 'jazz' })).toEqual([2, 7]);
    f.remove(2, records[2]!);
    f.remove(7, { genre: 'jazz', tags: ['z'] });
    expect(ids(f, { genre: 'jazz' })).toEqual([]);
  });

  it(`indexes at most ${MAX_INDEXED_FIELDS} fields and scans beyond that`, () => {
    const f = new FieldIndexes();
    for (let i = 0; i < MAX_INDEXED_FIELDS; i++) expect(ids(f, { [`f${i}`]: 1 })).toEqual([]);
    expect(ids(f, { extra: 1 })).toBeUndefined();
    expect(f.size).toBe(MAX_INDEXED_FIELDS);
  });
});
