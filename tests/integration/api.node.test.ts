/**
 * Runs the HTTP API conformance suite over real loopback HTTP against the Node home's server
 * (`startServer`: the disk engine, prom-client metrics, pino logs, file assets, backups), the same
 * code path `quartz serve` runs.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startServer, type RunningServer } from '../../src/node/server/server.js';
import { resolveServeSettings } from '../../src/node/server/settings.js';
import { apiSuite } from '../conformance/api.suite.js';

const adminKey = `admin-${crypto.randomUUID()}`;
let dir: string;
let server: RunningServer;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'quartz-api-'));
  const env = { QUARTZ_ADMIN_KEY: adminKey, QUARTZ_LOG_LEVEL: 'error' };
  server = await startServer(await resolveServeSettings({ port: '0', data: dir, host: '127.0.0.1' }, env), env);
});

afterAll(async () => {
  await server.close('test done');
  rmSync(dir, { recursive: true, force: true });
});

apiSuite('node server', () => ({ baseUrl: server.url, adminKey }));

it('the Node home serves the Swagger UI assets and Prometheus metrics', async () => {
  const css = await fetch(`${server.url}/docs/swagger-ui.css`);
  expect(css.status).toBe(200);
  expect(await fetch(`${server.url}/docs/swagger-ui-bundle.js`).then((r) => r.status)).toBe(200);
  const metrics = await fetch(`${server.url}/metrics`);
  expect(metrics.status).toBe(200);
  expect(await metrics.text()).toMatch(/\/v1\/health/);
});
