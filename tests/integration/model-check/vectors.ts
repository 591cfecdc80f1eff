/**
 * Vector collections against a brute-force model. Each client owns small collections (exact
 * search territory), so every query's matches can be checked against a scan of the model: each
 * match passes the filter with its true score, in order, and nothing left out scores better.
 */
import { Api, check, ModelClient, OpLog, Rng, showKey, Violation } from './harness.js';

type Metric = 'cosine' | 'l2' | 'dot';
interface Vec {
  values: number[];
  metadata: Record<string, unknown>;
}
interface Collection {
  dims: number;
  metric: Metric;
  recs: Map<string, Vec>;
}

const IDS = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'id with space', 'é', '中文', '🎉', 'slash/id', '%25', '?q=1', '\uFEFFbom', 'x'.repeat(512)];
const GROUPS = ['red', 'green', 'blue'];

function score(metric: Metric, a: number[], b: number[]): number {
  let dot = 0;
  let na = 0;
  let nb = 0;
  let l2 = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i]! * b[i]!;
    na += a[i]! * a[i]!;
    nb += b[i]! * b[i]!;
    l2 += (a[i]! - b[i]!) ** 2;
  }
  if (metric === 'dot') return dot;
  if (metric === 'l2') return Math.sqrt(l2);
  return dot / Math.sqrt(na * nb);
}

function field(meta: Record<string, unknown>, path: string): unknown {
  let v: unknown = meta;
  for (const part of path.split('.')) {
    if (v === null || typeof v !== 'object' || Array.isArray(v) || !Object.hasOwn(v, part)) return undefined;
    v = (v as Record<string, unknown>)[part];
  }
  return v;
}

function eq(v: unknown, x: unknown): boolean {
  return Array.isArray(v) ? v.some((e) => e === x) : v === x;
}

/** The documented filter semantics (docs/vectors.md), for the forms the generator makes. */
function matches(meta: Record<string, unknown>, filter: Record<string, any>): boolean {
  return Object.entries(filter).every(([k, cond]) => {
    if (k === '$and') return (cond as any[]).every((f) => matches(meta, f));
    if (k === '$or') return (cond as any[]).some((f) => matches(meta, f));
    const v = field(meta, k);
    if (cond === null || typeof cond !== 'object') return eq(v, cond);
    return Object.entries(cond).every(([op, x]) => {
      switch (op) {
        case '$eq':
          return eq(v, x);
        case '$ne':
          return !eq(v, x);
        case '$in':
          return (x as unknown[]).some((e) => eq(v, e));
        case '$nin':
          return !(x as unknown[]).some((e) => eq(v, e));
        case '$gt':
          return typeof v === 'number' && v > (x as number);
        case '$gte':
          return typeof v === 'number' && v >= (x as number);
        case '$lt':
          return typeof v === 'number' && v < (x as number);
        case '$lte':
          return typeof v === 'number' && v <= (x as number);
        case '$exists':
          return (v !== undefined) === x;
        default:
          throw new Error(`model has no operator ${op}`);
      }
    });
  });
}

function makeFilter(rng: Rng, depth = 0): Record<string, unknown> {
  switch (rng.int(0, depth > 1 ? 6 : 8)) {
    case 0:
      return { g: rng.pick(GROUPS) };
    case 1:
      return { g: { $in: [rng.pick(GROUPS), rng.pick(GROUPS)] } };
    case 2:
      return { g: { $ne: rng.pick(GROUPS) } };
    case 3:
      return { n: { [rng.pick(['$gt', '$gte', '$lt', '$lte'])]: rng.int(0, 10) } };
    case 4:
      return { tags: rng.pick(['t1', 't2', 't3']) };
    case 5:
      return { 'nested.level': { $exists: rng.chance(0.5) } };
    case 6:
      return { g: rng.pick(GROUPS), n: { $nin: [1, 2, 3] } };
    case 7:
      return { $or: [makeFilter(rng, depth + 1), makeFilter(rng, depth + 1)] };
    default:
      return { $and: [makeFilter(rng, depth + 1), makeFilter(rng, depth + 1)] };
  }
}

export class VectorClient extends ModelClient {
  readonly names: string[];
  readonly model = new Map<string, Collection>();

  constructor(id: number, rng: Rng, api: Api, other: Api, log: OpLog) {
    super(id, rng, api, other, log);
    this.names = [`vec${id}-a`, `vec${id}.b`];
  }

  private values(dims: number): number[] {
    for (;;) {
      const v = Array.from({ length: dims }, () => Math.fround(this.rng.next() * 2 - 1));
      if (v.some((x) => x !== 0)) return v;
    }
  }

  private metadata(): Record<string, unknown> {
    const r = this.rng;
    const m: Record<string, unknown> = {};
    if (r.chance(0.8)) m.g = r.pick(GROUPS);
    if (r.chance(0.8)) m.n = r.chance(0.2) ? String(r.int(0, 10)) : r.int(0, 10);
    if (r.chance(0.4)) m.tags = ['t1', 't2', 't3'].filter(() => r.chance(0.5));
    if (r.chance(0.3)) m.nested = r.chance(0.7) ? { level: r.chance(0.2) ? null : r.int(0, 3) } : {};
    if (r.chance(0.1)) m.text = r.text(40);
    return m;
  }

  async op(): Promise<void> {
    const r = this.rng;
    const name = r.pick(this.names);
    const c = this.model.get(name);
    const n = r.int(0, 99);
    if (c === undefined || n < 3) return this.create(name);
    if (n < 6) return this.drop(name);
    if (n < 40) return this.upsert(name, c);
    if (n < 50) return this.removeVector(name, c);
    if (n < 62) return this.getVector(name, c);
    if (n < 95) return this.query(name, c);
    return this.foreign(name);
  }

  private async create(name: string): Promise<void> {
    const exists = this.model.has(name);
    const dims = this.rng.int(1, 6);
    const metric = this.rng.pick(['cosine', 'l2', 'dot'] as const);
    this.log.add(`c${this.id} collection create ${name} dims=${dims} ${metric} (exists: ${exists})`);
    this.inflight = async () => {
      const a = await this.api.expect([200, 404], 'GET', `/v1/collections/${name}`);
      if (a.status === 404) check(!exists, () => `after a crash, ${name} is gone; an unanswered create must leave it`);
      else if (!exists) {
        check(a.json.dims === dims && a.json.metric === metric && a.json.count === 0, () => `after a crash, created ${name} is ${JSON.stringify(a.json)}`);
        this.model.set(name, { dims, metric, recs: new Map() });
      }
    };
    await this.api.expect(exists ? 409 : 201, 'POST', '/v1/collections', { body: { name, dims, metric } }, exists ? 'already_exists' : undefined);
    this.inflight = undefined;
    if (!exists) this.model.set(name, { dims, metric, recs: new Map() });
  }

  private async drop(name: string): Promise<void> {
    this.log.add(`c${this.id} collection delete ${name}`);
    this.inflight = async () => {
      const a = await this.api.expect([200, 404], 'GET', `/v1/collections/${name}`);
      if (a.status === 404) this.model.delete(name);
    };
    await this.api.expect(204, 'DELETE', `/v1/collections/${name}`);
    this.inflight = undefined;
    this.model.delete(name);
  }

  private async upsert(name: string, c: Collection): Promise<void> {
    const r = this.rng;
    const batch = Array.from({ length: r.int(1, 6) }, () => ({ id: r.pick(IDS), values: this.values(c.dims), metadata: this.metadata() }));
    const bad = r.chance(0.05);
    if (bad) batch[r.int(0, batch.length - 1)]!.values.push(0.5);
    this.log.add(`c${this.id} upsert ${name} ${batch.map((b) => JSON.stringify(b.id).slice(0, 12)).join(',')}${bad ? ' (one with a wrong dimension)' : ''}`);
    const before = new Map(c.recs);
    const after = new Map(c.recs);
    for (const b of batch) after.set(b.id, { values: b.values, metadata: b.metadata });
    this.inflight = async () => {
      const now = await this.contents(name);
      if (this.same(now, after) && !bad) c.recs = after;
      else check(this.same(now, before), () => `after a crash, ${name} is neither before nor after the unanswered upsert (all or nothing)`);
    };
    await this.api.expect(bad ? 400 : 200, 'POST', `/v1/collections/${name}/upsert`, { body: { vectors: batch } }, bad ? 'invalid_argument' : undefined);
    this.inflight = undefined;
    if (!bad) c.recs = after;
  }

  private async removeVector(name: string, c: Collection): Promise<void> {
    const id = this.rng.pick(IDS);
    const exists = c.recs.has(id);
    this.log.add(`c${this.id} vector delete ${name} ${showKey(id)} (exists: ${exists})`);
    this.inflight = async () => {
      const a = await this.api.expect([200, 404], 'GET', `/v1/collections/${name}/vectors/${encodeURIComponent(id)}`);
      if (a.status === 404) c.recs.delete(id);
    };
    await this.api.expect(exists ? 204 : 404, 'DELETE', `/v1/collections/${name}/vectors/${encodeURIComponent(id)}`, {}, exists ? undefined : 'not_found');
    this.inflight = undefined;
    c.recs.delete(id);
  }

  private async getVector(name: string, c: Collection): Promise<void> {
    const id = this.rng.pick(IDS);
    const want = c.recs.get(id);
    this.log.add(`c${this.id} vector get ${name} ${showKey(id)}`);
    const a = await this.api.expect(want === undefined ? 404 : 200, 'GET', `/v1/collections/${name}/vectors/${encodeURIComponent(id)}`, {}, want === undefined ? 'not_found' : undefined);
    if (want !== undefined) check(a.json.id === id && this.sameVec(a.json, want), () => `vector ${name}/${id}: ${JSON.stringify(a.json)}, want ${JSON.stringify(want)}`);
  }

  private sameVec(got: { values?: number[]; metadata?: unknown }, want: Vec): boolean {
    return JSON.stringify(got.values) === JSON.stringify(want.values) && JSON.stringify(got.metadata) === JSON.stringify(want.metadata);
  }

  private same(got: Map<string, Vec>, want: Map<string, Vec>): boolean {
    return got.size === want.size && [...want].every(([id, v]) => got.has(id) && this.sameVec(got.get(id)!, v));
  }

  /** The whole collection as the server lists it (random page sizes; ids never repeat). */
  private async contents(name: string): Promise<Map<string, Vec>> {
    const out = new Map<string, Vec>();
    let cursor: string | null = null;
    const limit = this.rng.chance(0.5) ? this.rng.int(1, 5) : 1000;
    do {
      const q = new URLSearchParams({ limit: String(limit), include_values: 'true', include_metadata: 'true' });
      if (cursor !== null) q.set('cursor', cursor);
      const j = (await this.api.expect(200, 'GET', `/v1/collections/${name}/vectors?${q}`)).json;
      check(j.vectors.length <= limit, () => `list ${name}: page over limit`);
      for (const v of j.vectors) {
        check(!out.has(v.id), () => `list ${name}: ${v.id} twice`);
        out.set(v.id, { values: v.values, metadata: v.metadata });
      }
      cursor = j.cursor;
    } while (cursor !== null);
    return out;
  }

  private async query(name: string, c: Collection): Promise<void> {
    const r = this.rng;
    const k = r.int(1, 12);
    const body: Record<string, unknown> = { k, include_metadata: r.chance(0.5), include_values: r.chance(0.3) };
    let q: number[];
    const ids = [...c.recs.keys()];
    if (ids.length > 0 && r.chance(0.25)) {
      const id = r.pick(ids);
      body.id = id;
      q = c.recs.get(id)!.values;
    } else {
      q = this.values(c.dims);
      body.vector = q;
    }
    const filter = r.chance(0.6) ? makeFilter(r) : undefined;
    if (filter !== undefined) body.filter = filter;
    this.log.add(`c${this.id} query ${name} ${JSON.stringify(body).slice(0, 200)}`);
    const j = (await this.api.expect(200, 'POST', `/v1/collections/${name}/query`, { body })).json;
    const better = (a: number, b: number): boolean => (c.metric === 'l2' ? a < b : a > b);
    const eps = 1e-4;
    const candidates = [...c.recs].filter(([, v]) => filter === undefined || matches(v.metadata, filter)).map(([id, v]) => ({ id, score: score(c.metric, q, v.values) }));
    const where = `query ${name} ${JSON.stringify(body).slice(0, 200)}`;
    check(j.matches.length === Math.min(k, candidates.length), () => `${where}: ${j.matches.length} matches, ${candidates.length} pass the filter`);
    let prev: number | undefined;
    for (const m of j.matches) {
      const want = candidates.find((x) => x.id === m.id);
      check(want !== undefined, () => `${where}: ${m.id} does not pass the filter or does not exist`);
      check(Math.abs(m.score - want.score) <= eps * Math.max(1, Math.abs(want.score)), () => `${where}: ${m.id} scores ${m.score}, brute force ${want.score}`);
      check(prev === undefined || !better(m.score, prev + (c.metric === 'l2' ? -eps : eps)), () => `${where}: matches out of order`);
      prev = m.score;
      const v = c.recs.get(m.id)!;
      if (body.include_metadata) check(JSON.stringify(m.metadata) === JSON.stringify(v.metadata), () => `${where}: ${m.id} metadata ${JSON.stringify(m.metadata)}`);
      else check(m.metadata === undefined, () => `${where}: metadata without include_metadata`);
      if (body.include_values) check(JSON.stringify(m.values) === JSON.stringify(v.values), () => `${where}: ${m.id} values ${JSON.stringify(m.values)}`);
      else check(m.values === undefined, () => `${where}: values without include_values`);
    }
    if (prev !== undefined && j.matches.length === k) {
      const chosen = new Set(j.matches.map((m: { id: string }) => m.id));
      const worst = prev;
      const missed = candidates.find((x) => !chosen.has(x.id) && better(x.score, worst + (c.metric === 'l2' ? -eps : eps)));
      if (missed !== undefined) throw new Violation(`${where}: ${missed.id} (score ${missed.score}) beats the last match (${worst}) and is missing`);
    }
  }

  private async foreign(name: string): Promise<void> {
    this.log.add(`c${this.id} other tenant reads collection ${name}`);
    await this.other.expect(404, 'GET', `/v1/collections/${name}`, {}, 'not_found');
    await this.other.expect(404, 'POST', `/v1/collections/${name}/query`, { body: { vector: [1], k: 1 } }, 'not_found');
    await this.other.expect(404, 'GET', `/v1/collections/${name}/vectors/a`, {}, 'not_found');
  }

  async verify(): Promise<void> {
    for (const name of this.names) {
      const c = this.model.get(name);
      this.log.add(`c${this.id} vectors verify ${name} (${c?.recs.size ?? 'absent'})`);
      if (c === undefined) {
        await this.api.expect(404, 'GET', `/v1/collections/${name}`, {}, 'not_found');
        continue;
      }
      const d = (await this.api.expect(200, 'GET', `/v1/collections/${name}`)).json;
      check(d.dims === c.dims && d.metric === c.metric && d.count === c.recs.size, () => `describe ${name}: ${JSON.stringify(d)}, model ${c.dims} ${c.metric} ${c.recs.size}`);
      const now = await this.contents(name);
      check(this.same(now, c.recs), () => `${name}: contents differ from the model: ${JSON.stringify([...now.keys()])} vs ${JSON.stringify([...c.recs.keys()])}`);
    }
  }
}
