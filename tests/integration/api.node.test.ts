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
const SMALL = 4096;
let dir: string;
let server: RunningServer;
/** The same home with every body limit small, registration off and one CORS origin. */
let narrow: RunningServer;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'quartz-api-'));
  const env = { QUARTZ_ADMIN_KEY: adminKey, QUARTZ_LOG_LEVEL: 'error' };
  server = await startServer(await resolveServeSettings({ port: '0', data: join(dir, 'default'), host: '127.0.0.1' }, env), env);
  const settings = await resolveServeSettings({ port: '0', data: join(dir, 'narrow'), host: '127.0.0.1' }, env);
  const app = { ...settings.app, registration_enabled: false, cors_origins: ['https://app.example'], body_limits: { json: SMALL, kv: SMALL, records: SMALL, vectors: SMALL } };
  narrow = await startServer({ ...settings, app }, env);
});

afterAll(async () => {
  await Promise.all([server.close('test done'), narrow.close('test done')]);
  rmSync(dir, { recursive: true, force: true });
});

apiSuite('node server', () => ({ baseUrl: server.url, adminKey }));
apiSuite('node server, small body limits, registration off, one CORS origin', () => ({ baseUrl: narrow.url, adminKey, jsonBodyLimit: SMALL, oneBodyLimit: true }));

it('the Node home serves the Swagger UI assets and Prometheus metrics', async () => {
  const css = await fetch(`${server.url}/docs/swagger-ui.css`);
  expect(css.status).toBe(200);
  expect(await fetch(`${server.url}/docs/swagger-ui-bundle.js`).then((r) => r.status)).toBe(200);
  const metrics = await fetch(`${server.url}/metrics`);
  expect(metrics.status).toBe(200);
  expect(await metrics.text()).toMatch(/\/v1\/health/);
});
