/**
 * The fuzzer's case generator: from the served OpenAPI document, a seeded stream of requests to
 * every operation, each a valid request bent in one to three places (path, query, headers, body,
 * the way the bytes are delivered), plus malformed HTTP that names no operation at all. Case `i`
 * of seed `s` is the same request on every run (`caseAt(s, i, …)`), so a failure replays alone.
 */

/** mulberry32: small, fast, and the same sequence everywhere for one seed. */
export class Rng {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0;
  }
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }
  bytes(n: number): Buffer {
    const out = Buffer.alloc(n);
    for (let i = 0; i < n; i++) out[i] = this.int(256);
    return out;
  }
}

export type Schema = Record<string, unknown>;

/** One operation of the OpenAPI document, as the generator uses it. */
export interface Operation {
  method: string;
  path: string;
  pathParams: string[];
  queryParams: string[];
  /** 'json' (a schema), 'raw' (KV values) or none. */
  body: { kind: 'json'; schema: Schema } | { kind: 'raw' } | undefined;
  auth: 'none' | 'tenant' | 'admin';
}

/** Reads the operations out of the served document, `$ref`s resolved. */
export function operationsOf(doc: { paths: Record<string, Record<string, Schema>>; components?: { schemas?: Record<string, Schema> } }): Operation[] {
  const schemas = doc.components?.schemas ?? {};
  const resolve = (s: unknown): Schema => {
    if (s === null || typeof s !== 'object') return s as Schema;
    if (Array.isArray(s)) return s.map(resolve) as unknown as Schema;
    const ref = (s as Schema).$ref;
    if (typeof ref === 'string') return resolve(schemas[ref.replace('#/components/schemas/', '')]);
    return Object.fromEntries(Object.entries(s).map(([k, v]) => [k, resolve(v)]));
  };
  const ops: Operation[] = [];
  for (const [path, methods] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(methods)) {
      const params = (op.parameters ?? []) as Array<{ name: string; in: string }>;
      const content = (op.requestBody as { content?: Record<string, { schema: unknown }> } | undefined)?.content;
      let body: Operation['body'];
      if (content?.['application/json'] !== undefined) body = { kind: 'json', schema: resolve(content['application/json'].schema) };
      else if (content !== undefined) body = { kind: 'raw' };
      const open = ['/v1/health', '/v1/openapi.json', '/v1/auth/register'].includes(path);
      ops.push({
        method: method.toUpperCase(),
        path,
        pathParams: params.filter((p) => p.in === 'path').map((p) => p.name),
        queryParams: params.filter((p) => p.in === 'query').map((p) => p.name),
        body,
        auth: open ? 'none' : path.startsWith('/v1/admin/') ? 'admin' : 'tenant',
      });
    }
  }
  return ops;
}

/** What the generator needs to know of the world it fuzzes: names that exist, and keys. */
export interface Names {
  apiKey: string;
  adminKey: string;
  otherKey: string;
  revokedKey: string;
  tenantId: string;
  victimKeyId: string;
}

/** Fixture names the world keeps in place (see world.ts). */
export const FIXTURES = { kv: ['k1', 'dir/k2'], topic: 't1', partitions: 2, collection: 'c1', dims: 3, group: 'g1', vectors: ['a', 'b'] } as const;

/** A request as the fuzzer sends it. `target` and header values are latin1: one char per byte. */
export interface Case {
  id: string;
  /** What was bent, for reports and grouping. */
  labels: string[];
  operation: Operation | undefined;
  method: string;
  target: string;
  headers: Array<[string, string]>;
  body: Buffer;
  delivery: 'whole' | 'chunked' | 'chunked-cut' | 'length-cut' | 'slow' | 'half-close' | 'length-short' | 'raw' | 'pipeline';
  /** For 'raw' and 'pipeline': the bytes to send, and for 'pipeline' the cases inside. */
  raw?: Buffer;
  pipeline?: Case[];
}

const STANDARD_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'];
export const isStandardMethod = (m: string): boolean => STANDARD_METHODS.includes(m);
export const isWrite = (m: string): boolean => ['POST', 'PUT', 'DELETE', 'PATCH'].includes(m);

function validPathValue(name: string, names: Names, rng: Rng): string {
  switch (name) {
    case 'key':
      return rng.pick(['k1', 'dir/k2', 'dir%2Fk2', 'new-key', 'k3', 'user%2F42']);
    case 'c':
      return rng.pick([FIXTURES.collection, FIXTURES.collection, 'c2', 'nope']);
    case 't':
      return rng.pick([FIXTURES.topic, FIXTURES.topic, 't2', 'nope']);
    case 'p':
      return rng.pick(['0', '1', '0', '7']);
    case 'g':
      return rng.pick([FIXTURES.group, 'g2']);
    case 'key_id':
      return rng.pick([names.victimKeyId, 'key_000000000000']);
    case 'id':
      return rng.pick(['a', 'b', 'zz', names.tenantId, 't_0000000000000000']);
    default:
      return 'x';
  }
}

/** Path parameter values that a careful server must refuse or take as a plain name. */
const PATH_BENDS: Array<(rng: Rng) => string> = [
  () => '',
  () => '.',
  () => '..',
  () => '%2e%2e',
  () => '%2E',
  () => '..%2F..%2Fetc%2Fpasswd',
  () => '%00',
  () => 'a%00b',
  () => '%2F',
  () => 'a%2F',
  () => '%2Fa',
  () => '%FF',
  () => '%C3%28',
  () => '%ED%A0%80',
  () => '%F4%90%80%80',
  () => '%C0%AF',
  () => '%',
  () => '%zz',
  () => 'a%2',
  () => '%25',
  () => '%20',
  () => '+',
  () => 'a b',
  () => '%0A',
  () => '%0D%0A',
  () => '%7F',
  () => '\u00ff', // a raw byte 0xFF in the target
  () => '\u00c3\u00bc', // raw UTF-8 of ü
  () => '%C3%BC',
  () => '%F0%9F%98%80',
  () => '%E6%97%A5%E6%9C%AC',
  () => '%EF%BB%BF',
  () => '%u0041',
  () => '\\',
  () => '%5C',
  () => '~',
  () => "'\"<>`",
  () => '%22%3Cscript%3E',
  () => '__proto__',
  () => 'constructor',
  () => 'toString',
  () => 'hasOwnProperty',
  () => 'a;b',
  () => 'a,b',
  () => '*',
  () => '-1',
  () => '1e3',
  () => '00',
  () => '0x1',
  () => '99999999999999999999',
  () => '4294967296',
  () => '9007199254740993',
  () => '1.5',
  () => 'NaN',
  () => 'Infinity',
  () => ' 0',
  (rng) => 'k'.repeat(rng.pick([129, 250, 513, 1025, 4097])),
  (rng) => '%41'.repeat(rng.pick([200, 2000])),
  (rng) => 'x'.repeat(rng.pick([9000, 20000])),
  (rng) => 'a/'.repeat(rng.pick([3, 50, 300])),
];

const QUERY_VALID: Record<string, string[]> = {
  ttl: ['60', '1', '86400'],
  prefix: ['k', 'dir/', ''],
  cursor: [''],
  limit: ['10', '1', '1000'],
  include_metadata: ['true', 'false'],
  include_values: ['true', 'false'],
  offset: ['0', '1'],
  max_records: ['10', '1'],
  max_bytes: ['1000', '1048576'],
  max_wait_ms: ['0', '50'],
  topic: [FIXTURES.topic, 'nope'],
  from: ['2026-01'],
  to: ['2026-12'],
};

const QUERY_BENDS: string[] = [
  '', '-1', '0', '-0', '1.5', '1e3', '1e309', '0x10', '0b1', '00010', ' 1', '1 ', '+1', 'NaN', 'Infinity', '-Infinity',
  '99999999999999999999', '9007199254740993', '4294967297', '2147483648', 'true', 'TRUE', 'yes', '1', 'null', 'undefined',
  '%FF', '%00', '%ED%A0%80', '%C3%BC', 'abc', '[]', '{}', '2026-13', '0000-00', '2026-1', '9999-12', '2026-02-01', 'x'.repeat(3000),
  'AAAA', 'AAAA==', '____', 'eyJ9', '%2B%2F', '-', '..',
];

const UNKNOWN_QUERY = ['x', 'tll', 'Limit', 'li%6Dit', '', '__proto__', 'constructor', 'limit[]', 'a%00', '%FF'];

function buildQuery(op: Operation, rng: Rng, labels: string[]): string {
  const pairs: string[] = [];
  for (const name of op.queryParams) {
    if (!rng.chance(0.5)) continue;
    const valid = QUERY_VALID[name] ?? ['1'];
    if (rng.chance(0.35)) {
      const bent = rng.pick(QUERY_BENDS);
      labels.push(`query ${name}=${bent.slice(0, 24)}`);
      pairs.push(`${name}=${bent}`);
    } else pairs.push(`${name}=${encodeURIComponent(rng.pick(valid))}`);
    if (rng.chance(0.05)) {
      labels.push(`query ${name} twice`);
      pairs.push(`${name}=${encodeURIComponent(rng.pick(valid))}`);
    }
  }
  if (rng.chance(0.08)) {
    const name = rng.pick(UNKNOWN_QUERY);
    labels.push(`query unknown ${name}`);
    pairs.push(`${name}=1`);
  }
  if (rng.chance(0.03)) {
    labels.push('query bare name');
    pairs.push(rng.pick(op.queryParams.length > 0 ? op.queryParams : ['x']));
  }
  if (rng.chance(0.03)) pairs.push('');
  if (pairs.length === 0) return rng.chance(0.03) ? '?' : '';
  return `?${pairs.join('&')}`;
}

function buildTarget(op: Operation, names: Names, rng: Rng, labels: string[]): string {
  let path = op.path;
  const bendOne = op.pathParams.length > 0 && rng.chance(0.45) ? rng.pick(op.pathParams) : undefined;
  for (const p of op.pathParams) {
    let value = validPathValue(p, names, rng);
    if (p === bendOne) {
      value = rng.pick(PATH_BENDS)(rng);
      labels.push(`path ${p}=${JSON.stringify(value.slice(0, 24))}${value.length > 24 ? `…(${value.length})` : ''}`);
    }
    path = path.replace(`{${p}}`, value);
  }
  if (rng.chance(0.03)) {
    const shape = rng.pick(['trailing /', 'double /', 'upper case', '/./', 'encoded v1', '#frag']);
    labels.push(`path shape ${shape}`);
    if (shape === 'trailing /') path += '/';
    else if (shape === 'double /') path = path.replace('/v1/', '/v1//');
    else if (shape === 'upper case') path = path.toUpperCase();
    else if (shape === '/./') path = path.replace('/v1/', '/v1/./');
    else if (shape === 'encoded v1') path = path.replace('/v1/', '/%76%31/');
    else path += '#frag';
  }
  return path + buildQuery(op, rng, labels);
}

// ---- JSON bodies -------------------------------------------------------------------------

/** A value valid for `schema` (as the generator reads JSON Schema: the subset the API uses). */
export function validValue(schema: Schema | undefined, rng: Rng, name = ''): unknown {
  if (schema === undefined) return null;
  const anyOf = (schema.anyOf ?? schema.oneOf) as Schema[] | undefined;
  if (anyOf !== undefined) return validValue(rng.pick(anyOf), rng, name);
  if (schema.enum !== undefined) return rng.pick(schema.enum as unknown[]);
  let type = schema.type as string | string[] | undefined;
  if (Array.isArray(type)) type = type.filter((t) => t !== 'null').length > 0 && rng.chance(0.9) ? type.find((t) => t !== 'null') : 'null';
  switch (type) {
    case 'object': {
      const out: Record<string, unknown> = {};
      const props = (schema.properties ?? {}) as Record<string, Schema>;
      const required = new Set((schema.required ?? []) as string[]);
      for (const [k, s] of Object.entries(props)) if (required.has(k) || rng.chance(0.4)) out[k] = validValue(s, rng, k);
      if (Object.keys(props).length === 0 && schema.additionalProperties !== false) {
        if (name === 'filter') return rng.pick([{}, { lang: 'en' }, { n: { $gt: 1 } }, { $and: [{ lang: 'en' }, { n: { $lte: 5 } }] }, { lang: { $in: ['en', 'fr'] } }]);
        return rng.pick([{}, { lang: 'en', n: 3 }, { tags: ['x', 'y'], nested: { a: 1 } }]);
      }
      return out;
    }
    case 'array': {
      if (name === 'values' || name === 'vector') return Array.from({ length: FIXTURES.dims }, () => Math.round(rng.next() * 1000) / 1000);
      const n = Math.max(Number(schema.minItems ?? 0), 1 + rng.int(3));
      return Array.from({ length: n }, () => validValue(schema.items as Schema, rng, name));
    }
    case 'integer': {
      if (name === 'partition') return rng.int(FIXTURES.partitions);
      if (name === 'dims') return FIXTURES.dims;
      const min = Number(schema.minimum ?? 0);
      const max = Math.min(Number(schema.maximum ?? min + 100), min + 100);
      return min + rng.int(max - min + 1);
    }
    case 'number':
      return Math.round(rng.next() * 1000) / 1000;
    case 'boolean':
      return rng.chance(0.5);
    case 'string': {
      if (name === 'email') return `fz${rng.int(1e9)}@example.com`;
      if (name === 'name') return rng.pick(['fz-a', 'fz-b', FIXTURES.topic, FIXTURES.collection]);
      if (name === 'topic') return FIXTURES.topic;
      if (name === 'id') return rng.pick(['a', 'b', 'n1']);
      if (name === 'plan') return rng.pick(['unlimited', 'free', 'nope']);
      if (name === 'billing_customer_id') return 'cus_123';
      const min = Number(schema.minLength ?? 1);
      return 'v'.repeat(Math.max(min, 1 + rng.int(8)));
    }
    case 'null':
      return null;
    default:
      return null;
  }
}

const WRONG_TYPES: Array<(rng: Rng) => unknown> = [
  () => null,
  () => true,
  () => 0,
  () => -1,
  () => 1.5,
  () => '',
  () => '1',
  () => 'NaN',
  () => 'Infinity',
  () => '-0',
  () => '1e309',
  () => [],
  () => [null],
  () => ({}),
  () => 1e308,
  () => -1e308,
  () => 2 ** 53 + 2,
  () => 2 ** 31,
  () => 5e-324,
  () => '\u0000',
  () => '\ud800',
  () => 'x'.repeat(70000),
  () => '\u202e\u0301日本',
  (rng) => Array.from({ length: rng.pick([100, 5000]) }, () => 1),
];

/** Replaces one random node of `value` (or the value itself) with `make()`; the path it chose. */
function replaceSomewhere(value: unknown, rng: Rng, make: () => unknown, path = 'body'): { value: unknown; at: string } {
  const isContainer = value !== null && typeof value === 'object';
  if (!isContainer || rng.chance(0.3)) return { value: make(), at: path };
  if (Array.isArray(value)) {
    if (value.length === 0) return { value: make(), at: path };
    const i = rng.int(value.length);
    const inner = replaceSomewhere(value[i], rng, make, `${path}[${i}]`);
    const copy = value.slice();
    copy[i] = inner.value;
    return { value: copy, at: inner.at };
  }
  const keys = Object.keys(value);
  if (keys.length === 0) return { value: make(), at: path };
  const k = rng.pick(keys);
  const inner = replaceSomewhere((value as Record<string, unknown>)[k], rng, make, `${path}.${k}`);
  return { value: { ...(value as Record<string, unknown>), [k]: inner.value }, at: inner.at };
}

function deep(depth: number, kind: 'array' | 'object'): string {
  return kind === 'array' ? '['.repeat(depth) + ']'.repeat(depth) : '{"a":'.repeat(depth) + '1' + '}'.repeat(depth);
}

/** JSON text for `op`'s body, bent or not; latin1-safe Buffer. */
function buildJsonBody(op: Operation & { body: { kind: 'json' } }, rng: Rng, labels: string[]): Buffer {
  let value = validValue(op.body.schema, rng);
  const bends = rng.chance(0.25) ? 0 : 1 + rng.int(2);
  let text: string | undefined;
  for (let b = 0; b < bends; b++) {
    const kind = rng.int(12);
    if (kind <= 3) {
      const make = rng.pick(WRONG_TYPES);
      const r = replaceSomewhere(value, rng, () => make(rng));
      value = r.value;
      labels.push(`body ${r.at} := ${JSON.stringify(make(new Rng(0)))?.slice(0, 24)}`);
    } else if (kind === 4) {
      const key = rng.pick(['__proto__', 'constructor', 'prototype', 'toString', 'valueOf', 'hasOwnProperty', '$where', 'partitons', '']);
      const r = replaceSomewhere(value, rng, () => {
        const o: Record<string, unknown> = {};
        Object.defineProperty(o, key, { value: { polluted: true, toString: 1 }, enumerable: true });
        return o;
      });
      // also at the top level, beside the real fields
      if (value !== null && typeof value === 'object' && !Array.isArray(value) && rng.chance(0.5)) {
        const copy = { ...(value as Record<string, unknown>) };
        Object.defineProperty(copy, key, { value: { polluted: true }, enumerable: true, configurable: true, writable: true });
        value = copy;
        labels.push(`body top-level key ${key}`);
      } else {
        value = r.value;
        labels.push(`body ${r.at} := {${key}: …}`);
      }
    } else if (kind === 5) {
      const depth = rng.pick([100, 1000, 5000, 20000]);
      const shape = rng.pick(['array', 'object'] as const);
      const r = replaceSomewhere(value, rng, () => '\u0001DEEP\u0001');
      text = JSON.stringify(r.value).replace('"\\u0001DEEP\\u0001"', deep(depth, shape));
      labels.push(`body ${r.at} := ${shape} nested ${depth} deep`);
      break;
    } else if (kind === 6) {
      // repeated names, raw numbers JSON.stringify cannot write
      const raw = rng.pick(['1e400', '-1e400', '-0', '1E2', '0.0000000000000000000001', '123456789012345678901234567890', '1.0', '01', '.5', 'NaN', 'Infinity', '+1', '0x10']);
      const r = replaceSomewhere(value, rng, () => '\u0001RAW\u0001');
      text = JSON.stringify(r.value).replace('"\\u0001RAW\\u0001"', raw);
      labels.push(`body ${r.at} := raw ${raw}`);
      break;
    } else if (kind === 7) {
      const escape = rng.pick(['"\\ud800"', '"\\udc00x"', '"\\u0000"', '"\\uFFFF"', '"\\uD83D\\uDE00"', '"\\x41"', '"\\u00"', '"\t"', '"\\/"']);
      const r = replaceSomewhere(value, rng, () => '\u0001ESC\u0001');
      text = JSON.stringify(r.value).replace('"\\u0001ESC\\u0001"', escape);
      labels.push(`body ${r.at} := escape ${escape}`);
      break;
    } else if (kind === 8) {
      text = rng.pick([
        '', ' ', 'null', 'true', '0', '"x"', '[]', '[{}]', '{', '}', '{"', '{"a":', '{"a":1,}', "{'a':1}", '{a:1}', '\u0000', '{}{}', '{} x', '{}\n\n',
        '\ufeff{}', '\ufeff\ufeff{}', '/* c */{}', '{"records":[],"records":[]}', 'undefined',
      ]);
      labels.push(`body text ${JSON.stringify(text)}`);
      break;
    } else if (kind === 9) {
      const full = text ?? JSON.stringify(value);
      text = full.slice(0, rng.int(full.length));
      labels.push(`body truncated at ${text.length}/${full.length}`);
      break;
    } else if (kind === 10) {
      labels.push('body binary garbage');
      return rng.bytes(rng.pick([1, 7, 64, 1000]));
    } else {
      const encoding = rng.pick(['utf16le', 'latin1 é', 'invalid utf8', 'bom']);
      const full = JSON.stringify(value);
      labels.push(`body encoding ${encoding}`);
      if (encoding === 'utf16le') return Buffer.from(full, 'utf16le');
      if (encoding === 'bom') return Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(full)]);
      const bytes = Buffer.from(full.replace(/"v+"/, '"\u0001B\u0001"'), 'utf8');
      const at = bytes.indexOf('\u0001B\u0001');
      if (at < 0) return Buffer.concat([bytes, Buffer.from([0xff])]);
      const bad = encoding === 'invalid utf8' ? Buffer.from([0xc3, 0x28, 0xff, 0xed, 0xa0, 0x80]) : Buffer.from([0xe9]);
      return Buffer.concat([bytes.subarray(0, at), bad, bytes.subarray(at + 3)]);
    }
  }
  return Buffer.from(text ?? JSON.stringify(value) ?? '', 'utf8');
}

// ---- headers -----------------------------------------------------------------------------

function authHeaders(op: Operation | undefined, names: Names, rng: Rng, labels: string[]): Array<[string, string]> {
  const right = op?.auth === 'admin' ? names.adminKey : names.apiKey;
  if (!rng.chance(0.2)) return rng.chance(0.8) ? [['Authorization', `Bearer ${right}`]] : [['X-API-Key', right]];
  const variants: Array<[string, Array<[string, string]>]> = [
    ['none', []],
    ['lower bearer', [['Authorization', `bearer ${right}`]]],
    ['two spaces', [['Authorization', `Bearer  ${right}`]]],
    ['tab', [['Authorization', `Bearer\t${right}`]]],
    ['trailing space', [['Authorization', `Bearer ${right} `]]],
    ['basic', [['Authorization', `Basic ${Buffer.from(`u:${right}`).toString('base64')}`]]],
    ['bare key', [['Authorization', right]]],
    ['empty', [['Authorization', '']]],
    ['Bearer only', [['Authorization', 'Bearer']]],
    ['Bearer space', [['Authorization', 'Bearer ']]],
    ['upper key', [['Authorization', `Bearer ${right.toUpperCase()}`]]],
    ['key + 1 char', [['Authorization', `Bearer ${right}0`]]],
    ['key - 1 char', [['Authorization', `Bearer ${right.slice(0, -1)}`]]],
    ['other tenant', [['Authorization', `Bearer ${names.otherKey}`]]],
    ['revoked', [['Authorization', `Bearer ${names.revokedKey}`]]],
    ['admin on tenant route / tenant on admin route', [['Authorization', `Bearer ${op?.auth === 'admin' ? names.apiKey : names.adminKey}`]]],
    ['both same', [['Authorization', `Bearer ${right}`], ['X-API-Key', right]]],
    ['both different', [['Authorization', `Bearer ${right}`], ['X-API-Key', names.otherKey]]],
    ['two Authorization', [['Authorization', `Bearer ${right}`], ['Authorization', `Bearer ${right}`]]],
    ['two Authorization, different', [['Authorization', `Bearer ${right}`], ['Authorization', `Bearer ${names.otherKey}`]]],
    ['two X-API-Key', [['X-API-Key', right], ['X-API-Key', right]]],
    ['huge', [['Authorization', `Bearer ${'q'.repeat(rng.pick([300, 8000, 20000]))}`]]],
    ['non-ascii', [['Authorization', `Bearer qz_\u00e9\u00ff${'0'.repeat(61)}`]]],
    ['comma', [['Authorization', `Bearer ${right}, Bearer ${right}`]]],
    ['X-API-Key empty', [['X-API-Key', '']]],
    ['X-API-Key with Bearer', [['X-API-Key', `Bearer ${right}`]]],
  ];
  const [label, headers] = rng.pick(variants);
  labels.push(`auth ${label}`);
  return headers;
}

const CONTENT_TYPES = [
  'application/json', 'text/plain', '', 'application/json; charset=latin1', 'application/json; charset=utf-16', 'a/b/c;;;', 'multipart/form-data',
  'application/x-www-form-urlencoded', 'text/html; charset="\u00ff"', 'application/json'.repeat(300), '*/*', 'application/octet-stream', 'image/png',
  'text/plain; charset=utf-8; x="a\\"b"', ' application/json ', 'application/JSON',
];

function extraHeaders(op: Operation | undefined, rng: Rng, labels: string[]): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  if (rng.chance(0.15)) {
    const v = rng.pick(CONTENT_TYPES);
    labels.push(`content-type ${JSON.stringify(v.slice(0, 30))}`);
    out.push(['Content-Type', v]);
  } else if (op?.body?.kind === 'json') out.push(['Content-Type', 'application/json']);
  else if (op?.body?.kind === 'raw' && rng.chance(0.7)) out.push(['Content-Type', rng.pick(['text/plain', 'application/octet-stream', 'application/json'])]);
  const kv = op?.path.startsWith('/v1/kv/') ?? false;
  if (rng.chance(kv ? 0.4 : 0.05)) {
    const tags = ['*', '"1"', '"0"', 'W/"1"', '"1", "2"', '"1",,"2"', 'garbage', '', '"', '""', `"${'9'.repeat(2000)}"`, '"-1"', '"1e3"', '"\u00ff"', '*, "1"', ' * '];
    const which = rng.pick(['If-Match', 'If-None-Match', 'both', 'If-Match twice']);
    const tag = rng.pick(tags);
    labels.push(`${which} ${JSON.stringify(tag.slice(0, 20))}`);
    if (which === 'both') out.push(['If-Match', tag], ['If-None-Match', rng.pick(tags)]);
    else if (which === 'If-Match twice') out.push(['If-Match', tag], ['If-Match', rng.pick(tags)]);
    else out.push([which, tag]);
  }
  if (rng.chance(0.12)) {
    const options: Array<[string, string]> = [
      ['X-Request-Id', rng.pick(['', 'a b', '\u00ff', 'x'.repeat(129), 'ok-1', '\u0001'])],
      ['Expect', rng.pick(['100-continue', '100-Continue', 'weird', ''])],
      ['Content-Encoding', rng.pick(['gzip', 'identity', '', 'br, identity', 'IDENTITY'])],
      ['Range', rng.pick(['bytes=0-1', 'bytes=-1', 'bytes=9-1', 'junk'])],
      ['Accept', rng.pick(['text/html', '*/*', 'application/xml', '', '\u00ff'])],
      ['Accept-Encoding', rng.pick(['gzip', 'br', '*', 'identity;q=0'])],
      ['Origin', rng.pick(['https://evil.example', 'null', '', '\u00ff'])],
      ['Access-Control-Request-Method', rng.pick(['PUT', 'FOO', ''])],
      ['Cookie', 'a=b'],
      ['X-Forwarded-For', '1.2.3.4, ::1'],
      ['Connection', rng.pick(['keep-alive', 'upgrade', 'Upgrade, close', 'TE'])],
      ['Upgrade', rng.pick(['websocket', 'h2c'])],
      ['TE', rng.pick(['trailers', 'gzip'])],
      ['Huge', 'h'.repeat(rng.pick([4000, 17000]))],
      ['Many', ''],
      ['Host', rng.pick(['', 'a b', 'x:99999', '[::1', '\u00ff'])],
      ['No-Host', ''],
      ['Bad Name', 'x'],
      ['X-Nul', 'a\u0000b'],
    ];
    const [name, value] = rng.pick(options);
    labels.push(`header ${name}: ${JSON.stringify(value.slice(0, 20))}`);
    if (name === 'Many') for (let i = 0; i < 150; i++) out.push([`X-H${i}`, 'v'.repeat(100)]);
    else out.push([name, value]);
  }
  return out;
}

// ---- delivery ----------------------------------------------------------------------------

/** Serializes one request (not 'raw' or 'pipeline'); `last` adds Connection: close. */
export function requestHead(c: Case, framing: 'length' | 'chunked' | 'none', declared: number, last: boolean): string {
  let text = `${c.method} ${c.target} HTTP/1.1\r\n`;
  const hasHost = c.headers.some(([n]) => n === 'Host' || n === 'No-Host');
  if (!hasHost) text += 'Host: 127.0.0.1\r\n';
  for (const [n, v] of c.headers) if (n !== 'No-Host') text += `${n}: ${v}\r\n`;
  if (framing === 'length') text += `Content-Length: ${declared}\r\n`;
  if (framing === 'chunked') text += 'Transfer-Encoding: chunked\r\n';
  if (last) text += 'Connection: close\r\n';
  return `${text}\r\n`;
}

function chunkedPieces(body: Buffer, rng: Rng, cut: boolean): Buffer[] {
  const pieces: Buffer[] = [];
  let at = 0;
  while (at < body.length) {
    const n = Math.min(body.length - at, 1 + rng.int(Math.max(1, body.length)));
    const ext = rng.chance(0.1) ? ';ext=1' : '';
    pieces.push(Buffer.concat([Buffer.from(`${n.toString(16)}${ext}\r\n`), body.subarray(at, at + n), Buffer.from('\r\n')]));
    at += n;
  }
  if (cut) {
    if (pieces.length === 0) return [Buffer.from('5\r\nab')];
    const last = pieces.pop()!;
    pieces.push(last.subarray(0, rng.int(last.length)));
    return pieces;
  }
  pieces.push(Buffer.from('0\r\n\r\n'));
  return pieces;
}

/** The bytes of a case, in the pieces they go out in. */
export function bytesOf(c: Case, rng: Rng): { pieces: Buffer[]; gapMs: number; halfClose: boolean } {
  if (c.delivery === 'raw') return { pieces: [c.raw!], gapMs: 0, halfClose: true };
  if (c.delivery === 'pipeline') {
    const parts = c.pipeline!.map((p, i) => Buffer.concat([Buffer.from(requestHead(p, p.body.length > 0 || isWrite(p.method) ? 'length' : 'none', p.body.length, i === c.pipeline!.length - 1), 'latin1'), p.body]));
    return { pieces: [Buffer.concat(parts)], gapMs: 0, halfClose: false };
  }
  const body = c.body;
  switch (c.delivery) {
    case 'chunked':
    case 'chunked-cut': {
      const cut = c.delivery === 'chunked-cut';
      return { pieces: [Buffer.from(requestHead(c, 'chunked', 0, true), 'latin1'), ...chunkedPieces(body, rng, cut)], gapMs: 0, halfClose: cut };
    }
    case 'length-cut':
      return { pieces: [Buffer.from(requestHead(c, 'length', body.length + 1 + rng.int(100), true), 'latin1'), body], gapMs: 0, halfClose: true };
    case 'length-short': {
      // declares fewer bytes than follow: the rest is bytes after a Connection: close request
      const n = rng.int(body.length + 1);
      return { pieces: [Buffer.concat([Buffer.from(requestHead(c, 'length', n, true), 'latin1'), body, Buffer.from('\r\nGET /v1/health HTTP/1.1\r\n\r\n')])], gapMs: 0, halfClose: false };
    }
    case 'slow': {
      const head = Buffer.from(requestHead(c, 'length', body.length, true), 'latin1');
      const all = Buffer.concat([head, body]);
      const pieces: Buffer[] = [];
      const n = 2 + rng.int(4);
      for (let i = 0; i < n; i++) pieces.push(all.subarray(Math.floor((i * all.length) / n), Math.floor(((i + 1) * all.length) / n)));
      return { pieces, gapMs: 20 + rng.int(60), halfClose: false };
    }
    case 'half-close':
      return { pieces: [Buffer.from(requestHead(c, body.length > 0 || isWrite(c.method) ? 'length' : 'none', body.length, false), 'latin1'), body], gapMs: 0, halfClose: true };
    default:
      return { pieces: [Buffer.concat([Buffer.from(requestHead(c, body.length > 0 || isWrite(c.method) ? 'length' : 'none', body.length, true), 'latin1'), body])], gapMs: 0, halfClose: false };
  }
}

// ---- malformed HTTP ----------------------------------------------------------------------

const RAW_REQUESTS: Array<(names: Names, rng: Rng) => string | Buffer> = [
  () => 'GARBAGE\r\n\r\n',
  () => 'GET /v1/health\r\n\r\n',
  () => 'GET /v1/health HTTP/1.1\nHost: x\n\n',
  () => 'GET /v1/health HTTP/2.0\r\nHost: x\r\n\r\n',
  () => 'GET /v1/health HTTP/1.0\r\n\r\n',
  () => 'GET /v1/health HTTP/0.9\r\n\r\n',
  () => 'GET /v1/health HTTP/1.1\r\n\r\n',
  () => 'GET http://127.0.0.1/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n',
  () => 'GET http://other.example/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n',
  () => 'GET 127.0.0.1:80 HTTP/1.1\r\nHost: x\r\n\r\n',
  () => 'OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n',
  () => 'GET * HTTP/1.1\r\nHost: x\r\n\r\n',
  () => 'get /v1/health HTTP/1.1\r\nHost: x\r\n\r\n',
  () => 'FOO /v1/health HTTP/1.1\r\nHost: x\r\n\r\n',
  () => 'CONNECT 127.0.0.1:1 HTTP/1.1\r\nHost: x\r\n\r\n',
  () => 'TRACE /v1/health HTTP/1.1\r\nHost: x\r\n\r\n',
  () => 'PROPFIND /v1/kv HTTP/1.1\r\nHost: x\r\n\r\n',
  () => 'M-SEARCH * HTTP/1.1\r\nHost: x\r\n\r\n',
  () => `${'G'.repeat(5000)} / HTTP/1.1\r\nHost: x\r\n\r\n`,
  () => 'GET  /v1/health  HTTP/1.1\r\nHost: x\r\n\r\n',
  () => 'GET /v1/health HTTP/1.1\r\nHost x\r\n\r\n',
  () => 'GET /v1/health HTTP/1.1\r\nHo st: x\r\n\r\n',
  () => 'GET /v1/health HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n',
  () => 'GET /v1/health HTTP/1.1\r\nHost: x\r\nX: a\u0000b\r\n\r\n',
  () => 'GET /v1/health HTTP/1.1\r\nHost: x\r\nX: a\rb\r\n\r\n',
  () => 'GET /v1/health HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n',
  () => 'GET /v1/health HTTP/1.1\r\n\r\n',
  () => '\r\n\r\nGET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n',
  () => 'GET /v1/h\u00e9alth HTTP/1.1\r\nHost: x\r\n\r\n',
  () => 'GET /v1/kv/\u0000 HTTP/1.1\r\nHost: x\r\n\r\n',
  () => 'GET /v1/kv/a\tb HTTP/1.1\r\nHost: x\r\n\r\n',
  () => 'GET v1/health HTTP/1.1\r\nHost: x\r\n\r\n',
  () => 'GET //v1/health HTTP/1.1\r\nHost: x\r\n\r\n',
  () => 'GET /../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n',
  () => 'GET /docs/../../../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n',
  () => 'GET /docs/%2e%2e/%2e%2e/%2e%2e/etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n',
  () => 'GET /docs/..%2F..%2F..%2Fpackage.json HTTP/1.1\r\nHost: x\r\n\r\n',
  () => 'GET /%2e%2e/package.json HTTP/1.1\r\nHost: x\r\n\r\n',
  () => 'GET /docs/%00 HTTP/1.1\r\nHost: x\r\n\r\n',
  () => 'GET /docs/%FF HTTP/1.1\r\nHost: x\r\n\r\n',
  () => 'GET /docs/index.html%00.js HTTP/1.1\r\nHost: x\r\n\r\n',
  () => 'GET /favicon.ico HTTP/1.1\r\nHost: x\r\n\r\n',
  () => 'GET /metrics?x=%FF HTTP/1.1\r\nHost: x\r\n\r\n',
  () => 'POST /v1/auth/register HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n{"a":1',
  () => 'POST /v1/auth/register HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n{}',
  () => 'POST /v1/auth/register HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n{}',
  () => 'POST /v1/auth/register HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n{}',
  () => 'POST /v1/auth/register HTTP/1.1\r\nHost: x\r\nContent-Length: +2\r\n\r\n{}',
  () => 'POST /v1/auth/register HTTP/1.1\r\nHost: x\r\nContent-Length: 2 2\r\n\r\n{}',
  () => 'POST /v1/auth/register HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n{}',
  () => 'POST /v1/auth/register HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n',
  () => 'POST /v1/auth/register HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n',
  () => 'POST /v1/auth/register HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n2\r\n{}\r\n0\r\n\r\n',
  () => 'POST /v1/auth/register HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n{}',
  () => 'POST /v1/auth/register HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n',
  () => 'POST /v1/auth/register HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n',
  () => 'POST /v1/auth/register HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n',
  () => 'POST /v1/auth/register HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n-2\r\n{}\r\n0\r\n\r\n',
  () => 'POST /v1/auth/register HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffffff\r\n{}\r\n0\r\n\r\n',
  () => 'POST /v1/auth/register HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}0\r\n\r\n',
  () => 'POST /v1/auth/register HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\n{}\n0\n\n',
  () => 'POST /v1/auth/register HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\nX-Trailer: 1\r\n\r\n',
  (n) => `PUT /v1/kv/k1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${n.apiKey}\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd`,
  (n) => `PUT /v1/kv/k1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${n.apiKey}\r\nTransfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n3\r\nabc\r\n0\r\n\r\n`,
  (n) => `PUT /v1/kv/k1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${n.apiKey}\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\nzz\r\n`,
  (n) => `PUT /v1/kv/k1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${n.apiKey}\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcdef\r\n0\r\n\r\n`,
  (n) => `PUT /v1/kv/k1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${n.apiKey}\r\nTransfer-Encoding: xchunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n`,
  (n) => `PUT /v1/kv/k1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${n.apiKey}\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGARBAGE\r\n\r\n`,
  (n) => `DELETE /v1/kv/k1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${n.apiKey}\r\nIf-Match: "nope"\r\nContent-Length: 4\r\n\r\nbody`,
  (n) => `GET /v1/kv/k1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${n.apiKey}\r\nContent-Length: 4\r\n\r\nbody`,
  (n) => `GET /v1/kv/k1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${n.apiKey}\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nbody\r\n0\r\n\r\n`,
  (n) => `HEAD /v1/kv/k1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${n.apiKey}\r\n\r\n`,
  (n) => `GET /v1/kv/k1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${n.apiKey}\r\n\r\nGET /v1/kv/k1 HTTP/1.1\r\nHost: x\r\n\r\n\u0000\u0000\u0000`,
  (n) => `GET /v1/kv/k1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${n.apiKey}\r\n\r\n\u0016\u0003\u0001\u0000\u00a5\u0001\u0000`,
  () => 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n',
  () => Buffer.from([0x16, 0x03, 0x01, 0x00, 0xa5, 0x01, 0x00, 0x00, 0xa1, 0x03, 0x03]),
  (_n, rng) => rng.bytes(200),
  (_n, rng) => `GET /v1/health HTTP/1.1\r\nHost: x\r\n${'X: y\r\n'.repeat(rng.pick([100, 3000]))}\r\n`,
  (_n, rng) => `GET /v1/kv?${'a'.repeat(rng.pick([8000, 70000]))} HTTP/1.1\r\nHost: x\r\n\r\n`,
  (n) => `GET /v1/health HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer ${n.apiKey}\r\n\r\n`,
  () => 'GET /v1/health HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n',
  () => 'GET /v1/health HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n',
  () => 'POST /v1/auth/register HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n',
];

/** The `i`th case of `seed`: the same request every run. */
export function caseAt(seed: number, index: number, ops: Operation[], names: Names, options: { rawShare?: number } = {}): { c: Case; rng: Rng } {
  const rng = new Rng((seed * 0x9e3779b1) ^ (index * 0x85ebca77));
  rng.next();
  const id = `${seed}:${index}`;
  const roll = rng.next();
  if (roll < (options.rawShare ?? 0.07)) {
    const which = rng.int(RAW_REQUESTS.length);
    const made = RAW_REQUESTS[which]!(names, rng);
    const raw = typeof made === 'string' ? Buffer.from(made, 'latin1') : made;
    return { c: { id, labels: [`raw #${which}: ${JSON.stringify(raw.subarray(0, 60).toString('latin1'))}`], operation: undefined, method: '', target: '', headers: [], body: Buffer.alloc(0), delivery: 'raw', raw }, rng };
  }
  if (roll < (options.rawShare ?? 0.07) + 0.05) {
    const n = 2 + rng.int(3);
    const inner = Array.from({ length: n }, (_, j) => oneRequest(`${id}.${j}`, ops, names, rng));
    for (const p of inner) p.delivery = 'whole';
    return { c: { id, labels: [`pipeline of ${n}`, ...inner.flatMap((p) => [`[${p.method} ${p.target.slice(0, 60)}]`, ...p.labels])], operation: undefined, method: '', target: '', headers: [], body: Buffer.alloc(0), delivery: 'pipeline', pipeline: inner }, rng };
  }
  return { c: oneRequest(id, ops, names, rng), rng };
}

const ODD_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'TRACE', 'FOO', 'get', 'PROPFIND', 'MKCOL', 'PURGE', 'QUERY'];
const ODD_PATHS = ['/', '/docs', '/docs/', '/docs/swagger-ui.css', '/metrics', '/v1', '/v1/', '/v1/kv/', '/v1/functions/x', '/v1/fn/x/y', '/favicon.ico', '/v2/kv/k1', '/v1/topics/t1/partitions', '/v1/topics/t1/partitions/0', '/v1/collections/c1/vectors/', '/v1/admin', '/v1/admin/tenants', '/index.html', '/docs/index.html', '/robots.txt'];

function oneRequest(id: string, ops: Operation[], names: Names, rng: Rng): Case {
  const labels: string[] = [];
  let op: Operation | undefined = rng.pick(ops);
  let method = op.method;
  let target: string;
  if (rng.chance(0.04)) {
    target = rng.pick(ODD_PATHS) + (rng.chance(0.2) ? '?v=2' : '');
    method = rng.pick(ODD_METHODS);
    labels.push(`odd path ${method} ${target}`);
    op = undefined;
  } else {
    target = buildTarget(op, names, rng, labels);
    if (rng.chance(0.05)) {
      method = rng.pick(ODD_METHODS);
      labels.push(`method ${method}`);
    }
  }
  const headers = [...authHeaders(op, names, rng, labels), ...extraHeaders(op, rng, labels)];
  let body: Buffer = Buffer.alloc(0);
  if (op?.body?.kind === 'json') body = buildJsonBody(op as Operation & { body: { kind: 'json' } }, rng, labels);
  else if (op?.body?.kind === 'raw') {
    const size = rng.pick([0, 1, 5, 100, 4096, 70000]);
    body = rng.chance(0.5) ? Buffer.from('v'.repeat(size)) : rng.bytes(size);
    if (size > 4096) labels.push(`body ${size} bytes`);
  } else if (rng.chance(0.05)) {
    body = Buffer.from('{"unexpected":"body"}');
    labels.push('body on a route that takes none');
  }
  if (rng.chance(0.03)) {
    const size = 2 << 20;
    body = Buffer.alloc(size, 0x20);
    labels.push(`body ${size} bytes (over the limit)`);
  }
  const deliveries: Case['delivery'][] = ['chunked', 'chunked-cut', 'length-cut', 'slow', 'half-close', 'length-short'];
  let delivery: Case['delivery'] = 'whole';
  if (rng.chance(0.18)) {
    delivery = rng.pick(deliveries);
    labels.push(`delivery ${delivery}`);
  }
  return { id, labels, operation: op, method, target, headers, body, delivery };
}
