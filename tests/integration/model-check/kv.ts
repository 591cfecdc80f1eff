/**
 * KV against a model. Each client owns the keys under its own prefix (`m<client>/`), so its model
 * is exact; the shared counters are incremented by every client with If-Match, and must end at
 * exactly the number of increments acknowledged.
 */
import { Api, Answer, check, ModelClient, OpLog, Rng, sameBytes, show, showKey, utf8, Violation } from './harness.js';

interface Entry {
  value: Uint8Array;
  type: string;
  etag: number;
  expiresAt: number | null;
}

const MAX_KEY_BYTES = 512;
const CONTENT_TYPES = [undefined, 'application/octet-stream', 'text/plain', 'application/json', 'text/plain; charset=utf-8', 'image/png', 'x-custom/with spaces;q=1'];
/**
 * A key this close to its expiry (or past it) may be live or gone by the time the server looks:
 * either answer is right, and the model follows the server's. A loaded 2-core box can take
 * seconds per request, so the window is wide.
 */
const DOUBT_MS = 10_000;

function mayBeGone(e: Entry | undefined): boolean {
  return e?.expiresAt != null && e.expiresAt - Date.now() < DOUBT_MS;
}

/** The URL path of a key: each `/`-separated part encoded, or the whole key as one encoded part. */
function keyPath(rng: Rng, key: string): string {
  const parts = key.split('/');
  const rawSlashesSafe = parts.every((p) => p !== '' && p !== '.' && p !== '..');
  if (rawSlashesSafe && rng.chance(0.5)) return `/v1/kv/${parts.map(encodeURIComponent).join('/')}`;
  return `/v1/kv/${encodeURIComponent(key)}`;
}

function byteLength(s: string): number {
  return utf8.encode(s).length;
}

/** `s` cut to at most `max` UTF-8 bytes without splitting a character. */
function cutToBytes(s: string, max: number): string {
  let out = '';
  for (const ch of s) {
    if (byteLength(out + ch) > max) break;
    out += ch;
  }
  return out;
}

function compareBytes(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

function etagNumber(a: Answer, what: string): number {
  const tag = a.headers.get('etag');
  check(tag !== null && /^"\d+"$/.test(tag), () => `${what}: bad ETag ${tag}`);
  return Number(tag.slice(1, -1));
}

export class KvClient extends ModelClient {
  readonly prefix: string;
  readonly keys: string[] = [];
  readonly model = new Map<string, Entry>();
  /** Keys that expired (or may have) and were dropped from the model: counted in bytes_stored until swept. */
  private readonly expired = new Map<string, Entry>();
  /** Highest version ever seen per key: versions only grow, across deletes too. */
  private readonly lastEtag = new Map<string, number>();

  constructor(id: number, rng: Rng, api: Api, other: Api, log: OpLog) {
    super(id, rng, api, other, log);
    // One client's keys start with U+FEFF, which UTF-8 decoders drop by default.
    this.prefix = `${id === 3 ? '\uFEFF' : ''}m${id}/`;
    // A fixed pool, so ops come back to the same keys: slashes, percent signs, unicode, the length limit.
    this.keys.push(`${this.prefix}plain`, `${this.prefix}a/b/c`, `${this.prefix}100%25 ?#`, `${this.prefix}été/中文/🎉`, `${this.prefix}dir/`, `${this.prefix}/lead`, `${this.prefix}..`, `${this.prefix}a//b`);
    this.keys.push(cutToBytes(this.prefix + 'L'.repeat(600), MAX_KEY_BYTES));
    this.keys.push(cutToBytes(this.prefix + '中🎉/%'.repeat(200), MAX_KEY_BYTES));
    for (let i = 0; i < 6; i++) this.keys.push(this.prefix + (rng.text(12) || 'x'));
  }

  private value(): Uint8Array {
    const r = this.rng;
    const kind = r.int(0, 99);
    if (kind < 8) return new Uint8Array(0);
    if (kind < 40) return utf8.encode(r.text(40));
    if (kind < 97) return r.bytes(r.int(1, 3000));
    // Above the 1 MiB entry limit: the value goes to the blob store.
    return r.bytes(r.int(1 << 20, (1 << 20) + 300_000));
  }

  private noteEtag(key: string, etag: number, what: string): void {
    const last = this.lastEtag.get(key) ?? 0;
    check(etag > last, () => `${what}: version ${etag} is not above ${last}, the last one seen for the key`);
    this.lastEtag.set(key, etag);
  }

  async op(): Promise<void> {
    const r = this.rng;
    const n = r.int(0, 99);
    if (n < 40) await this.put();
    else if (n < 65) await this.get();
    else if (n < 78) await this.del();
    else if (n < 92) await this.list();
    else if (n < 95) await this.badKey();
    else await this.foreign();
  }

  private async put(): Promise<void> {
    const r = this.rng;
    const key = r.pick(this.keys);
    this.forgetExpired(key);
    const before = this.model.get(key);
    const doubt = mayBeGone(before);
    const value = this.value();
    const type = r.pick(CONTENT_TYPES);
    const t = r.int(0, 99);
    // Short TTLs expire within the run (the sweep, and expiry across restarts); long ones do not.
    const ttl = t < 8 ? r.int(1, 3) : t < 20 ? r.int(3600, 86400) : undefined;
    const headers: Record<string, string> = {};
    if (type !== undefined) headers['content-type'] = type;
    let applies = true;
    const cond = doubt ? 9 : r.int(0, 9);
    if (cond === 0) {
      headers['if-none-match'] = '*';
      applies = before === undefined;
    } else if (cond === 1) {
      headers['if-match'] = '*';
      applies = before !== undefined;
    } else if (cond === 2) {
      headers['if-match'] = before === undefined ? '"1"' : `"${before.etag}"`;
      applies = before !== undefined;
    } else if (cond === 3) {
      // If-Match compares strongly: the current version as a weak tag does not match.
      headers['if-match'] = `"${r.int(1, 1e9)}", W/"${before?.etag ?? 5}"`;
      applies = false;
    } else if (cond === 4) {
      headers['if-match'] = `"${(before?.etag ?? 7) + 1}"`;
      applies = false;
    }
    const path = keyPath(r, key) + (ttl === undefined ? '' : `?ttl=${ttl}`);
    this.log.add(`c${this.id} kv PUT ${showKey(key)} ${show(value)} type=${type} ttl=${ttl} ${JSON.stringify(headers)} (exists: ${before !== undefined})`);
    const expectedType = type ?? 'application/octet-stream';
    this.inflight = async () => {
      const now = await this.read(key);
      if (now === undefined) {
        check(before === undefined || mayBeGone(before) || (applies && ttl !== undefined && ttl < 3600), () => `after a crash, ${showKey(key)} is gone; an unanswered PUT must leave it as it was`);
        this.expire(key);
        return;
      }
      if (before !== undefined && now.etag === before.etag) {
        check(sameBytes(now.value, before.value) && now.type === before.type, () => `after a crash, ${showKey(key)} has its old version with other bytes`);
        return;
      }
      check(applies && sameBytes(now.value, value) && now.type === expectedType, () => `after a crash, ${showKey(key)} is neither before nor after the unanswered PUT: ${show(now.value)} ${now.type}`);
      this.noteEtag(key, now.etag, `recovered PUT ${key}`);
      this.expired.delete(key);
      this.model.set(key, now);
    };
    const a = await this.api.expect(applies ? 200 : 412, 'PUT', path, { body: value, headers }, applies ? undefined : 'precondition_failed');
    this.inflight = undefined;
    if (!applies) return;
    const etag = etagNumber(a, `PUT ${key}`);
    const j = a.json;
    check(j.key === key && j.size === value.length && j.content_type === expectedType && j.etag === `"${etag}"`, () => `PUT ${key}: answer ${JSON.stringify(j)}`);
    if (ttl === undefined) check(j.expires_at === null, () => `PUT ${key} without ttl: expires_at ${j.expires_at}`);
    else check(typeof j.expires_at === 'number' && Math.abs(j.expires_at - Date.now() - ttl * 1000) < 120_000, () => `PUT ${key} ttl=${ttl}: expires_at ${j.expires_at}`);
    this.noteEtag(key, etag, `PUT ${key}`);
    this.expired.delete(key);
    this.model.set(key, { value, type: expectedType, etag, expiresAt: j.expires_at });
  }

  /** The key as the server has it now (a plain GET). */
  private async read(key: string): Promise<Entry | undefined> {
    const a = await this.api.expect([200, 404], 'GET', keyPath(this.rng, key));
    if (a.status === 404) return undefined;
    const exp = a.headers.get('x-expires-at');
    return { value: a.bytes, type: a.headers.get('content-type') ?? '', etag: etagNumber(a, `GET ${key}`), expiresAt: exp === null ? null : Number(exp) };
  }

  private async get(): Promise<void> {
    const key = this.rng.pick(this.keys);
    this.forgetExpired(key);
    const want = this.model.get(key);
    if (want !== undefined && this.rng.chance(0.2)) {
      this.log.add(`c${this.id} kv GET ${showKey(key)} If-None-Match current`);
      const a = await this.api.expect(mayBeGone(want) ? [304, 404] : 304, 'GET', keyPath(this.rng, key), { headers: { 'if-none-match': `"${want.etag}"` } });
      if (a.status === 404) this.expire(key);
      else check(etagNumber(a, `GET ${key}`) === want.etag, () => `304 for ${key} with ETag ${a.headers.get('etag')}, not ${want.etag}`);
      return;
    }
    this.log.add(`c${this.id} kv GET ${showKey(key)}`);
    this.checkEntry(key, await this.read(key));
  }

  /** Moves a key that has (or may have) expired out of the model. */
  private expire(key: string): void {
    const e = this.model.get(key);
    if (e !== undefined) this.expired.set(key, e);
    this.model.delete(key);
  }

  /** Drops a key the model knows has expired (the server must treat it as absent now). */
  private forgetExpired(key: string): void {
    const e = this.model.get(key);
    if (e?.expiresAt != null && e.expiresAt <= Date.now()) this.expire(key);
  }

  private checkEntry(key: string, got: Entry | undefined): void {
    this.forgetExpired(key);
    const want = this.model.get(key);
    if (want !== undefined && got === undefined && mayBeGone(want)) {
      this.expire(key);
      return;
    }
    if (want === undefined) {
      check(got === undefined, () => `GET ${showKey(key)}: the model has no such key, the server answered ${show(got!.value)}`);
      return;
    }
    check(got !== undefined, () => `GET ${showKey(key)}: 404, the model has ${show(want.value)} at ${want.etag}`);
    check(sameBytes(got.value, want.value), () => `GET ${showKey(key)}: ${show(got.value)}, want ${show(want.value)}`);
    check(got.type === want.type && got.etag === want.etag && got.expiresAt === want.expiresAt, () => `GET ${showKey(key)}: type/etag/expiry ${got.type} ${got.etag} ${got.expiresAt}, want ${want.type} ${want.etag} ${want.expiresAt}`);
  }

  private async del(): Promise<void> {
    const r = this.rng;
    const key = r.pick(this.keys);
    this.forgetExpired(key);
    const before = this.model.get(key);
    const doubt = mayBeGone(before);
    const headers: Record<string, string> = {};
    let status: number | number[] = before === undefined ? 404 : doubt ? [204, 404] : 204;
    const cond = doubt ? 5 : r.int(0, 5);
    if (cond === 0) {
      headers['if-match'] = `"${before?.etag ?? 3}"`;
      status = before === undefined ? 412 : 204;
    } else if (cond === 1) {
      headers['if-match'] = `"${(before?.etag ?? 3) + 1}"`;
      status = 412;
    }
    this.log.add(`c${this.id} kv DELETE ${showKey(key)} ${JSON.stringify(headers)} (exists: ${before !== undefined})`);
    this.inflight = async () => {
      const now = await this.read(key);
      if (now === undefined) {
        check(before === undefined || status !== 412 || mayBeGone(before), () => `after a crash, ${showKey(key)} is gone though its DELETE could not apply`);
        this.expire(key);
        return;
      }
      check(before !== undefined && now.etag === before.etag && sameBytes(now.value, before.value), () => `after a crash, ${showKey(key)} is neither before nor after the unanswered DELETE`);
    };
    const a = await this.api.expect(status, 'DELETE', keyPath(r, key), { headers }, status === 412 ? 'precondition_failed' : status === 404 ? 'not_found' : undefined);
    this.inflight = undefined;
    if (a.status === 404) this.expire(key);
    else if (a.status === 204) this.model.delete(key);
  }

  private async list(): Promise<void> {
    const r = this.rng;
    let prefix = this.prefix;
    if (r.chance(0.4)) {
      const k = [...r.pick(this.keys)];
      prefix = k.slice(0, r.int(this.prefix.length, k.length)).join('');
    }
    // Sometimes every key of the tenant, while the other clients write theirs: pages must still
    // never repeat or skip, and this client's keys, which nobody else writes, come out exact.
    const everything = r.chance(0.15);
    if (everything) prefix = '';
    const limit = r.chance(0.7) ? r.int(1, 4) : r.int(5, 1000);
    this.log.add(`c${this.id} kv LIST prefix=${JSON.stringify(prefix)} limit=${limit}`);
    const t0 = Date.now();
    let got = await listAll(this.api, prefix, limit);
    const t1 = Date.now();
    if (everything) {
      prefix = this.prefix;
      got = got.filter((e) => e.key.startsWith(prefix));
    }
    this.compareListing(`LIST ${JSON.stringify(prefix)}`, got, prefix, t0, t1);
  }

  /**
   * A listing made between t0 and t1 against the model: a key that expired in that window may be
   * there or not; every other key must be there exactly when the model has it live.
   */
  private compareListing(what: string, listed: Listed[], prefix: string, t0: number, t1: number): void {
    const state = (k: string): 'live' | 'gone' | 'either' => {
      const e = this.model.get(k);
      if (e === undefined || (e.expiresAt !== null && e.expiresAt <= t0)) return 'gone';
      return e.expiresAt === null || e.expiresAt > t1 ? 'live' : 'either';
    };
    const got = listed.filter((e) => state(e.key) !== 'either');
    const want = [...this.model.keys()].filter((k) => k.startsWith(prefix) && state(k) === 'live').sort(compareBytes);
    check(got.map((e) => e.key).join('\u0000') === want.join('\u0000'), () => `${what}: ${JSON.stringify(got.map((e) => e.key))}, want ${JSON.stringify(want)}`);
    for (const e of got) {
      const m = this.model.get(e.key)!;
      check(e.size === m.value.length && e.content_type === m.type && e.expires_at === m.expiresAt, () => `${what}: entry ${JSON.stringify(e)} vs model size ${m.value.length} ${m.type} ${m.expiresAt}`);
    }
  }

  private async badKey(): Promise<void> {
    const key = this.prefix + 'k'.repeat(MAX_KEY_BYTES - this.prefix.length + 1);
    this.log.add(`c${this.id} kv PUT over-long key (513 bytes)`);
    await this.api.expect(400, 'PUT', `/v1/kv/${encodeURIComponent(key)}`, { body: 'x' }, 'invalid_argument');
  }

  /** Another tenant sees nothing of this one's keys, and its writes do not reach them. */
  private async foreign(): Promise<void> {
    const key = this.rng.pick(this.keys);
    this.log.add(`c${this.id} kv other tenant GET/DELETE ${showKey(key)}`);
    await this.other.expect(404, 'GET', keyPath(this.rng, key), {}, 'not_found');
    await this.other.expect(404, 'DELETE', keyPath(this.rng, key), {}, 'not_found');
    await this.other.expect(412, 'PUT', keyPath(this.rng, key), { body: 'x', headers: { 'if-match': '*' } }, 'precondition_failed');
  }

  /**
   * Bytes (key + value) of this client's keys that had expired by `t` and are not in `listed`:
   * they still count in bytes_stored until the sweep purges them.
   */
  bytesExpiredBefore(t: number, listed: Listed[]): number {
    const shown = new Set(listed.map((e) => e.key));
    let n = 0;
    for (const [key, e] of this.expired) {
      // The sweep is timed for the next expiry: long past, it has run.
      if (e.expiresAt !== null && e.expiresAt < t - 30_000) this.expired.delete(key);
      else if (!shown.has(key)) n += utf8.encode(key).length + e.value.length;
    }
    for (const [key, e] of this.model) if (!shown.has(key) && e.expiresAt !== null && e.expiresAt <= t + DOUBT_MS) n += utf8.encode(key).length + e.value.length;
    return n;
  }

  /** Every key of this client, as the model has it. */
  async verify(): Promise<void> {
    this.log.add(`c${this.id} kv verify ${this.model.size} keys`);
    const t0 = Date.now();
    const listed = await listAll(this.api, this.prefix, this.rng.int(1, 50));
    this.compareListing('verify LIST', listed, this.prefix, t0, Date.now());
    for (const key of this.keys) this.checkEntry(key, await this.read(key));
  }
}

interface Listed {
  key: string;
  size: number;
  content_type: string;
  expires_at: number | null;
}

/** Pages through a listing; pages never repeat or skip a key (keys strictly increase). */
export async function listAll(api: Api, prefix: string, limit: number): Promise<Listed[]> {
  const out: Listed[] = [];
  let cursor: string | null = null;
  for (let page = 0; ; page++) {
    check(page < 10_000, () => `LIST ${prefix}: too many pages`);
    const q = new URLSearchParams({ prefix, limit: String(limit) });
    if (cursor !== null) q.set('cursor', cursor);
    const a = await api.expect(200, 'GET', `/v1/kv?${q}`);
    const { keys, cursor: next } = a.json as { keys: Listed[]; cursor: string | null };
    check(keys.length <= limit, () => `LIST page of ${keys.length} over limit ${limit}`);
    for (const e of keys) {
      check(e.key.startsWith(prefix), () => `LIST ${JSON.stringify(prefix)} gave ${JSON.stringify(e.key)}`);
      const last = out[out.length - 1];
      check(last === undefined || compareBytes(last.key, e.key) < 0, () => `LIST ${JSON.stringify(prefix)}: ${JSON.stringify(e.key)} after ${JSON.stringify(last!.key)} (repeat or out of order)`);
      out.push(e);
    }
    if (next === null) return out;
    check(keys.length > 0 || page < 1000, () => 'LIST: empty pages that never end');
    cursor = next;
  }
}

/** Counters every client increments with If-Match: the final value counts the acknowledged increments. */
export class SharedCounters {
  readonly acked: number[];
  /** Increments whose answer was lost in a crash: each may or may not have happened. */
  readonly maybe: number[];
  constructor(readonly count: number) {
    this.acked = new Array(count).fill(0);
    this.maybe = new Array(count).fill(0);
  }
  path(i: number): string {
    return `/v1/kv/shared%2Fcounter-${i}`;
  }

  async increment(api: Api, rng: Rng, log: OpLog, client: number): Promise<void> {
    const i = rng.int(0, this.count - 1);
    const a = await api.expect([200, 404], 'GET', this.path(i));
    let headers: Record<string, string>;
    let next: number;
    let seen = 0;
    if (a.status === 404) {
      headers = { 'if-none-match': '*' };
      next = 1;
    } else {
      seen = etagNumber(a, 'counter');
      headers = { 'if-match': `"${seen}"` };
      next = Number(Buffer.from(a.bytes).toString()) + 1;
    }
    log.add(`c${client} counter ${i} -> ${next} ${JSON.stringify(headers)}`);
    this.maybe[i]!++;
    const put = await api.expect([200, 412], 'PUT', this.path(i), { body: String(next), headers: { ...headers, 'content-type': 'text/plain' } });
    this.maybe[i]!--;
    if (put.status === 200) {
      this.acked[i]!++;
      check(etagNumber(put, 'counter PUT') > seen, () => `counter ${i}: new version not above the one it replaced (${seen})`);
    }
  }

  async verify(api: Api, log: OpLog): Promise<void> {
    for (let i = 0; i < this.count; i++) {
      const a = await api.expect([200, 404], 'GET', this.path(i));
      const value = a.status === 404 ? 0 : Number(Buffer.from(a.bytes).toString());
      log.add(`counter ${i} verify: ${value}, acked ${this.acked[i]}, maybe ${this.maybe[i]}`);
      if (value < this.acked[i]! || value > this.acked[i]! + this.maybe[i]!) {
        throw new Violation(`counter ${i} is ${value}; ${this.acked[i]} increments were acknowledged and ${this.maybe[i]} were unanswered`);
      }
      this.acked[i] = value;
      this.maybe[i] = 0;
    }
  }
}

/**
 * Keys every client overwrites without conditions: each acknowledged write gets its own version,
 * a read returns a version at least as new as every write acknowledged before it was sent (with
 * that write's bytes), and once the clients stop the newest acknowledged write is what remains.
 */
export class SharedRegisters {
  /** Per register: acknowledged version → value. */
  private readonly acked: Map<number, string>[];
  /** Per register: values of writes whose answer was lost; one may have landed. */
  private readonly unanswered: Set<string>[];
  private seq = 0;

  constructor(readonly count: number) {
    this.acked = Array.from({ length: count }, () => new Map());
    this.unanswered = Array.from({ length: count }, () => new Set());
  }

  private path(i: number): string {
    return `/v1/kv/shared%2Fregister-${i}`;
  }

  private newest(i: number): number {
    let max = 0;
    for (const v of this.acked[i]!.keys()) if (v > max) max = v;
    return max;
  }

  async op(api: Api, rng: Rng, log: OpLog, client: number): Promise<void> {
    const i = rng.int(0, this.count - 1);
    if (rng.chance(0.5)) {
      const value = `c${client}-w${this.seq++}`;
      log.add(`c${client} register ${i} PUT ${value}`);
      this.unanswered[i]!.add(value);
      const a = await api.expect(200, 'PUT', this.path(i), { body: value, headers: { 'content-type': 'text/plain' } });
      this.unanswered[i]!.delete(value);
      const version = etagNumber(a, `register ${i} PUT`);
      check(!this.acked[i]!.has(version), () => `register ${i}: version ${version} acknowledged to two writes (${this.acked[i]!.get(version)} and ${value})`);
      this.acked[i]!.set(version, value);
      return;
    }
    const floor = this.newest(i);
    log.add(`c${client} register ${i} GET (newest acknowledged ${floor})`);
    const a = await api.expect(floor === 0 ? [200, 404] : 200, 'GET', this.path(i));
    if (a.status === 404) return;
    const version = etagNumber(a, `register ${i} GET`);
    const value = Buffer.from(a.bytes).toString();
    check(version >= floor, () => `register ${i}: read version ${version}, older than ${floor}, acknowledged before the read`);
    const known = this.acked[i]!.get(version);
    check(known === undefined || known === value, () => `register ${i}: version ${version} reads ${value}, was written as ${known}`);
  }

  async verify(api: Api, log: OpLog): Promise<void> {
    for (let i = 0; i < this.count; i++) {
      const floor = this.newest(i);
      const a = await api.expect(floor === 0 ? [200, 404] : 200, 'GET', this.path(i));
      log.add(`register ${i} verify: ${a.status}, newest acknowledged ${floor}, ${this.unanswered[i]!.size} unanswered`);
      if (a.status === 200) {
        const version = etagNumber(a, `register ${i}`);
        const value = Buffer.from(a.bytes).toString();
        if (version === floor) check(this.acked[i]!.get(version) === value, () => `register ${i}: newest version ${version} reads ${value}, was written as ${this.acked[i]!.get(version)}`);
        else {
          check(version > floor && this.unanswered[i]!.has(value), () => `register ${i}: holds ${value} at ${version}; the newest acknowledged write is ${this.acked[i]!.get(floor)} at ${floor}`);
          this.acked[i]!.set(version, value);
        }
      } else check(this.unanswered[i]!.size > 0 || floor === 0, () => `register ${i} is gone`);
      this.unanswered[i]!.clear();
    }
  }
}
