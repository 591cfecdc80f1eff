import { describe, expect, it } from 'vitest';
import '../../node/core.js'; // registers the wasm for the engine
import { seededRandom } from '../../core/random-testing.js';
import { createTestEngine } from '../../engine/testing.js';
import { ManualClock } from '../../ports/manual-clock.js';
import { createApp } from '../app.js';
import { resolveServerConfig } from '../config.js';
import { presentedKey } from './auth.js';

function request(headers: Record<string, string>): { header(name: string): string | undefined } {
  return { header: (name) => headers[name] };
}

/**
 * The rule as documented: a non-empty X-API-Key or a Bearer token in Authorization; none when
 * Authorization holds no Bearer token or the two name different keys.
 */
function reference(headers: Record<string, string>): string | undefined {
  const other = headers['x-api-key']?.trim() || undefined;
  if (headers.authorization === undefined) return other;
  const bearer = /^Bearer\s+(\S+)\s*$/i.exec(headers.authorization)?.[1];
  return other === undefined || other === bearer ? bearer : undefined;
}

describe('presentedKey', () => {
  it.each([
    [{ authorization: 'Bearer qz_abc' }, 'qz_abc'],
    [{ authorization: 'bearer qz_abc' }, 'qz_abc'],
    [{ authorization: 'Bearer \t qz_abc  ' }, 'qz_abc'],
    [{ authorization: 'Bearer qz_\u00e4' }, 'qz_\u00e4'],
    [{ authorization: 'Bearer a b' }, undefined],
    [{ authorization: 'Bearer ' }, undefined],
    [{ authorization: 'Basic qz_abc', 'x-api-key': ' qz_key ' }, undefined],
    [{ authorization: 'Bearer qz_abc', 'x-api-key': 'qz_key' }, undefined],
    [{ authorization: 'Bearer qz_abc', 'x-api-key': ' qz_abc ' }, 'qz_abc'],
    [{ 'x-api-key': ' qz_key ' }, 'qz_key'],
    [{ 'x-api-key': '  ' }, undefined],
  ])('%j → %s', (headers: Record<string, string>, key) => {
    expect(presentedKey(request(headers))).toBe(key);
  });

  it('reads the same key from a value sent again, whether its key was kept or has been pushed out', () => {
    const first = 'Bearer qz_first';
    expect(presentedKey(request({ authorization: first }))).toBe('qz_first');
    expect(presentedKey(request({ authorization: first }))).toBe('qz_first');
    // Past the kept keys' bound (1,024 values): the first is read afresh.
    for (let i = 0; i < 1500; i++) expect(presentedKey(request({ authorization: `Bearer qz_${i}` }))).toBe(`qz_${i}`);
    expect(presentedKey(request({ authorization: first }))).toBe('qz_first');
    expect(presentedKey(request({ authorization: first, 'x-api-key': 'qz_other' }))).toBeUndefined();
    expect(presentedKey(request({ authorization: 'Bearer qz_1499' }))).toBe('qz_1499');
  });

  it('reads the same key as the Bearer pattern for any Authorization value', () => {
    const rand = seededRandom(7);
    const parts = ['Bearer', 'bearer', ' ', '\t', '\u00a0', 'qz_', 'a', 'ä', '"', '\u007f', ','];
    // 10,000 values drawn from few parts: many come again, read from the kept keys.
    for (let n = 0; n < 10000; n++) {
      let value = rand() < 0.7 ? 'Bearer ' : '';
      const length = Math.floor(rand() * 6);
      for (let i = 0; i < length; i++) value += parts[Math.floor(rand() * parts.length)];
      const headers: Record<string, string> = { authorization: value };
      if (rand() < 0.5) headers['x-api-key'] = rand() < 0.5 ? 'qz_' : 'fallback';
      expect(presentedKey(request(headers)), JSON.stringify(value)).toBe(reference(headers));
    }
  });
});

describe('tenantAuth', () => {
  it.each(['unlimited', 'free'])('meters a %s call in the period of the one time auth admitted it at, however often the clock is read after', async (plan) => {
    // A clock one millisecond before February that moves on by 1 ms each time it is read.
    const clock = new ManualClock(Date.UTC(2025, 0, 31, 23, 59, 59, 990));
    const engine = await createTestEngine({ clock });
    const { tenant, api_key: key } = await engine.tenants.create({ email: 'clock@example.com', plan });
    const app = createApp({ engine, config: resolveServerConfig({ version: 'test' }) });
    const request = { method: 'GET', header: (name: string) => (name === 'authorization' ? `Bearer ${key}` : name === 'host' ? 'localhost' : undefined) };
    expect((await app.direct(request, '/v1/kv/missing'))?.status).toBe(404); // the key is now in the principal cache
    await clock.advance(9);
    const read = clock.now.bind(clock);
    let ticks = 0;
    clock.now = () => read() + ticks++;
    expect((await app.direct(request, '/v1/kv/missing'))?.status).toBe(404);
    clock.now = read;
    expect((await engine.tenants.usage(tenant.id, '2025-01')).api_calls).toBe(2);
    expect((await engine.tenants.usage(tenant.id, '2025-02')).api_calls).toBe(0);
    await engine.close();
  });
});
