/**
 * The core in Chromium: a real loopback HTTP server serves the built package (dist/ + build/),
 * the page imports quartzdb/browser's entry as an ES module, and `init()` with no argument
 * fetches the wasm from next to the package; then the same through a vite build of a tiny app.
 */
import { existsSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
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

const pageScript = `
  try {
    const quartz = await import('/dist/web/index.js');
    const module = await quartz.init();
    const wasm = quartz.instantiate();
    const ptr = wasm.alloc(32);
    const bytes = new Uint8Array(wasm.memory.buffer, ptr, 32);
    bytes.fill(9);
    const sum = bytes.reduce((a, b) => a + b, 0);
    wasm.free(ptr);
    const text = new TextEncoder().encode('QuartzDB segments are LZ4 frames. '.repeat(500));
    const packed = quartz.lz4.compressFrame(text);
    const unpacked = quartz.lz4.decompressFrame(packed);
    window.result = {
      ok: true,
      compiledModule: module instanceof WebAssembly.Module,
      sameModule: (await quartz.init()) === module,
      sum,
      crc32c: quartz.crc32c(new TextEncoder().encode('123456789')),
      lz4Smaller: packed.length < text.length / 10,
      lz4RoundTrip: unpacked.length === text.length && unpacked.every((b, i) => b === text[i]),
    };
  } catch (err) {
    window.result = { ok: false, code: err && err.code, error: String((err && err.stack) || err) };
  }
`;
const page = `<!doctype html><meta charset="utf-8"><title>quartzdb core</title><script type="module">${pageScript}</script>`;
const expected = { ok: true, compiledModule: true, sameModule: true, sum: 9 * 32, crc32c: 0xe3069283, lz4Smaller: true, lz4RoundTrip: true };

/** Serves `index` at / and files under `dirs` of `base` only; records each request. */
function serve(requests: string[], base: string, dirs: string[], index: string): Promise<Server> {
  const server = createServer(async (req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    requests.push(path);
    if (path === '/') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(index);
      return;
    }
    const file = normalize(join(base, path));
    const allowed = dirs.some((dir) => file.startsWith(join(base, dir) + sep));
    if (!allowed || !existsSync(file)) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': types[extname(file)] ?? 'application/octet-stream' }).end(await readFile(file));
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

async function runPage(context: BrowserContext, server: Server): Promise<unknown> {
  const tab = await context.newPage();
  try {
    const { port } = server.address() as AddressInfo;
    await tab.goto(`http://127.0.0.1:${port}/`);
    await tab.waitForFunction(() => (window as unknown as { result?: unknown }).result !== undefined, undefined, { timeout: 30_000 });
    return await tab.evaluate(() => (window as unknown as { result: unknown }).result);
  } finally {
    await tab.close();
  }
}

/**
 * Chromium may hold a preconnected socket that never sent a request; `close()` alone waits for
 * it until the server's 60 s headers timeout, so drop every connection once the page is done.
 */
function close(server: Server | undefined): Promise<void> {
  if (!server) return Promise.resolve();
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeAllConnections();
  return closed;
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
    server = await serve(requests, root, ['dist', 'build'], page);
    userDataDir = await mkdtemp(join(tmpdir(), 'quartz-chromium-'));
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: chromiumPath,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      // Within the 60 s hook timeout (playwright's default is 3 min), so a launch that hangs fails
      // with playwright's own message and its browser is killed, not left running.
      timeout: 45_000,
    });
  });

  afterAll(async () => {
    await context?.close();
    await close(server);
    if (userDataDir) await rm(userDataDir, { recursive: true, force: true });
  });

  it('init() with no argument, then the core computes', async () => {
    expect(await runPage(context, server)).toEqual(expected);
    // The wasm came from its default place next to the package, fetched once.
    expect(requests.filter((p) => p.endsWith('.wasm'))).toEqual(['/build/quartz.wasm']);
  });

  it('a vite build of an app importing quartzdb/browser ships the wasm and runs', async () => {
    const app = await mkdtemp(join(tmpdir(), 'quartz-vite-'));
    let appServer: Server | undefined;
    try {
      await mkdir(join(app, 'node_modules'));
      await symlink(root, join(app, 'node_modules', 'quartzdb'), 'dir');
      await writeFile(join(app, 'index.html'), '<!doctype html><script type="module" src="./main.js"></script>');
      await writeFile(join(app, 'main.js'), pageScript.replace("import('/dist/web/index.js')", "import('quartzdb/browser')"));
      execFileSync(process.execPath, [join(root, 'node_modules/vite/bin/vite.js'), 'build', '--logLevel', 'error'], { cwd: app, stdio: 'pipe' });
      const built = await readFile(join(app, 'dist/index.html'), 'utf8');
      const appRequests: string[] = [];
      appServer = await serve(appRequests, join(app, 'dist'), ['assets'], built);
      expect(await runPage(context, appServer)).toEqual(expected);
      expect(appRequests.filter((p) => p.endsWith('.wasm'))).toEqual([expect.stringMatching(/^\/assets\/quartz-.*\.wasm$/)]);
    } finally {
      await close(appServer);
      await rm(app, { recursive: true, force: true });
    }
  });
});
