/**
 * Runs the HTTP API conformance suite over real loopback HTTP against the app on the Node disk
 * engine, served by @hono/node-server (the Node home's listener).
 */
import { serve, type ServerType } from '@hono/node-server';
import { mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { createApp } from '../../src/api/app.js';
import { hashKey, resolveServerConfig } from '../../src/api/config.js';
import type { Engine } from '../../src/engine/engine.js';
import { openQuartz } from '../../src/node/open-quartz.js';
import { apiSuite } from '../conformance/api.suite.js';

const adminKey = `admin-${crypto.randomUUID()}`;
let dir: string;
let engine: Engine;
let server: ServerType;
let baseUrl: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'quartz-api-'));
  engine = await openQuartz({ dataDir: dir });
  const app = createApp({ engine, config: resolveServerConfig({ version: 'test', admin_key_hash: await hashKey(adminKey), default_plan: 'unlimited' }) });
  server = await new Promise<ServerType>((resolve) => {
    const s = serve({ fetch: app.fetch, hostname: '127.0.0.1', port: 0 }, () => resolve(s));
  });
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
  await engine.close();
  rmSync(dir, { recursive: true, force: true });
});

apiSuite('node, in-process listener on the disk engine', () => ({ baseUrl, adminKey }));
