/**
 * The data the fuzzer's requests aim at, and a fingerprint of everything the tenant holds: a
 * refused write must leave the fingerprint as it was. The fixtures (FIXTURES) are put back
 * whenever a request that succeeded removed or changed them, so later cases keep finding them.
 */
import { FIXTURES, type Names } from './generate.js';

type Json = Record<string, unknown>;

export class World {
  names!: Names;
  private cleanups = 0;

  constructor(readonly url: string, private readonly adminKey: string) {}

  private async call(method: string, path: string, key: string, body?: unknown, headers: Record<string, string> = {}): Promise<{ status: number; json: Json; headers: Headers }> {
    const res = await fetch(`${this.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${key}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    });
    const text = await res.text();
    let json: Json = {};
    try {
      json = text === '' ? {} : (JSON.parse(text) as Json);
    } catch {
      json = { text };
    }
    return { status: res.status, json, headers: res.headers };
  }

  private async must(method: string, path: string, key: string, body: unknown, ok: number[]): Promise<Json> {
    const r = await this.call(method, path, key, body);
    if (!ok.includes(r.status)) throw new Error(`world: ${method} ${path} answered ${r.status} ${JSON.stringify(r.json)}`);
    return r.json;
  }

  /** Two tenants (the fuzzed one, with a spare key to revoke, and another), and the fixtures. */
  async setup(): Promise<Names> {
    const admin = this.adminKey;
    const main = await this.must('POST', '/v1/admin/tenants', admin, { email: `fuzz-${Date.now()}@example.com`, plan: 'unlimited' }, [201]);
    const tenantId = (main.tenant as Json).id as string;
    const other = await this.must('POST', '/v1/admin/tenants', admin, { email: `other-${Date.now()}@example.com`, plan: 'unlimited' }, [201]);
    const victim = await this.must('POST', `/v1/admin/tenants/${tenantId}/keys`, admin, undefined, [201]);
    const revoked = await this.must('POST', `/v1/admin/tenants/${tenantId}/keys`, admin, undefined, [201]);
    await this.must('DELETE', `/v1/admin/tenants/${tenantId}/keys/${revoked.key_id as string}`, admin, undefined, [204]);
    this.names = { apiKey: main.api_key as string, adminKey: admin, otherKey: other.api_key as string, revokedKey: revoked.api_key as string, tenantId, victimKeyId: victim.key_id as string };
    await this.restore();
    return this.names;
  }

  /** Puts back each fixture that is missing or changed; answers whether it changed anything. */
  async restore(): Promise<boolean> {
    const key = this.names.apiKey;
    let changed = false;
    for (const k of FIXTURES.kv) {
      const r = await this.call('GET', `/v1/kv/${k}`, key);
      if (r.status !== 200 || r.json.fixture !== k || r.headers.get('x-expires-at') !== null) {
        await this.must('PUT', `/v1/kv/${k}`, key, JSON.stringify({ fixture: k }), [200]);
        changed = true;
      }
    }
    const topic = await this.call('GET', `/v1/topics/${FIXTURES.topic}`, key);
    if (topic.status !== 200 || topic.json.partitions !== FIXTURES.partitions) {
      if (topic.status === 200) await this.must('DELETE', `/v1/topics/${FIXTURES.topic}`, key, undefined, [204]);
      await this.must('POST', '/v1/topics', key, { name: FIXTURES.topic, partitions: FIXTURES.partitions }, [201]);
      await this.must('POST', `/v1/topics/${FIXTURES.topic}/records`, key, { records: [{ key: 'a', value: 'one', partition: 0 }, { value: 'two', partition: 1 }] }, [200]);
      changed = true;
    }
    const collection = await this.call('GET', `/v1/collections/${FIXTURES.collection}`, key);
    if (collection.status !== 200 || collection.json.dims !== FIXTURES.dims) {
      if (collection.status === 200) await this.must('DELETE', `/v1/collections/${FIXTURES.collection}`, key, undefined, [204]);
      await this.must('POST', '/v1/collections', key, { name: FIXTURES.collection, dims: FIXTURES.dims, metric: 'cosine' }, [201]);
      changed = true;
    }
    for (const [i, id] of FIXTURES.vectors.entries()) {
      if ((await this.call('GET', `/v1/collections/${FIXTURES.collection}/vectors/${id}`, key)).status !== 200) {
        await this.must('POST', `/v1/collections/${FIXTURES.collection}/upsert`, key, { vectors: [{ id, values: [1, i, 0.5], metadata: { lang: 'en', n: i } }] }, [200]);
        changed = true;
      }
    }
    const group = await this.call('GET', `/v1/groups/${FIXTURES.group}/offsets?topic=${FIXTURES.topic}`, key);
    if (group.status !== 200 || !((group.json.offsets as Json[] | undefined) ?? []).some((o) => o.offset !== null)) {
      await this.must('POST', `/v1/groups/${FIXTURES.group}/offsets`, key, { topic: FIXTURES.topic, partition: 0, offset: 1 }, [204]);
      changed = true;
    }
    const tenant = await this.call('GET', `/v1/admin/tenants/${this.names.tenantId}`, this.adminKey);
    const plan = ((tenant.json.tenant as Json | undefined) ?? tenant.json).plan;
    if (plan !== 'unlimited') {
      await this.must('PATCH', `/v1/admin/tenants/${this.names.tenantId}`, this.adminKey, { plan: 'unlimited' }, [200]);
      changed = true;
    }
    const keys = await this.must('GET', `/v1/admin/tenants/${this.names.tenantId}/keys`, this.adminKey, undefined, [200]);
    if (!(keys.keys as Json[]).some((k) => k.key_id === this.names.victimKeyId)) {
      const issued = await this.must('POST', `/v1/admin/tenants/${this.names.tenantId}/keys`, this.adminKey, undefined, [201]);
      this.names.victimKeyId = issued.key_id as string;
      changed = true;
    }
    return changed;
  }

  /** Deletes what the fuzz created beside the fixtures, so fingerprints stay small. */
  async cleanup(): Promise<void> {
    this.cleanups++;
    const key = this.names.apiKey;
    const keys = await this.must('GET', '/v1/kv?limit=1000', key, undefined, [200]);
    for (const k of keys.keys as Json[]) {
      const name = k.key as string;
      if (!(FIXTURES.kv as readonly string[]).includes(name)) await this.must('DELETE', `/v1/kv/${encodeURIComponent(name)}`, key, undefined, [204, 404]);
    }
    const topics = await this.must('GET', '/v1/topics', key, undefined, [200]);
    for (const t of topics.topics as Json[]) if (t.name !== FIXTURES.topic) await this.must('DELETE', `/v1/topics/${encodeURIComponent(t.name as string)}`, key, undefined, [204, 404]);
    const collections = await this.must('GET', '/v1/collections', key, undefined, [200]);
    for (const c of collections.collections as Json[]) if (c.name !== FIXTURES.collection) await this.must('DELETE', `/v1/collections/${encodeURIComponent(c.name as string)}`, key, undefined, [204, 404]);
    const vectors = await this.must('GET', `/v1/collections/${FIXTURES.collection}/vectors?limit=1000`, key, undefined, [200, 404]);
    for (const v of (vectors.vectors as Json[] | undefined) ?? []) {
      if (!(FIXTURES.vectors as readonly string[]).includes(v.id as string)) await this.must('DELETE', `/v1/collections/${FIXTURES.collection}/vectors/${encodeURIComponent(v.id as string)}`, key, undefined, [204, 404]);
    }
    await this.restore();
  }

  /**
   * Everything the tenant holds that a request could change, as one string: keys (with type,
   * size, tag; not keys with a TTL, which may expire meanwhile: a refused write that set one on a
   * key without is still seen, as that key leaves the fingerprint), topics with their
   * configs and high watermarks, collections with their vectors, group offsets, the tenant's
   * plan, billing id and keys.
   */
  async fingerprint(): Promise<string> {
    const key = this.names.apiKey;
    const parts: unknown[] = [];
    const kv = await this.must('GET', '/v1/kv?limit=1000', key, undefined, [200]);
    for (const k of kv.keys as Json[]) {
      if (k.expires_at !== null) continue;
      const head = await this.call('HEAD', `/v1/kv/${encodeURIComponent(k.key as string)}`, key);
      parts.push(['kv', k.key, k.size, k.content_type, head.headers.get('etag')]);
    }
    const topics = await this.must('GET', '/v1/topics', key, undefined, [200]);
    for (const t of topics.topics as Json[]) {
      const d = await this.call('GET', `/v1/topics/${encodeURIComponent(t.name as string)}`, key);
      const info = ((d.json.partition_info as Json[] | undefined) ?? []).map((p) => p.high_watermark);
      parts.push(['topic', t, info]);
    }
    const collections = await this.must('GET', '/v1/collections', key, undefined, [200]);
    for (const c of collections.collections as Json[]) {
      const v = await this.call('GET', `/v1/collections/${encodeURIComponent(c.name as string)}/vectors?limit=1000&include_metadata=true&include_values=true`, key);
      parts.push(['collection', c, v.json]);
    }
    const groups = await this.must('GET', '/v1/groups', key, undefined, [200]);
    for (const g of groups.groups as string[]) {
      const o = await this.call('GET', `/v1/groups/${encodeURIComponent(g)}/offsets`, key);
      parts.push(['group', g, o.json]);
    }
    const tenant = await this.must('GET', `/v1/admin/tenants/${this.names.tenantId}`, this.adminKey, undefined, [200]);
    const keys = await this.must('GET', `/v1/admin/tenants/${this.names.tenantId}/keys`, this.adminKey, undefined, [200]);
    parts.push(['tenant', tenant, keys]);
    return JSON.stringify(parts);
  }
}
