import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ErrorCode } from '../../core/errors.js';
import { isLoopback, resolveServeSettings } from './settings.js';

async function configFile(content: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'quartz-settings-'));
  const path = join(dir, 'quartz.json');
  await writeFile(path, content);
  return path;
}

describe('resolveServeSettings', () => {
  it('uses the defaults with nothing given', async () => {
    const s = await resolveServeSettings({}, {});
    expect(s).toMatchObject({ host: '127.0.0.1', port: 8787, dataDir: './.quartz', logLevel: 'info' });
    expect(s.app).toMatchObject({ default_plan: 'unlimited', registration_enabled: true, cors_origins: ['*'] });
    expect(new Set(Object.values(s.sources))).toEqual(new Set(['default']));
  });

  it('takes a flag over the environment over the file over the default', async () => {
    const file = await configFile(JSON.stringify({ port: 1111, host: '127.0.0.2', data_dir: '/f', log_level: 'warn', default_plan: 'free', registration_enabled: false }));
    const env = { QUARTZ_PORT: '2222', QUARTZ_HOST: '127.0.0.3', QUARTZ_DEFAULT_PLAN: 'pro' };
    const s = await resolveServeSettings({ config: file, port: '3333' }, env);
    expect(s.port).toBe(3333);
    expect(s.sources.port).toBe('flag');
    expect(s.host).toBe('127.0.0.3');
    expect(s.sources.host).toBe('env');
    expect(s.app.default_plan).toBe('pro');
    expect(s.dataDir).toBe('/f');
    expect(s.sources.data).toBe('file');
    expect(s.logLevel).toBe('warn');
    expect(s.app.registration_enabled).toBe(false);
  });

  it('drops a damaged write-ahead log only when a flag or the environment says so, never the config file', async () => {
    expect((await resolveServeSettings({}, {})).dropDamagedLog).toBe(false);
    expect((await resolveServeSettings({ dropDamagedLog: true }, {})).dropDamagedLog).toBe(true);
    expect((await resolveServeSettings({}, { QUARTZ_DROP_DAMAGED_LOG: '1' })).dropDamagedLog).toBe(true);
    expect((await resolveServeSettings({}, { QUARTZ_DROP_DAMAGED_LOG: 'false' })).dropDamagedLog).toBe(false);
    await expect(resolveServeSettings({}, { QUARTZ_DROP_DAMAGED_LOG: 'maybe' })).rejects.toThrow("QUARTZ_DROP_DAMAGED_LOG must be true or false, got 'maybe'");
    const file = await configFile(JSON.stringify({ drop_damaged_log: true }));
    await expect(resolveServeSettings({ config: file }, {})).rejects.toThrow(/drop_damaged_log/);
  });

  it('takes the open-collection budget and idle close from a flag, the environment or the file', async () => {
    const none = await resolveServeSettings({}, {});
    expect([none.openCollectionsMaxBytes, none.collectionIdleCloseMs]).toEqual([undefined, 600_000]);
    const file = await configFile(JSON.stringify({ open_collections_max_bytes: 1_000_000, collection_idle_close_ms: 0 }));
    expect(await resolveServeSettings({ config: file }, {})).toMatchObject({ openCollectionsMaxBytes: 1_000_000, collectionIdleCloseMs: 0 });
    const env = { QUARTZ_OPEN_COLLECTIONS_MAX_BYTES: '2000000', QUARTZ_COLLECTION_IDLE_CLOSE_MS: '5000' };
    expect(await resolveServeSettings({ config: file }, env)).toMatchObject({ openCollectionsMaxBytes: 2_000_000, collectionIdleCloseMs: 5000 });
    expect(await resolveServeSettings({ config: file, openCollectionsMaxBytes: '3000000', collectionIdleCloseMs: '7' }, env)).toMatchObject({ openCollectionsMaxBytes: 3_000_000, collectionIdleCloseMs: 7 });
    await expect(resolveServeSettings({ openCollectionsMaxBytes: '1.5GB' }, {})).rejects.toThrow("--open-collections-max-bytes must be a whole number, got '1.5GB'");
    const negative = await configFile(JSON.stringify({ collection_idle_close_ms: -1 }));
    await expect(resolveServeSettings({ config: negative }, {})).rejects.toThrow(/collection_idle_close_ms/);
  });

  it('takes the budget of request bodies from a flag, the environment or the file', async () => {
    expect((await resolveServeSettings({}, {})).requestBodiesMaxBytes).toBeUndefined();
    const file = await configFile(JSON.stringify({ request_bodies_max_bytes: 1_000_000 }));
    expect((await resolveServeSettings({ config: file }, {})).requestBodiesMaxBytes).toBe(1_000_000);
    const env = { QUARTZ_REQUEST_BODIES_MAX_BYTES: '2000000' };
    expect((await resolveServeSettings({ config: file }, env)).requestBodiesMaxBytes).toBe(2_000_000);
    expect((await resolveServeSettings({ config: file, requestBodiesMaxBytes: '3000000' }, env)).requestBodiesMaxBytes).toBe(3_000_000);
    await expect(resolveServeSettings({ requestBodiesMaxBytes: '256MiB' }, {})).rejects.toThrow("--request-bodies-max-bytes must be a whole number, got '256MiB'");
    const negative = await configFile(JSON.stringify({ request_bodies_max_bytes: -1 }));
    await expect(resolveServeSettings({ config: negative }, {})).rejects.toThrow(/request_bodies_max_bytes/);
  });

  it('takes the KV key cache budget and the tenant idle time from a flag, the environment or the file', async () => {
    const none = await resolveServeSettings({}, {});
    expect([none.kvKeyCacheMaxBytes, none.tenantIdleMs]).toEqual([undefined, 600_000]);
    const file = await configFile(JSON.stringify({ kv_key_cache_max_bytes: 1_000_000, tenant_idle_ms: 0 }));
    expect(await resolveServeSettings({ config: file }, {})).toMatchObject({ kvKeyCacheMaxBytes: 1_000_000, tenantIdleMs: 0 });
    const env = { QUARTZ_KV_KEY_CACHE_MAX_BYTES: '2000000', QUARTZ_TENANT_IDLE_MS: '5000' };
    expect(await resolveServeSettings({ config: file }, env)).toMatchObject({ kvKeyCacheMaxBytes: 2_000_000, tenantIdleMs: 5000 });
    expect(await resolveServeSettings({ config: file, kvKeyCacheMaxBytes: '3000000', tenantIdleMs: '7' }, env)).toMatchObject({ kvKeyCacheMaxBytes: 3_000_000, tenantIdleMs: 7 });
    await expect(resolveServeSettings({ kvKeyCacheMaxBytes: '64MiB' }, {})).rejects.toThrow("--kv-key-cache-max-bytes must be a whole number, got '64MiB'");
    await expect(resolveServeSettings({}, { QUARTZ_TENANT_IDLE_MS: '-1' })).rejects.toThrow("QUARTZ_TENANT_IDLE_MS must be a whole number, got '-1'");
    const negative = await configFile(JSON.stringify({ tenant_idle_ms: -1 }));
    await expect(resolveServeSettings({ config: negative }, {})).rejects.toThrow(/tenant_idle_ms/);
  });

  it('reads the config file named by QUARTZ_CONFIG, and lists from the environment', async () => {
    const file = await configFile(JSON.stringify({ cors_origins: ['https://a.example'], plans: { team: { requests_per_minute: 5 } }, default_plan: 'team' }));
    const s = await resolveServeSettings({}, { QUARTZ_CONFIG: file, QUARTZ_REGISTRATION: 'off' });
    expect(s.app.plans).toEqual({ team: { requests_per_minute: 5 } });
    expect(s.app.cors_origins).toEqual(['https://a.example']);
    expect(s.app.registration_enabled).toBe(false);
    const t = await resolveServeSettings({}, { QUARTZ_CONFIG: file, QUARTZ_CORS_ORIGINS: 'https://b.example, https://c.example' });
    expect(t.app.cors_origins).toEqual(['https://b.example', 'https://c.example']);
  });

  it('reads a config file that starts with a byte order mark', async () => {
    const file = await configFile('\uFEFF{"port": 9100}');
    await expect(resolveServeSettings({ config: file }, {})).resolves.toMatchObject({ port: 9100, sources: { port: 'file' } });
  });

  it('reports a bad file in one line naming the file and the field', async () => {
    const wrongType = await configFile(JSON.stringify({ port: 'eighty' }));
    await expect(resolveServeSettings({ config: wrongType }, {})).rejects.toMatchObject({
      code: ErrorCode.INVALID_ARGUMENT,
      message: expect.stringMatching(new RegExp(`^config file ${wrongType}: port: .+$`)),
    });
    const unknown = await configFile(JSON.stringify({ prot: 1 }));
    await expect(resolveServeSettings({ config: unknown }, {})).rejects.toThrow(/prot/);
    const badPlan = await configFile(JSON.stringify({ plans: { Free: { requests_per_minute: 100 } } }));
    await expect(resolveServeSettings({ config: badPlan }, {})).rejects.toThrow(`config file ${badPlan}: plans.Free: not a valid name: must be 1-64 lower-case letters, digits, - or _`);
    // JSON.parse keeps '__proto__' as an own key, which a zod record drops without a word
    const protoPlan = await configFile('{"plans": {"__proto__": {"requests_per_minute": 5}, "unlimited": {"requests_per_minute": null}}}');
    await expect(resolveServeSettings({ config: protoPlan }, {})).rejects.toThrow(`config file ${protoPlan}: plans: '__proto__' is not a plan name`);
    const notJson = await configFile('{ port: 1');
    await expect(resolveServeSettings({ config: notJson }, {})).rejects.toThrow(/not valid JSON/);
    await expect(resolveServeSettings({ config: '/nonexistent/quartz.json' }, {})).rejects.toThrow(/cannot read it \(ENOENT\)/);
  });

  it('names where an unknown default plan came from', async () => {
    const plans = { plans: { gold: { requests_per_minute: 5 } } };
    await expect(resolveServeSettings({ defaultPlan: 'gold' }, {})).rejects.toThrow(/^--default-plan 'gold' is not one of the plans \(free, pro, unlimited\)$/);
    await expect(resolveServeSettings({}, { QUARTZ_DEFAULT_PLAN: 'gold' })).rejects.toThrow(/^QUARTZ_DEFAULT_PLAN 'gold' is not one of the plans/);
    const named = await configFile(JSON.stringify({ default_plan: 'gold' }));
    await expect(resolveServeSettings({ config: named }, {})).rejects.toThrow(`config file ${named}: default_plan: 'gold' is not one of the plans (free, pro, unlimited)`);
    // Plans without `unlimited` and no default_plan: the default itself is missing from them.
    const withoutDefault = await configFile(JSON.stringify(plans));
    await expect(resolveServeSettings({ config: withoutDefault }, {})).rejects.toThrow(`config file ${withoutDefault}: plans: the default plan 'unlimited' is not among them (gold); add it or set default_plan`);
    await expect(resolveServeSettings({ config: withoutDefault, defaultPlan: 'gold' }, {})).resolves.toMatchObject({ app: { default_plan: 'gold' } });
    // A plan name that only exists on Object.prototype is no plan.
    await expect(resolveServeSettings({ defaultPlan: 'constructor' }, {})).rejects.toThrow(/is not one of the plans/);
  });

  it('rejects bad flag and environment values naming them', async () => {
    await expect(resolveServeSettings({ port: '70000' }, {})).rejects.toThrow(/--port must be a port number/);
    await expect(resolveServeSettings({}, { QUARTZ_PORT: 'x' })).rejects.toThrow(/QUARTZ_PORT/);
    await expect(resolveServeSettings({ logLevel: 'loud' }, {})).rejects.toThrow(/--log-level must be one of/);
    await expect(resolveServeSettings({}, { QUARTZ_REGISTRATION: 'maybe' })).rejects.toThrow(/QUARTZ_REGISTRATION must be true or false/);
    await expect(resolveServeSettings({}, { QUARTZ_CORS_ORIGINS: ' , ' })).rejects.toThrow(/QUARTZ_CORS_ORIGINS must name at least one origin/);
    // An origin is compared as the exact string a browser sends: one with a path, no scheme or a
    // capital letter would never match, so it is refused rather than allow nothing silently.
    await expect(resolveServeSettings({}, { QUARTZ_CORS_ORIGINS: 'https://a.example, app.example.com' })).rejects.toThrow(
      "QUARTZ_CORS_ORIGINS: 'app.example.com' is not an origin (scheme://host[:port] as browsers send it in Origin, e.g. https://app.example.com)",
    );
    await expect(resolveServeSettings({}, { QUARTZ_CORS_ORIGINS: 'https://App.example.com:443/' })).rejects.toThrow(/did you mean 'https:\/\/app\.example\.com'\?$/);
    await expect(resolveServeSettings({}, { QUARTZ_CORS_ORIGINS: 'https://a.example,http://localhost:5173,null,capacitor://localhost' })).resolves.toMatchObject({
      app: { cors_origins: ['https://a.example', 'http://localhost:5173', 'null', 'capacitor://localhost'] },
    });
    await expect(resolveServeSettings({ host: '' }, {})).rejects.toThrow(/^--host must not be empty$/);
    await expect(resolveServeSettings({ data: '' }, {})).rejects.toThrow(/^--data must not be empty$/);
    // An empty variable is unset, as shells leave them.
    await expect(resolveServeSettings({}, { QUARTZ_HOST: '', QUARTZ_DATA: '' })).resolves.toMatchObject({ host: '127.0.0.1', dataDir: './.quartz' });
  });
});

describe('isLoopback', () => {
  it('tells loopback addresses from the rest', () => {
    for (const h of ['127.0.0.1', '127.1.2.3', '::1', '[::1]', '0:0:0:0:0:0:0:1', '::ffff:127.0.0.1', '::FFFF:127.9.8.7', '::ffff:7f00:1']) expect(isLoopback(h), h).toBe(true);
    // Addresses, never names: the server asks it of the address it bound.
    for (const h of ['0.0.0.0', '::', '192.168.1.2', '::ffff:192.168.1.2', '::ffff:0.0.0.0', '::2', 'localhost', 'example.com', '127.0.0.1.example.com']) expect(isLoopback(h), h).toBe(false);
  });
});
