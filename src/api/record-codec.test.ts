import { describe, expect, it, vi } from 'vitest';
import { expectQuartzError } from '../../tests/fixtures/expect-error.js';
import { RecordSpans, type DecodedRecord } from '../core/segment.js';
import { QuartzError } from '../core/errors.js';
import { init } from '../node/core.js';
import { createTestContext } from '../engine/testing.js';
import { StreamStore, type ProduceRecord } from '../engine/streams/stream-store.js';
import { parseJson } from './body.js';
import { seededRandom } from '../core/random-testing.js';
import { MAX_PRODUCE_HEADERS, MAX_PRODUCE_RECORDS, consumeResultJson, fromBase64, parseProduceBody, parseProduceJson, produceResultJson } from './record-codec.js';
import { ProduceBody } from './schemas/streams.js';

const utf8 = (s: string) => new TextEncoder().encode(s);

const errorOf = (fn: () => unknown): string => expectQuartzError(fn, 'invalid_argument').message;

describe('base64', () => {
  it('reads what btoa writes, padded or not, for every length', () => {
    for (let n = 0; n < 40; n++) {
      const bytes = Uint8Array.from({ length: n }, (_, i) => (i * 73 + n) & 0xff);
      const s = btoa(String.fromCharCode(...bytes));
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

  it('encodes utf8 byte for byte like TextEncoder: non-ASCII, surrogate pairs, bodies past one packing chunk', () => {
    const samples = ['', 'a', 'héllo', 'x'.repeat(99) + '€', '😀 emoji', '\uD83D\uDE00', '日本語'.repeat(50), 'z'.repeat(5000)];
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
    // 1e400 in a body parses to Infinity, which JSON.stringify would have called null.
    expect(errorOf(() => parseProduceBody({ records: [{ value: 'a', partition: Infinity }] }))).toBe('records[0].partition: expected a non-negative integer, received Infinity');
    expect(errorOf(() => parseProduceBody({ records: [{ value: 'a', partition: null }] }))).toBe('records[0].partition: expected a non-negative integer, received null');
    expect(errorOf(() => parseProduceBody({ records: [{ value: 'a', headers: {} }] }))).toMatch(/^records\[0\]\.headers: expected array/);
    expect(errorOf(() => parseProduceBody({ records: [{ value: 'a', headers: [{ key: 1, value: 'x' }] }] }))).toMatch(/^records\[0\]\.headers\[0\]\.key: /);
    expect(errorOf(() => parseProduceBody({ records: [null] }))).toBe('records[0]: expected object, received null');
  });

  it('refuses a lone surrogate in a utf8 field, which UTF-8 cannot hold (it would be stored as U+FFFD), naming the field', () => {
    for (const [record, field] of [
      [{ value: 'ab\uD800cd' }, 'records[0].value'],
      [{ key: '\uDC00', value: 'v' }, 'records[0].key'],
      [{ value: 'v', headers: [{ key: 'h', value: 'x\uDBFF' }] }, 'records[0].headers[0].value'],
    ] as const) {
      expect(errorOf(() => parseProduceBody({ records: [record] }))).toBe(`${field}: not well-formed Unicode (a lone surrogate, which UTF-8 cannot hold); send such bytes with "encoding": "base64"`);
      expect(errorOf(() => parseProduceJson(new TextEncoder().encode(JSON.stringify({ records: [record] }))))).toMatch(new RegExp(`^${field.replace(/[[\].]/g, '\\$&')}: not well-formed Unicode`));
    }
  });
});

describe('produce bodies with a field nobody reads', () => {
  // A misspelt partition sent the record to another partition, a misspelt encoding stored the
  // base64 text itself as the value, a misspelt header value dropped it.
  it('are refused on both paths with the same message, naming the field and the one it resembles', () => {
    const cases: Array<[body: unknown, message: string]> = [
      [{ records: [{ value: 'a' }, { value: 'b', partiton: 2 }] }, "invalid_argument: records[1]: unknown field 'partiton'; did you mean 'partition'?"],
      [{ records: [{ value: 'aGk=', encodng: 'base64' }] }, "invalid_argument: records[0]: unknown field 'encodng'; did you mean 'encoding'?"],
      [{ records: [{ value: 'a', headers: [{ key: 'h', vaule: 'v' }] }] }, "invalid_argument: records[0].headers[0]: unknown field 'vaule'; did you mean 'value'?"],
      [{ record: [{ value: 'a' }] }, "invalid_argument: body: unknown field 'record'; did you mean 'records'?"],
      [{ records: [{ value: 'a' }], acks: 'all' }, "invalid_argument: body: unknown field 'acks'; known: records"],
      // A consumed record sent back as it came: the fields consume adds are named.
      [{ records: [{ offset: 0, timestamp: 1, key: null, value: 'a', headers: [], encoding: 'utf8' }] }, "invalid_argument: records[0]: unknown fields 'offset', 'timestamp'; known: key, value, headers, partition, encoding"],
    ];
    for (const [body, message] of cases) {
      expect(outcome(() => parseProduceBody(body)), JSON.stringify(body)).toBe(message);
      expect(outcome(() => parseProduceJson(utf8(JSON.stringify(body)))), JSON.stringify(body)).toBe(message);
    }
  });
});

describe('ProduceBody (the OpenAPI document) and parseProduceBody', () => {
  it('accept and refuse the same bodies (base64 content aside, which a schema cannot check)', () => {
    const bodies: unknown[] = [
      { records: [{ value: 'a' }] },
      { records: [{ value: null, key: null }] },
      { records: [{ value: 'a', key: 'k', partition: 0, encoding: 'utf8', headers: [] }] },
      { records: [{ value: 'aGk=', encoding: 'base64', headers: [{ key: 'h', value: 'AAE=' }] }] },
      { records: [{ value: 'a', headers: [{ key: 'h' }, { key: 'n', value: null }] }], extra: 1 },
      { records: [{ value: 'a', unknown: { deep: [1] } }] },
      { records: [] },
      { records: {} },
      {},
      [],
      null,
      { records: [null] },
      { records: [{ key: 'k' }] },
      { records: [{ value: 1 }] },
      { records: [{ value: 'a', key: 5 }] },
      { records: [{ value: 'a', partition: -1 }] },
      { records: [{ value: 'a', partition: 1.5 }] },
      { records: [{ value: 'a', partition: '1' }] },
      { records: [{ value: 'a', partition: 2 ** 53 }] },
      { records: [{ value: 'a', encoding: 'hex' }] },
      { records: [{ value: 'a', headers: {} }] },
      { records: [{ value: 'a', headers: [null] }] },
      { records: [{ value: 'a', headers: [{ value: 'v' }] }] },
      { records: [{ value: 'a', headers: [{ key: 'h', value: 5 }] }] },
    ];
    for (const body of bodies) {
      const server = outcome(() => parseProduceBody(body)).startsWith('invalid_argument') ? 'refused' : 'accepted';
      expect(server, JSON.stringify(body)).toBe(ProduceBody.safeParse(body).success ? 'accepted' : 'refused');
    }
  });
});

/** Spans as the record objects they describe (views of their bytes); records as they are. */
function asRecords(parsed: ProduceRecord[] | RecordSpans): ProduceRecord[] {
  if (!(parsed instanceof RecordSpans)) return parsed;
  const { bytes, spans } = parsed;
  const at = (s: number, e: number) => (s === -1 ? null : bytes.subarray(s, e));
  return Array.from({ length: parsed.length }, (_, i) => ({ key: at(spans[i * 4]!, spans[i * 4 + 1]!), value: at(spans[i * 4 + 2]!, spans[i * 4 + 3]!) }));
}

/** What parsing gives: the records as hex, or the error's code and message. */
function outcome(parse: () => ProduceRecord[] | RecordSpans): string {
  try {
    const hex = (b: Uint8Array | null | undefined) => (b == null ? String(b) : Array.from(b, (x) => x.toString(16).padStart(2, '0')).join(''));
    const records = asRecords(parse());
    return JSON.stringify(records.map((r) => ({ k: hex(r.key), v: hex(r.value), p: r.partition, h: r.headers?.map((h) => [h.key, hex(h.value)]) })));
  } catch (err) {
    if (!(err instanceof QuartzError)) throw err;
    return `${err.code}: ${err.message}`;
  }
}

/** The general path: the body parsed as readJson does, then parseProduceBody. */
function general(text: Uint8Array): string {
  return outcome(() => parseProduceBody(parseJson(text)));
}

describe('parseProduceJson', () => {
  const bodies = [
    '{"records":[{"value":"hello"}]}',
    ' \n{ "records" : [ { "key" : "k1" , "value" : "v1" , "partition" : 3 } , {"value":null,"key":null} ] }\t',
    '{"records":[{"value":"aGk=","encoding":"base64","key":"AAH/"}]}',
    '{"records":[{"encoding":"base64","value":"aGk"}]}',
    '{"records":[{"value":"{\\"user\\":1,\\"tag\\":\\"a\\\\nb\\"}"}]}',
    '{"records":[{"value":"héllo € 😀","key":"日本"}]}',
    '{"records":[{"value":"\\ud800 lone \\udc00 \\ud83d\\ude00 \\u00e9 \\/ \\b\\f\\n\\r\\t"}]}',
    '{"records":[{"value":"x","headers":[{"key":"h1","value":"a"},{"key":"h\\u00e9","value":null},{"key":"h3"}]}]}',
    '{"records":[{"value":"eA==","encoding":"base64","headers":[{"value":"AAE=","key":"h"}]}]}',
    '{"records":[{"value":"x","headers":[]}],"extra":{"a":[1,-2.5e+3,true,false,null,{"b":"\\u0041"}],"c":0}}',
    '{"meta":"first","records":[{"value":"x","timestamp":123,"nested":{"deep":[[[]]]}}]}',
    '{"records":[{"value":"x","partition":0},{"value":"y","partition":1.0},{"value":"z","partition":123456789012345}]}',
    '{"records":[{"value":"x","\\u006bey":"escaped name"}]}',
    '{"records":[{"value":"x","constructor":1,"__proto__":2}]}',
    '{"records":[{"value":"\u007f del"}]}',
    // refused, by the general path's words
    '',
    '[]',
    '{}',
    '{"records":[]}',
    '{"records":{}}',
    '{"records":[{"key":"k"}]}',
    '{"records":[{}]}',
    '{"records":[null]}',
    '{"records":[{"value":1}]}',
    '{"records":[{"value":"a","key":5}]}',
    '{"records":[{"value":"a","key":true}]}',
    '{"records":[{"value":"a","encoding":"hex"}]}',
    '{"records":[{"value":"%%","encoding":"base64"}]}',
    '{"records":[{"value":"a","partition":-1}]}',
    '{"records":[{"value":"a","partition":1.5}]}',
    '{"records":[{"value":"a","partition":1e400}]}',
    '{"records":[{"value":"a","partition":"1"}]}',
    '{"records":[{"value":"a","partition":01}]}',
    '{"records":[{"value":"a","headers":{}}]}',
    '{"records":[{"value":"a","headers":[{"key":1,"value":"x"}]}]}',
    '{"records":[{"value":"a","headers":[{"value":"x"}]}]}',
    '{"records":[{"value":"a","headers":[null]}]}',
    // duplicates: the last wins, as in JSON.parse
    '{"records":[{"value":"a","value":"b"}]}',
    '{"records":[{"value":"a"}],"records":[{"value":"b"}]}',
    '{"records":[{"value":"a","encoding":"utf8","encoding":"base64"}]}',
    '{"records":[{"value":"a","partition":-1,"partition":0}]}',
    '{"records":[{"value":"a","partition":0,"partition":-1}]}',
    '{"records":[{"value":"aGk=","encoding":"utf8","key":"k","encoding":"base64","key":"AAE="}]}',
    '{"records":[{"value":"a","headers":[{"key":"h"}],"headers":[]}]}',
    '{"records":[{"value":"a"}],"records":[]}',
    '{"records":[],"records":[{"value":"a"}]}',
    '{"records":[{"key":"k"}],"records":[{"value":"a"}]}',
    '{"records":[{"value":"a"}],"records":[{"key":"k"}]}',
    // not JSON
    '{"records":[{"value":"a"}]',
    '{"records":[{"value":"a"}]} x',
    '{"records":[{"value":"a",}]}',
    '{"records":[{"value":"a\tb"}]}',
    '{"records":[{"value":"bad \\x escape"}]}',
    '{"records":[{"value":"x","n":-}]}',
    '{"records":[{"value":"x","n":1.}]}',
    '{"records":[{"value":"x","n":tru}]}',
    "{'records':[]}",
    '\uFEFF{"records":[{"value":"after a BOM"}]}',
    `{"records":[{"value":"x","deep":${'['.repeat(200)}${']'.repeat(200)}}]}`,
  ];

  it('gives what the general path gives, records or error, for every body', () => {
    const enc = new TextEncoder();
    for (const text of bodies) {
      const bytes = enc.encode(text);
      expect(outcome(() => parseProduceJson(bytes)), text).toBe(general(bytes));
    }
  });

  it('gives what the general path gives on bodies cut short or with a byte changed', () => {
    const enc = new TextEncoder();
    const base = enc.encode('{"records":[{"key":"k\\u00e9","value":"v","partition":2,"headers":[{"key":"h","value":"x"}]},{"value":"aGk=","encoding":"base64"}],"x":[1.5e3,true]}');
    const swaps = [0x22, 0x5c, 0x2c, 0x3a, 0x7b, 0x7d, 0x5b, 0x5d, 0x20, 0x31, 0x6e, 0xc3, 0xff, 0x00];
    for (let at = 0; at <= base.length; at++) {
      const cut = base.subarray(0, at);
      expect(outcome(() => parseProduceJson(cut)), `cut at ${at}`).toBe(general(cut));
      if (at === base.length) break;
      for (const byte of swaps) {
        const changed = base.slice();
        changed[at] = byte;
        expect(outcome(() => parseProduceJson(changed)), `byte ${at} -> ${byte}`).toBe(general(changed));
      }
    }
  });

  it('finds an escape, control, quote or non-ASCII byte at any position and alignment of a long string (the word-at-a-time check)', () => {
    const probes = [0x00, 0x1f, 0x20, 0x21, 0x22, 0x5b, 0x5c, 0x5d, 0x7e, 0x7f, 0x80, 0xc3, 0xff];
    const head = utf8('{"records":[{"key":"');
    const tail = utf8('"}]}');
    for (const n of [15, 16, 17, 19, 20, 23, 24, 27]) {
      for (let at = 0; at < n; at++) {
        for (const p of probes) {
          const text = new Uint8Array(n).fill(0x61);
          text[at] = p;
          const body = new Uint8Array([...head, ...text, ...utf8('","value":"'), ...text, ...tail]);
          // The body at every alignment within its buffer: the check reads the buffer's words.
          for (let shift = 0; shift < 4; shift++) {
            const placed = new Uint8Array(body.length + 8);
            placed.set(body, shift);
            const bytes = placed.subarray(shift, shift + body.length);
            expect(outcome(() => parseProduceJson(bytes)), `length ${n}, byte ${p} at ${at}, shift ${shift}`).toBe(general(bytes));
          }
        }
      }
    }
  });

  it('gives what the general path gives on random bodies: spans while every record is plain, record objects from the first that is not', () => {
    const random = seededRandom(23);
    const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)]!;
    const ws = () => pick(['', '', '', ' ', '\n  ', '\t']);
    const plain = () => Array.from({ length: Math.floor(random() * (random() < 0.2 ? 200 : 20)) }, () => String.fromCharCode(0x20 + Math.floor(random() * 95))).join('');
    const text = () => (random() < 0.85 ? plain() : plain() + pick(['é', '😀', '\n', '"', '\\', '\u0000', '\ud800']) + plain());
    const field = (name: string, value: string) => `${ws()}${JSON.stringify(name)}${ws()}:${ws()}${value}${ws()}`;
    const record = () => {
      const fields: string[] = [];
      const roll = random();
      if (roll < 0.4) fields.push(field('key', JSON.stringify(text())));
      else if (roll < 0.5) fields.push(field('key', 'null'));
      fields.push(field('value', random() < 0.05 ? 'null' : JSON.stringify(text())));
      if (random() < 0.03) fields.push(field('partition', String(Math.floor(random() * 3))));
      if (random() < 0.03) fields.push(field('headers', JSON.stringify([{ key: 'h', value: plain() }])));
      if (random() < 0.05) fields.push(field('encoding', '"utf8"'));
      if (random() < 0.02) fields.push(field('encoding', '"base64"'), field('value', JSON.stringify(btoa(plain()))));
      if (random() < 0.5) fields.reverse();
      return `${ws()}{${fields.join(',')}}${ws()}`;
    };
    const enc = new TextEncoder();
    const kinds = { spans: 0, objects: 0 };
    for (let round = 0; round < 1500; round++) {
      const body = enc.encode(`${ws()}{${ws()}"records"${ws()}:${ws()}[${Array.from({ length: 1 + Math.floor(random() * 12) }, record).join(',')}]${ws()}}${ws()}`);
      const got = outcome(() => parseProduceJson(body));
      expect(got, new TextDecoder().decode(body)).toBe(general(body));
      if (!got.startsWith('[')) continue;
      const parsed = parseProduceJson(body);
      kinds[parsed instanceof RecordSpans ? 'spans' : 'objects']++;
    }
    expect(kinds.spans).toBeGreaterThan(100);
    expect(kinds.objects).toBeGreaterThan(100);
  });

  it('hands out utf8 values as views of the body, which stay valid after the parse', () => {
    const bytes = new TextEncoder().encode('{"records":[{"value":"abc"},{"value":"d\\"e"}]}');
    const records = asRecords(parseProduceJson(bytes));
    expect(records[0]!.value!.buffer).toBe(bytes.buffer);
    expect(new TextDecoder().decode(records[1]!.value!)).toBe('d"e');
  });

  it(`takes at most ${MAX_PRODUCE_RECORDS} records (413 too_large), on the byte scanner's path and the general one alike`, () => {
    const body = (items: string[]) => utf8(`{"records":[${items.join(',')}]}`);
    const tiny = (n: number, last = '{"value":""}') => [...Array<string>(n - 1).fill('{"value":""}'), last];
    expect(parseProduceJson(body(tiny(MAX_PRODUCE_RECORDS)))).toHaveLength(MAX_PRODUCE_RECORDS);
    const cases = [
      tiny(MAX_PRODUCE_RECORDS + 1),
      // past the limit the scanner only checks the grammar; the general path still gives the count
      tiny(MAX_PRODUCE_RECORDS + 7, '{"value":5}'),
      // an escape sends the whole body down the general path
      ['{"value":"\\u0041"}', ...tiny(MAX_PRODUCE_RECORDS + 1)],
      // a bad record before the limit: the count is still what is refused
      ['{"value":"%%","encoding":"base64"}', ...tiny(2 * MAX_PRODUCE_RECORDS)],
    ];
    for (const items of cases) {
      const bytes = body(items);
      const seen = outcome(() => parseProduceJson(bytes));
      expect(seen).toBe(`too_large: records: a request may hold at most ${MAX_PRODUCE_RECORDS} records, got ${items.length}`);
      expect(general(bytes)).toBe(seen);
    }
    // A body that is not JSON after the limit is refused as not JSON, as the general path does.
    const broken = utf8(`{"records":[${tiny(MAX_PRODUCE_RECORDS + 1).join(',')},]}`);
    expect(outcome(() => parseProduceJson(broken))).toBe(general(broken));
    expect(general(broken)).toMatch(/^invalid_argument: request body is not valid JSON/);
  });

  it('reads a repeated records field on the byte scanner, the last one winning as in JSON.parse: no parse of the whole body', () => {
    const tiny = (n: number) => Array<string>(n).fill('{"value":""}').join(',');
    const manyHeaders = `{"value":"h","headers":[${Array<string>(MAX_PRODUCE_HEADERS + 1).fill('{"key":"k"}').join(',')}]}`;
    const cases: Array<[body: string, values: string[]]> = [
      ['{"records":[{"value":"a"}],"records":[{"value":"b"},{"value":"c"}]}', ['b', 'c']],
      ['{"records":[{"value":"a","key":"k","value":"b","key":null,"partition":1,"partition":0,"encoding":"base64","encoding":"utf8"}]}', ['b']],
      // what the first one would be refused for is not counted against the last
      [`{"records":[${tiny(MAX_PRODUCE_RECORDS + 1)}],"records":[{"value":"b"}]}`, ['b']],
      [`{"records":[${manyHeaders}],"records":[{"value":"b"}]}`, ['b']],
    ];
    const parse = vi.spyOn(JSON, 'parse');
    try {
      for (const [text, values] of cases) {
        const bytes = utf8(text);
        const records = asRecords(parseProduceJson(bytes));
        expect(parse, text.slice(0, 60)).not.toHaveBeenCalled();
        expect(records.map((r) => new TextDecoder().decode(r.value!))).toEqual(values);
        expect(outcome(() => parseProduceJson(bytes))).toBe(general(bytes));
        parse.mockClear();
      }
    } finally {
      parse.mockRestore();
    }
    // The last one is checked as any is: its error is the answer.
    const refused = utf8(`{"records":[{"value":"a"}],"records":[${tiny(MAX_PRODUCE_RECORDS + 1)}]}`);
    expect(outcome(() => parseProduceJson(refused))).toBe(`too_large: records: a request may hold at most ${MAX_PRODUCE_RECORDS} records, got ${MAX_PRODUCE_RECORDS + 1}`);
  });

  it(`takes at most ${MAX_PRODUCE_HEADERS} headers in all the records of a request (413 too_large), on both paths`, () => {
    const withHeaders = (n: number, header = '{"key":""}') => `{"value":"","headers":[${Array<string>(n).fill(header).join(',')}]}`;
    const body = (items: string[]) => utf8(`{"records":[${items.join(',')}]}`);
    const third = Math.ceil(MAX_PRODUCE_HEADERS / 3);
    const at = body([withHeaders(third), withHeaders(third), withHeaders(MAX_PRODUCE_HEADERS - 2 * third)]);
    expect(asRecords(parseProduceJson(at)).reduce((n, r) => n + r.headers!.length, 0)).toBe(MAX_PRODUCE_HEADERS);
    const cases = [
      [withHeaders(third), withHeaders(third), withHeaders(MAX_PRODUCE_HEADERS - 2 * third + 1)],
      // past the limit headers are only checked to the grammar; the general path still gives the count
      [withHeaders(MAX_PRODUCE_HEADERS), withHeaders(5, '7')],
      // a bad record before the limit: the count is still what is refused
      ['{"value":"%%","encoding":"base64"}', withHeaders(MAX_PRODUCE_HEADERS + 1)],
    ];
    for (const items of cases) {
      const bytes = body(items);
      const seen = outcome(() => parseProduceJson(bytes));
      expect(seen).toMatch(new RegExp(`^too_large: records: a request may hold at most ${MAX_PRODUCE_HEADERS} headers in all, got \\d+$`));
      expect(general(bytes)).toBe(seen);
    }
  });
});

/** The consume answer as the objects it stands for: utf8 when every field decodes strictly (BOM kept), else base64. */
function reference(records: DecodedRecord[]): string {
  const strict = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
  const b64 = (b: Uint8Array | null) => (b === null ? null : btoa(String.fromCharCode(...b)));
  const text = (b: Uint8Array | null): string | null => (b === null ? null : strict.decode(b));
  return JSON.stringify({
    records: records.map((r) => {
      try {
        return { offset: r.offset, timestamp: r.timestamp, key: text(r.key), value: text(r.value), headers: r.headers.map((h) => ({ key: h.key, value: text(h.value) })), encoding: 'utf8' };
      } catch {
        return { offset: r.offset, timestamp: r.timestamp, key: b64(r.key), value: b64(r.value), headers: r.headers.map((h) => ({ key: h.key, value: b64(h.value) })), encoding: 'base64' };
      }
    }),
    next_offset: 9,
    high_watermark: 10,
    log_start_offset: 0,
  });
}

const answer = (records: DecodedRecord[]) => new TextDecoder().decode(consumeResultJson({ records, next_offset: 9, high_watermark: 10, log_start_offset: 0 }));

describe('consumeResultJson', () => {
  const base = { offset: 7, timestamp: 1000, headers: [] };

  it('writes utf8 when every byte field is valid UTF-8, with JSON.stringify escaping', () => {
    const records: DecodedRecord[] = [
      { ...base, key: utf8('k'), value: utf8('héllo "q" \\ \n\t\r\b\f \u0000\u001f\u007f € 😀 \u2028 \uFEFF'), headers: [{ key: 'h', value: null }] },
      { ...base, offset: 8, timestamp: -5, key: null, value: null, headers: [{ key: 'ünï "x"\n', value: utf8('\uFEFFbom first') }] },
      { ...base, key: new Uint8Array(0), value: utf8('\uFEFF') },
    ];
    expect(answer(records)).toBe(reference(records));
    expect(JSON.parse(answer(records)).records[0]).toEqual({
      offset: 7,
      timestamp: 1000,
      key: 'k',
      value: 'héllo "q" \\ \n\t\r\b\f \u0000\u001f\u007f € 😀 \u2028 \uFEFF',
      headers: [{ key: 'h', value: null }],
      encoding: 'utf8',
    });
  });

  it('switches the whole record to base64 when any byte field is not UTF-8', () => {
    const bad = new Uint8Array([0xff, 0xfe]);
    const records: DecodedRecord[] = [
      { ...base, key: utf8('k'), value: bad },
      { ...base, key: null, value: utf8('v'), headers: [{ key: 'h', value: bad }] },
      { ...base, key: utf8('next one is utf8 again'), value: utf8('ok') },
    ];
    expect(answer(records)).toBe(reference(records));
    expect(JSON.parse(answer(records)).records.map((r: { encoding: string }) => r.encoding)).toEqual(['base64', 'base64', 'utf8']);
  });

  it('decides utf8 like the strict WHATWG decoder for every one- and two-byte sequence and the edges of longer ones', () => {
    const samples: number[][] = [];
    for (let a = 0; a < 256; a++) {
      samples.push([a]);
      for (let b = 0x70; b < 256; b += 3) samples.push([a, b]);
    }
    const lead3 = [0xe0, 0xe1, 0xec, 0xed, 0xee, 0xef];
    const lead4 = [0xf0, 0xf1, 0xf3, 0xf4, 0xf5];
    const second = [0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0];
    for (const a of [...lead3, ...lead4]) for (const b of second) for (const c of [0x41, 0x80, 0xbf, 0xc0]) {
      samples.push([a, b, c], [a, b, c, 0x80], [a, b, c, 0xc0], [0x41, a, b, c, 0x80, 0x41]);
    }
    const records = samples.map((s, i): DecodedRecord => ({ offset: i, timestamp: i, key: null, value: new Uint8Array(s), headers: [] }));
    expect(answer(records)).toBe(reference(records));
  });

  it('finds a byte that needs escaping at any position and alignment of a long value (the word-at-a-time check)', () => {
    // Borderline bytes around every class the check tells apart: controls, '"', '\\', DEL, non-ASCII.
    const probes = [0x00, 0x1f, 0x20, 0x21, 0x22, 0x23, 0x2f, 0x5b, 0x5c, 0x5d, 0x7e, 0x7f, 0x80, 0xc3, 0xff];
    const records: DecodedRecord[] = [];
    for (let n = 15; n <= 27; n++) {
      for (let at = 0; at < n; at++) {
        for (const p of probes) {
          const value = new Uint8Array(n).fill(0x61);
          value[at] = p;
          // Keys of 0-3 bytes shift where the value lands in the output, so every alignment is met.
          const key = records.length % 5 === 4 ? null : utf8('kkk'.slice(0, records.length % 5));
          records.push({ offset: records.length, timestamp: 1, key, value, headers: [] });
        }
      }
    }
    expect(answer(records)).toBe(reference(records));
  });

  it('escapes a header key whose first special character comes after plain ones (found by the model check)', () => {
    // A quote, control or non-ASCII character after a plain start: the key must be written once, escaped.
    const keys = ['a"b', '/&"/&( "', 'tab\there', 'caf\u00e9', 'x😀', 'plain', 'end\\'];
    const records = keys.map((key, i): DecodedRecord => ({ ...base, offset: i, key: null, value: utf8('v'), headers: [{ key, value: null }] }));
    expect(answer(records)).toBe(reference(records));
    expect(JSON.parse(answer(records)).records.map((r: { headers: { key: string }[] }) => r.headers[0]!.key)).toEqual(keys);
  });

  it('writes header keys, keys and values of every escape class as the reference does (seeded)', () => {
    // Plain runs broken by one character of each class at the start, middle or end: quote, backslash,
    // controls, DEL, Latin-1, BOM, line and paragraph separators, astral pairs and lone surrogates.
    const specials = ['"', '\\', '\n', '\r', '\t', '\b', '\f', '\u0000', '\u001f', '\u007f', '\u0080', 'é', '\u00ff', '\uFEFF', '\u2028', '\u2029', '\uFFFD', '\uFFFF', '😀', '\u{10FFFF}', '\uD800', '\uDFFF', '/', '<', ' '];
    const rand = seededRandom(41);
    const pick = <T>(a: readonly T[]): T => a[Math.floor(rand() * a.length)]!;
    const plain = () => 'abcXYZ019-_.~'.slice(0, Math.floor(rand() * 6));
    const text = () => {
      let s = '';
      for (let n = Math.floor(rand() * 4); n >= 0; n--) s += rand() < 0.5 ? plain() : pick(specials);
      return s;
    };
    const bytes = (): Uint8Array | null => {
      const r = rand();
      if (r < 0.15) return null;
      if (r < 0.3) return Uint8Array.from({ length: Math.floor(rand() * 6) }, () => Math.floor(rand() * 256));
      return utf8(text());
    };
    for (let round = 0; round < 300; round++) {
      const records = Array.from({ length: 1 + Math.floor(rand() * 4) }, (_, i): DecodedRecord => ({
        offset: i,
        timestamp: i,
        key: bytes(),
        value: bytes(),
        headers: Array.from({ length: Math.floor(rand() * 4) }, () => ({ key: text(), value: bytes() })),
      }));
      const got = answer(records);
      expect(got, JSON.stringify(records.map((r) => r.headers.map((h) => h.key)))).toBe(reference(records));
      expect(JSON.parse(got).records.map((r: { headers: { key: string }[] }) => r.headers.map((h) => h.key))).toEqual(records.map((r) => r.headers.map((h) => h.key)));
    }
  });

  it('writes integers as String(n) does at every digit count and sign', () => {
    const edges = [0, 1, 9, 10, 99, 100, 12345678, 99999999, 1e8, 1e8 + 1, 123456789012, 1763800000123, 2 ** 51 - 1, 2 ** 53 - 1];
    const records = [...edges, ...edges.map((n) => -n)].map((n, i): DecodedRecord => ({ offset: Math.abs(n), timestamp: n, key: null, value: null, headers: [] }));
    expect(answer(records)).toBe(reference(records));
  });

  it('matches the reference on random bytes and long values past the scratch buffer', () => {
    let seed = 7;
    const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 16) & 0xff;
    const records: DecodedRecord[] = [];
    for (let i = 0; i < 300; i++) {
      const n = i % 50 === 0 ? 40_000 : i % 17;
      // mostly ASCII with some high bytes, so some records stay utf8 and others do not
      const value = Uint8Array.from({ length: n }, () => (rand() < 240 ? rand() & 0x7f : rand()));
      records.push({ offset: i, timestamp: 2 ** 40 + i, key: i % 3 === 0 ? null : utf8(`key-${i}`), value, headers: i % 5 === 0 ? [{ key: `h${i}`, value }] : [] });
    }
    expect(answer(records)).toBe(reference(records));
    expect(answer(records.slice(0, 2))).toBe(reference(records.slice(0, 2)));
  });
});

describe('produceResultJson', () => {
  it('is what JSON.stringify writes', () => {
    const run = Array.from({ length: 1000 }, (_, i) => ({ partition: i % 7, offset: 99_999_500 + i }));
    for (const offsets of [[], [{ partition: 0, offset: 0 }], [{ partition: 3, offset: 2 ** 52 }, { partition: 0, offset: 17 }], run]) {
      expect(new TextDecoder().decode(produceResultJson({ offsets }))).toBe(JSON.stringify({ offsets }));
    }
  });

  it('is what JSON.stringify writes for a produce into one partition, across added digits', async () => {
    await init();
    const streams = await StreamStore.open(createTestContext(), 't1');
    await streams.createTopic('t', { partitions: 3 });
    const value = new Uint8Array([0x61]);
    // offsets 0-8, then 9-1008 (9 → 10, 99 → 100, 999 → 1000 in one answer), into partition 2
    for (const count of [9, 1000]) {
      const result = await streams.produce('t', Array.from({ length: count }, () => ({ value, partition: 2 })));
      expect(new TextDecoder().decode(produceResultJson(result))).toBe(JSON.stringify(result));
    }
    // spread over partitions by key: no single run, each offset written from its object
    const spread = await streams.produce('t', Array.from({ length: 50 }, (_, i) => ({ key: new Uint8Array([i]), value })));
    expect(new Set(spread.offsets.map((o) => o.partition)).size).toBeGreaterThan(1);
    expect(new TextDecoder().decode(produceResultJson(spread))).toBe(JSON.stringify(spread));
  });
});
