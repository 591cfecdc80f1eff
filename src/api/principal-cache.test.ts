import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import '../node/core.js';
import type { Engine } from '../engine/engine.js';
import { createTestEngine } from '../engine/testing.js';
import { ManualClock } from '../ports/manual-clock.js';
import { PrincipalCache } from './principal-cache.js';

let clock: ManualClock;
let engine: Engine;

beforeEach(async () => {
  clock = new ManualClock();
  engine = await createTestEngine({ clock });
});

afterEach(async () => {
  await engine.close();
});

/** The engine's registry with `authenticate` going through `around`, which calls `lookUp` for the real answer. */
function registryAround(around: (key: string, lookUp: () => ReturnType<Engine['tenants']['authenticate']>) => ReturnType<Engine['tenants']['authenticate']>): Engine['tenants'] {
  const registry = Object.create(engine.tenants) as Engine['tenants'];
  registry.authenticate = (key: string) => around(key, () => engine.tenants.authenticate(key));
  return registry;
}

/** A registry that counts its lookups and, while `failing` is set, fails each after reading. */
function countingRegistry(): { registry: Engine['tenants']; seen: { lookups: number; failing: boolean } } {
  const seen = { lookups: 0, failing: false };
  const registry = registryAround(async (_key, lookUp) => {
    seen.lookups++;
    const who = await lookUp();
    if (seen.failing) throw new Error('storage failed');
    return who;
  });
  return { registry, seen };
}

describe('PrincipalCache', () => {
  it('answers from memory within the TTL and asks the registry again after it', async () => {
    const cache = new PrincipalCache(engine.tenants, clock, 1000);
    const { tenant, key_id, api_key } = await engine.tenants.create({ email: 'a@example.com' });
    expect((await cache.tenantFor(api_key))?.id).toBe(tenant.id);
    // Revoked behind the cache's back (another process): still known until the TTL runs out.
    await engine.tenants.revokeKey(tenant.id, key_id);
    expect((await cache.tenantFor(api_key))?.id).toBe(tenant.id);
    await clock.advance(1000);
    expect(await cache.tenantFor(api_key)).toBeUndefined();
  });

  it('never caches unknown keys, and a revocation or plan change through the cache counts at once', async () => {
    const cache = new PrincipalCache(engine.tenants, clock);
    expect(await cache.tenantFor('qz_' + 'a'.repeat(64))).toBeUndefined();
    const { tenant, key_id, api_key } = await engine.tenants.create({ email: 'b@example.com' });
    expect((await cache.tenantFor(api_key))?.plan).toBe('free');
    await engine.tenants.update(tenant.id, { plan: 'pro' });
    cache.tenantChanged(tenant.id);
    expect((await cache.tenantFor(api_key))?.plan).toBe('pro');
    await engine.tenants.revokeKey(tenant.id, key_id);
    cache.revoked([key_id]);
    expect(await cache.tenantFor(api_key)).toBeUndefined();
  });

  it('does not cache what a lookup found when its key was revoked while it ran', async () => {
    const { tenant, key_id, api_key } = await engine.tenants.create({ email: 'c@example.com' });
    // The real registry, with its answer held until the revocation has landed and cleared the cache.
    let release!: () => void;
    let found!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const lookedUp = new Promise<void>((resolve) => (found = resolve));
    const registry = registryAround(async (_key, lookUp) => {
      const who = await lookUp();
      found();
      await held;
      return who;
    });
    const cache = new PrincipalCache(registry, clock);
    const inFlight = cache.tenantFor(api_key);
    await lookedUp; // the key still resolved to its tenant
    await engine.tenants.revokeKey(tenant.id, key_id);
    cache.revoked([key_id]);
    release();
    expect(await inFlight).toBeUndefined();
    expect(await cache.tenantFor(api_key)).toBeUndefined();
  });

  it('shares one lookup among the requests that find the entry expired, and retries after a failed one', async () => {
    const { tenant, api_key } = await engine.tenants.create({ email: 'd@example.com' });
    const { registry, seen } = countingRegistry();
    const cache = new PrincipalCache(registry, clock, 1000);
    expect((await cache.tenantFor(api_key))?.id).toBe(tenant.id);
    expect(seen.lookups).toBe(1);
    await clock.advance(1000);
    // Many connections' requests arrive while the expired key is being looked up again.
    const answers = await Promise.all(Array.from({ length: 200 }, () => cache.tenantFor(api_key)));
    expect(answers.every((t) => t?.id === tenant.id)).toBe(true);
    expect(seen.lookups).toBe(2);
    await clock.advance(1000);
    seen.failing = true;
    const failed = await Promise.allSettled([cache.tenantFor(api_key), cache.tenantFor(api_key)]);
    expect(failed.map((r) => r.status)).toEqual(['rejected', 'rejected']);
    expect(seen.lookups).toBe(3);
    seen.failing = false;
    expect((await cache.tenantFor(api_key))?.id).toBe(tenant.id);
    expect(seen.lookups).toBe(4);
  });
  it('renews a key in steady use before it expires, so no request waits for its lookup', async () => {
    const { tenant, key_id, api_key } = await engine.tenants.create({ email: 'e@example.com' });
    let lookups = 0;
    let lookingUp: Promise<unknown> = Promise.resolve();
    const registry = registryAround((_key, lookUp) => {
      lookups++;
      return (lookingUp = lookUp());
    });
    const cache = new PrincipalCache(registry, clock, 1000);
    expect((await cache.tenantFor(api_key))?.id).toBe(tenant.id);
    // Every 100 ms a request, for three TTLs: each is answered from memory (not a promise).
    for (let t = 100; t <= 3000; t += 100) {
      await clock.advance(100);
      const answer = cache.tenantFor(api_key);
      expect(answer instanceof Promise, `request at ${t} ms waited for a lookup`).toBe(false);
      expect((answer as { id: string } | undefined)?.id).toBe(tenant.id);
      // The renewal runs between requests, as it does between a server's turns. Awaited, not
      // given one timer turn: its SHA-256 runs on the thread pool, which a loaded machine may
      // not get to within it (the manual clock had then gone past the entry's expiry).
      await lookingUp;
      await new Promise((resolve) => setTimeout(resolve, 0));
    }
    expect(lookups).toBeGreaterThanOrEqual(3);
    expect(lookups).toBeLessThanOrEqual(5);
    // A revocation elsewhere still shows within the TTL: the renewal reads the registry afresh.
    await engine.tenants.revokeKey(tenant.id, key_id);
    await clock.advance(1000);
    await new Promise((resolve) => setTimeout(resolve, 0));
    expect(await cache.tenantFor(api_key)).toBeUndefined();
  });

  it('drops only what a revocation concerns: other keys stay cached and their lookups under way go on', async () => {
    const a = await engine.tenants.create({ email: 'e@example.com' });
    const b = await engine.tenants.create({ email: 'f@example.com' });
    const other = await engine.tenants.createKey(a.tenant.id); // the revoked key's tenant keeps it
    const lookups = new Map<string, number>();
    let hold: Promise<void> | undefined;
    const registry = registryAround(async (key, lookUp) => {
      lookups.set(key, (lookups.get(key) ?? 0) + 1);
      const who = await lookUp();
      await hold;
      return who;
    });
    const cache = new PrincipalCache(registry, clock);
    expect((await cache.tenantFor(other.api_key))?.id).toBe(a.tenant.id);
    let release!: () => void;
    hold = new Promise<void>((resolve) => (release = resolve));
    // Under way when the revocation lands: b's key, and a's key that is being revoked.
    const bUnderWay = cache.tenantFor(b.api_key);
    const revokedUnderWay = cache.tenantFor(a.api_key);
    await new Promise((resolve) => setTimeout(resolve, 20));
    await engine.tenants.revokeKey(a.tenant.id, a.key_id);
    cache.revoked([a.key_id]);
    const bJoined = cache.tenantFor(b.api_key);
    hold = undefined;
    release();
    expect([(await bUnderWay)?.id, (await bJoined)?.id]).toEqual([b.tenant.id, b.tenant.id]);
    expect(await revokedUnderWay).toBeUndefined();
    expect(await cache.tenantFor(a.api_key)).toBeUndefined();
    // b's lookup was not started again, and a's other key was answered from memory throughout.
    expect(lookups.get(b.api_key)).toBe(1);
    expect((await cache.tenantFor(other.api_key))?.id).toBe(a.tenant.id);
    expect(lookups.get(other.api_key)).toBe(1);
  });

  it('lets no request through with a key revoked while its background renewal ran', async () => {
    const { tenant, key_id, api_key } = await engine.tenants.create({ email: 'g@example.com' });
    let hold: Promise<void> | undefined;
    let started!: () => void;
    const registry = registryAround(async (_key, lookUp) => {
      const who = await lookUp();
      started?.();
      await hold;
      return who;
    });
    const cache = new PrincipalCache(registry, clock, 1000);
    expect((await cache.tenantFor(api_key))?.id).toBe(tenant.id);
    let release!: () => void;
    hold = new Promise<void>((resolve) => (release = resolve));
    const renewing = new Promise<void>((resolve) => (started = resolve));
    await clock.advance(800); // the entry's last quarter: this request starts the renewal
    expect((cache.tenantFor(api_key) as { id: string } | undefined)?.id).toBe(tenant.id);
    await renewing; // the renewal found the key valid and is about to answer
    await engine.tenants.revokeKey(tenant.id, key_id);
    cache.revoked([key_id]);
    const after = cache.tenantFor(api_key);
    release();
    expect(await after).toBeUndefined();
    await new Promise((resolve) => setTimeout(resolve, 0));
    expect(await cache.tenantFor(api_key)).toBeUndefined();
  });

  it('keeps a failed renewal quiet and the entry no longer than its TTL', async () => {
    const { tenant, api_key } = await engine.tenants.create({ email: 'h@example.com' });
    const { registry, seen } = countingRegistry();
    const cache = new PrincipalCache(registry, clock, 1000);
    expect((await cache.tenantFor(api_key))?.id).toBe(tenant.id);
    seen.failing = true;
    await clock.advance(800);
    // A request in the last quarter still answers from memory; its renewal fails in the background
    // (an unhandled rejection there fails this test run).
    expect((cache.tenantFor(api_key) as { id: string } | undefined)?.id).toBe(tenant.id);
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect(seen.lookups).toBe(2);
    await clock.advance(200); // the TTL from the first lookup is over: the old answer is not used
    await expect(cache.tenantFor(api_key)).rejects.toThrow('storage failed');
    seen.failing = false;
    expect((await cache.tenantFor(api_key))?.id).toBe(tenant.id);
  });

  it('keeps the other keys when a remembered key is renewed with the map full', async () => {
    const { tenant } = await engine.tenants.create({ email: 'i@example.com' });
    const keys: string[] = [];
    for (let i = 0; i < 10_000; i++) keys.push((await engine.tenants.createKey(tenant.id)).api_key);
    const { registry, seen } = countingRegistry();
    const cache = new PrincipalCache(registry, clock, 1000);
    for (const key of keys) await cache.tenantFor(key);
    expect(seen.lookups).toBe(10_000);
    await clock.advance(800);
    // The first key, in steady use, is renewed in the background: it replaces its own entry.
    expect(cache.tenantFor(keys[0]!) instanceof Promise).toBe(false);
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect(seen.lookups).toBe(10_001);
    // Every other key is still remembered: answered without a lookup.
    expect(keys.slice(1).every((key) => !(cache.tenantFor(key) instanceof Promise))).toBe(true);
  }, 120_000);
});
