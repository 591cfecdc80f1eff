import { describe, expect, it } from 'vitest';
import { seededRandom } from '../../core/random-testing.js';
import { presentedKey } from './auth.js';

function request(headers: Record<string, string>): { header(name: string): string | undefined } {
  return { header: (name) => headers[name] };
}

/**
 * The rule as documented: a non-empty X-API-Key or a Bearer token in Authorization; none when
 * Authorization holds no Bearer token or the two name different keys.
 */
function reference(headers: Record<string, string>): string | undefined {
  const other = headers['x-api-key']?.trim() || undefined;
  if (headers.authorization === undefined) return other;
  const bearer = /^Bearer\s+(\S+)\s*$/i.exec(headers.authorization)?.[1];
  return other === undefined || other === bearer ? bearer : undefined;
}

describe('presentedKey', () => {
  it.each([
    [{ authorization: 'Bearer qz_abc' }, 'qz_abc'],
    [{ authorization: 'bearer qz_abc' }, 'qz_abc'],
    [{ authorization: 'Bearer \t qz_abc  ' }, 'qz_abc'],
    [{ authorization: 'Bearer qz_\u00e4' }, 'qz_\u00e4'],
    [{ authorization: 'Bearer a b' }, undefined],
    [{ authorization: 'Bearer ' }, undefined],
    [{ authorization: 'Basic qz_abc', 'x-api-key': ' qz_key ' }, undefined],
    [{ authorization: 'Bearer qz_abc', 'x-api-key': 'qz_key' }, undefined],
    [{ authorization: 'Bearer qz_abc', 'x-api-key': ' qz_abc ' }, 'qz_abc'],
    [{ 'x-api-key': ' qz_key ' }, 'qz_key'],
    [{ 'x-api-key': '  ' }, undefined],
  ])('%j → %s', (headers: Record<string, string>, key) => {
    expect(presentedKey(request(headers))).toBe(key);
  });

  it('reads the same key from a value sent again, whether its key was kept or has been pushed out', () => {
    const first = 'Bearer qz_first';
    expect(presentedKey(request({ authorization: first }))).toBe('qz_first');
    expect(presentedKey(request({ authorization: first }))).toBe('qz_first');
    // Past the kept keys' bound (1,024 values): the first is read afresh.
    for (let i = 0; i < 1500; i++) expect(presentedKey(request({ authorization: `Bearer qz_${i}` }))).toBe(`qz_${i}`);
    expect(presentedKey(request({ authorization: first }))).toBe('qz_first');
    expect(presentedKey(request({ authorization: first, 'x-api-key': 'qz_other' }))).toBeUndefined();
    expect(presentedKey(request({ authorization: 'Bearer qz_1499' }))).toBe('qz_1499');
  });

  it('reads the same key as the Bearer pattern for any Authorization value', () => {
    const rand = seededRandom(7);
    const parts = ['Bearer', 'bearer', ' ', '\t', '\u00a0', 'qz_', 'a', 'ä', '"', '\u007f', ','];
    // 10,000 values drawn from few parts: many come again, read from the kept keys.
    for (let n = 0; n < 10000; n++) {
      let value = rand() < 0.7 ? 'Bearer ' : '';
      const length = Math.floor(rand() * 6);
      for (let i = 0; i < length; i++) value += parts[Math.floor(rand() * parts.length)];
      const headers: Record<string, string> = { authorization: value };
      if (rand() < 0.5) headers['x-api-key'] = rand() < 0.5 ? 'qz_' : 'fallback';
      expect(presentedKey(request(headers)), JSON.stringify(value)).toBe(reference(headers));
    }
  });
});
