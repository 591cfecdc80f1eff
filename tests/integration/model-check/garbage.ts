/**
 * Bad input from a third tenant, whose data no model tracks: valid request bodies with a field
 * changed to a value of another type, cut short or with bytes spliced in, and odd query strings.
 * Whatever the server makes of them, the answer must be well formed and never a 5xx (the Api
 * checks both); a body that is still valid may write, which only this tenant sees.
 */
import { Api, OpLog, Rng } from './harness.js';

const ODD_VALUES: unknown[] = [null, true, -1, 0, 1.5, 2 ** 53, -(2 ** 63), 1e308, '', 'x', '\u0000', '\uFEFF', '🎉'.repeat(50), [], [1, 'a'], {}, { $gt: 'x' }, 'a'.repeat(5000)];
const ODD_QUERY = ['', '-1', '0', '1', 'abc', '1e3', '0x10', '99999999999999999999', '1.5', ' 1', '%00', '%FF', 'NaN'];

function template(rng: Rng): { method: string; path: string; body?: unknown } {
  switch (rng.int(0, 9)) {
    case 0:
      return { method: 'POST', path: '/v1/topics', body: { name: `f${rng.int(0, 3)}`, partitions: 2, retention_ms: -1, segment_bytes: 1024 } };
    case 1:
      return { method: 'POST', path: '/v1/topics/f0/records', body: { records: [{ key: 'k', value: 'v', headers: [{ key: 'h', value: 'x' }], partition: 0, encoding: 'utf8' }, { value: 'AAE=', encoding: 'base64' }] } };
    case 2:
      return { method: 'POST', path: '/v1/collections', body: { name: `fc${rng.int(0, 2)}`, dims: 3, metric: 'cosine', m: 8, ef_construction: 16 } };
    case 3:
      return { method: 'POST', path: '/v1/collections/fc0/upsert', body: { vectors: [{ id: 'a', values: [1, 2, 3], metadata: { g: 'x', n: 1 } }] } };
    case 4:
      return { method: 'POST', path: '/v1/collections/fc0/query', body: { vector: [1, 0, 0], k: 3, filter: { g: { $in: ['x'] }, n: { $gt: 0 } }, include_metadata: true, ef: 10, threshold: 0.1 } };
    case 5:
      return { method: 'POST', path: '/v1/groups/fg/offsets', body: { topic: 'f0', partition: 0, offset: 0, metadata: 'm' } };
    case 6: {
      const q = new URLSearchParams({ offset: rng.pick(ODD_QUERY), max_records: rng.pick(ODD_QUERY), max_bytes: rng.pick(ODD_QUERY), max_wait_ms: rng.pick(['0', '1', '-5', 'x', '20']) });
      return { method: 'GET', path: `/v1/topics/f0/partitions/${rng.pick(['0', '1', '-1', '99', 'x', '1e0', '00'])}/records?${q}` };
    }
    case 7:
      return { method: 'GET', path: `/v1/kv?prefix=${rng.pick(['', 'a', '%FF', '%ED%A0%80'])}&limit=${rng.pick(ODD_QUERY)}&cursor=${rng.pick(['', 'x', 'AAAA', '%00', '_-'])}` };
    case 8:
      return { method: 'GET', path: `/v1/collections/fc0/vectors?limit=${rng.pick(ODD_QUERY)}&cursor=${rng.pick(['', 'x', 'AAAA', '!!'])}&include_values=${rng.pick(['true', 'yes', ''])}` };
    default:
      return { method: 'PUT', path: `/v1/kv/${rng.pick(['k', '%FF', '%', 'a%2', '.', '..%2F', 'x'.repeat(600)])}?ttl=${rng.pick(ODD_QUERY)}` };
  }
}

/** `value` with one leaf (or the whole) replaced by an odd value. */
function mutate(rng: Rng, value: unknown): unknown {
  if (rng.chance(0.15) || value === null || typeof value !== 'object') return rng.pick(ODD_VALUES);
  const copy: any = Array.isArray(value) ? [...value] : { ...value };
  const keys = Object.keys(copy);
  if (keys.length === 0 || rng.chance(0.1)) {
    copy[rng.pick(['extra', '__proto__', 'constructor', '0'])] = rng.pick(ODD_VALUES);
    return copy;
  }
  const k = rng.pick(keys);
  if (rng.chance(0.15)) delete copy[k];
  else copy[k] = mutate(rng, copy[k]);
  return copy;
}

export class GarbageClient {
  constructor(
    private readonly rng: Rng,
    private readonly api: Api,
    private readonly log: OpLog,
  ) {}

  async setup(): Promise<void> {
    await this.api.expect(201, 'POST', '/v1/topics', { body: { name: 'f0', partitions: 2, retention_ms: -1, segment_bytes: 1024 } });
    await this.api.expect(201, 'POST', '/v1/collections', { body: { name: 'fc0', dims: 3, metric: 'cosine' } });
  }

  async op(): Promise<void> {
    const r = this.rng;
    const t = template(r);
    let body: string | Uint8Array | undefined;
    if (t.body !== undefined) {
      const text = JSON.stringify(r.chance(0.8) ? mutate(r, t.body) : t.body);
      const how = r.int(0, 9);
      if (how === 0) body = text.slice(0, r.int(0, text.length - 1));
      else if (how === 1) {
        const at = r.int(0, text.length);
        const bytes = Buffer.concat([Buffer.from(text.slice(0, at)), Buffer.from(r.bytes(r.int(1, 4))), Buffer.from(text.slice(at))]);
        body = new Uint8Array(bytes);
      } else body = text;
    } else if (t.method === 'PUT') body = r.bytes(r.int(0, 100));
    const headers: Record<string, string> = {};
    if (t.body !== undefined) headers['content-type'] = r.pick(['application/json', 'text/plain', 'application/json; charset=latin1']);
    if (t.method === 'PUT' && r.chance(0.3)) headers[r.pick(['if-match', 'if-none-match'])] = r.pick(['*', '"1"', 'W/"x"', '"', '', ',,', '"1", *']);
    this.log.add(`garbage ${t.method} ${t.path.slice(0, 120)} ${typeof body === 'string' ? body.slice(0, 120) : body === undefined ? '' : `${body.length} bytes`}`);
    await this.api.call(t.method, t.path, { body, headers });
  }
}
