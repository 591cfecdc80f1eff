/**
 * /docs in Chromium: a real `quartz serve` process serves Swagger UI from its own assets (no
 * network beyond loopback), and the page renders the API's operations from /v1/openapi.json.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServerProcess, tempDir, type ServerProcess } from '../integration/server-process.js';

let server: ServerProcess;
let browser: BrowserContext;
let profile: string;

beforeAll(async () => {
  server = await startServerProcess(['--data', await tempDir('docs')]);
  profile = await mkdtemp(join(tmpdir(), 'quartz-chromium-'));
  // A fresh profile each run (playwright takes it as the persistent context's directory).
  browser = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium',
    // Within the 60 s hook timeout (playwright's default is 3 min), so a launch that hangs fails
    // with playwright's own message and its browser is killed, not left running.
    timeout: 45_000,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
});

afterAll(async () => {
  await browser?.close();
  await server?.stop();
  await rm(profile, { recursive: true, force: true });
});

describe('/docs in Chromium', () => {
  it('renders the Swagger UI with the API operations, loading nothing from outside the server', async () => {
    const page = await browser.newPage();
    const outside: string[] = [];
    page.on('request', (req) => {
      if (!req.url().startsWith(server.url) && !req.url().startsWith('data:')) outside.push(req.url());
    });
    const errors: string[] = [];
    page.on('pageerror', (err) => errors.push(err.message));
    await page.goto(`${server.url}/docs`);
    await page.waitForSelector('.opblock', { timeout: 30_000 });
    const title = await page.textContent('.info .title');
    expect(title).toContain('QuartzDB HTTP API');
    const paths = await page.$$eval('.opblock-summary-path', (els) => els.map((e) => e.getAttribute('data-path') ?? e.textContent ?? ''));
    for (const p of ['/v1/health', '/v1/auth/register', '/v1/kv', '/v1/topics/{t}/records', '/v1/collections/{c}/query', '/v1/admin/backup']) {
      expect(paths.map((x) => x.replace(/\u200b/g, ''))).toContain(p);
    }
    const methods = await page.$$eval('.opblock-summary-method', (els) => new Set(els.map((e) => e.textContent)).size);
    expect(methods).toBeGreaterThanOrEqual(4);
    await page.screenshot({ path: join(profile, 'docs.png') });
    expect(outside).toEqual([]);
    expect(errors).toEqual([]);
    await page.close();
  });

  it('shows the landing page with a link that leads to the docs', async () => {
    const page = await browser.newPage();
    await page.goto(`${server.url}/`);
    await page.click('a[href="/docs"]');
    await page.waitForSelector('.opblock', { timeout: 30_000 });
    expect(page.url()).toBe(`${server.url}/docs`);
    await page.close();
  });
});
