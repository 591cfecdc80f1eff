/**
 * The core in Chromium: a real loopback HTTP server serves the built package (dist/ + build/),
 * the page imports quartzdb/browser's entry as an ES module, and `init()` with no argument
 * fetches the wasm from next to the package.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { extname, join, normalize, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type BrowserContext } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt } from './built.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const chromiumPath = '/usr/bin/chromium';
const types: Record<string, string> = { '.js': 'text/javascript', '.wasm': 'application/wasm', '.map': 'application/json' };

const page = `<!doctype html><meta charset="utf-8"><title>quartzdb core</title>
<script type="module">
  try {
    const quartz = await import('/dist/web/index.js');
    const module = await quartz.init();
    const wasm = quartz.instantiate();
    const ptr = wasm.alloc(32);
    const bytes = new Uint8Array(wasm.memory.buffer, ptr, 32);
    bytes.fill(9);
    const sum = bytes.reduce((a, b) => a + b, 0);
    wasm.free(ptr);
    window.result = { ok: true, compiledModule: module instanceof WebAssembly.Module, sameModule: (await quartz.init()) === module, sum };
  } catch (err) {
    window.result = { ok: false, code: err && err.code, error: String((err && err.stack) || err) };
  }
</script>`;

/** Serves the page at / and files under dist/ and build/ only; records each request. */
function serve(requests: string[]): Promise<Server> {
  const server = createServer(async (req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    requests.push(path);
    if (path === '/') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(page);
      return;
    }
    const file = normalize(join(root, path));
    const allowed = [join(root, 'dist') + sep, join(root, 'build') + sep].some((dir) => file.startsWith(dir));
    if (!allowed || !existsSync(file)) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': types[extname(file)] ?? 'application/octet-stream' }).end(await readFile(file));
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

describe('quartzdb/browser in Chromium', () => {
  const requests: string[] = [];
  let server: Server;
  let context: BrowserContext;
  let userDataDir: string;

  beforeAll(async () => {
    if (!existsSync(chromiumPath)) {
      throw new Error(`Chromium is missing at ${chromiumPath}: install it with \`apt-get install -y chromium\` (.ci/run does this)`);
    }
    assertBuilt(['dist/web/index.js', 'dist/web/core.js']);
    server = await serve(requests);
    userDataDir = await mkdtemp(join(tmpdir(), 'quartz-chromium-'));
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: chromiumPath,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
  });

  afterAll(async () => {
    await context?.close();
    await new Promise((resolve) => (server ? server.close(resolve) : resolve(undefined)));
    if (userDataDir) await rm(userDataDir, { recursive: true, force: true });
  });

  it('init() with no argument, then the core computes', async () => {
    const tab = await context.newPage();
    const { port } = server.address() as AddressInfo;
    await tab.goto(`http://127.0.0.1:${port}/`);
    await tab.waitForFunction(() => (window as unknown as { result?: unknown }).result !== undefined, undefined, { timeout: 30_000 });
    const result = await tab.evaluate(() => (window as unknown as { result: unknown }).result);
    expect(result).toEqual({ ok: true, compiledModule: true, sameModule: true, sum: 9 * 32 });
    // The wasm came from its default place next to the package, fetched once.
    expect(requests.filter((p) => p.endsWith('.wasm'))).toEqual(['/build/quartz.wasm']);
  });
});
