/**
 * The defaults column of docs/configuration.md's settings table cannot drift: each fixed default
 * it states is what `quartz serve` resolves with no flag, variable or file (the defaults that
 * depend on the machine's memory, and the generated admin key, are stated in words and left out).
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { resolveServerConfig } from '../../src/api/config.js';
import { resolveServeSettings } from '../../src/node/server/settings.js';

const doc = readFileSync(new URL('../../docs/configuration.md', import.meta.url), 'utf8');

/** config file key (or, without one, the flag) → the default cell, from the settings table. */
function documentedDefaults(): Map<string, string> {
  const lines = doc.slice(doc.indexOf('## Where settings come from')).split('\n');
  const first = lines.findIndex((l) => l.startsWith('| setting |'));
  const rows = lines.slice(first + 2, first + lines.slice(first).findIndex((l) => !l.startsWith('|')));
  const out = new Map<string, string>();
  for (const row of rows) {
    const cells = row.split(/(?<!\\)\|/).map((c) => c.trim());
    const [, , flag, , key, fallback] = cells;
    const name = /`([a-z_]+)`/.exec(key!)?.[1] ?? /`(--[a-z-]+)`/.exec(flag!)?.[1];
    if (name !== undefined) out.set(name, fallback!);
  }
  return out;
}

const MiB = 2 ** 20;

describe('docs/configuration.md defaults', () => {
  it('are what quartz serve resolves when nothing is set', async () => {
    const settings = await resolveServeSettings({}, {});
    const config = resolveServerConfig({ version: '0.0.0', admin_key_hash: null, ...settings.app });
    const actual: Record<string, string> = {
      host: `\`${settings.host}\``,
      port: `\`${settings.port}\``,
      data_dir: `\`${settings.dataDir}\``,
      log_level: `\`${settings.logLevel}\``,
      default_plan: `\`${config.default_plan}\``,
      registration_enabled: `\`${config.registration_enabled}\``,
      registrations_per_minute: `\`${config.registrations_per_minute}\``,
      cors_origins: `\`${JSON.stringify(config.cors_origins)}\``,
      plans: Object.entries(config.plans)
        .map(([name, plan]) => `\`${name}\`${plan.requests_per_minute === null ? '' : ` ${plan.requests_per_minute.toLocaleString('en-US')}/min`}`)
        .join(', '),
      body_limits: Object.entries(config.body_limits)
        .map(([name, bytes]) => `\`${name}\` ${bytes / MiB} MiB`)
        .join(', '),
      long_poll_max_ms: `\`${config.long_poll_max_ms}\``,
      '--drop-damaged-log': settings.dropDamagedLog ? 'on' : 'off',
      collection_idle_close_ms: `\`${settings.collectionIdleCloseMs}\` (${settings.collectionIdleCloseMs / 60_000} minutes)`,
      tenant_idle_ms: `\`${settings.tenantIdleMs}\` (${settings.tenantIdleMs / 60_000} minutes)`,
    };
    const documented = documentedDefaults();
    expect(documented.size).toBeGreaterThan(Object.keys(actual).length);
    for (const [name, value] of Object.entries(actual)) expect(documented.get(name), name).toBe(value);
  });
});
