import { describe, expect, it } from 'vitest';
import { seededRandom } from '../core/random-testing.js';
import { parseJson } from './body.js';
import { queryBodyFromBytes } from './query-body.js';
import { parseQueryBody } from './schemas/vectors.js';

const encoder = new TextEncoder();

/** A body's outcome with the vector as the f32 values a query uses, or the error it gives. */
function outcome(read: () => { vector?: ArrayLike<number> }): unknown {
  try {
    const body = read();
    return { ...body, vector: body.vector === undefined ? undefined : Array.from(Float32Array.from(body.vector)) };
  } catch (err) {
    return { error: (err as Error).constructor.name, message: (err as Error).message, code: (err as { code?: string }).code };
  }
}

/** The general path: JSON.parse, then parseQueryBody. */
const general = (bytes: Uint8Array) => outcome(() => parseQueryBody(parseJson(bytes)));
const fast = (bytes: Uint8Array) => outcome(() => queryBodyFromBytes(bytes));

describe('queryBodyFromBytes', () => {
  const random = seededRandom(11);
  const vector = (n: number) => Array.from({ length: n }, () => Math.fround(random() * 2 - 1));

  it('reads the usual bodies in one pass (the vector comes out as f32), as the general path does', () => {
    const v = vector(8);
    const bodies = [
      { vector: v, k: 10 },
      { k: 3, vector: v },
      { vector: v, k: 1000, ef: 64, threshold: -0.25, include_metadata: true, include_values: false },
      { include_values: true, threshold: 1e-7, vector: v, ef: 10000, k: 1 },
    ];
    for (const body of bodies) {
      for (const text of [JSON.stringify(body), JSON.stringify(body, null, 2), ` ${JSON.stringify(body)}\r\n\t`]) {
        const bytes = encoder.encode(text);
        expect(queryBodyFromBytes(bytes).vector, text).toBeInstanceOf(Float32Array);
        expect(fast(bytes), text).toEqual(general(bytes));
      }
    }
  });

  it('reads an object filter in the same pass (only its text through JSON.parse), as the general path does', () => {
    const v = JSON.stringify(vector(4));
    const filters = [
      '{}',
      '{"lang":"en"}',
      '{"n":{"$gte":2,"$lt":10}}',
      '{"$or":[{"a":{"$in":["x","y"]}},{"b":{"$ne":null}}],"c":true}',
      '{"s":"} ] { [ \\" \\\\"}',
      '{"t":"日本語 é \\u00e9 \\ud83d\\ude00"}',
      '{"a":1,"a":2}',
      '{"__proto__":{"x":1}}',
      ' { "spaced" : [ 1 , 2 ] } ',
    ];
    for (const filter of filters) {
      for (const text of [`{"vector":${v},"k":3,"filter":${filter}}`, `{"filter":${filter},"k":3,"vector":${v}}`, `{"vector":${v},"filter":{"z":0},"k":3,"filter":${filter}}`]) {
        const bytes = encoder.encode(text);
        expect(queryBodyFromBytes(bytes).vector, text).toBeInstanceOf(Float32Array);
        expect(fast(bytes), text).toEqual(general(bytes));
      }
    }
    // A filter holding bytes that are not UTF-8 reads as the general path decodes them (U+FFFD).
    const head = encoder.encode(`{"vector":${v},"k":3,"filter":{"s":"`);
    const bytes = Uint8Array.from([...head, 0xc3, 0xff, 0xe2, 0x82, ...encoder.encode('"}}')]);
    expect(fast(bytes)).toEqual(general(bytes));
  });

  it('reads generated hostile filters (brackets, quotes and escapes in strings, unicode, deep nesting, huge numbers, repeated and __proto__ keys, trailing junk) as the general path does', () => {
    const v = JSON.stringify(vector(3));
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
    const strings = ['', '}', ']', '{[', '"', '\\', '\\"}', '\u0000', '\u001f', 'é', '日本', '\ud83d\ude00', '\ud800', '\udfff', '\u2028', '$and', '__proto__', 'constructor'];
    const texts = ['', ' ', '\n\t', ',', ']', '}', '{', '"', '\\', '\\u00', '\\ud83d', '//', '/*x*/', 'e5', '-0', '1e400', '0x1', '\u00a0', '\ufeff'];
    const numbers = ['0', '-0', '1e400', '-1e-400', '123456789012345678901234567890', '1.5e+3', '9007199254740993', '01', '.5', '1.', '+1', 'NaN'];
    const ws = () => pick(['', '', ' ', '\n', '\r\n\t ']);
    // A JSON-ish value's text: mostly valid, now and then with a flaw JSON.parse refuses.
    const value = (depth: number): string => {
      const r = random();
      if (depth > 0 && r < 0.35) {
        const n = Math.floor(random() * 4);
        const keys = Array.from({ length: n }, () => JSON.stringify(pick([...strings, 'a', 'a', '$in', '$gt'])));
        return `{${ws()}${keys.map((k) => `${k}${ws()}:${ws()}${value(depth - 1)}`).join(`${ws()},${ws()}`)}${ws()}}`;
      }
      if (depth > 0 && r < 0.5) return `[${Array.from({ length: Math.floor(random() * 4) }, () => value(depth - 1)).join(',')}]`;
      if (r < 0.75) {
        const s = pick(strings);
        // Raw control characters and lone escapes are JSON.parse's to refuse.
        return random() < 0.9 ? JSON.stringify(s) : `"${s}"`;
      }
      if (r < 0.9) return pick(numbers);
      return pick(['true', 'false', 'null']);
    };
    const nested = (levels: number) => `${'{"$and":['.repeat(levels)}{"a":1}${']}'.repeat(levels)}`;
    let fastPath = 0;
    for (let i = 0; i < 20_000; i++) {
      const r = random();
      let filter = r < 0.05 ? nested(14 + Math.floor(random() * 6)) : r < 0.1 ? `{"a":1,"a":${value(2)},"__proto__":${value(2)}}` : `{${ws()}"f":${ws()}${value(4)}${ws()}}`;
      if (random() < 0.15) filter += pick(texts);
      if (random() < 0.05) filter = pick(texts) + filter;
      const parts = [`"vector":${v}`, `"k":3`, `"filter":${ws()}${filter}${ws()}`];
      if (random() < 0.3) parts.push(`"include_metadata":true`);
      parts.sort(() => random() - 0.5);
      const bytes = encoder.encode(`{${parts.join(',')}${random() < 0.05 ? ',' : ''}}${random() < 0.05 ? pick(texts) : ''}`);
      const got = fast(bytes);
      const want = general(bytes);
      expect(got, new TextDecoder().decode(bytes)).toEqual(want);
      // The filter with the same key order and -0s as the general path's, not only deep equality.
      const text = (o: unknown) => JSON.stringify((o as { filter?: unknown }).filter, (_, x: unknown) => (Object.is(x, -0) ? '-0' : x));
      expect(text(got)).toBe(text(want));
      // Every valid body here is one the fast pass takes whole.
      if (!('error' in (want as object))) {
        expect(queryBodyFromBytes(bytes).vector, new TextDecoder().decode(bytes)).toBeInstanceOf(Float32Array);
        fastPath++;
      }
    }
    expect(fastPath).toBeGreaterThan(5000);
  });

  it('leaves other bodies to JSON.parse and parseQueryBody, with the same answers and errors', () => {
    const v = JSON.stringify(vector(4));
    const texts = [
      '',
      ' ',
      '{}',
      '[]',
      'null',
      `{"vector":${v}}`,
      `{"vector":${v},"k":0}`,
      `{"vector":${v},"k":1001}`,
      `{"vector":${v},"k":-1}`,
      `{"vector":${v},"k":10.0}`,
      `{"vector":${v},"k":1e1}`,
      `{"vector":${v},"k":10.5}`,
      `{"vector":${v},"k":"10"}`,
      `{"vector":${v},"k":010}`,
      `{"vector":${v},"k":10,"ef":0}`,
      `{"vector":${v},"k":10,"ef":10001}`,
      `{"vector":${v},"k":10,"k":5}`,
      `{"vector":[1,2],"k":10,"vector":${v}}`,
      `{"vector":${v},"k":10,"id":"a"}`,
      `{"id":"a","k":10}`,
      `{"vector":${v},"k":10,"filter":{"a":1}}`,
      `{"vector":${v},"k":10,"filter":null}`,
      `{"vector":${v},"k":10,"filter":[]}`,
      `{"vector":${v},"k":10,"filter":"a"}`,
      `{"vector":${v},"k":10,"filter":{"a":}}`,
      `{"vector":${v},"k":10,"filter":{"a":1]}`,
      `{"vector":${v},"k":10,"filter":{"a":[1}]}`,
      `{"vector":${v},"k":10,"filter":{"a":"\\"}}`,
      `{"vector":${v},"k":10,"filter":{"a":1}`,
      `{"vector":${v},"k":10,"filter":{"a":"\u0001"}}`,
      `{"vector":${v},"k":10,"filter":{"a":1}}}`,
      `{"vector":${v},"k":10,"extra":1}`,
      `{"vector":${v},"k":10,"threshold":"x"}`,
      `{"vector":${v},"k":10,"threshold":1e999}`,
      `{"vector":${v},"k":10,"threshold":.5}`,
      `{"vector":${v},"k":10,"include_metadata":1}`,
      `{"vector":${v},"k":10,"include_metadata":tru}`,
      `{"vector":${v},"k":10,"include_values":null}`,
      `{"vector":${v},"k":10,}`,
      `{"vector":${v},"k":10}}`,
      `{"vector":${v},"k":10} x`,
      `{"vector":${v} "k":10}`,
      `{"vector" ${v},"k":10}`,
      `{"vect\\u006fr":${v},"k":10}`,
      `{"vector":[],"k":10}`,
      `{"vector":[1,"2"],"k":10}`,
      `{"vector":[1,null],"k":10}`,
      `{"vector":[1e39,1],"k":10}`,
      `{"vector":[1e400,1],"k":10}`,
      `{"vector":[1,2,],"k":10}`,
      `{"vector":"1,2","k":10}`,
      `{"vector":{"0":1},"k":10}`,
      `\ufeff{"vector":${v},"k":10}`,
      `{"vector":[0.5,-0,1E-45,3.4028235677973362e38],"k":2}`,
    ];
    for (const text of texts) {
      const bytes = encoder.encode(text);
      expect(fast(bytes), text).toEqual(general(bytes));
    }
  });

  it('takes a field only by its exact name: a name one byte off, a prefix, a longer one or one cut off by the end of the body is left to the general path', () => {
    const v = JSON.stringify(vector(4));
    const names = ['vectoR', 'vecto', 'vectors', 'kk', 'K', 'e', 'efs', 'thresholds', 'include_metadat', 'include_values_', 'filteR', 'include_metadatas', ''];
    for (const name of names) {
      for (const text of [`{"vector":${v},"k":3,"${name}":1}`, `{"${name}":${v},"k":3}`, `{"vector":${v},"${name}":3}`]) {
        const bytes = encoder.encode(text);
        expect(fast(bytes), text).toEqual(general(bytes));
      }
    }
    for (const text of [`{"vector":${v},"k`, `{"vector":${v},"k"`, `{"vector":${v},"vector`, `{"`, '{"k']) {
      const bytes = encoder.encode(text);
      expect(fast(bytes), text).toEqual(general(bytes));
    }
  });

  it('matches the general path on randomly damaged bodies', () => {
    const pieces = ['"', ':', ',', '{', '}', '[', ']', ' ', '\n', '0', '1', '-', '.', 'e', 'k', 'true', 'false', 'null', '\\', '"k":', '"ef":7', '"vector":', 'é'];
    const bases = [
      JSON.stringify({ vector: vector(3), k: 7, threshold: 0.5, include_metadata: false }),
      JSON.stringify({ vector: vector(3), filter: { a: { $in: ['x}', 'y"'] }, b: [1, { c: null }] }, k: 7 }),
    ];
    for (let i = 0; i < 40_000; i++) {
      let text = bases[i & 1]!;
      for (let edits = 1 + Math.floor(random() * 2); edits > 0; edits--) {
        const at = Math.floor(random() * (text.length + 1));
        text = text.slice(0, at) + pieces[Math.floor(random() * pieces.length)]! + text.slice(at + Math.floor(random() * 2));
      }
      const bytes = encoder.encode(text);
      expect(fast(bytes), text).toEqual(general(bytes));
    }
  });
});
