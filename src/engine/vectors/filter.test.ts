import { describe, expect, it } from 'vitest';
import { isQuartzError } from '../../core/errors.js';
import { compileFilter, type Metadata } from './filter.js';

/** A deliberately naive reading of the documented semantics, written apart from the compiler. */
export function referenceMatch(filter: Record<string, unknown>, m: Metadata): boolean {
  return Object.entries(filter).every(([key, cond]) => {
    if (key === '$and') return (cond as Record<string, unknown>[]).every((f) => referenceMatch(f, m));
    if (key === '$or') return (cond as Record<string, unknown>[]).some((f) => referenceMatch(f, m));
    let present = true;
    let v: unknown = m;
    for (const seg of key.split('.')) {
      if (v !== null && typeof v === 'object' && !Array.isArray(v) && seg in (v as object)) v = (v as Record<string, unknown>)[seg];
      else {
        present = false;
        v = undefined;
        break;
      }
    }
    const eq = (x: unknown) => present && (Array.isArray(v) ? v.includes(x) : v === x);
    const ops = typeof cond === 'object' && cond !== null ? (cond as Record<string, unknown>) : { $eq: cond };
    return Object.entries(ops).every(([op, arg]) => {
      switch (op) {
        case '$eq':
          return eq(arg);
        case '$ne':
          return !eq(arg);
        case '$in':
          return (arg as unknown[]).some(eq);
        case '$nin':
          return !(arg as unknown[]).some(eq);
        case '$gt':
          return typeof v === 'number' && v > (arg as number);
        case '$gte':
          return typeof v === 'number' && v >= (arg as number);
        case '$lt':
          return typeof v === 'number' && v < (arg as number);
        case '$lte':
          return typeof v === 'number' && v <= (arg as number);
        case '$exists':
          return present === arg;
        default:
          throw new Error(`reference: unknown op ${op}`);
      }
    });
  });
}

/** Deterministic metadata with every shape the operators care about. */
export function sampleMetadata(i: number): Metadata {
  const m: Metadata = { n: i % 10, genre: ['jazz', 'soul', 'rock'][i % 3], tags: i % 4 === 0 ? ['a', 'b'] : ['c'] };
  if (i % 5 !== 0) m.year = 1950 + (i % 40);
  if (i % 7 === 0) m.flag = true;
  if (i % 11 === 0) m.nothing = null;
  m.author = i % 8 === 0 ? { name: `a${i % 6}` } : { name: `a${i % 6}`, stats: { rank: i % 13 } };
  if (i % 9 === 0) m.year = 'unknown';
  return m;
}

export const FILTERS: Record<string, unknown>[] = [
  { genre: 'jazz' },
  { n: 3 },
  { flag: true },
  { genre: { $eq: 'soul' } },
  { genre: { $ne: 'soul' } },
  { year: { $ne: 1961 } },
  { genre: { $in: ['jazz', 'rock'] } },
  { n: { $nin: [1, 2, 3] } },
  { year: { $gt: 1970 } },
  { year: { $gte: 1970 } },
  { year: { $lt: 1960 } },
  { year: { $lte: 1960 } },
  { year: { $gte: 1960, $lt: 1970 } },
  { year: { $exists: false } },
  { nothing: { $exists: true } },
  { tags: 'a' },
  { tags: { $in: ['b', 'z'] } },
  { tags: { $nin: ['c'] } },
  { 'author.name': 'a2' },
  { 'author.stats.rank': { $lte: 3 } },
  { 'author.stats.rank': { $exists: false } },
  { $and: [{ genre: 'jazz' }, { n: { $gt: 4 } }] },
  { $or: [{ genre: 'rock' }, { flag: true }] },
  { $or: [{ $and: [{ n: 1 }, { genre: 'soul' }] }, { year: { $exists: false } }] },
  { genre: 'jazz', n: { $in: [0, 3, 6, 9] } },
  {},
];

describe('compileFilter', () => {
  const records = Array.from({ length: 400 }, (_, i) => sampleMetadata(i));

  it('agrees with the reference evaluation for every operator', () => {
    for (const filter of FILTERS) {
      const { match } = compileFilter(filter);
      const got = records.filter((m) => match(m)).length;
      const want = records.filter((m) => referenceMatch(filter, m)).length;
      expect({ filter, got }).toEqual({ filter, got: want });
      for (const m of records) expect(match(m)).toBe(referenceMatch(filter, m));
    }
  });

  it('selects something and not everything for the non-trivial filters', () => {
    for (const filter of FILTERS.slice(0, -1)) {
      const count = records.filter(compileFilter(filter).match).length;
      expect(count, JSON.stringify(filter)).toBeGreaterThan(0);
      expect(count, JSON.stringify(filter)).toBeLessThan(records.length);
    }
  });

  it('marks as exact only filters the equality indexes answer completely', () => {
    const exact = (f: unknown) => compileFilter(f).exact;
    expect(exact({ genre: 'jazz' })).toBe(true);
    expect(exact({ genre: { $in: ['a', 'b'] } })).toBe(true);
    expect(exact({ $or: [{ genre: 'jazz' }, { n: { $eq: 1 } }] })).toBe(true);
    expect(exact({ $and: [{ genre: 'jazz' }] })).toBe(true);
    expect(exact({ genre: 'jazz', n: 1 })).toBe(false);
    expect(exact({ genre: { $eq: 'jazz', $ne: 'x' } })).toBe(false);
    expect(exact({ $or: [{ genre: 'jazz' }, { n: { $gt: 1 } }] })).toBe(false);
    expect(exact({ $and: [{ genre: 'jazz' }, { n: 1 }] })).toBe(false);
    expect(exact({})).toBe(false);
  });

  it('treats $ne and $nin as matching missing fields, and ranges as numbers only', () => {
    expect(compileFilter({ x: { $ne: 1 } }).match({})).toBe(true);
    expect(compileFilter({ x: { $nin: [1] } }).match({})).toBe(true);
    expect(compileFilter({ x: { $gt: 1 } }).match({ x: '5' })).toBe(false);
    expect(compileFilter({ x: 1 }).match({ x: [2, 1] })).toBe(true);
    expect(compileFilter({ 'a.b': 1 }).match({ 'a.b': 1 })).toBe(false);
    expect(compileFilter({ x: { $exists: true } }).match({ x: null })).toBe(true);
  });

  const bad: [unknown, RegExp][] = [
    [null, /must be a JSON object/],
    [[], /must be a JSON object/],
    [{ x: { $regex: 'a' } }, /'x': unknown operator '\$regex'/],
    [{ $not: {} }, /unknown top-level operator '\$not'/],
    [{ x: { y: 1 } }, /dotted path like 'x.y'/],
    [{ x: { $gt: 'a' } }, /'x': \$gt takes a finite number/],
    [{ x: { $lt: Infinity } }, /finite number, got Infinity/],
    [{ x: { $in: [] } }, /'x': \$in takes a non-empty array/],
    [{ x: { $in: 'a' } }, /non-empty array/],
    [{ x: { $nin: [{}] } }, /\$nin takes a string, number or boolean, got an object/],
    [{ x: { $exists: 1 } }, /\$exists takes true or false/],
    [{ x: null }, /'x' must be a string, number, boolean or an operator object, got null/],
    [{ x: {} }, /empty operator object/],
    [{ $and: [] }, /\$and takes a non-empty array/],
    [{ $or: [{}] }, /empty filter object/],
    [{ '': 1 }, /field names must be/],
    [{ 'a..b': 1 }, /empty path segment/],
    [{ x: { $in: Array.from({ length: 10_001 }, (_, i) => i) } }, /at most 10000 values/],
  ];
  it.each(bad)('rejects bad filter #%#', (filter, message) => {
    let caught: unknown;
    try {
      compileFilter(filter);
    } catch (err) {
      caught = err;
    }
    expect(isQuartzError(caught, 'invalid_argument')).toBe(true);
    expect((caught as Error).message).toMatch(message);
  });

  it('bounds depth and size instead of recursing without limit', () => {
    let deep: Record<string, unknown> = { x: 1 };
    for (let i = 0; i < 40; i++) deep = { $and: [deep] };
    expect(() => compileFilter(deep)).toThrow(/nested deeper/);
    const wide = { $or: Array.from({ length: 2000 }, (_, i) => ({ x: i })) };
    expect(() => compileFilter(wide)).toThrow(/more than 1024 conditions/);
  });
});
