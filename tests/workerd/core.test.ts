/**
 * The core in workerd, the real Workers runtime (through Miniflare): the built quartzdb/worker
 * entry is loaded with its .wasm as a CompiledWasm module and `init()` runs with no argument.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Miniflare } from 'miniflare';
import { assertBuilt } from '../e2e/built.js';

const root = fileURLToPath(new URL('../../', import.meta.url));

function jsFiles(dir: string): string[] {
  return readdirSync(join(root, dir), { recursive: true, encoding: 'utf8' })
    .filter((name) => name.endsWith('.js'))
    .map((name) => join(root, dir, name));
}

// No telemetry, no fetching of request.cf data from the network.
process.env.CI = 'true';
process.env.WRANGLER_SEND_METRICS = 'false';
process.env.CLOUDFLARE_CF_FETCH_ENABLED = 'false';

describe('quartzdb/worker in workerd', () => {
  let mf: Miniflare;

  beforeAll(async () => {
    assertBuilt(['dist/worker/index.js', 'dist/worker/core.js']);
    mf = new Miniflare({
      // The modules are listed rather than collected: Miniflare's collector refuses the
      // non-literal `import()` in wasmPackGlueFromSource, which wrangler's bundler leaves alone.
      modules: [
        { type: 'ESModule', path: join(root, 'tests/workerd/fixture.worker.js') },
        ...jsFiles('dist/worker').concat(jsFiles('dist/src/core')).map((path) => ({ type: 'ESModule' as const, path })),
        { type: 'CompiledWasm', path: join(root, 'build/quartz.wasm') },
      ],
      modulesRoot: root,
      compatibilityDate: '2025-01-01',
      cf: false,
    });
    await mf.ready;
  });

  afterAll(async () => {
    await mf?.dispose();
  });

  it('init() with no argument, then the core computes', async () => {
    const response = await mf.dispatchFetch('http://localhost/');
    const body = (await response.json()) as Record<string, unknown>;
    expect(body).toEqual({ ok: true, compiledModule: true, sameModule: true, sum: 9 * 32, crc32c: 0xe3069283, lz4Smaller: true, lz4RoundTrip: true });
  });

  it('workerd refuses to compile bytes at request time, and the loader says so as a QuartzError', async () => {
    const response = await mf.dispatchFetch('http://localhost/compile-bytes');
    const body = (await response.json()) as Record<string, unknown>;
    expect(body).toMatchObject({ compiled: false, name: 'QuartzError', code: 'wasm_load_failed' });
    expect(body.message).toMatch(/could not compile the wasm from 8 bytes: .*disallowed/);
  });
});
