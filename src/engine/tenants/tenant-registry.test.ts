import { describe, expect, it, vi } from 'vitest';
import { ErrorCode } from '../../core/errors.js';
import { createTestContext } from '../testing.js';
import type { EngineContext } from '../context.js';
import { KvStore } from '../kv/kv-store.js';
import { TenantRegistry } from './tenant-registry.js';
import { UsageMeter } from './usage-meter.js';
import { expectQuartzError, rejectsWithQuartzError } from '../../../tests/fixtures/expect-error.js';

async function sha256Hex(text: string): Promise<string> {
  const d = new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(text)));
  return [...d].map((b) => b.toString(16).padStart(2, '0')).join('');
}

/** Every byte the registry's unit holds, keys and values, as one string (for "never stored" checks). */
async function everythingStored(ctx: EngineContext): Promise<string> {
  const unit = await ctx.storage.unit('tenants');
  const rows = await unit.kv.scan({});
  const dec = new TextDecoder();
  return rows.map((r) => `${dec.decode(r.key)}=${dec.decode(r.value)}`).join('\n');
}

describe('TenantRegistry', () => {
  it('creates tenants with a qz_ key that authenticates, and stores only its SHA-256 hash', async () => {
    const ctx = createTestContext();
    const tenants = await TenantRegistry.open(ctx);
    const { tenant, api_key, key_id } = await tenants.create({ email: 'ada@example.com', plan: 'pro', billing_customer_id: 'cus_1' });
    expect(api_key).toMatch(/^qz_[0-9a-f]{64}$/);
    expect(tenant).toMatchObject({ email: 'ada@example.com', plan: 'pro', billing_customer_id: 'cus_1', created_at: ctx.clock.now() });
    expect(tenant.id).toMatch(/^t_[0-9a-f]{16}$/);
    expect(await tenants.authenticate(api_key)).toEqual({ tenant, key_id });
    expect(await tenants.get(tenant.id)).toEqual(tenant);

    const stored = await everythingStored(ctx);
    expect(stored).not.toContain(api_key);
    expect(stored).not.toContain(api_key.slice(3)); // not even the hex part
    expect(stored).toContain(await sha256Hex(api_key));
    await tenants.close();
  });

  it('rejects unknown, malformed and revoked keys, also after a reopen (no stale cache)', async () => {
    const ctx = createTestContext();
    let tenants = await TenantRegistry.open(ctx);
    const { tenant, api_key, key_id } = await tenants.create({ email: 'a@b.co' });
    const other = `qz_${'0'.repeat(64)}`;
    expect(await tenants.authenticate(other)).toBeUndefined();
    expect(await tenants.authenticate(other)).toBeUndefined(); // from the negative cache
    for (const bad of ['', 'qz_', api_key.toUpperCase(), `${api_key}0`, `Bearer ${api_key}`, 42 as unknown as string]) {
      expect(await tenants.authenticate(bad)).toBeUndefined();
    }
    expect((await tenants.authenticate(api_key))?.key_id).toBe(key_id); // now cached
    await tenants.revokeKey(tenant.id, key_id);
    expect(await tenants.authenticate(api_key)).toBeUndefined();
    await tenants.close();
    tenants = await TenantRegistry.open(ctx);
    expect(await tenants.authenticate(api_key)).toBeUndefined();
    await rejectsWithQuartzError(() => tenants.revokeKey(tenant.id, key_id), ErrorCode.NOT_FOUND, /has no key/);
  });

  it('rotates keys: old keys stop working unless kept; keys are listed by id', async () => {
    const tenants = await TenantRegistry.open(createTestContext());
    const { tenant, api_key: first, key_id: firstId } = await tenants.create({ email: 'r@x.io' });
    const extra = await tenants.createKey(tenant.id);
    expect((await tenants.listKeys(tenant.id)).map((k) => k.key_id).sort()).toEqual([firstId, extra.key_id].sort());

    const kept = await tenants.rotateKey(tenant.id, { keepOld: true });
    expect(kept.revoked).toEqual([]);
    expect(await tenants.authenticate(first)).toBeDefined();
    expect(await tenants.authenticate(kept.api_key)).toBeDefined();

    const rotated = await tenants.rotateKey(tenant.id);
    expect(rotated.revoked.sort()).toEqual([firstId, extra.key_id, kept.key_id].sort());
    for (const old of [first, extra.api_key, kept.api_key]) expect(await tenants.authenticate(old)).toBeUndefined();
    expect((await tenants.authenticate(rotated.api_key))?.tenant.id).toBe(tenant.id);
    expect(await tenants.listKeys(tenant.id)).toEqual([{ key_id: rotated.key_id, created_at: expect.any(Number) }]);
  });

  it('updates plan and billing id, lists tenants in pages, keeps emails unique', async () => {
    const ctx = createTestContext();
    const tenants = await TenantRegistry.open(ctx, { defaultPlan: 'unlimited' });
    const created = [];
    for (let i = 0; i < 7; i++) created.push((await tenants.create({ email: `user${i}@example.com` })).tenant);
    expect(created[0]!.plan).toBe('unlimited');
    expect(created[0]!.billing_customer_id).toBeNull();
    await ctx.clock.advance(5000);
    const updated = await tenants.update(created[0]!.id, { plan: 'pro', billing_customer_id: 'cus_9' });
    expect(updated).toMatchObject({ plan: 'pro', billing_customer_id: 'cus_9', updated_at: created[0]!.created_at + 5000 });
    const { api_key } = await tenants.createKey(created[0]!.id);
    expect((await tenants.authenticate(api_key))?.tenant.plan).toBe('pro'); // the cache follows updates
    expect((await tenants.update(created[0]!.id, { billing_customer_id: null })).billing_customer_id).toBeNull();

    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page: { tenants: { id: string }[]; cursor: string | null } = await tenants.list({ cursor, limit: 3 });
      seen.push(...page.tenants.map((t) => t.id));
      cursor = page.cursor;
    } while (cursor !== null);
    expect(seen).toEqual(created.map((t) => t.id).sort());

    await rejectsWithQuartzError(() => tenants.create({ email: 'USER3@example.com' }), ErrorCode.ALREADY_EXISTS, /USER3@example.com/);
  });

  it('rejects bad input with clear messages', async () => {
    const tenants = await TenantRegistry.open(createTestContext());
    await rejectsWithQuartzError(() => tenants.create({ email: 'not-an-email' }), ErrorCode.INVALID_ARGUMENT, /email "not-an-email" is not a valid address/);
    await rejectsWithQuartzError(() => tenants.create({ email: 'a@b.co', plan: 'Gold Plan' }), ErrorCode.INVALID_ARGUMENT, /plan "Gold Plan"/);
    await rejectsWithQuartzError(() => tenants.create({ email: 'a@b.co', billing_customer_id: '' }), ErrorCode.INVALID_ARGUMENT, /billing customer id/);
    await rejectsWithQuartzError(() => tenants.create(null as unknown as { email: string }), ErrorCode.INVALID_ARGUMENT, /must be an object/);
    await rejectsWithQuartzError(() => tenants.update('t_missing', { plan: 'pro' }), ErrorCode.NOT_FOUND, /tenant 't_missing' does not exist/);
    await rejectsWithQuartzError(() => tenants.update('../x', { plan: 'pro' }), ErrorCode.INVALID_ARGUMENT, /tenant id/);
    await rejectsWithQuartzError(() => tenants.createKey('t_missing'), ErrorCode.NOT_FOUND);
    await rejectsWithQuartzError(() => tenants.list({ limit: 0 }), ErrorCode.INVALID_ARGUMENT, /limit/);
    expect(await tenants.get('t_missing')).toBeUndefined();
    const { tenant } = await tenants.create({ email: 'a@b.co' });
    await rejectsWithQuartzError(() => tenants.revokeKey(tenant.id, 'key_nope'), ErrorCode.NOT_FOUND, /has no key 'key_nope'/);
    await tenants.close();
    await rejectsWithQuartzError(() => tenants.create({ email: 'c@d.co' }), ErrorCode.STORAGE_CLOSED);
  });

  it('serialises concurrent creates so an email is taken once', async () => {
    const tenants = await TenantRegistry.open(createTestContext());
    const results = await Promise.allSettled(Array.from({ length: 5 }, () => tenants.create({ email: 'race@example.com' })));
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
  });

  it('counts tenants from storage once, then as they are created, also when creates race the first count', async () => {
    const ctx = createTestContext();
    const first = await TenantRegistry.open(ctx);
    for (let i = 0; i < 5; i++) await first.create({ email: `c${i}@example.com` });
    await first.close();
    const tenants = await TenantRegistry.open(ctx);
    const counts = await Promise.all([tenants.count(), tenants.create({ email: 'c5@example.com' }).then(() => tenants.count()), tenants.count()]);
    expect(counts).toEqual([5, 6, 6]);
    const unit = await ctx.storage.unit('tenants');
    const scans = vi.spyOn(unit.kv, 'scan');
    await Promise.allSettled([tenants.create({ email: 'c6@example.com' }), tenants.create({ email: 'c6@example.com' }), tenants.create({ email: 'c7@example.com' })]);
    expect(await tenants.count()).toBe(8);
    expect(scans).not.toHaveBeenCalled();
    scans.mockRestore();
    let listed = 0;
    let cursor: string | null = null;
    do {
      const page: { tenants: unknown[]; cursor: string | null } = await tenants.list({ cursor, limit: 3 });
      listed += page.tenants.length;
      cursor = page.cursor;
    } while (cursor !== null);
    expect(listed).toBe(8);
  });

  it('scopes data to tenants: a key authenticates one tenant, whose KV the other cannot see', async () => {
    const ctx = createTestContext();
    const usage = await UsageMeter.open(ctx);
    const engineCtx = { ...ctx, usage };
    const tenants = await TenantRegistry.open(engineCtx);
    const a = await tenants.create({ email: 'a@example.com' });
    const b = await tenants.create({ email: 'b@example.com' });
    const whoA = (await tenants.authenticate(a.api_key))!;
    const whoB = (await tenants.authenticate(b.api_key))!;
    expect(whoA.tenant.id).not.toBe(whoB.tenant.id);
    const kvA = await KvStore.open(engineCtx, whoA.tenant.id);
    const kvB = await KvStore.open(engineCtx, whoB.tenant.id);
    await kvA.put('secret', new TextEncoder().encode('A only'));
    expect(await kvB.get('secret')).toBeUndefined();
    expect((await kvB.list()).keys).toEqual([]);
    // Metering lands on the right tenant through the shared meter.
    expect((await tenants.usage(whoA.tenant.id)).bytes_stored).toBe(12);
    expect((await tenants.usage(whoB.tenant.id)).bytes_stored).toBe(0);
    await kvA.close();
    await kvB.close();
    await tenants.close();
    await usage.close();
  });
});

describe('TenantRegistry with hostile arguments', () => {
  it('takes null options as none and names a BigInt instead of throwing a TypeError', async () => {
    const tenants = await TenantRegistry.open(createTestContext());
    await tenants.create({ email: 'a@example.com' });
    expect((await tenants.list(null as never)).tenants).toHaveLength(1);
    const rows = [];
    for await (const row of tenants.exportUsage(null as never)) rows.push(row);
    await rejectsWithQuartzError(() => tenants.create({ email: 10n as never }), 'invalid_argument', /email 10n/);
    await rejectsWithQuartzError(() => tenants.list({ cursor: 10n as never }), 'invalid_argument', /10n/);
    await rejectsWithQuartzError(() => tenants.usage('t_0000000000000000', 10n as never), 'invalid_argument', /10n/);
  });

  it('knows only its own metrics (not Object.prototype names) and takes rotateKey(id, null) as no options', async () => {
    const tenants = await TenantRegistry.open(createTestContext());
    const { tenant } = await tenants.create({ email: 'a@example.com' });
    for (const metric of ['constructor', 'toString', '__proto__']) {
      expectQuartzError(() => tenants.add(tenant.id, metric as never, 1), 'invalid_argument', /unknown usage metric/);
    }
    expect((await tenants.rotateKey(tenant.id, null as never)).revoked).toHaveLength(1);
  });
});
