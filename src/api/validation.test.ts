import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { expectQuartzError } from '../../tests/fixtures/expect-error.js';
import { formatPath, parseWith, queryBool, queryInt } from './validation.js';

const message = (fn: () => unknown): string => expectQuartzError(fn, 'invalid_argument').message;

describe('validation', () => {
  it('formats paths the way clients write them', () => {
    expect(formatPath(['records', 3, 'value'])).toBe('records[3].value');
    expect(formatPath([0, 'a'])).toBe('[0].a');
    expect(formatPath([])).toBe('');
  });

  it('parseWith names the field and what was expected', () => {
    const schema = z.object({ records: z.array(z.object({ value: z.string() })) });
    expect(parseWith(schema, { records: [{ value: 'a' }] })).toEqual({ records: [{ value: 'a' }] });
    expect(message(() => parseWith(schema, { records: [{ value: 'a' }, { value: 2 }] }))).toBe('records[1].value: expected string, received number');
    expect(message(() => parseWith(schema, 'x'))).toMatch(/^body: expected object/);
  });

  it('query integers and booleans', () => {
    expect(queryInt(undefined, 'limit', 1, 10, 5)).toBe(5);
    expect(queryInt('', 'limit', 1, 10)).toBeUndefined();
    expect(queryInt('7', 'limit', 1, 10)).toBe(7);
    expect(message(() => queryInt('11', 'limit', 1, 10))).toBe('limit: must be an integer from 1 to 10, got 11');
    expect(message(() => queryInt('1e3', 'limit', 1, 10))).toMatch(/^limit: expected an integer/);
    expect(message(() => queryInt('99999999999999999999', 'offset', 0, Number.MAX_SAFE_INTEGER))).toMatch(/^offset: /);
    expect(queryBool('true', 'x', false)).toBe(true);
    expect(queryBool('0', 'x', true)).toBe(false);
    expect(queryBool(undefined, 'x', true)).toBe(true);
    expect(message(() => queryBool('yes', 'include_values', false))).toMatch(/^include_values: /);
  });
});
