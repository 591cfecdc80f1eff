import { describe, expect, it } from 'vitest';
import { ErrorCode, QuartzError } from '../core/errors.js';
import { seededRandom } from '../core/random-testing.js';
import { SortedNames } from '../ports/sorted-strings.js';
import { bytesFromCursor, cursorFromBytes, cursorFromName, nameFromCursor, pageLimit } from './list-cursor.js';

function refused(fn: () => unknown): QuartzError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(QuartzError);
    expect((err as QuartzError).code).toBe(ErrorCode.INVALID_ARGUMENT);
    expect((err as QuartzError).message).toMatch(/^cursor: /);
    return err as QuartzError;
  }
  throw new Error('expected the cursor to be refused');
}

describe('list cursors', () => {
  it('round-trip any bytes and any name, as unpadded base64url', () => {
    const random = seededRandom(7);
    for (let n = 1; n <= 40; n++) {
      const bytes = Uint8Array.from({ length: n }, () => Math.floor(random() * 256));
      const cursor = cursorFromBytes(bytes);
      expect(cursor).toMatch(/^[A-Za-z0-9_-]+$/);
      expect(cursor).toBe(Buffer.from(bytes).toString('base64url'));
      expect(bytesFromCursor(cursor, 64)).toEqual(bytes);
    }
    for (const name of ['a', 'orders', '\uFEFFbom', 'ключ', '😀/x']) expect(nameFromCursor(cursorFromName(name), 64)).toBe(name);
  });

  it('take only the spelling they were emitted in', () => {
    const good = cursorFromName('a'); // 'YQ'
    expect(good).toBe('YQ');
    // Each of these decodes to 'a' (or to bytes) with atob or Buffer, but is not what the server emits.
    for (const variant of ['YR', 'YS', 'YQ=', 'YQ==', ' YQ', 'YQ\n', 'Y Q', 'YQ%3D']) refused(() => bytesFromCursor(variant, 64));
    // The standard alphabet where base64url has '-' and '_'.
    const dashed = cursorFromBytes(Uint8Array.of(0xfb, 0xff));
    expect(dashed).toBe('-_8');
    refused(() => bytesFromCursor('+/8', 64));
    for (const garbage of ['', 'Y', 'YQ!', '*', '%%%', 'YWJjZ']) refused(() => bytesFromCursor(garbage, 64));
    for (const notString of [undefined, null, 42, ['YQ'], { cursor: 'YQ' }]) refused(() => bytesFromCursor(notString, 64));
  });

  it('refuse more bytes than the listing has, before decoding a long cursor', () => {
    expect(bytesFromCursor(cursorFromBytes(new Uint8Array(64)), 64)).toHaveLength(64);
    refused(() => bytesFromCursor(cursorFromBytes(new Uint8Array(65)), 64));
    refused(() => bytesFromCursor('A'.repeat(10_000_000), 64));
  });

  it('refuse a name cursor whose bytes are not UTF-8', () => {
    refused(() => nameFromCursor(cursorFromBytes(Uint8Array.of(0xff)), 64));
    refused(() => nameFromCursor(cursorFromBytes(Uint8Array.of(0xed, 0xa0, 0x80)), 64)); // a lone surrogate's bytes
  });

  it('check page limits', () => {
    expect(pageLimit(undefined)).toBe(1000);
    expect(pageLimit(1)).toBe(1);
    for (const bad of [0, 1001, 1.5, -1, '10', null, Number.NaN]) expect(() => pageLimit(bad)).toThrow(/limit must be an integer from 1 to 1000/);
  });
});

describe('SortedNames', () => {
  it('keeps names in order through adds and deletes, and pages after any name', () => {
    const random = seededRandom(11);
    const names = new SortedNames(['m', 'c', 'x']);
    const model = new Set(['m', 'c', 'x']);
    for (let i = 0; i < 2000; i++) {
      const name = `n${Math.floor(random() * 300)}`;
      if (random() < 0.6) {
        names.add(name);
        model.add(name);
      } else {
        names.delete(name);
        model.delete(name);
      }
    }
    const sorted = [...model].sort();
    expect(names.all()).toEqual(sorted);
    expect(names.size).toBe(sorted.length);
    for (const after of [undefined, 'a', 'n1', 'n150', sorted[5]!, 'zz']) {
      const from = after === undefined ? 0 : sorted.findIndex((n) => n > after);
      const expected = from < 0 ? [] : sorted.slice(from, from + 7);
      const page = names.after(after, 7);
      expect(page.names).toEqual(expected);
      expect(page.more).toBe(from >= 0 && from + 7 < sorted.length);
    }
    names.clear();
    expect(names.after(undefined, 5)).toEqual({ names: [], more: false });
  });
});
