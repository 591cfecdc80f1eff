/**
 * What the crash torture (torture.test.ts) writes and what must hold after each kill -9. Every
 * piece of state has one writer (a worker), so its history is a line: the acknowledged state, and
 * at most one request the kill cut short, whose effect may be there whole or not at all. `verify`
 * runs after a restart with no writes in flight: it checks what the server holds against that,
 * then adopts what it saw (an unanswered write that landed is durable from then on).
 */
import type { Rng } from '../integration/model-check/harness.js';
import { bytesOf, check, expectStatus, hashOf, request, Violation, type Link, type OpLog, type Reply } from './torture-client.js';

export interface Ctx {
  link: Link;
  key: string;
  log: OpLog;
  rng: Rng;
  seed: number;
  stats: Record<string, number>;
  /** The highest KV version acknowledged in the main tenant: a put issued later must get more. */
  maxVersion: number;
}

const enc = (s: string) => encodeURIComponent(s);
const bump = (ctx: Ctx, what: string, n = 1) => (ctx.stats[what] = (ctx.stats[what] ?? 0) + n);

// ---------------------------------------------------------------- KV

interface KvState {
  tag: string;
  size: number;
  ct: string;
  version: number;
  expiresAt: number | null;
}

/** A write the kill may have cut short: the key as it was, and as the write would leave it (version unknown). */
interface KvPending {
  key: string;
  before: KvState | null;
  after: KvState | null;
}

const CONTENT_TYPES = ['application/octet-stream', 'text/plain; charset=utf-8', 'application/x-torture'];
/**
 * How long before its expiry a key counts as unsure for a condition: a request sent now may be
 * checked by the server that much later on a loaded machine (a 1.5 s margin was not enough for a
 * large put). The server reads the same clock, after the send, so a key past its expiry at the
 * send is gone at the check.
 */
const TTL_MARGIN_MS = 60_000;

export function versionOf(r: Reply): number {
  const m = /^"(\d+)"$/.exec(String(r.headers.etag ?? ''));
  check(m !== null, () => `no strong ETag on ${r.status}: ${String(r.headers.etag)}`);
  return Number(m[1]);
}

export class KvWorker {
  private readonly keys = new Map<string, KvState | null>();
  private pending: KvPending | undefined;
  private n = 0;

  constructor(
    private readonly ctx: Ctx,
    private readonly id: number,
  ) {}

  private keyName(j: number): string {
    return j % 4 === 0 ? `w${this.id}/ü ${j}` : `w${this.id}/k${j}`;
  }

  /** The key's state for a request sent at `at`: a state, absent, or unsure (a TTL about to end). */
  private now(key: string, at = Date.now()): KvState | null | 'unsure' {
    const s = this.keys.get(key) ?? null;
    if (s === null || s.expiresAt === null) return s;
    if (s.expiresAt > at + TTL_MARGIN_MS) return s;
    return s.expiresAt <= at ? null : 'unsure';
  }

  async op(): Promise<void> {
    const { rng, link, key: apiKey, log } = this.ctx;
    const key = this.keyName(rng.int(0, 11));
    const cur = this.now(key);
    const r = rng.next();
    const path = `/v1/kv/${enc(key)}`;
    if (r < 0.7) {
      const large = r < 0.06;
      const size = large ? rng.int(1024 * 1024 + 1, 1600 * 1024) : rng.int(0, 3000);
      const tag = `${this.ctx.seed}/kv/${this.id}/${this.n++}`;
      const ttlPick = rng.next();
      const ttl = ttlPick < 0.7 ? undefined : ttlPick < 0.85 ? 3600 : rng.int(1, 3);
      const ct = rng.pick(CONTENT_TYPES);
      const headers: Record<string, string> = { 'content-type': ct };
      let stale = false;
      if (cur !== 'unsure' && rng.chance(0.4)) {
        if (cur === null) headers['if-none-match'] = '*';
        else if (rng.chance(0.15)) {
          headers['if-match'] = `"${cur.version - 1}"`;
          stale = true;
        } else headers['if-match'] = `"${cur.version}"`;
      }
      const before = cur === 'unsure' ? (this.keys.get(key) ?? null) : cur;
      const issuedAfter = this.ctx.maxVersion;
      const sentAt = Date.now();
      this.pending = { key, before, after: stale ? before : { tag, size, ct, version: NaN, expiresAt: ttl === undefined ? null : sentAt + ttl * 1000 } };
      log.add(`kv put ${key} ${size}B${ttl === undefined ? '' : ` ttl ${ttl}`}${headers['if-match'] ? ` if-match ${headers['if-match']}` : ''}${headers['if-none-match'] ? ' if-none-match *' : ''}`);
      const res = await expectStatus(link, apiKey, stale ? 412 : 200, 'PUT', path + (ttl === undefined ? '' : `?ttl=${ttl}`), { body: bytesOf(tag, size), headers });
      this.pending = undefined;
      if (stale) return void bump(this.ctx, 'kv_412');
      const version = versionOf(res);
      check(version > issuedAfter, () => `put ${key}: version ${version} not above ${issuedAfter}, acknowledged before it was issued`);
      if (before !== null) check(version > before.version, () => `put ${key}: version ${version} not above the key's ${before.version}`);
      const expiresAt = res.json().expires_at as number | null;
      check((expiresAt === null) === (ttl === undefined), () => `put ${key}: expires_at ${expiresAt} for ttl ${ttl}`);
      this.keys.set(key, { tag, size, ct, version, expiresAt });
      this.ctx.maxVersion = Math.max(this.ctx.maxVersion, version);
      bump(this.ctx, large ? 'kv_large_puts' : 'kv_puts');
    } else {
      const headers: Record<string, string> = {};
      if (cur !== null && cur !== 'unsure' && rng.chance(0.4)) headers['if-match'] = `"${cur.version}"`;
      const before = cur === 'unsure' ? (this.keys.get(key) ?? null) : cur;
      this.pending = { key, before, after: null };
      log.add(`kv delete ${key}${headers['if-match'] ? ` if-match ${headers['if-match']}` : ''}`);
      const expected = cur === 'unsure' ? [204, 404] : cur === null ? 404 : 204;
      await expectStatus(link, apiKey, expected, 'DELETE', path, { headers });
      this.pending = undefined;
      this.keys.set(key, null);
      bump(this.ctx, 'kv_deletes');
    }
  }

  /**
   * The state a GET sent at `sent` and answered at `answered` shows, checked against `want`
   * (content, type, version, expiry): the server read the key in between.
   */
  private matches(want: KvState | null, got: Reply, versionKnown: boolean, sent: number, answered: number): boolean {
    if (want === null) return got.status === 404;
    if (got.status === 404) return want.expiresAt !== null && want.expiresAt <= answered;
    if (got.status !== 200 || (want.expiresAt !== null && want.expiresAt <= sent)) return false;
    if (got.body.length !== want.size || Buffer.compare(got.body, bytesOf(want.tag, want.size)) !== 0) return false;
    if (got.headers['content-type'] !== want.ct) return false;
    if (versionKnown && versionOf(got) !== want.version) return false;
    const xExp = got.headers['x-expires-at'];
    if ((xExp === undefined) !== (want.expiresAt === null)) return false;
    // An unanswered put's expiry is its send time plus the TTL, give or take the request's wait.
    if (xExp !== undefined && Math.abs(Number(xExp) - want.expiresAt!) > (versionKnown ? 0 : 120_000)) return false;
    return true;
  }

  async verify(): Promise<void> {
    const { link, key: apiKey } = this.ctx;
    const pending = this.pending;
    this.pending = undefined;
    const keys = new Set(this.keys.keys());
    if (pending !== undefined) keys.add(pending.key);
    for (const key of keys) {
      const sent = Date.now();
      const got = await request(link, apiKey, 'GET', `/v1/kv/${enc(key)}`);
      const answered = Date.now();
      const want = this.keys.get(key) ?? null;
      const describe = () => `key ${JSON.stringify(key)}: expected ${JSON.stringify(want)}${pending?.key === key ? ` or, the unanswered write, ${JSON.stringify(pending.after)}` : ''}; got ${got.status} ${got.body.length}B etag ${String(got.headers.etag)} type ${String(got.headers['content-type'])} expires ${String(got.headers['x-expires-at'])}`;
      if (this.matches(want, got, true, sent, answered)) {
        if (got.status === 404) this.keys.set(key, null);
        continue;
      }
      if (pending?.key === key && this.matches(pending.after, got, false, sent, answered)) {
        if (got.status === 404) this.keys.set(key, null);
        else {
          const version = versionOf(got);
          if (pending.before !== null) check(version > pending.before.version, () => `${describe()}: the landed write's version is not above the one before it`);
          this.keys.set(key, { ...pending.after!, version, expiresAt: got.headers['x-expires-at'] === undefined ? null : Number(got.headers['x-expires-at']) });
          this.ctx.maxVersion = Math.max(this.ctx.maxVersion, version);
        }
        bump(this.ctx, 'kv_unanswered_landed');
        continue;
      }
      throw new Violation(describe());
    }
    // The listing agrees with the reads (keys whose expiry is near may go either way).
    const listed = new Set<string>();
    const sent = Date.now();
    for (let cursor: string | null = null; ; ) {
      const page = (await expectStatus(link, apiKey, 200, 'GET', `/v1/kv?prefix=${enc(`w${this.id}/`)}&limit=7${cursor === null ? '' : `&cursor=${enc(cursor)}`}`)).json();
      for (const k of page.keys as { key: string; size: number }[]) {
        check(!listed.has(k.key), () => `listing shows ${k.key} twice`);
        listed.add(k.key);
        const s = this.now(k.key, sent);
        check(s !== null, () => `listing shows ${JSON.stringify(k.key)}, which is absent`);
        if (s !== 'unsure') check(k.size === s.size, () => `listing gives ${k.key} size ${k.size}, not ${s.size}`);
      }
      if ((cursor = page.cursor) === null) break;
    }
    const answered = Date.now();
    for (const key of this.keys.keys()) {
      const s = this.now(key, answered);
      if (s !== null && s !== 'unsure') check(listed.has(key), () => `listing misses ${JSON.stringify(key)}`);
    }
  }
}

// ---------------------------------------------------------------- streams

export interface TopicConfig {
  name: string;
  partitions: number;
  segment_bytes: number;
  segment_ms: number;
  retention_bytes?: number;
  retention_ms?: number;
  compression?: 'lz4' | 'none';
}

/** A produced record, all of it derived from its id. */
interface RecordShape {
  key: string | null;
  value: string;
  encoding: 'utf8' | 'base64';
  headers: { key: string; value: string }[];
}

export function recordOf(id: string): RecordShape {
  const h = hashOf(id);
  const size = h % 37 === 0 ? 1500 + (h % 3000) : (h >>> 4) % 400;
  // A keyless request's ids carry `~` (its records are spread by the sticky round-robin).
  const key = id.includes('~') || (h >>> 9) % 3 === 0 ? null : `key${(h >>> 12) % 40}`;
  if (h % 10 < 2) {
    // Not UTF-8 (0xff), so it comes back base64.
    const bytes = Buffer.concat([Buffer.from(`${id}|`), Buffer.from([0xff]), bytesOf(id, size)]);
    return { key, value: bytes.toString('base64'), encoding: 'base64', headers: [] };
  }
  const filler = 'abcdefghijklmnopqrstuvwxyz'[h % 26]!.repeat(size);
  return { key, value: `${id}|${filler}`, encoding: 'utf8', headers: h % 10 === 2 ? [{ key: 'id', value: id }] : [] };
}

function idOfValue(value: string, encoding: string): string | undefined {
  const text = encoding === 'base64' ? Buffer.from(value, 'base64').toString('latin1') : value;
  const bar = text.indexOf('|');
  return bar === -1 ? undefined : text.slice(0, bar);
}

/** One topic's acknowledged records and what a check last saw of each partition. */
export class TopicModel {
  /** Per partition: offset → record id, for every acknowledged (or since seen) record at or past the log start. */
  readonly acked: Map<number, string>[];
  /** Ids sent in requests that got no answer: each may be anywhere past the acknowledged ones, or nowhere. */
  readonly unanswered = new Set<string>();
  readonly logStart: number[];
  readonly verifiedHwm: number[];
  /** One past the highest acknowledged offset, per partition: what a group may commit up to. */
  readonly ackedEnd: number[];

  constructor(readonly config: TopicConfig) {
    const n = config.partitions;
    this.acked = Array.from({ length: n }, () => new Map());
    this.logStart = new Array<number>(n).fill(0);
    this.verifiedHwm = new Array<number>(n).fill(0);
    this.ackedEnd = new Array<number>(n).fill(0);
  }

  get retains(): boolean {
    return this.config.retention_bytes !== undefined || this.config.retention_ms !== undefined;
  }

  ack(partition: number, offset: number, id: string): void {
    const had = this.acked[partition]!.get(offset);
    check(had === undefined || had === id, () => `topic ${this.config.name} partition ${partition}: offset ${offset} acknowledged for ${id}, and before for ${had}`);
    this.acked[partition]!.set(offset, id);
    this.ackedEnd[partition] = Math.max(this.ackedEnd[partition]!, offset + 1);
  }

  /** Reads every partition whole and checks it against the acknowledged records. */
  async verify(ctx: Ctx): Promise<void> {
    const { link, key } = ctx;
    const name = this.config.name;
    const describe = async () => (await expectStatus(link, key, 200, 'GET', `/v1/topics/${name}`)).json().partition_info as { log_start_offset: number; high_watermark: number }[];
    const info = await describe();
    check(info.length === this.config.partitions, () => `topic ${name} has ${info.length} partitions, not ${this.config.partitions}`);
    for (let p = 0; p < info.length; p++) {
      const where = `topic ${name} partition ${p}`;
      let { log_start_offset: start, high_watermark: hwm } = info[p]!;
      check(start >= this.logStart[p]!, () => `${where}: log start went back from ${this.logStart[p]} to ${start}`);
      check(start <= hwm, () => `${where}: log start ${start} past the high watermark ${hwm}`);
      check(hwm >= this.ackedEnd[p]!, () => `${where}: high watermark ${hwm} below the acknowledged end ${this.ackedEnd[p]}`);
      check(hwm >= this.verifiedHwm[p]!, () => `${where}: high watermark ${hwm} below the ${this.verifiedHwm[p]} seen after the last restart`);
      check(this.retains || start === 0, () => `${where}: log start ${start} on a topic without retention`);
      const seen = new Map<number, string>();
      for (let offset = start; offset < hwm; ) {
        const r = await request(link, key, 'GET', `/v1/topics/${name}/partitions/${p}/records?offset=${offset}&max_records=1000`);
        if (r.status === 400 && r.json().error === 'offset_out_of_range' && this.retains) {
          // Retention ran meanwhile (its ticks go on): start again from the new log start.
          const again = (await describe())[p]!;
          check(again.log_start_offset > offset || again.high_watermark < hwm, () => `${where}: offset ${offset} out of range with log start ${again.log_start_offset}`);
          check(again.high_watermark >= hwm, () => `${where}: high watermark fell from ${hwm} to ${again.high_watermark} with nothing written`);
          for (const o of seen.keys()) if (o < again.log_start_offset) seen.delete(o);
          offset = start = again.log_start_offset;
          continue;
        }
        check(r.status === 200, () => `${where}: read at ${offset}: ${r.status} ${r.body.toString('utf8').slice(0, 300)}`);
        const page = r.json() as { records: { offset: number; key: string | null; value: string; headers: { key: string; value: string }[]; encoding: string }[] };
        check(page.records.length > 0, () => `${where}: no records at ${offset}, below the high watermark ${hwm}`);
        for (const rec of page.records) {
          check(rec.offset === offset, () => `${where}: record at ${rec.offset} where ${offset} was next (a gap or a repeat)`);
          const id = idOfValue(rec.value, rec.encoding);
          check(id !== undefined, () => `${where}: record at ${offset} has no id (torn?): ${rec.value.slice(0, 80)}`);
          const want = recordOf(id);
          const same = rec.value === want.value && rec.encoding === want.encoding && (rec.key ?? null) === (want.key === null ? null : rec.encoding === 'base64' ? Buffer.from(want.key).toString('base64') : want.key);
          check(same, () => `${where}: record at ${offset} (${id}) differs from what was produced`);
          const wantHeaders = want.headers.map((h) => ({ key: h.key, value: rec.encoding === 'base64' ? Buffer.from(h.value).toString('base64') : h.value }));
          check(JSON.stringify(rec.headers) === JSON.stringify(wantHeaders), () => `${where}: record at ${offset} has headers ${JSON.stringify(rec.headers)}`);
          const acked = this.acked[p]!.get(offset);
          if (acked !== undefined) check(acked === id, () => `${where}: offset ${offset} holds ${id}, not the acknowledged ${acked}`);
          else check(this.unanswered.has(id), () => `${where}: offset ${offset} holds ${id}, which was never sent unanswered (acknowledged elsewhere, or twice)`);
          seen.set(offset, id);
          offset++;
        }
      }
      for (const [offset, id] of this.acked[p]!) {
        if (offset >= start) check(seen.get(offset) === id, () => `${where}: acknowledged ${id} at offset ${offset} is gone (log ${start}-${hwm})`);
      }
      // What is there now is durable: adopt it, and forget what retention removed.
      this.acked[p]!.clear();
      for (const [offset, id] of seen) {
        this.acked[p]!.set(offset, id);
        this.unanswered.delete(id);
      }
      this.logStart[p] = start;
      this.verifiedHwm[p] = hwm;
      this.ackedEnd[p] = Math.max(this.ackedEnd[p]!, hwm);
      bump(ctx, 'records_checked', seen.size);
    }
    this.unanswered.clear();
  }
}

/** Produces batches of records to the topics it is given (one producer per topic set, several topics). */
export class Producer {
  private n = 0;
  constructor(
    private readonly ctx: Ctx,
    private readonly id: string,
    private readonly topics: () => TopicModel[],
  ) {}

  async op(): Promise<void> {
    const live = this.topics();
    if (live.length === 0) return;
    // Now and then a write of ~300 KB, which an encoder thread seals (LZ4 topics, docs/streams.md).
    const count = this.ctx.rng.chance(0.04) ? this.ctx.rng.int(1500, 2500) : this.ctx.rng.int(1, 30);
    await produce(this.ctx, this.ctx.rng.pick(live), `${this.id}.${this.n++}`, count);
  }
}

/** Produces `count` records with ids `<batch>.<i>` to `topic`, acknowledging each at its offset. */
export async function produce(ctx: Ctx, topic: TopicModel, batch: string, count: number): Promise<void> {
  const { rng, link, key, log } = ctx;
  const mode = rng.pick(['partition', 'keyed', 'keyless'] as const);
  const partition = rng.int(0, topic.config.partitions - 1);
  const ids = Array.from({ length: count }, (_, i) => `${batch}${mode === 'keyless' ? '~' : ''}.${i}`);
  const records = ids.map((id) => {
    const shape = recordOf(id);
    const rec: Record<string, unknown> = { value: shape.value };
    if (shape.encoding === 'base64') rec.encoding = 'base64';
    if (shape.headers.length > 0) rec.headers = shape.headers;
    if (shape.key !== null) rec.key = shape.encoding === 'base64' ? Buffer.from(shape.key).toString('base64') : shape.key;
    if (mode === 'partition') rec.partition = partition;
    return rec;
  });
  for (const id of ids) topic.unanswered.add(id);
  log.add(`produce ${topic.config.name} ${count} records ${mode}${mode === 'partition' ? ` p${partition}` : ''} (${batch})`);
  const res = await expectStatus(link, key, 200, 'POST', `/v1/topics/${topic.config.name}/records`, { body: { records } });
  const offsets = res.json().offsets as { partition: number; offset: number }[];
  check(offsets.length === count, () => `produce to ${topic.config.name}: ${offsets.length} offsets for ${count} records`);
  offsets.forEach((o, i) => {
    if (mode === 'partition') check(o.partition === partition, () => `record sent to partition ${partition} got ${o.partition}`);
    topic.ack(o.partition, o.offset, ids[i]!);
    topic.unanswered.delete(ids[i]!);
  });
  bump(ctx, 'records_acked', count);
}

// ---------------------------------------------------------------- consumer groups

interface Commit {
  offset: number;
  metadata: string | null;
}

/** Commits group offsets; its groups are its own, so each (group, topic, partition) has one writer. */
export class Committer {
  /** `group\0topic\0partition` → the last acknowledged commit. */
  readonly commits = new Map<string, Commit>();
  private pending: Map<string, Commit> | undefined;
  private n = 0;

  constructor(
    private readonly ctx: Ctx,
    private readonly groups: string[],
    private readonly topics: () => TopicModel[],
  ) {}

  async op(): Promise<void> {
    const live = this.topics();
    if (live.length === 0) return;
    const topic = this.ctx.rng.pick(live);
    const group = this.ctx.rng.pick(this.groups);
    await commitOffsets(this.ctx, this.commits, (p) => (this.pending = p), group, topic, `${this.n++}`);
  }

  /** Forgets a deleted topic's commits (the server drops them with it). */
  dropTopic(name: string): void {
    for (const k of [...this.commits.keys()]) if (k.split('\0')[1] === name) this.commits.delete(k);
  }

  async verify(topics: TopicModel[]): Promise<void> {
    const pending = this.pending;
    this.pending = undefined;
    for (const group of this.groups) for (const topic of topics) await verifyGroup(this.ctx, this.commits, pending, group, topic);
  }
}

export async function commitOffsets(ctx: Ctx, commits: Map<string, Commit>, setPending: (p: Map<string, Commit> | undefined) => void, group: string, topic: TopicModel, tag: string): Promise<void> {
  const { rng, link, key, log } = ctx;
  const name = topic.config.name;
  const parts = Array.from({ length: topic.config.partitions }, (_, p) => p).filter(() => rng.chance(0.6));
  if (parts.length === 0) parts.push(rng.int(0, topic.config.partitions - 1));
  const entries = parts.map((p) => ({ partition: p, offset: rng.int(0, topic.ackedEnd[p]!), metadata: rng.chance(0.3) ? `m${tag}` : null }));
  const pending = new Map(entries.map((e) => [`${group}\0${name}\0${e.partition}`, { offset: e.offset, metadata: e.metadata }]));
  setPending(pending);
  const single = entries.length === 1 && rng.chance(0.5);
  const body = single
    ? { topic: name, partition: entries[0]!.partition, offset: entries[0]!.offset, ...(entries[0]!.metadata === null ? {} : { metadata: entries[0]!.metadata }) }
    : { topic: name, offsets: entries.map((e) => ({ partition: e.partition, offset: e.offset, ...(e.metadata === null ? {} : { metadata: e.metadata }) })) };
  log.add(`commit ${group} ${name} ${JSON.stringify(entries)}`);
  await expectStatus(link, key, 204, 'POST', `/v1/groups/${group}/offsets`, { body });
  setPending(undefined);
  for (const [k, v] of pending) commits.set(k, v);
  bump(ctx, 'group_commits');
}

export async function verifyGroup(ctx: Ctx, commits: Map<string, Commit>, pending: Map<string, Commit> | undefined, group: string, topic: TopicModel): Promise<void> {
  const name = topic.config.name;
  const got = (await expectStatus(ctx.link, ctx.key, 200, 'GET', `/v1/groups/${group}/offsets?topic=${name}`)).json().offsets as { partition: number; offset: number | null; metadata: string | null }[];
  check(got.length === topic.config.partitions, () => `group ${group} ${name}: ${got.length} partitions listed`);
  const rows = got.map((o) => {
    const k = `${group}\0${name}\0${o.partition}`;
    const want = commits.get(k) ?? { offset: null, metadata: null };
    const alt = pending?.get(k);
    const is = (c: { offset: number | null; metadata: string | null } | undefined) => c !== undefined && o.offset === c.offset && (o.metadata ?? null) === c.metadata;
    const row = { k, alt, isWant: is(want), isAlt: is(alt) };
    check(row.isWant || row.isAlt, () => `group ${group} ${name}/${o.partition}: offset ${o.offset} metadata ${o.metadata}, expected ${JSON.stringify(want)}${alt ? ` or, the unanswered commit, ${JSON.stringify(alt)}` : ''}`);
    return row;
  });
  // A commit of several partitions is one write: all of it landed, or none.
  const landed = rows.some((r) => r.isAlt && !r.isWant);
  const missed = rows.some((r) => r.alt !== undefined && r.isWant && !r.isAlt);
  check(!(landed && missed), () => `group ${group} ${name}: part of one commit landed, part not`);
  if (landed) {
    for (const r of rows) if (r.alt !== undefined) commits.set(r.k, r.alt);
    bump(ctx, 'commits_unanswered_landed');
  }
}

// ---------------------------------------------------------------- topic churn

const randomConfig = (rng: Rng, name: string): TopicConfig => ({
  name,
  partitions: rng.int(1, 3),
  segment_bytes: rng.pick([1024, 2048]),
  segment_ms: rng.int(15, 80),
  ...(rng.chance(0.5) ? { retention_bytes: rng.pick([3000, 8000]) } : {}),
  ...(rng.chance(0.3) ? { compression: 'none' as const } : {}),
});

/**
 * Topics created, written, committed to and deleted over and over under a few names, each with a
 * group of its own: a delete must take its records and its group's offsets with it, whatever the
 * kill interrupts, and a name created again must start empty.
 */
export class TopicChurn {
  readonly topics = new Map<string, TopicModel | null>();
  private readonly commits = new Map<string, Commit>();
  private pending: { name: string; after: TopicModel | null } | undefined;
  private pendingCommit: Map<string, Commit> | undefined;
  private n = 0;

  constructor(
    private readonly ctx: Ctx,
    names: string[],
  ) {
    for (const name of names) this.topics.set(name, null);
  }

  private group(name: string): string {
    return `gc-${name}`;
  }

  private dropCommits(name: string): void {
    for (const k of [...this.commits.keys()]) if (k.split('\0')[1] === name) this.commits.delete(k);
  }

  private async checkEmpty(model: TopicModel): Promise<void> {
    const info = (await expectStatus(this.ctx.link, this.ctx.key, 200, 'GET', `/v1/topics/${model.config.name}`)).json().partition_info as { log_start_offset: number; high_watermark: number }[];
    check(info.every((p) => p.high_watermark === 0 && p.log_start_offset === 0), () => `topic ${model.config.name} created again is not empty: ${JSON.stringify(info)}`);
    const offsets = (await expectStatus(this.ctx.link, this.ctx.key, 200, 'GET', `/v1/groups/${this.group(model.config.name)}/offsets?topic=${model.config.name}`)).json().offsets as { offset: number | null }[];
    check(offsets.every((o) => o.offset === null), () => `topic ${model.config.name} created again has its old group offsets: ${JSON.stringify(offsets)}`);
  }

  async op(): Promise<void> {
    const { rng, link, key, log } = this.ctx;
    const name = rng.pick([...this.topics.keys()]);
    const cur = this.topics.get(name)!;
    if (cur === null) {
      const model = new TopicModel(randomConfig(rng, name));
      this.pending = { name, after: model };
      log.add(`topic create ${JSON.stringify(model.config)}`);
      await expectStatus(link, key, 201, 'POST', '/v1/topics', { body: model.config });
      this.topics.set(name, model);
      this.pending = undefined;
      bump(this.ctx, 'topic_creates');
      return this.checkEmpty(model);
    }
    const r = rng.next();
    if (r < 0.15) {
      this.pending = { name, after: null };
      log.add(`topic delete ${name}`);
      await expectStatus(link, key, 204, 'DELETE', `/v1/topics/${name}`);
      this.topics.set(name, null);
      this.dropCommits(name);
      this.pending = undefined;
      return void bump(this.ctx, 'topic_deletes');
    }
    if (r < 0.75) return produce(this.ctx, cur, `c${this.n++}`, rng.int(1, 40));
    await commitOffsets(this.ctx, this.commits, (p) => (this.pendingCommit = p), this.group(name), cur, `c${this.n++}`);
  }

  async verify(): Promise<void> {
    const { link, key } = this.ctx;
    const pending = this.pending;
    const pendingCommit = this.pendingCommit;
    this.pending = this.pendingCommit = undefined;
    const groups = (await expectStatus(link, key, 200, 'GET', '/v1/groups?limit=1000')).json().groups as string[];
    for (const [name, want] of this.topics) {
      const got = await request(link, key, 'GET', `/v1/topics/${name}`);
      check(got.status === 200 || got.status === 404, () => `topic ${name}: ${got.status}`);
      let model = want;
      if ((got.status === 200) !== (want !== null)) {
        check(pending?.name === name && (pending.after !== null) === (got.status === 200), () => `topic ${name}: ${got.status === 200 ? 'there, but deleted' : 'gone, but created'} (acknowledged)`);
        model = pending.after;
        this.topics.set(name, model);
        if (model === null) this.dropCommits(name);
        bump(this.ctx, 'topic_changes_unanswered_landed');
        if (model !== null) await this.checkEmpty(model);
      }
      if (model === null) {
        check(!groups.includes(this.group(name)), () => `group ${this.group(name)} is listed, though its only topic ${name} is deleted`);
        const left = (await expectStatus(link, key, 200, 'GET', `/v1/groups/${this.group(name)}/offsets`)).json().offsets as unknown[];
        check(left.length === 0, () => `group ${this.group(name)} keeps offsets of deleted topic ${name}: ${JSON.stringify(left)}`);
        continue;
      }
      await model.verify(this.ctx);
      await verifyGroup(this.ctx, this.commits, pendingCommit, this.group(name), model);
    }
  }
}

// ---------------------------------------------------------------- vectors

export const DIMS = 8;

export function valuesOf(tag: string): number[] {
  const h = hashOf(tag);
  // Multiples of 1/4 are exact in f32, so what comes back compares as sent.
  return Array.from({ length: DIMS }, (_, i) => (((h >>> (i * 3)) & 31) - 15) / 4 + (i === 0 ? 0.25 : 0));
}

type Vectors = Map<string, string>; // id → tag

/** Vector collections: one kept for the whole run, and churned ones created and deleted. */
export class VectorWorker {
  readonly collections = new Map<string, Vectors | null>();
  private pending: { name: string; before: Vectors | null; after: Vectors | null; batch?: string[] } | undefined;
  private n = 0;

  constructor(
    private readonly ctx: Ctx,
    private readonly names: string[],
    private readonly churned: Set<string>,
  ) {
    for (const name of names) this.collections.set(name, null);
  }

  async op(): Promise<void> {
    const { rng, link, key, log } = this.ctx;
    const name = rng.pick(this.names);
    const cur = this.collections.get(name)!;
    if (cur === null) {
      this.pending = { name, before: null, after: new Map() };
      log.add(`collection create ${name}`);
      await expectStatus(link, key, 201, 'POST', '/v1/collections', { body: { name, dims: DIMS, metric: rng.pick(['l2', 'dot']) } });
      this.collections.set(name, new Map());
      this.pending = undefined;
      return void bump(this.ctx, 'collection_creates');
    }
    const r = rng.next();
    if (this.churned.has(name) && r < 0.08) {
      this.pending = { name, before: cur, after: null };
      log.add(`collection delete ${name}`);
      await expectStatus(link, key, 204, 'DELETE', `/v1/collections/${name}`);
      this.collections.set(name, null);
      this.pending = undefined;
      return void bump(this.ctx, 'collection_deletes');
    }
    if (r < 0.75) {
      const ids = [...new Set(Array.from({ length: rng.int(1, 20) }, () => `v${rng.int(0, 59)}`))];
      const tag = `${this.ctx.seed}/vec/${this.names[0]}/${this.n++}`;
      const after = new Map(cur);
      for (const id of ids) after.set(id, `${tag}/${id}`);
      this.pending = { name, before: cur, after, batch: ids };
      log.add(`upsert ${name} ${ids.length} vectors (${tag})`);
      const vectors = ids.map((id) => ({ id, values: valuesOf(`${tag}/${id}`), metadata: { tag: `${tag}/${id}` } }));
      await expectStatus(link, key, 200, 'POST', `/v1/collections/${name}/upsert`, { body: { vectors } });
      this.collections.set(name, after);
      this.pending = undefined;
      return void bump(this.ctx, 'vectors_upserted', ids.length);
    }
    const id = `v${rng.int(0, 59)}`;
    const after = new Map(cur);
    after.delete(id);
    this.pending = { name, before: cur, after };
    log.add(`vector delete ${name}/${id}`);
    await expectStatus(link, key, cur.has(id) ? 204 : 404, 'DELETE', `/v1/collections/${name}/vectors/${id}`);
    this.collections.set(name, after);
    this.pending = undefined;
    bump(this.ctx, 'vector_deletes');
  }

  private async read(name: string): Promise<Vectors | null> {
    const { link, key } = this.ctx;
    const d = await request(link, key, 'GET', `/v1/collections/${name}`);
    if (d.status === 404) return null;
    check(d.status === 200, () => `collection ${name}: ${d.status}`);
    const got: Vectors = new Map();
    for (let cursor: string | null = null; ; ) {
      const page = (await expectStatus(link, key, 200, 'GET', `/v1/collections/${name}/vectors?limit=25&include_values=true&include_metadata=true${cursor === null ? '' : `&cursor=${encodeURIComponent(cursor)}`}`)).json();
      for (const v of page.vectors as { id: string; values: number[]; metadata: { tag: string } }[]) {
        check(JSON.stringify(v.values) === JSON.stringify(valuesOf(v.metadata.tag)), () => `collection ${name} vector ${v.id}: values ${JSON.stringify(v.values)} are not its tag's`);
        got.set(v.id, v.metadata.tag);
      }
      if ((cursor = page.cursor) === null) break;
    }
    const count = d.json().count as number;
    check(count === got.size, () => `collection ${name}: count ${count}, ${got.size} vectors listed`);
    return got;
  }

  async verify(): Promise<void> {
    const pending = this.pending;
    this.pending = undefined;
    const listed = new Set<string>();
    const sent = Date.now();
    for (let cursor: string | null = null; ; ) {
      const page = (await expectStatus(this.ctx.link, this.ctx.key, 200, 'GET', `/v1/collections?limit=3${cursor === null ? '' : `&cursor=${encodeURIComponent(cursor)}`}`)).json();
      for (const c of page.collections as { name: string }[]) listed.add(c.name);
      if ((cursor = page.cursor) === null) break;
    }
    for (const name of this.names) {
      const got = await this.read(name);
      check(listed.has(name) === (got !== null), () => `collection ${name}: listed ${listed.has(name)}, readable ${got !== null}`);
      const same = (a: Vectors | null, b: Vectors | null) => (a === null || b === null ? a === b : a.size === b.size && [...a].every(([id, t]) => b.get(id) === t));
      const show = (v: Vectors | null) => (v === null ? 'absent' : JSON.stringify([...v].sort()));
      const want = this.collections.get(name)!;
      if (same(got, want)) continue;
      check(pending?.name === name && same(got, pending.after), () => `collection ${name}: holds ${show(got)}, expected ${show(want)}${pending?.name === name ? ` or, all of the unanswered write, ${show(pending.after)}` : ''}`);
      this.collections.set(name, got);
      bump(this.ctx, 'vector_writes_unanswered_landed');
    }
  }
}

// ---------------------------------------------------------------- tenants

/** Creates tenants through the admin route and writes one key with each new tenant's API key. */
export class TenantWorker {
  readonly tenants: { apiKey: string; tag: string | null; pendingTag?: string | undefined }[] = [];
  private n = 0;
  constructor(
    private readonly ctx: Ctx,
    private readonly adminKey: string,
  ) {}

  async op(): Promise<void> {
    const { link, log } = this.ctx;
    const n = this.n++;
    log.add(`tenant create t${n}`);
    const made = (await expectStatus(link, this.adminKey, 201, 'POST', '/v1/admin/tenants', { body: { email: `s${this.ctx.seed}-t${n}@torture.test` } })).json();
    const tenant: (typeof this.tenants)[number] = { apiKey: made.api_key as string, tag: null, pendingTag: `${this.ctx.seed}/tenant/${n}` };
    this.tenants.push(tenant);
    bump(this.ctx, 'tenants_created');
    await expectStatus(link, tenant.apiKey, 200, 'PUT', '/v1/kv/probe', { body: bytesOf(tenant.pendingTag!, 64) });
    tenant.tag = tenant.pendingTag!;
    delete tenant.pendingTag;
  }

  async verify(): Promise<void> {
    for (const t of this.tenants) {
      const got = await request(this.ctx.link, t.apiKey, 'GET', '/v1/kv/probe');
      check(got.status !== 401, () => `an acknowledged tenant's key is refused after the restart`);
      const is = (tag: string | null) => (tag === null ? got.status === 404 : got.status === 200 && Buffer.compare(got.body, bytesOf(tag, 64)) === 0);
      if (is(t.tag)) continue;
      check(t.pendingTag !== undefined && is(t.pendingTag), () => `tenant probe: ${got.status} ${got.body.length}B, expected ${t.tag ?? 'absent'}`);
      t.tag = t.pendingTag!;
      delete t.pendingTag;
    }
  }
}
