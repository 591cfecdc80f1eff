/**
 * A server process that runs out of file descriptors (its RLIMIT_NOFILE lowered with prlimit, then
 * filled with connections) answers requests that need one with 503 and Retry-After, logs what to
 * raise, loses nothing acknowledged, and serves as before once descriptors free up.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { connect, type Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { parseRawAnswer, type RawAnswer } from '../fixtures/server-with-tenant.js';
import { serversKilledAfterEach, tempDir, waitFor } from './server-process.js';

const start = serversKilledAfterEach();

function hasPrlimit(): boolean {
  try {
    execFileSync('prlimit', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** A kept-alive connection that sends one request at a time and reads its whole answer. */
class Connection {
  private buffer = '';
  private waiting: (() => void) | undefined;
  closed = false;

  private constructor(readonly socket: Socket) {
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      this.buffer += chunk;
      this.waiting?.();
    });
    const gone = (): void => {
      this.closed = true;
      this.waiting?.();
    };
    socket.on('close', gone);
    socket.on('error', gone);
  }

  static open(port: number): Promise<Connection> {
    return new Promise((resolve, reject) => {
      const socket = connect(port, '127.0.0.1', () => resolve(new Connection(socket)));
      socket.once('error', reject);
    });
  }

  /** The answer, or undefined when the server closed the connection without one. */
  async ask(method: string, path: string, key: string, body = ''): Promise<RawAnswer | undefined> {
    this.buffer = '';
    this.socket.write(`${method} ${path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
    for (;;) {
      const end = this.buffer.indexOf('\r\n\r\n');
      if (end >= 0) {
        const length = Number(/\r\ncontent-length: *(\d+)/i.exec(this.buffer.slice(0, end))?.[1] ?? 0);
        if (this.buffer.length >= end + 4 + length) return parseRawAnswer(this.buffer);
      }
      if (this.closed) return undefined;
      await new Promise<void>((resolve) => (this.waiting = resolve));
    }
  }
}

/** The blob files under a data directory (blobs/tmp holds none at rest). */
function blobFiles(data: string): string[] {
  return readdirSync(join(data, 'blobs'), { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name));
}

const large = 'v'.repeat(1536 * 1024);

describe.skipIf(!hasPrlimit())('a server out of file descriptors', () => {
  it('answers 503 with Retry-After, logs the limit to raise, and serves again once descriptors free up, nothing lost', async () => {
    const data = await tempDir('nofile');
    const server = await start(['--data', data, '--log-level', 'info']);
    const port = Number(new URL(server.url).port);
    const registered = await fetch(`${server.url}/v1/auth/register`, { method: 'POST', body: JSON.stringify({ email: 'nofile@example.com' }) });
    const { api_key: key } = (await registered.json()) as { api_key: string };
    // Connections opened while descriptors remain; the requests below go over them.
    const admin = await Connection.open(port);
    expect((await admin.ask('PUT', '/v1/kv/kept', key, 'acknowledged'))?.status).toBe(200);
    expect((await admin.ask('POST', '/v1/topics', key, JSON.stringify({ name: 'before', partitions: 1 })))?.status).toBe(201);
    expect((await admin.ask('POST', '/v1/topics/before/records', key, JSON.stringify({ records: [{ value: 'one' }] })))?.status).toBe(200);

    execFileSync('prlimit', ['--pid', String(server.proc.pid), '--nofile=256:256']);
    // Fill the table with connections until the server can accept no more (libuv then accepts
    // and closes each new one at once: it has no descriptor left to answer on).
    const held: Connection[] = [];
    try {
      for (;;) {
        expect(held.length).toBeLessThan(256);
        const c = await Connection.open(port);
        held.push(c);
        if ((await c.ask('GET', '/v1/health', key)) === undefined) break;
      }
      // A value over 1 MiB goes to a blob file: there is no descriptor to write it with. (A new
      // topic needs none since its partitions skip the blob listing: it is no test of this.)
      const refused = await admin.ask('PUT', '/v1/kv/large', key, large);
      expect(refused?.status).toBe(503);
      expect(refused?.headers['retry-after']).toBe('1');
      expect(JSON.parse(refused!.body)).toMatchObject({ error: 'unavailable' });
      await waitFor(() => (/raise its limit \(`ulimit -n 65536`/.test(server.stdout() + server.stderr()) ? true : undefined), 5000, 'the log line naming the limit');
    } finally {
      for (const c of held) c.socket.destroy();
    }

    // Descriptors come back as the connections close: the same request now succeeds.
    const stored = await waitFor(async () => {
      const answer = await admin.ask('PUT', '/v1/kv/large', key, large);
      return answer?.status === 503 ? undefined : answer;
    }, 10_000, 'the server to store the value once descriptors are free');
    expect(stored?.status).toBe(200);
    expect((await admin.ask('GET', '/v1/kv/large', key))?.body).toBe(large);
    // The refused put left no blob behind: the stored value's file is the only one.
    await waitFor(() => (blobFiles(data).length === 1 ? true : undefined), 5000, 'one blob file, the stored value');
    expect((await admin.ask('POST', '/v1/topics', key, JSON.stringify({ name: 'during', partitions: 2 })))?.status).toBe(201);
    expect((await admin.ask('POST', '/v1/topics/during/records', key, JSON.stringify({ records: [{ value: 'two', partition: 1 }] })))?.status).toBe(200);
    expect((await admin.ask('GET', '/v1/kv/kept', key))?.body).toBe('acknowledged');
    const consumed = await admin.ask('GET', '/v1/topics/before/partitions/0/records?offset=0', key);
    expect(JSON.parse(consumed!.body).records.map((r: { value: string }) => r.value)).toEqual(['one']);
    const fresh = await fetch(`${server.url}/v1/health`);
    expect(fresh.status).toBe(200);
    expect(server.proc.exitCode).toBe(null);
  });
});
