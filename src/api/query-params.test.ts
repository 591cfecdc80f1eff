import { describe, expect, it } from 'vitest';
import { z } from '@hono/zod-openapi';
import { queryNames, queryOfUrl, refuseUnknownQuery } from './query-params.js';

const refusal = (query: string, known: readonly string[]): string | undefined => {
  try {
    refuseUnknownQuery(query, known);
    return undefined;
  } catch (err) {
    return `${(err as { code: string }).code}: ${(err as Error).message}`;
  }
};

describe('refuseUnknownQuery', () => {
  const list = ['prefix', 'cursor', 'limit'];

  it('passes known parameters, empty pairs and parameters without a value; names are decoded as hono reads them', () => {
    for (const q of ['', 'limit=5', 'prefix=a&cursor=&limit=1', '&&limit=1&', 'limit', 'li%6Dit=1', 'prefix=%FF']) expect(refusal(q, list), q).toBeUndefined();
    expect(refusal('max+records=1', ['max records'])).toBeUndefined();
  });

  it('refuses an unknown name with the known one it resembles, or the known list', () => {
    expect(refusal('limt=5', list)).toBe("invalid_argument: query: unknown parameter 'limt'; did you mean 'limit'?");
    expect(refusal('tll=60', ['ttl'])).toBe("invalid_argument: query: unknown parameter 'tll'; did you mean 'ttl'?");
    expect(refusal('Limit=5', list)).toBe("invalid_argument: query: unknown parameter 'Limit'; did you mean 'limit'?");
    expect(refusal('=5', list)).toBe("invalid_argument: query: unknown parameter ''; known: prefix, cursor, limit");
    expect(refusal('%FF=1', list)).toBe("invalid_argument: query: unknown parameter '%FF'; known: prefix, cursor, limit");
    expect(refusal('a&limt=1&a&b&c', list)).toBe("invalid_argument: query: unknown parameters 'a', 'limt' (did you mean 'limit'?), 'b' and 1 more; known: prefix, cursor, limit");
    expect(refusal('x=1', [])).toBe("invalid_argument: query: unknown parameter 'x'; this route takes no query parameters");
  });

  it('refuses a known parameter given twice, however it is spelt; an unknown one is named first', () => {
    expect(refusal('limit=1&limit=2', list)).toBe("invalid_argument: query: parameter 'limit' is given more than once; send it once");
    expect(refusal('limit=1&li%6Dit', list)).toBe("invalid_argument: query: parameter 'limit' is given more than once; send it once");
    expect(refusal('limit=1&limit=2&x=1', list)).toMatch(/unknown parameter 'x'/);
  });
});

describe('queryNames and queryOfUrl', () => {
  it('reads the names of a documented query in order; none without one', () => {
    expect(queryNames(z.object({ offset: z.string().optional(), max_records: z.string().optional() }))).toEqual(['offset', 'max_records']);
    expect(queryNames(undefined)).toEqual([]);
  });

  it('takes the text after the first ? up to a #', () => {
    expect(queryOfUrl('http://h/v1/kv')).toBe('');
    expect(queryOfUrl('http://h/v1/kv?limit=1&x=?')).toBe('limit=1&x=?');
    expect(queryOfUrl('http://h/v1/kv?limit=1#x=1')).toBe('limit=1');
  });
});
