import { describe, expect, it } from 'vitest';
import { hasLoneSurrogate, showValue } from './show-value.js';

describe('showValue', () => {
  it('renders any value without throwing', () => {
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(showValue(10n)).toBe('10n');
    expect(showValue(Symbol('s'))).toBe('Symbol(s)');
    expect(showValue(NaN)).toBe('NaN');
    expect(showValue(-Infinity)).toBe('-Infinity');
    expect(showValue(undefined)).toBe('undefined');
    expect(showValue(null)).toBe('null');
    expect(showValue(() => 1)).toBe('a function');
    expect(showValue('a"b')).toBe('"a\\"b"');
    expect(showValue({ a: 1 })).toBe('{"a":1}');
    expect(showValue(cyclic)).toBe('an object');
    expect(showValue([1n])).toBe('an array');
  });

  it('cuts long strings and JSON', () => {
    expect(showValue('x'.repeat(1000))).toBe(JSON.stringify(`${'x'.repeat(140)}…`));
    expect(showValue({ a: 'x'.repeat(1000) }).length).toBe(141);
  });
});

describe('hasLoneSurrogate', () => {
  it('finds unpaired surrogates only', () => {
    expect(hasLoneSurrogate('a\uD800')).toBe(true);
    expect(hasLoneSurrogate('\uDC00a')).toBe(true);
    expect(hasLoneSurrogate('a\uD83D\uDE00b')).toBe(false);
    expect(hasLoneSurrogate('plain')).toBe(false);
  });
});
