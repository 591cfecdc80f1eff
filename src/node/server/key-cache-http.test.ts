// The KV key caches' engine-wide budget through `quartz serve`: the setting from the environment,
// tenants writing past it over HTTP on a real server and disk, ETags still right after their
// keys were forgotten, and the figures on /metrics.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { slotBytes } from '../../engine/kv/key-cache.js';
import { startServer } from './server.js';
import { resolveServeSettings } from './settings.js';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('quartz serve with a KV key cache budget', () => {
  it('keeps every tenant together under QUARTZ_KV_KEY_CACHE_MAX_BYTES, with right ETags, and reports it on /metrics', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'quartz-keycache-http-'));
    dirs.push(dir);
    const budget = 12 * slotBytes('key-00');
    const env = { QUARTZ_LOG_LEVEL: 'error', QUARTZ_KV_KEY_CACHE_MAX_BYTES: String(budget) };
    const server = await startServer(await resolveServeSettings({ port: '0', data: dir, host: '127.0.0.1' }, env), env);
    try {
      const keys: string[] = [];
      for (let t = 0; t < 4; t++) {
        const registered = await fetch(`${server.url}/v1/auth/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email: `t${t}@example.com` }) });
        keys.push(((await registered.json()) as { api_key: string }).api_key);
      }
      const put = (t: number, key: string, body: string, headers: Record<string, string> = {}) =>
        fetch(`${server.url}/v1/kv/${key}`, { method: 'PUT', headers: { authorization: `Bearer ${keys[t]}`, 'content-type': 'text/plain', ...headers }, body });
      const etags = new Map<string, string>();
      for (let t = 0; t < 4; t++) {
        for (let i = 0; i < 10; i++) {
          const answer = await put(t, `key-0${i}`, `t${t} v${i}`);
          expect(answer.status).toBe(200);
          etags.set(`${t}/${i}`, answer.headers.get('etag')!);
        }
      }
      const metrics = async (): Promise<string> => (await fetch(`${server.url}/metrics`)).text();
      const figure = (text: string, name: string): number => Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(text)?.[1]);
      let text = await metrics();
      expect(figure(text, 'quartz_kv_cached_key_bytes')).toBeLessThanOrEqual(budget);
      expect(figure(text, 'quartz_kv_cached_keys_evicted_total')).toBeGreaterThanOrEqual(4 * 10 - 12);

      // Tenant 0's keys went first; its ETags still decide.
      expect((await put(0, 'key-03', 'stale', { 'if-match': '"1"' })).status).toBe(412);
      const next = await put(0, 'key-03', 'fresh', { 'if-match': etags.get('0/3')! });
      expect(next.status).toBe(200);
      expect(next.headers.get('etag')).not.toBe(etags.get('0/3'));
      expect((await put(0, 'key-04', 'again', { 'if-none-match': '*' })).status).toBe(412);
      const got = await fetch(`${server.url}/v1/kv/key-03`, { headers: { authorization: `Bearer ${keys[0]}` } });
      expect(await got.text()).toBe('fresh');
      text = await metrics();
      expect(figure(text, 'quartz_kv_cached_key_bytes')).toBeLessThanOrEqual(budget);
      expect(figure(text, 'quartz_kv_cached_keys')).toBe(figure(text, 'quartz_kv_cached_key_bytes') / slotBytes('key-00'));
    } finally {
      await server.close('test done');
    }
  });
});
