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

  it("runs each operation's example as it comes: Try it out, Execute, nothing typed but the key", async () => {
    const reg = await fetch(`${server.url}/v1/auth/register`, { method: 'POST', body: JSON.stringify({ email: 'try-it-out@example.com' }) });
    const { api_key: key } = (await reg.json()) as { api_key: string };
    const page = await browser.newPage();
    await page.goto(`${server.url}/docs`);
    await page.waitForSelector('.opblock', { timeout: 30_000 });
    await page.click('button.authorize');
    const inputs = page.locator('.modal-ux input');
    for (let i = 0; i < (await inputs.count()); i++) await inputs.nth(i).fill(key);
    const authorize = page.locator('.modal-ux button.authorize', { hasText: /^Authorize$/ });
    while ((await authorize.count()) > 0) await authorize.first().click();
    await page.locator('.modal-ux button.btn-done').first().click();
    // In the order a newcomer reads them; each later one uses what the earlier ones made.
    const statuses: Record<string, string> = {};
    for (const id of [
      'KV-put_v1_kv__key_',
      'KV-get_v1_kv__key_',
      'Streams-post_v1_topics',
      'Streams-post_v1_topics__t__records',
      'Streams-get_v1_topics__t__partitions__p__records',
      'Streams-post_v1_groups__g__offsets',
      'Vectors-post_v1_collections',
      'Vectors-post_v1_collections__c__upsert',
      'Vectors-post_v1_collections__c__query',
      'Vectors-get_v1_collections__c__vectors__id_',
    ]) {
      const op = page.locator(`#operations-${id}`);
      await op.locator('.opblock-summary').click();
      await op.locator('button.try-out__btn').click();
      await op.locator('button.execute').click();
      // A required parameter left empty stops the page from sending anything.
      const status = op.locator('.live-responses-table tbody .response-col_status');
      statuses[id] = (await status.first().textContent({ timeout: 10_000 }).catch(() => null)) ?? 'not sent';
      // Closed again: every open operation is re-rendered on each change, which made this slow.
      await op.locator('.opblock-summary').click();
    }
    expect(statuses).toEqual({
      'KV-put_v1_kv__key_': '200',
      'KV-get_v1_kv__key_': '200',
      'Streams-post_v1_topics': '201',
      'Streams-post_v1_topics__t__records': '200',
      'Streams-get_v1_topics__t__partitions__p__records': '200',
      'Streams-post_v1_groups__g__offsets': '204',
      'Vectors-post_v1_collections': '201',
      'Vectors-post_v1_collections__c__upsert': '200',
      'Vectors-post_v1_collections__c__query': '200',
      'Vectors-get_v1_collections__c__vectors__id_': '200',
    });
    await page.close();
    // What the examples made is what the same calls make from curl: a text value that does not
    // expire (it was stored as `*/*`, for an hour), a topic with the default segments (they were
    // 1 KiB, rolled every 1 ms).
    const auth = { authorization: `Bearer ${key}` };
    const value = await fetch(`${server.url}/v1/kv/user%2F42`, { headers: auth });
    expect([value.headers.get('content-type'), value.headers.get('x-expires-at'), await value.text()]).toEqual(['text/plain', null, 'hello']);
    const topic = (await (await fetch(`${server.url}/v1/topics/orders`, { headers: auth })).json()) as { partitions: number; segment_bytes: number; segment_ms: number };
    expect([topic.partitions, topic.segment_bytes, topic.segment_ms]).toEqual([3, 8 * 2 ** 20, 86_400_000]);
  }, 180_000);

  it('shows the landing page with a link that leads to the docs', async () => {
    const page = await browser.newPage();
    await page.goto(`${server.url}/`);
    await page.click('a[href="/docs"]');
    await page.waitForSelector('.opblock', { timeout: 30_000 });
    expect(page.url()).toBe(`${server.url}/docs`);
    await page.close();
  });
});
