/**
 * The server-wide budget of request bodies, on a real server process: many concurrent large KV
 * PUTs against a small budget get some 503s with Retry-After, read without a reset; the server's
 * peak RSS stays bounded; every acknowledged write reads back and no refused one was stored; and
 * small GETs and PUTs are answered throughout.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { request } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { serversKilledAfterEach, tempDir } from './server-process.js';

const MiB = 2 ** 20;
const BUDGET = 16 * MiB;
const BIG = 6 * MiB;
const UPLOADS = 64;
/** Uploads are spread over these tenants (each key may hold half the budget). */
const TENANTS = 4;

const start = serversKilledAfterEach();
const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

/** One request on its own connection; the body written as the given parts. */
function send(url: string, method: string, path: string, headers: Record<string, string>, parts: Buffer[] = []): Promise<Answer> {
  const length = parts.reduce((n, p) => n + p.length, 0);
  return new Promise((resolve, reject) => {
    const req = request(`${url}${path}`, { method, agent: false, headers: parts.length > 0 ? { ...headers, 'content-length': String(length) } : headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    for (const part of parts) req.write(part);
    req.end();
  });
}

function kb(statusLine: string): number {
  const m = /(\d+) kB/.exec(statusLine);
  return m === null ? 0 : Number(m[1]) * 1024;
}

/** VmRSS and VmHWM (the peak) of a process, in bytes (Linux). */
function memory(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const line = (name: string) => status.split('\n').find((l) => l.startsWith(`${name}:`)) ?? '';
  return { rss: kb(line('VmRSS')), peak: kb(line('VmHWM')) };
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('request bodies past the server-wide budget', () => {
  it('are refused unread with 503 and Retry-After while small requests go on, memory stays bounded and acknowledged writes read back', async () => {
    const dir = await tempDir('body-budget');
    dirs.push(dir);
    const server = await start(['--data', dir, '--log-level', 'warn', '--request-bodies-max-bytes', String(BUDGET)]);
    const keys: string[] = [];
    for (let t = 0; t < TENANTS; t++) {
      const reg = await send(server.url, 'POST', '/v1/auth/register', { 'content-type': 'application/json' }, [Buffer.from(JSON.stringify({ email: `budget${t}@example.com` }))]);
      expect(reg.status).toBe(201);
      keys.push((JSON.parse(reg.body.toString()) as { api_key: string }).api_key);
    }
    const auth = (i: number) => ({ authorization: `Bearer ${keys[i % TENANTS]}` });
    const small = await send(server.url, 'PUT', '/v1/kv/small', auth(0), [Buffer.from('x'.repeat(1024))]);
    expect(small.status).toBeLessThan(300);
    const before = memory(server.proc.pid!);

    // One shared payload; each upload is told apart by its prefix.
    const payload = Buffer.alloc(BIG, 7);
    const payloadHash = sha(payload);
    const prefix = (i: number) => Buffer.from(`upload-${String(i).padStart(8, '0')}`);

    let uploading = true;
    const smallAnswers: number[] = [];
    const smallTraffic = (async () => {
      for (let n = 0; uploading; n++) {
        smallAnswers.push((await send(server.url, 'GET', '/v1/kv/small', auth(0))).status);
        smallAnswers.push((await send(server.url, 'PUT', `/v1/kv/small-${n}`, auth(n), [Buffer.from('y'.repeat(2048))])).status);
      }
    })();
    const uploads = await Promise.all(Array.from({ length: UPLOADS }, (_, i) => send(server.url, 'PUT', `/v1/kv/big-${i}`, auth(i), [prefix(i), payload])));
    uploading = false;
    await smallTraffic;
    const after = memory(server.proc.pid!);

    const statuses = uploads.map((a) => a.status);
    const refused = uploads.filter((a) => a.status === 503);
    expect(statuses.every((s) => s < 300 || s === 503), `statuses: ${statuses.join(' ')}`).toBe(true);
    expect(refused.length).toBeGreaterThan(0);
    expect(refused.length).toBeLessThan(UPLOADS);
    for (const answer of refused) {
      expect(answer.headers['retry-after']).toBe('1');
      expect(JSON.parse(answer.body.toString())).toMatchObject({ error: 'unavailable' });
    }

    expect(smallAnswers.length).toBeGreaterThan(0);
    expect(smallAnswers.filter((s) => s >= 300)).toEqual([]);

    // The held bodies were at most the budget; allow the server's own working memory beside it.
    const grew = after.peak - before.rss;
    expect(grew, `peak RSS ${after.peak / MiB | 0} MiB, before the load ${before.rss / MiB | 0} MiB`).toBeLessThan(160 * MiB);

    for (let i = 0; i < UPLOADS; i++) {
      const got = await send(server.url, 'GET', `/v1/kv/big-${i}`, auth(i));
      if (uploads[i]!.status === 503) {
        expect(got.status, `refused upload ${i} was stored`).toBe(404);
        continue;
      }
      expect(got.status).toBe(200);
      expect(got.body.subarray(0, prefix(i).length).toString()).toBe(prefix(i).toString());
      expect(sha(got.body.subarray(prefix(i).length))).toBe(payloadHash);
    }
  }, 120_000);
});
