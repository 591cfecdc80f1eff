/**
 * The settings tables of docs/streams.md cannot drift from the API: each topic setting's default
 * is what a topic created without it gets, and each numeric range is exactly what
 * `POST /v1/topics` takes (its bounds accepted, one past them refused with 400); the same for the
 * consume parameters' defaults and ranges.
 */
import { readFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createApp } from '../../src/api/app.js';
import { resolveServerConfig } from '../../src/api/config.js';
import type { Engine } from '../../src/engine/engine.js';
import { createTestEngine } from '../../src/engine/testing.js';
import '../../src/node/core.js';

const doc = readFileSync(new URL('../../docs/streams.md', import.meta.url), 'utf8');

interface Setting {
  name: string;
  fallback: string;
  allowed: string;
}

/** The rows of the first table after `heading` whose first cell is one `code` span. */
function settings(heading: string): Setting[] {
  const lines = doc.slice(doc.indexOf(heading)).split('\n');
  const first = lines.findIndex((l) => l.startsWith('|'));
  const rows = lines.slice(first + 2, first + lines.slice(first).findIndex((l) => !l.startsWith('|')));
  return rows.map((row) => {
    const [, name, fallback, allowed] = row.split('|').map((c) => c.trim());
    return { name: /^`([a-z_]+)`$/.exec(name!)?.[1] ?? '', fallback: fallback!, allowed: allowed! };
  });
}

const UNITS: Record<string, number> = { KiB: 2 ** 10, MiB: 2 ** 20, GiB: 2 ** 30 };

/** '8388608 (8 MiB)', '−1 (no limit)', '1 MiB', '500' → the number it states first. */
function amount(text: string): number {
  const m = /^([−-]?\d+)(?: (KiB|MiB|GiB)\b)?/.exec(text.trim());
  expect(m, `'${text}' starts with a number`).not.toBeNull();
  return Number(m![1]!.replace('−', '-')) * (m![2] ? UNITS[m![2]]! : 1);
}

/** '1–1024', '1024 – 1 GiB', '−1 or more' → [min, max] (max undefined when unbounded). */
function range(text: string): [number, number | undefined] {
  const more = /^(.+) or more$/.exec(text);
  if (more) return [amount(more[1]!), undefined];
  const [low, high] = text.split(/\s*–\s*/);
  return [amount(low!), amount(high!)];
}

let engine: Engine;
let call: (method: string, path: string, body?: unknown) => Promise<{ status: number; json: Record<string, unknown> }>;

beforeEach(async () => {
  engine = await createTestEngine();
  const app = createApp({ engine, config: resolveServerConfig({ version: '0.0.0', admin_key_hash: null }) });
  const { api_key } = await engine.tenants.create({ email: 'streams-doc@example.com', plan: 'unlimited' });
  call = async (method, path, body) => {
    const headers = { authorization: `Bearer ${api_key}`, 'content-type': 'application/json' };
    const res = await app.fetch(new Request(`http://local${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) }));
    return { status: res.status, json: (await res.json()) as Record<string, unknown> };
  };
});

afterEach(async () => {
  await engine.close();
});

describe('docs/streams.md topic settings table', () => {
  it('gives the defaults a topic gets and the ranges POST /v1/topics takes', async () => {
    const numeric = settings('## Topics').filter((s) => /^\d|^−/.test(s.fallback));
    expect(numeric.map((s) => s.name)).toEqual(['partitions', 'retention_ms', 'retention_bytes', 'segment_bytes', 'segment_ms']);
    const created = await call('POST', '/v1/topics', { name: 'defaults' });
    expect(created.status).toBe(201);
    let n = 0;
    for (const setting of numeric) {
      expect(created.json[setting.name], `${setting.name} defaults to ${setting.fallback}`).toBe(amount(setting.fallback));
      const [min, max] = range(setting.allowed);
      const statusFor = async (value: number) => (await call('POST', '/v1/topics', { name: `t${n++}`, [setting.name]: value })).status;
      expect(await statusFor(min), `${setting.name} ${min}`).toBe(201);
      expect(await statusFor(min - 1), `${setting.name} ${min - 1}`).toBe(400);
      if (max !== undefined) {
        expect(await statusFor(max), `${setting.name} ${max}`).toBe(201);
        expect(await statusFor(max + 1), `${setting.name} ${max + 1}`).toBe(400);
      }
    }
  });
});

describe('docs/streams.md consume parameters table', () => {
  it('gives the ranges the consume route takes and the default page size', async () => {
    const params = settings('## Consume').filter((s) => s.name === 'max_records' || s.name === 'max_bytes');
    expect(params.map((s) => s.name)).toEqual(['max_records', 'max_bytes']);
    expect((await call('POST', '/v1/topics', { name: 'c' })).status).toBe(201);
    const defaultRecords = amount(params[0]!.fallback);
    const records = Array.from({ length: defaultRecords + 1 }, () => ({ value: 'x' }));
    expect((await call('POST', '/v1/topics/c/records', { records })).status).toBe(200);
    const page = await call('GET', '/v1/topics/c/partitions/0/records');
    expect((page.json.records as unknown[]).length, `max_records defaults to ${defaultRecords}`).toBe(defaultRecords);
    for (const param of params) {
      const [min, max] = range(param.allowed);
      const statusFor = async (value: number) => (await call('GET', `/v1/topics/c/partitions/0/records?${param.name}=${value}`)).status;
      expect([await statusFor(min), await statusFor(max!)], `${param.name} ${min} and ${max}`).toEqual([200, 200]);
      expect([await statusFor(min - 1), await statusFor(max! + 1)], `${param.name} ${min - 1} and ${max! + 1}`).toEqual([400, 400]);
    }
  });
});
