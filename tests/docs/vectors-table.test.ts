/**
 * The Collections table of docs/vectors.md cannot drift from the API: each numeric setting's range
 * is exactly what `POST /v1/collections` takes (its bounds accepted, one past them refused with
 * 400), and the stated defaults are what a collection created without them gets.
 */
import { readFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createApp } from '../../src/api/app.js';
import { resolveServerConfig } from '../../src/api/config.js';
import type { Engine } from '../../src/engine/engine.js';
import { createTestEngine } from '../../src/engine/testing.js';
import '../../src/node/core.js';

const doc = readFileSync(new URL('../../docs/vectors.md', import.meta.url), 'utf8');

/** field → its rule, from the table under '## Collections'. */
function rules(): Map<string, string> {
  const lines = doc.slice(doc.indexOf('## Collections')).split('\n');
  const first = lines.findIndex((l) => l.startsWith('|'));
  const rows = lines.slice(first + 2, first + lines.slice(first).findIndex((l) => !l.startsWith('|')));
  return new Map(rows.map((row) => row.split('|').map((c) => c.trim())).map(([, field, rule]) => [/`(\w+)`/.exec(field!)![1]!, rule!]));
}

/** The HTTP spelling of each library setting the table names. */
const HTTP_NAME: Record<string, string> = { dims: 'dims', M: 'm', efConstruction: 'ef_construction' };

let engine: Engine;
let create: (body: Record<string, unknown>) => Promise<{ status: number; json: Record<string, unknown> }>;

beforeEach(async () => {
  engine = await createTestEngine();
  const app = createApp({ engine, config: resolveServerConfig({ version: '0.0.0', admin_key_hash: null }) });
  const { api_key } = await engine.tenants.create({ email: 'vectors-doc@example.com', plan: 'unlimited' });
  create = async (body) => {
    const headers = { authorization: `Bearer ${api_key}`, 'content-type': 'application/json' };
    const res = await app.fetch(new Request('http://local/v1/collections', { method: 'POST', headers, body: JSON.stringify(body) }));
    return { status: res.status, json: (await res.json()) as Record<string, unknown> };
  };
});

afterEach(async () => {
  await engine.close();
});

describe('docs/vectors.md collections table', () => {
  it('gives the ranges and defaults POST /v1/collections has', async () => {
    const table = rules();
    const plain = await create({ name: 'plain', dims: 3, metric: 'cosine' });
    expect(plain.status).toBe(201);
    let n = 0;
    for (const [field, http] of Object.entries(HTTP_NAME)) {
      const rule = table.get(field);
      expect(rule, `the table has a row for ${field}`).toBeDefined();
      const [, low, high] = /(\d+)–(\d+)/.exec(rule!)!.map(Number);
      const fallback = /default (\d+)/.exec(rule!);
      if (fallback) expect(plain.json[http], `${field} defaults to ${fallback[1]}`).toBe(Number(fallback[1]));
      const statusFor = async (value: number) => (await create({ name: `c${n++}`, dims: 3, metric: 'l2', [http]: value })).status;
      expect([await statusFor(low!), await statusFor(high!)], `${field} ${low} and ${high}`).toEqual([201, 201]);
      expect([await statusFor(low! - 1), await statusFor(high! + 1)], `${field} ${low! - 1} and ${high! + 1}`).toEqual([400, 400]);
    }
  });
});
