/**
 * The Routes table of docs/api.md cannot drift from the OpenAPI document the app serves: it
 * names every documented operation and no other (besides the home's `/docs` and `/metrics`).
 */
import { readFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import '../node/core.js';
import type { Engine } from '../engine/engine.js';
import { createTestEngine } from '../engine/testing.js';
import { createApp } from './app.js';
import { hashKey, resolveServerConfig } from './config.js';

const doc = readFileSync(new URL('../../docs/api.md', import.meta.url), 'utf8');

/** 'GET /v1/kv/{}' for each operation the Routes table names; path parameters are left unnamed. */
function tableOperations(): string[] {
  const section = doc.slice(doc.indexOf('## Routes'), doc.indexOf('## Errors'));
  const ops: string[] = [];
  // `PUT`/`GET`/`DELETE /v1/kv/:key`: the methods before the path share it.
  for (const m of section.matchAll(/((?:`[A-Z]+`\/)*)`([A-Z]+) (\/[^`\s]+)`/g)) {
    const methods = [...m[1]!.matchAll(/[A-Z]+/g)].map((x) => x[0]).concat(m[2]!);
    for (const method of methods) ops.push(`${method} ${m[3]!.replace(/:[a-z_]+/g, '{}')}`);
  }
  return ops.sort();
}

let engine: Engine;
beforeEach(async () => {
  engine = await createTestEngine();
});
afterEach(async () => {
  await engine.close();
});

describe('docs/api.md routes table', () => {
  it('names every operation of /v1/openapi.json, and only those besides /docs and /metrics', async () => {
    const app = createApp({ engine, config: resolveServerConfig({ version: '0.0.0', admin_key_hash: await hashKey('admin-key') }) });
    const openapi = (await (await app.fetch(new Request('http://local/v1/openapi.json'))).json()) as { paths: Record<string, Record<string, unknown>> };
    const served = Object.entries(openapi.paths).flatMap(([path, ops]) => Object.keys(ops).map((method) => `${method.toUpperCase()} ${path.replace(/\{[^}]+\}/g, '{}')}`));
    expect(served.length).toBeGreaterThan(0);
    expect(tableOperations()).toEqual([...served, 'GET /docs', 'GET /metrics'].sort());
  });
});
