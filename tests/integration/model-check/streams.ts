/**
 * Streams against a model. Each client owns a few topics (created, deleted and created again
 * under the same names) and consumer groups, so its model is exact; the shared topics take produce
 * requests from every client at once, each record tagged with its request in a header, and must
 * end up holding exactly the acknowledged records, in the order each request gave them.
 */
import { partitionForKey } from '../../../src/engine/streams/murmur2.js';
import { Api, check, isUtf8, ModelClient, OpLog, Rng, sameBytes, show, utf8, Violation } from './harness.js';

interface Rec {
  key: Uint8Array | null;
  value: Uint8Array | null;
  headers: { key: string; value: Uint8Array | null }[];
}

/** A record as sent: its wire JSON, what it must read back as, and its partition when known in advance. */
interface Sent {
  wire: Record<string, unknown>;
  rec: Rec;
  /** Explicit, or by key; undefined for keyless records (one sticky partition per request). */
  partition: number | undefined;
}

interface Topic {
  partitions: number;
  logs: Rec[][];
}

const TAG = 'mc-id';

function wireOf(bytes: Uint8Array, base64: boolean): string {
  return base64 ? Buffer.from(bytes).toString('base64') : Buffer.from(bytes).toString('utf8');
}

/** A random record for a topic of `partitions`, with `tag` as one header if given. */
function makeRecord(rng: Rng, partitions: number, tag?: string): Sent {
  const base64 = rng.chance(0.4);
  const field = (maxBytes: number): Uint8Array => (base64 ? rng.bytes(rng.int(0, maxBytes)) : utf8.encode(rng.text(maxBytes)));
  const wire: Record<string, unknown> = {};
  if (base64) wire.encoding = 'base64';
  else if (rng.chance(0.3)) wire.encoding = 'utf8';
  let key: Uint8Array | null = null;
  const k = rng.int(0, 9);
  if (k === 0) wire.key = null;
  else if (k >= 4) {
    key = field(16);
    wire.key = wireOf(key, base64);
  }
  let value: Uint8Array | null = null;
  if (rng.chance(0.07)) wire.value = null;
  else {
    value = rng.chance(0.03) ? field(60_000) : field(300);
    wire.value = wireOf(value, base64);
  }
  const headers: Rec['headers'] = [];
  const count = rng.chance(0.5) ? 0 : rng.int(1, 3);
  for (let i = 0; i < count; i++) {
    const v = rng.chance(0.2) ? null : field(20);
    headers.push({ key: rng.text(8), value: v });
  }
  if (tag !== undefined) headers.splice(rng.int(0, headers.length), 0, { key: TAG, value: utf8.encode(tag) });
  if (headers.length > 0 || rng.chance(0.2)) wire.headers = headers.map((h) => ({ key: h.key, value: h.value === null ? null : wireOf(h.value, base64) }));
  let partition: number | undefined;
  if (rng.chance(0.15)) {
    partition = rng.int(0, partitions - 1);
    wire.partition = partition;
  } else if (key !== null) partition = partitionForKey(key, partitions);
  return { wire, rec: { key, value, headers }, partition };
}

function decode(j: any, where: string): Rec {
  const fields: (string | null)[] = [j.key, j.value, ...j.headers.map((h: any) => h.value)];
  check(j.encoding === 'utf8' || j.encoding === 'base64', () => `${where}: encoding ${j.encoding}`);
  const bytes = (s: string | null): Uint8Array | null => (s === null ? null : j.encoding === 'base64' ? new Uint8Array(Buffer.from(s, 'base64')) : utf8.encode(s));
  const rec: Rec = { key: bytes(j.key), value: bytes(j.value), headers: j.headers.map((h: any) => ({ key: h.key, value: bytes(h.value) })) };
  const allUtf8 = [rec.key, rec.value, ...rec.headers.map((h) => h.value)].every((b) => b === null || isUtf8(b));
  check((j.encoding === 'utf8') === allUtf8, () => `${where}: encoding ${j.encoding} for fields ${JSON.stringify(fields).slice(0, 200)}`);
  return rec;
}

function sameRec(a: Rec, b: Rec): boolean {
  return sameBytes(a.key, b.key) && sameBytes(a.value, b.value) && a.headers.length === b.headers.length && a.headers.every((h, i) => h.key === b.headers[i]!.key && sameBytes(h.value, b.headers[i]!.value));
}

function showRec(r: Rec): string {
  return `{key ${show(r.key)}, value ${show(r.value)}, headers ${r.headers.map((h) => `${JSON.stringify(h.key)}=${show(h.value)}`).join(' ')}}`;
}

function recBytes(r: Rec): number {
  return (r.key?.length ?? 0) + (r.value?.length ?? 0) + r.headers.reduce((n, h) => n + utf8.encode(h.key).length + (h.value?.length ?? 0), 0);
}

interface Page {
  records: { offset: number; rec: Rec }[];
  next: number;
  hwm: number;
  lso: number;
}

async function consume(api: Api, topic: string, p: number, offset: number, maxRecords: number, maxBytes?: number, waitMs?: number): Promise<Page> {
  const q = new URLSearchParams({ offset: String(offset), max_records: String(maxRecords) });
  if (maxBytes !== undefined) q.set('max_bytes', String(maxBytes));
  if (waitMs !== undefined) q.set('max_wait_ms', String(waitMs));
  const where = `consume ${topic}/${p}@${offset}`;
  const j = (await api.expect(200, 'GET', `/v1/topics/${topic}/partitions/${p}/records?${q}`)).json;
  const records = (j.records as any[]).map((r, i) => {
    check(r.offset === offset + i, () => `${where}: record ${i} has offset ${r.offset}`);
    check(Number.isInteger(r.timestamp) && Math.abs(r.timestamp - Date.now()) < 86_400_000, () => `${where}: timestamp ${r.timestamp}`);
    return { offset: r.offset as number, rec: decode(r, `${where} #${r.offset}`) };
  });
  check(j.next_offset === offset + records.length, () => `${where}: next_offset ${j.next_offset} after ${records.length} records`);
  check(records.length <= maxRecords, () => `${where}: ${records.length} records over max_records ${maxRecords}`);
  check(offset >= j.log_start_offset && j.next_offset <= j.high_watermark, () => `${where}: next ${j.next_offset} hwm ${j.high_watermark} lso ${j.log_start_offset}`);
  check(records.length > 0 || offset === j.high_watermark, () => `${where}: nothing returned below the high watermark ${j.high_watermark}`);
  return { records, next: j.next_offset, hwm: j.high_watermark, lso: j.log_start_offset };
}

/** Every record of a partition from `from` to its high watermark. */
async function readAll(api: Api, rng: Rng, topic: string, p: number, from = 0): Promise<{ records: Rec[]; hwm: number }> {
  const out: Rec[] = [];
  let offset = from;
  for (;;) {
    const page = await consume(api, topic, p, offset, rng.chance(0.5) ? rng.int(1, 20) : 500);
    check(page.lso === 0, () => `${topic}/${p}: log start ${page.lso} (nothing was deleted)`);
    for (const r of page.records) out.push(r.rec);
    offset = page.next;
    if (offset === page.hwm) return { records: out, hwm: page.hwm };
  }
}

/** Checks a produce answer's offsets: placement by partition/key, keyless in one partition, in order per partition. */
function checkOffsets(sent: Sent[], offsets: any[], where: string): void {
  check(Array.isArray(offsets) && offsets.length === sent.length, () => `${where}: ${offsets?.length} offsets for ${sent.length} records`);
  let sticky: number | undefined;
  const last = new Map<number, number>();
  sent.forEach((s, i) => {
    const { partition, offset } = offsets[i];
    if (s.partition !== undefined) check(partition === s.partition, () => `${where}: record ${i} went to partition ${partition}, not ${s.partition}`);
    else {
      sticky ??= partition;
      check(partition === sticky, () => `${where}: keyless records went to partitions ${sticky} and ${partition}`);
    }
    const prev = last.get(partition);
    check(prev === undefined || offset === prev + 1, () => `${where}: record ${i} at ${partition}/${offset} does not follow ${prev}`);
    last.set(partition, offset);
  });
}

const TOPIC_SETTINGS: Record<string, number>[] = [{}, { segment_bytes: 1024 }, { segment_bytes: 4096, segment_ms: 30 }, { segment_ms: 5 }, { segment_bytes: 65536 }];

export class StreamClient extends ModelClient {
  readonly names: string[];
  readonly topics = new Map<string, Topic>();
  /** group → "topic/partition" → committed offset. */
  readonly groups = new Map<string, Map<string, number>>();
  readonly groupNames: string[];

  constructor(id: number, rng: Rng, api: Api, other: Api, log: OpLog) {
    super(id, rng, api, other, log);
    this.names = [`own${id}-a`, `own${id}-b.x`];
    this.groupNames = [`g${id}`, `\uFEFFg${id}/é 🎉`];
  }

  async op(): Promise<void> {
    const n = this.rng.int(0, 99);
    const name = this.rng.pick(this.names);
    const topic = this.topics.get(name);
    if (topic === undefined || n < 4) return this.create(name);
    if (n < 8) return this.remove(name);
    if (n < 45) return this.produce(name, topic);
    if (n < 75) return this.consume(name, topic);
    if (n < 85) return this.commit(name, topic);
    if (n < 95) return this.fetchOffsets(name);
    return this.foreign(name);
  }

  private async create(name: string): Promise<void> {
    const exists = this.topics.has(name);
    const partitions = this.rng.int(1, 4);
    const settings = this.rng.pick(TOPIC_SETTINGS);
    this.log.add(`c${this.id} topic create ${name} partitions=${partitions} ${JSON.stringify(settings)} (exists: ${exists})`);
    this.inflight = async () => {
      const a = await this.api.expect([200, 404], 'GET', `/v1/topics/${name}`);
      if (a.status === 404) check(!exists, () => `after a crash, ${name} is gone; an unanswered create must leave it`);
      else if (!exists) {
        check(a.json.partitions === partitions, () => `after a crash, created ${name} has ${a.json.partitions} partitions`);
        this.topics.set(name, { partitions, logs: Array.from({ length: partitions }, () => []) });
      }
    };
    const a = await this.api.expect(exists ? 409 : 201, 'POST', '/v1/topics', { body: { name, partitions, retention_ms: -1, ...settings } }, exists ? 'already_exists' : undefined);
    this.inflight = undefined;
    if (exists) return;
    check(a.json.name === name && a.json.partitions === partitions, () => `create ${name}: ${JSON.stringify(a.json)}`);
    this.topics.set(name, { partitions, logs: Array.from({ length: partitions }, () => []) });
  }

  private dropGroupsOf(name: string): void {
    for (const offsets of this.groups.values()) for (const k of [...offsets.keys()]) if (k.startsWith(`${name}/`)) offsets.delete(k);
  }

  private async remove(name: string): Promise<void> {
    const exists = this.topics.has(name);
    this.log.add(`c${this.id} topic delete ${name} (exists: ${exists})`);
    this.inflight = async () => {
      const a = await this.api.expect([200, 404], 'GET', `/v1/topics/${name}`);
      if (a.status === 404) {
        this.topics.delete(name);
        this.dropGroupsOf(name);
      }
    };
    await this.api.expect(exists ? 204 : 404, 'DELETE', `/v1/topics/${name}`, {}, exists ? undefined : 'not_found');
    this.inflight = undefined;
    this.topics.delete(name);
    this.dropGroupsOf(name);
  }

  private async produce(name: string, topic: Topic): Promise<void> {
    const r = this.rng;
    const count = r.chance(0.05) ? r.int(100, 400) : r.int(1, 12);
    const sent = Array.from({ length: count }, () => makeRecord(r, topic.partitions));
    const badPartition = r.chance(0.04);
    if (badPartition) sent[r.int(0, count - 1)]!.wire.partition = topic.partitions;
    this.log.add(`c${this.id} produce ${name} ${count} records${badPartition ? ' (one to a partition out of range)' : ''}: ${sent.slice(0, 3).map((s) => showRec(s.rec)).join(' ')}`);
    this.inflight = () => this.recoverProduce(name, topic, badPartition ? [] : sent);
    const a = await this.api.expect(badPartition ? 404 : 200, 'POST', `/v1/topics/${name}/records`, { body: { records: sent.map((s) => s.wire) } }, badPartition ? 'not_found' : undefined);
    this.inflight = undefined;
    if (badPartition) return;
    const offsets = a.json.offsets as { partition: number; offset: number }[];
    checkOffsets(sent, offsets, `produce ${name}`);
    sent.forEach((s, i) => {
      const { partition, offset } = offsets[i]!;
      const log = topic.logs[partition]!;
      check(offset === log.length, () => `produce ${name}: record ${i} at ${partition}/${offset}, the model's next offset there is ${log.length}`);
      log.push(s.rec);
    });
  }

  /** After a crash: each partition holds none or all of the request's records for it, after the acknowledged ones. */
  private async recoverProduce(name: string, topic: Topic, sent: Sent[]): Promise<void> {
    if (!this.topics.has(name)) return;
    let keylessAt: number | undefined;
    const hasKeyless = sent.some((s) => s.partition === undefined);
    for (let p = 0; p < topic.partitions; p++) {
      const log = topic.logs[p]!;
      const { records: tail } = await readAll(this.api, this.rng, name, p, log.length);
      if (tail.length === 0) continue;
      const matches = (want: Sent[]): boolean => want.length === tail.length && want.every((s, i) => sameRec(s.rec, tail[i]!));
      if (!matches(sent.filter((s) => s.partition === p))) {
        check(hasKeyless && keylessAt === undefined && matches(sent.filter((s) => s.partition === p || s.partition === undefined)), () => `after a crash, ${name}/${p} has ${tail.length} unacknowledged records that are not the whole of the unanswered request's part there: ${tail.slice(0, 3).map(showRec).join(' ')}`);
        keylessAt = p;
      }
      log.push(...tail);
    }
  }

  private async consume(name: string, topic: Topic): Promise<void> {
    const r = this.rng;
    const p = r.int(0, topic.partitions - 1);
    const log = topic.logs[p]!;
    const pick = r.int(0, 9);
    if (pick === 0) {
      const offset = log.length + r.int(1, 5);
      this.log.add(`c${this.id} consume ${name}/${p}@${offset} (out of range)`);
      await this.api.expect(400, 'GET', `/v1/topics/${name}/partitions/${p}/records?offset=${offset}`, {}, 'offset_out_of_range');
      return;
    }
    if (pick === 1) {
      this.log.add(`c${this.id} consume ${name}/${topic.partitions} (no such partition)`);
      await this.api.expect(404, 'GET', `/v1/topics/${name}/partitions/${topic.partitions}/records`, {}, 'not_found');
      return;
    }
    const offset = pick === 2 ? log.length : r.int(0, log.length);
    const maxRecords = r.chance(0.7) ? r.int(1, 30) : r.int(1, 2000);
    const maxBytes = r.chance(0.3) ? r.int(1, 5000) : undefined;
    const wait = offset === log.length && r.chance(0.5) ? r.int(1, 150) : undefined;
    this.log.add(`c${this.id} consume ${name}/${p}@${offset} max_records=${maxRecords} max_bytes=${maxBytes} wait=${wait} (model hwm ${log.length})`);
    const page = await consume(this.api, name, p, offset, maxRecords, maxBytes, wait);
    check(page.hwm === log.length && page.lso === 0, () => `consume ${name}/${p}: hwm ${page.hwm} lso ${page.lso}, model hwm ${log.length}`);
    page.records.forEach(({ offset: o, rec }) => check(sameRec(rec, log[o]!), () => `consume ${name}/${p}@${o}: ${showRec(rec)}, want ${showRec(log[o]!)}`));
    const available = log.slice(offset, offset + maxRecords);
    const bytes = available.reduce((n, x) => n + recBytes(x), 0);
    // max_bytes is approximate (per-record overhead counts too): the whole page is due only well under it.
    if (bytes + available.length * 64 < (maxBytes ?? 1 << 20) / 2) {
      check(page.records.length === available.length, () => `consume ${name}/${p}@${offset}: ${page.records.length} records, ${available.length} were due`);
    }
  }

  private async commit(name: string, topic: Topic): Promise<void> {
    const r = this.rng;
    const group = r.pick(this.groupNames);
    const p = r.int(0, topic.partitions - 1);
    const hwm = topic.logs[p]!.length;
    const bad = r.chance(0.1);
    const offset = bad ? hwm + r.int(1, 3) : r.int(0, hwm);
    const key = `${name}/${p}`;
    const before = this.groups.get(group)?.get(key);
    this.log.add(`c${this.id} commit ${group} ${key} offset=${offset} (hwm ${hwm}, was ${before})`);
    const set = (v: number | undefined): void => {
      const offsets = this.groups.get(group) ?? new Map<string, number>();
      this.groups.set(group, offsets);
      if (v === undefined) offsets.delete(key);
      else offsets.set(key, v);
    };
    this.inflight = async () => {
      const now = await this.committed(group, name, p);
      check((now ?? undefined) === before || (!bad && now === offset), () => `after a crash, ${group} ${key} is at ${now}: neither ${before} nor the unanswered ${offset}`);
      set(now ?? undefined);
    };
    await this.api.expect(bad ? 400 : 204, 'POST', `/v1/groups/${encodeURIComponent(group)}/offsets`, { body: { topic: name, partition: p, offset, ...(r.chance(0.3) ? { metadata: r.text(30) } : {}) } }, bad ? 'offset_out_of_range' : undefined);
    this.inflight = undefined;
    if (!bad) set(offset);
  }

  private async committed(group: string, name: string, p: number): Promise<number | null> {
    const j = (await this.api.expect(200, 'GET', `/v1/groups/${encodeURIComponent(group)}/offsets?topic=${name}`)).json;
    const e = (j.offsets as any[]).find((o) => o.partition === p);
    check(e !== undefined, () => `group ${group} offsets for ${name} have no partition ${p}`);
    return e.offset;
  }

  private async fetchOffsets(name: string): Promise<void> {
    const group = this.rng.pick(this.groupNames);
    this.log.add(`c${this.id} group offsets ${group} ${name}`);
    await this.checkGroup(group, name);
  }

  private async checkGroup(group: string, name: string): Promise<void> {
    const topic = this.topics.get(name)!;
    const j = (await this.api.expect(200, 'GET', `/v1/groups/${encodeURIComponent(group)}/offsets?topic=${name}`)).json;
    check(j.group === group && j.offsets.length === topic.partitions, () => `group ${group} offsets for ${name}: ${JSON.stringify(j)}`);
    for (const e of j.offsets as any[]) {
      const want = this.groups.get(group)?.get(`${name}/${e.partition}`) ?? null;
      const hwm = topic.logs[e.partition]!.length;
      check(e.topic === name && e.offset === want && e.high_watermark === hwm && e.lag === (want === null ? null : Math.max(0, hwm - want)), () => `group ${group} ${name}/${e.partition}: ${JSON.stringify(e)}, want offset ${want} hwm ${hwm}`);
    }
  }

  private async foreign(name: string): Promise<void> {
    this.log.add(`c${this.id} other tenant reads topic ${name}`);
    await this.other.expect(404, 'GET', `/v1/topics/${name}`, {}, 'not_found');
    await this.other.expect(404, 'GET', `/v1/topics/${name}/partitions/0/records`, {}, 'not_found');
    await this.other.expect(404, 'POST', `/v1/topics/${name}/records`, { body: { records: [{ value: 'x' }] } }, 'not_found');
    await this.other.expect(404, 'GET', `/v1/groups/${encodeURIComponent(this.groupNames[0]!)}/offsets?topic=${name}`, {}, 'not_found');
  }

  async verify(): Promise<void> {
    for (const name of this.names) {
      const topic = this.topics.get(name);
      this.log.add(`c${this.id} streams verify ${name}`);
      if (topic === undefined) {
        await this.api.expect(404, 'GET', `/v1/topics/${name}`, {}, 'not_found');
        continue;
      }
      const d = (await this.api.expect(200, 'GET', `/v1/topics/${name}`)).json;
      check(d.partitions === topic.partitions && d.partition_info.length === topic.partitions, () => `describe ${name}: ${JSON.stringify(d)}`);
      for (let p = 0; p < topic.partitions; p++) {
        const info = d.partition_info[p];
        check(info.partition === p && info.high_watermark === topic.logs[p]!.length && info.log_start_offset === 0, () => `describe ${name}/${p}: ${JSON.stringify(info)}, model hwm ${topic.logs[p]!.length}`);
        const { records, hwm } = await readAll(this.api, this.rng, name, p);
        check(hwm === topic.logs[p]!.length, () => `${name}/${p}: hwm ${hwm}, model ${topic.logs[p]!.length}`);
        records.forEach((rec, o) => check(sameRec(rec, topic.logs[p]![o]!), () => `${name}/${p}@${o}: ${showRec(rec)}, want ${showRec(topic.logs[p]![o]!)}`));
      }
      for (const group of this.groupNames) await this.checkGroup(group, name);
    }
  }
}

interface Pending {
  topic: string;
  sent: Sent[];
  /** Where each record was found after the crash (offset per record index), filled in by verify. */
  found: Map<number, { partition: number; offset: number }>;
}

/** Topics every client produces to at once. */
export class SharedTopics {
  readonly topics: { name: string; partitions: number; acked: Map<number, Rec>[] }[] = [
    { name: 'shared-0', partitions: 3, acked: [] },
    { name: 'shared-1', partitions: 2, acked: [] },
  ];
  /** Requests whose answer was lost: tag → request and index. */
  private readonly unknown = new Map<string, { pending: Pending; index: number }>();
  private seq = 0;
  /** What happened to each request, for the failure report: tag → events. */
  private readonly history = new Map<string, string[]>();

  private note(req: string, event: string): void {
    const h = this.history.get(req) ?? [];
    h.push(event);
    this.history.set(req, h);
  }

  /** The history of the requests behind two records that disagree. */
  private story(...recs: (Rec | undefined)[]): string {
    return recs
      .map((r) => r?.headers.find((h) => h.key === TAG)?.value)
      .filter((v): v is Uint8Array => v !== undefined && v !== null)
      .map((v) => {
        const req = Buffer.from(v).toString().split('.').slice(0, 2).join('.');
        return `\n  request ${req}: ${(this.history.get(req) ?? ['no history']).join('; ')}`;
      })
      .join('');
  }
  /** Per client, topic and partition: the last offset its requests got (they only grow). */
  private readonly lastOffset = new Map<string, number>();

  constructor() {
    for (const t of this.topics) t.acked = Array.from({ length: t.partitions }, () => new Map());
  }

  async setup(api: Api): Promise<void> {
    for (const t of this.topics) await api.expect(201, 'POST', '/v1/topics', { body: { name: t.name, partitions: t.partitions, retention_ms: -1, segment_bytes: 4096 } });
  }

  async op(api: Api, rng: Rng, log: OpLog, client: number): Promise<void> {
    const t = rng.pick(this.topics);
    if (rng.chance(0.6)) {
      const req = `${client}.${this.seq++}`;
      const sent = Array.from({ length: rng.int(1, 8) }, (_, i) => makeRecord(rng, t.partitions, `${req}.${i}`));
      const pending: Pending = { topic: t.name, sent, found: new Map() };
      sent.forEach((_, i) => this.unknown.set(`${req}.${i}`, { pending, index: i }));
      log.add(`c${client} shared produce ${t.name} request ${req}: ${sent.length} records`);
      this.note(req, `op #${log.count} sent to ${t.name}`);
      let a;
      try {
        a = await api.expect(200, 'POST', `/v1/topics/${t.name}/records`, { body: { records: sent.map((s) => s.wire) } });
      } catch (err) {
        this.note(req, `op #${log.count}: unanswered (${String(err).slice(0, 80)})`);
        throw err;
      }
      sent.forEach((_, i) => this.unknown.delete(`${req}.${i}`));
      const offsets = a.json.offsets as { partition: number; offset: number }[];
      this.note(req, `op #${log.count}: acknowledged at ${JSON.stringify(offsets)}`);
      checkOffsets(sent, offsets, `shared produce ${t.name}`);
      sent.forEach((s, i) => {
        const { partition, offset } = offsets[i]!;
        const acked = t.acked[partition]!;
        check(!acked.has(offset), () => `shared produce ${t.name}: ${partition}/${offset} was already acknowledged to another request${this.story(acked.get(offset), s.rec)}`);
        acked.set(offset, s.rec);
        const mark = `${client}/${t.name}/${partition}`;
        check(offset > (this.lastOffset.get(mark) ?? -1), () => `shared produce ${t.name}: ${partition}/${offset} is not after this client's previous offset there`);
        this.lastOffset.set(mark, offset);
      });
      return;
    }
    const p = rng.int(0, t.partitions - 1);
    const acked = t.acked[p]!;
    const known = acked.size;
    const offset = rng.int(0, known);
    // At the end of what is known, sometimes a long-poll: another client's produce may wake it.
    const wait = offset === known && rng.chance(0.5) ? rng.int(1, 300) : undefined;
    log.add(`c${client} shared consume ${t.name}/${p}@${offset} wait=${wait}`);
    const page = await consume(api, t.name, p, offset, rng.int(1, 50), undefined, wait);
    check(page.hwm >= known, () => `shared consume ${t.name}/${p}: hwm ${page.hwm} below ${known} acknowledged records; acknowledged past it: ${[...acked.keys()].filter((o) => o >= page.hwm).sort((x, y) => x - y).join(',')}${this.story(...[...acked].filter(([o]) => o >= page.hwm).map(([, r]) => r))}`);
    for (const { offset: o, rec } of page.records) {
      const want = acked.get(o);
      if (want !== undefined) check(sameRec(rec, want), () => `shared consume ${t.name}/${p}@${o}: ${showRec(rec)}, want ${showRec(want)}${this.story(rec, want)}`);
    }
  }

  /** Every partition holds exactly the acknowledged records, plus whole parts of unanswered requests. */
  async verify(api: Api, rng: Rng, log: OpLog): Promise<void> {
    const seen = new Set<Pending>();
    for (const t of this.topics) {
      for (let p = 0; p < t.partitions; p++) {
        log.add(`shared verify ${t.name}/${p}: ${t.acked[p]!.size} acknowledged, ${this.unknown.size} unanswered`);
        const { records } = await readAll(api, rng, t.name, p);
        records.forEach((rec, o) => {
          const want = t.acked[p]!.get(o);
          if (want !== undefined) {
            check(sameRec(rec, want), () => `${t.name}/${p}@${o}: ${showRec(rec)}, want ${showRec(want)}${this.story(rec, want)}`);
            return;
          }
          const tag = rec.headers.find((h) => h.key === TAG);
          const u = tag?.value ? this.unknown.get(Buffer.from(tag.value).toString()) : undefined;
          if (u === undefined || u.pending.topic !== t.name) throw new Violation(`${t.name}/${p}@${o}: ${showRec(rec)} was never acknowledged and belongs to no unanswered request${this.story(rec)}`);
          check(sameRec(rec, u.pending.sent[u.index]!.rec) && !u.pending.found.has(u.index), () => `${t.name}/${p}@${o}: unanswered record ${u.index} differs or appears twice`);
          u.pending.found.set(u.index, { partition: p, offset: o });
          this.note(Buffer.from(tag!.value!).toString().split('.').slice(0, 2).join('.'), `found at ${t.name}/${p}/${o} after a restart`);
          seen.add(u.pending);
        });
        for (const o of t.acked[p]!.keys()) check(o < records.length, () => `${t.name}/${p}: acknowledged offset ${o} is past the end (${records.length})`);
        for (const pending of seen) {
          if (pending.topic !== t.name) continue;
          for (const [i, f] of pending.found) if (f.partition === p) t.acked[p]!.set(f.offset, pending.sent[i]!.rec);
        }
      }
    }
    // Per partition, an unanswered request is there whole (in order, back to back) or not at all.
    for (const pending of seen) {
      const parts = new Map<number, number[]>();
      for (const [i, f] of pending.found) parts.set(f.partition, [...(parts.get(f.partition) ?? []), i]);
      const keylessAt = [...pending.found].find(([i]) => pending.sent[i]!.partition === undefined)?.[1].partition;
      for (const [p, indexes] of parts) {
        const due = pending.sent.map((s, i) => ({ s, i })).filter(({ s }) => (s.partition ?? keylessAt) === p).map(({ i }) => i);
        const offsets = due.map((i) => pending.found.get(i)?.offset);
        check(indexes.length === due.length && offsets.every((o, k) => o !== undefined && (k === 0 || o === offsets[k - 1]! + 1)), () => `an unanswered request is in partition ${p} in part or out of order: records ${JSON.stringify(due)} at ${JSON.stringify(offsets)}`);
      }
    }
    this.unknown.clear();
  }
}
