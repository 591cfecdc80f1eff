import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import '../../node/core.js';
import { createEngine, type Engine } from '../../engine/engine.js';
import { ManualClock } from '../../ports/manual-clock.js';
import { createMemoryStorage } from '../../ports/memory-storage.js';
import { createApp } from '../app.js';
import { hashKey, resolveServerConfig } from '../config.js';

let engine: Engine;

beforeEach(async () => {
  const clock = new ManualClock(Date.UTC(2025, 0, 15));
  engine = await createEngine({
    storage: createMemoryStorage(),
    clock,
    scheduler: clock,
    capabilities: { compileWasmAtRuntime: true, threads: false, persistentStorage: false },
  });
});

afterEach(async () => {
  await engine.close();
});

describe('POST /v1/collections/:c/query', () => {
  it('answers with a plain header object that still carries the request id, rate-limit and CORS headers', async () => {
    const config = resolveServerConfig({
      version: '9.9.9',
      admin_key_hash: await hashKey('admin-key'),
      cors_origins: ['https://app.example'],
      plans: { tiny: { requests_per_minute: 10 }, unlimited: { requests_per_minute: null } },
    });
    const app = createApp({ engine, config });
    const { api_key } = await engine.tenants.create({ email: 'q@example.com', plan: 'tiny' });
    const h = { 'x-api-key': api_key, 'x-request-id': 'req-9', origin: 'https://app.example', 'content-type': 'application/json' };
    const call = (path: string, body: unknown, headers: Record<string, string> = h) =>
      app.fetch(new Request(`http://local${path}`, { method: 'POST', body: JSON.stringify(body), headers }));
    expect((await call('/v1/collections', { name: 'docs', dims: 2, metric: 'l2' })).status).toBe(201);
    const upsert = { vectors: [{ id: 'a', values: [0, 0], metadata: { n: 1 } }, { id: 'b', values: [3, 4] }] };
    expect((await call('/v1/collections/docs/upsert', upsert)).status).toBe(200);

    const res = await call('/v1/collections/docs/query', { vector: [0, 1], k: 2, include_metadata: true });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/json');
    expect(res.headers.get('x-request-id')).toBe('req-9');
    expect(res.headers.get('x-ratelimit-limit')).toBe('10');
    expect(res.headers.get('x-ratelimit-remaining')).toBe('7');
    expect(res.headers.get('x-ratelimit-reset')).not.toBeNull();
    expect(res.headers.get('access-control-allow-origin')).toBe('https://app.example');
    expect(res.headers.get('vary')).toBe('Origin');
    const { matches } = (await res.json()) as { matches: Array<{ id: string; score: number; metadata?: unknown }> };
    expect(matches.map((m) => m.id)).toEqual(['a', 'b']);
    expect(matches[0]!.score).toBeCloseTo(1, 6);
    expect(matches[1]!.score).toBeCloseTo(Math.sqrt(9 + 9), 5);
    expect(matches[0]!.metadata).toEqual({ n: 1 });

    const stranger = await call('/v1/collections/docs/query', { vector: [0, 1], k: 1 }, { ...h, origin: 'https://evil.example' });
    expect(stranger.status).toBe(200);
    expect(stranger.headers.get('access-control-allow-origin')).toBeNull();
    // Errors still go through the error handler, field named.
    const bad = await call('/v1/collections/docs/query', { vector: [0, 1], k: 0 });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { message: string }).message).toMatch(/^k: /);
  });
});
