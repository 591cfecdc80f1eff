import { describe, expect, it } from 'vitest';
import { expectQuartzError } from '../../tests/fixtures/expect-error.js';
import { fromBase64, parseProduceBody, recordToJson, toBase64 } from './record-codec.js';

const utf8 = (s: string) => new TextEncoder().encode(s);

const errorOf = (fn: () => unknown): string => expectQuartzError(fn, 'invalid_argument').message;

describe('base64', () => {
  it('round-trips every length and byte, and matches btoa', () => {
    for (let n = 0; n < 40; n++) {
      const bytes = Uint8Array.from({ length: n }, (_, i) => (i * 73 + n) & 0xff);
      const s = toBase64(bytes);
      expect(s).toBe(btoa(String.fromCharCode(...bytes)));
      expect(fromBase64(s)).toEqual(bytes);
      expect(fromBase64(s.replace(/=+$/, ''))).toEqual(bytes);
    }
  });

  it('refuses what is not base64', () => {
    for (const bad of ['***', 'a', 'ab=c', 'abc==', 'ab===', 'é', 'QQ=']) expect(fromBase64(bad), bad).toBeUndefined();
  });
});

describe('parseProduceBody', () => {
  it('turns records into engine records with utf8 or base64 bytes', () => {
    const records = parseProduceBody({
      records: [
        { key: 'k', value: 'v', headers: [{ key: 'h', value: 'x' }], partition: 2 },
        { value: 'AAH/', encoding: 'base64', key: null },
        { value: null },
      ],
    });
    expect(records[0]).toEqual({ key: utf8('k'), value: utf8('v'), headers: [{ key: 'h', value: utf8('x') }], partition: 2 });
    expect(records[1]).toEqual({ key: null, value: new Uint8Array([0, 1, 255]) });
    expect(records[2]).toEqual({ key: null, value: null });
  });

  it('encodes utf8 byte for byte like TextEncoder: non-ASCII, surrogate pairs, lone surrogates, bodies past one packing chunk', () => {
    const samples = ['', 'a', 'héllo', 'x'.repeat(99) + '€', '😀 emoji', 'ab\uD800cd', '\uDC00', '日本語'.repeat(50), 'z'.repeat(5000)];
    const list = Array.from({ length: 600 }, (_, i) => ({ key: samples[(i + 3) % samples.length]!, value: samples[i % samples.length]! }));
    const records = parseProduceBody({ records: list });
    const hex = (b: Uint8Array | null | undefined) => (b == null ? String(b) : Array.from(b, (x) => x.toString(16).padStart(2, '0')).join(''));
    const got = records.map((r) => `${hex(r.key)}:${hex(r.value)}`);
    const want = list.map((r) => `${hex(utf8(r.key))}:${hex(utf8(r.value))}`);
    expect(got).toEqual(want);
  });

  it('names the field of every kind of bad input', () => {
    expect(errorOf(() => parseProduceBody([]))).toBe('body: expected object, received array');
    expect(errorOf(() => parseProduceBody({}))).toBe('records: expected array, received undefined');
    expect(errorOf(() => parseProduceBody({ records: [] }))).toMatch(/^records: /);
    expect(errorOf(() => parseProduceBody({ records: [{ value: 'a' }, { value: 'b' }, { value: 'c' }, { value: 1 }] }))).toBe('records[3].value: expected string, received number');
    expect(errorOf(() => parseProduceBody({ records: [{ key: 'k' }] }))).toMatch(/^records\[0\]\.value: required/);
    expect(errorOf(() => parseProduceBody({ records: [{ value: 'a', key: 5 }] }))).toBe('records[0].key: expected string or null, received number');
    expect(errorOf(() => parseProduceBody({ records: [{ value: 'a', encoding: 'hex' }] }))).toMatch(/^records\[0\]\.encoding: /);
    expect(errorOf(() => parseProduceBody({ records: [{ value: '%%', encoding: 'base64' }] }))).toMatch(/^records\[0\]\.value: not valid base64/);
    expect(errorOf(() => parseProduceBody({ records: [{ value: 'a', partition: -1 }] }))).toMatch(/^records\[0\]\.partition: /);
    expect(errorOf(() => parseProduceBody({ records: [{ value: 'a', partition: 1.5 }] }))).toMatch(/^records\[0\]\.partition: /);
    expect(errorOf(() => parseProduceBody({ records: [{ value: 'a', headers: {} }] }))).toMatch(/^records\[0\]\.headers: expected array/);
    expect(errorOf(() => parseProduceBody({ records: [{ value: 'a', headers: [{ key: 1, value: 'x' }] }] }))).toMatch(/^records\[0\]\.headers\[0\]\.key: /);
    expect(errorOf(() => parseProduceBody({ records: [null] }))).toBe('records[0]: expected object, received null');
  });
});

describe('recordToJson', () => {
  const base = { offset: 7, timestamp: 1000, headers: [] };

  it('writes utf8 when every byte field is valid UTF-8', () => {
    expect(recordToJson({ ...base, key: utf8('k'), value: utf8('héllo'), headers: [{ key: 'h', value: null }] })).toEqual({
      offset: 7,
      timestamp: 1000,
      key: 'k',
      value: 'héllo',
      headers: [{ key: 'h', value: null }],
      encoding: 'utf8',
    });
  });

  it('switches the whole record to base64 when any byte field is not UTF-8', () => {
    const bad = new Uint8Array([0xff, 0xfe]);
    expect(recordToJson({ ...base, key: utf8('k'), value: bad })).toMatchObject({ key: 'aw==', value: '//4=', encoding: 'base64' });
    expect(recordToJson({ ...base, key: null, value: utf8('v'), headers: [{ key: 'h', value: bad }] })).toMatchObject({
      key: null,
      value: 'dg==',
      headers: [{ key: 'h', value: '//4=' }],
      encoding: 'base64',
    });
  });
});
