import { describe, expect, it } from 'vitest';
import { columns, grouped, ratio } from './format.js';

describe('format', () => {
  it('prints ratios with a times sign and figures with thousands separators', () => {
    expect(ratio(3, 2)).toBe('1.50×');
    expect(ratio(1, 3, 1)).toBe('0.3×');
    expect(grouped(1234567.891)).toBe('1,234,568');
    expect(grouped(1234.5, 2)).toBe('1,234.50');
  });

  it('lays out a table: figures right-aligned, the named columns left-aligned, a rule under the head', () => {
    const lines = columns(['run', 'req/s', 'note'], [['bare', '12.3k', 'ceiling'], ['kv get', '9k', '']], { left: [0, 2], rule: true });
    expect(lines).toEqual(['run     req/s  note   ', '------  -----  -------', 'bare    12.3k  ceiling', 'kv get     9k         ']);
    expect(columns(['a', 'bb'], [['123', '4']])).toEqual(['  a  bb', '123   4']);
  });
});
