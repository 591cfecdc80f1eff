/**
 * The `quartz` CLI against servers that misbehave and against big produce batches: a server that
 * accepts and never answers, stops mid-answer, stops taking an upload, sends without end,
 * redirects in a loop; and, on a real server, produce batches over its record and body limits.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import { createServer as createHttpServer, type RequestListener } from 'node:http';
import { createServer as createNetServer, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { describe, expect, it, onTestFinished } from 'vitest';
import { buildProgram } from '../../src/node/cli/program.js';
import { startServerWithTenant } from '../fixtures/server-with-tenant.js';
import { BIN, ROOT, cleanEnv, tempDir } from './server-process.js';

const TIMEOUT_LINE = '(--timeout or QUARTZ_TIMEOUT sets how long to wait)';

/** One command run in this process: what it wrote, the error it ended with and how long it took. */
async function inProcess(args: string[], env: Record<string, string>, input?: string | PassThrough): Promise<{ out: string; error: string | undefined; ms: number }> {
  const stdout = new PassThrough();
  let out = '';
  stdout.on('data', (c: Buffer) => (out += c.toString()));
  const stdin = input instanceof PassThrough ? input : new PassThrough();
  if (typeof input === 'string') stdin.end(input);
  const io = { env: { QUARTZ_API_KEY: 'qz_test', XDG_CONFIG_HOME: '/nonexistent-quartz-test', ...env }, stdout, stderr: new PassThrough(), stdin };
  const started = Date.now();
  const error = await buildProgram(io)
    .parseAsync(['node', 'quartz', ...args])
    .then(() => undefined, (err: unknown) => (err as Error).message);
  return { out, error, ms: Date.now() - started };
}

/** A raw TCP server (closed after the test) that hands each connection to `onSocket`. */
async function tcpServer(onSocket: (socket: Socket) => void): Promise<string> {
  const sockets = new Set<Socket>();
  const server = createNetServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    onSocket(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  onTestFinished(async () => {
    for (const s of sockets) s.destroy();
    await new Promise((resolve) => server.close(resolve));
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** A plain HTTP server (closed after the test). */
async function httpServer(listener: RequestListener): Promise<string> {
  const server = createHttpServer(listener);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  onTestFinished(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('quartz CLI request timeout', () => {
  it('gives up on a server that accepts and never answers, with one line naming the URL and the timeout', async () => {
    const url = await tcpServer(() => undefined);
    // node's own limit is 300 s: the command hung five minutes.
    const r = await inProcess(['kv', 'get', 'k'], { QUARTZ_URL: url, QUARTZ_TIMEOUT: '0.5' });
    expect(r.error).toBe(`quartz: no answer from ${url} within 0.5 s ${TIMEOUT_LINE}`);
    expect(r.ms).toBeLessThan(20_000);
    // The flag wins over the variable; a JSON body (produce's, the usual case) is timed the same.
    const flag = await inProcess(['--timeout', '0.3', 'topic', 'create', 't'], { QUARTZ_URL: url, QUARTZ_TIMEOUT: '1000' });
    expect(flag.error).toBe(`quartz: no answer from ${url} within 0.3 s ${TIMEOUT_LINE}`);
    for (const bad of ['-1', 'soon', '1e3', '']) {
      const refused = await inProcess(['--timeout', bad, 'usage'], { QUARTZ_URL: url });
      expect(refused.error, bad).toBe(`quartz: --timeout must be a number of seconds ≥ 0 (0: no limit) up to 2147483, got '${bad}'`);
    }
    expect((await inProcess(['usage'], { QUARTZ_URL: url, QUARTZ_TIMEOUT: 'x' })).error).toMatch(/^quartz: QUARTZ_TIMEOUT must be/);
  }, 60_000);

  it('exits 1 with the one line on stderr (the installed command)', async () => {
    const url = await tcpServer(() => undefined);
    const proc = spawn(process.execPath, [BIN, 'usage'], { env: cleanEnv({ QUARTZ_URL: url, QUARTZ_API_KEY: 'qz_test', QUARTZ_TIMEOUT: '0.5', XDG_CONFIG_HOME: '/nonexistent-quartz-test' }), cwd: ROOT });
    let stderr = '';
    proc.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    const code = await new Promise<number | null>((resolve) => proc.once('exit', (exitCode) => resolve(exitCode)));
    expect([code, stderr]).toEqual([1, `quartz: no answer from ${url} within 0.5 s ${TIMEOUT_LINE}\n`]);
  }, 60_000);

  it('gives up on an answer that stops half-way, but not on one that keeps coming slowly', async () => {
    const half = await tcpServer((socket) =>
      socket.once('data', () => socket.write('HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ncontent-length: 100\r\n\r\n' + 'x'.repeat(50))),
    );
    const r = await inProcess(['kv', 'get', 'k'], { QUARTZ_URL: half, QUARTZ_TIMEOUT: '0.5' });
    expect([r.out, r.error]).toEqual(['', `quartz: ${half} sent nothing more of its answer for 0.5 s ${TIMEOUT_LINE}`]);

    // A byte every 150 ms for 3 s: far longer than the timeout in all, never silent for it.
    const slow = await httpServer(async (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': '20' });
      for (let i = 0; i < 20; i++) {
        res.write('y');
        await sleep(150);
      }
      res.end();
    });
    const flowing = await inProcess(['kv', 'get', 'k'], { QUARTZ_URL: slow, QUARTZ_TIMEOUT: '1' });
    expect([flowing.error, flowing.out]).toEqual([undefined, 'y'.repeat(20)]);
  }, 60_000);

  it('stops a backup whose download stalls, leaving no archive or .partial', async () => {
    const stalls = await tcpServer((socket) =>
      socket.once('data', () => socket.write('HTTP/1.1 200 OK\r\ncontent-type: application/vnd.quartzdb.backup\r\ncontent-length: 100000\r\n\r\n' + 'z'.repeat(1000))),
    );
    const dir = await tempDir('cli-timeout-backup');
    onTestFinished(() => rm(dir, { recursive: true, force: true }));
    const file = join(dir, 'b.qzb');
    const r = await inProcess(['backup', '--file', file], { QUARTZ_URL: stalls, QUARTZ_TIMEOUT: '0.5', QUARTZ_ADMIN_KEY: 'qz_admin' });
    expect(r.error).toBe(`quartz: ${stalls} sent nothing more of its answer for 0.5 s ${TIMEOUT_LINE}`);
    expect([existsSync(file), existsSync(`${file}.partial`)]).toEqual([false, false]);
  }, 60_000);

  it('gives up on a server that stops taking an upload, but not on one that takes it slowly', async () => {
    const dir = await tempDir('cli-timeout-upload');
    onTestFinished(() => rm(dir, { recursive: true, force: true }));
    const big = join(dir, 'big.bin');
    // More than the socket buffers on both sides hold, so the upload must stall.
    await writeFile(big, Buffer.alloc(64 * 2 ** 20, 1));
    const deaf = await tcpServer((socket) => socket.once('data', () => socket.pause()));
    const r = await inProcess(['kv', 'put', 'k', '--file', big], { QUARTZ_URL: deaf, QUARTZ_TIMEOUT: '0.5' });
    expect(r.error).toBe(`quartz: ${deaf} took none of the request for 0.5 s ${TIMEOUT_LINE}`);

    // 32 MiB taken a socket read every 10 ms: seconds in all, much more than the socket buffers
    // hold, so the CLI waits on the server many times over, never for the timeout.
    const large = join(dir, 'large.bin');
    await writeFile(large, Buffer.alloc(32 * 2 ** 20, 2));
    const slow = await httpServer((req, res) => {
      let size = 0;
      req.on('data', (chunk: Buffer) => {
        size += chunk.length;
        req.pause();
        setTimeout(() => req.resume(), 10);
      });
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ key: 'k', size, etag: '"e"' }));
      });
    });
    const taken = await inProcess(['kv', 'put', 'k', '--file', large, '-o', 'json'], { QUARTZ_URL: slow, QUARTZ_TIMEOUT: '2' });
    expect(taken.error).toBeUndefined();
    expect(JSON.parse(taken.out)).toMatchObject({ size: 32 * 2 ** 20 });
    expect(taken.ms).toBeGreaterThan(2000);
  }, 120_000);

  it("waits for a long-poll past the timeout: consume --follow asks the server to hold its answer", async () => {
    const topic = { name: 't', partitions: 1, retention_ms: -1, partition_info: [{ partition: 0, log_start_offset: 0, high_watermark: 0, bytes: 0, segments: 0 }] };
    const server = await httpServer(async (req, res) => {
      res.setHeader('content-type', 'application/json');
      if (req.url === '/v1/topics/t') return res.end(JSON.stringify(topic));
      // The server holds the poll longer than the CLI's timeout before the record arrives.
      await sleep(1500);
      res.end(JSON.stringify({ records: [{ offset: 0, timestamp: 0, key: null, value: 'late', headers: [] }], next_offset: 1, high_watermark: 1, log_start_offset: 0 }));
    });
    const r = await inProcess(['consume', 't', '--follow', '--max', '1'], { QUARTZ_URL: server, QUARTZ_TIMEOUT: '0.5' });
    expect([r.error, r.out]).toEqual([undefined, 'late\n']);
  }, 60_000);
});

describe('quartz CLI against answers that would not end', () => {
  it('stops reading an endless answer at 256 MiB, and an endless error answer at 64 KiB', async () => {
    const chunk = Buffer.alloc(1 << 20, 0x61);
    const endless = (status: number) =>
      httpServer((_req, res) => {
        res.writeHead(status, { 'content-type': 'application/json' });
        const more = (): void => {
          while (!res.destroyed && res.write(chunk));
          if (!res.destroyed) res.once('drain', more);
        };
        more();
      });
    const ok = await endless(200);
    const r = await inProcess(['usage'], { QUARTZ_URL: ok });
    expect(r.error).toBe(`quartz: ${ok} answered more than 256 MiB, more than the CLI holds in memory; is it a QuartzDB server?`);
    const failing = await endless(500);
    expect((await inProcess(['usage'], { QUARTZ_URL: failing })).error).toBe('quartz: the server answered 500 Internal Server Error');
  }, 120_000);

  it('stops at a redirect, naming where it pointed, rather than following a loop or re-sending a POST as a GET', async () => {
    const server = await httpServer((req, res) => {
      res.writeHead(302, { location: `/again${req.url}` });
      res.end();
    });
    const r = await inProcess(['topic', 'create', 'orders'], { QUARTZ_URL: server });
    expect(r.error).toBe(`quartz: ${server} answered 302 redirecting to ${server}/again/v1/topics; the API does not redirect: give the server's own URL (--url or QUARTZ_URL)`);
  }, 60_000);
});

describe('quartz produce batches within the server limits', () => {
  it('refuses a --batch over 100,000 records before reading anything', async () => {
    const r = await inProcess(['produce', 't', '--batch', '100001'], { QUARTZ_URL: 'http://127.0.0.1:1' }, 'a\n');
    expect(r.error).toBe("quartz: --batch must be at most 100000, the most records one produce request may hold, got '100001'");
  });

  it('cuts a batch at 100,000 records and 16 MiB, all of it produced in order', async () => {
    const { server, apiKey, close } = await startServerWithTenant('cli-produce-big');
    onTestFinished(close);
    const env = { QUARTZ_URL: server.url, QUARTZ_API_KEY: apiKey };
    expect((await inProcess(['topic', 'create', 'big'], env)).error).toBeUndefined();
    // 150,000 short lines in one --batch (more than one request may hold), then 40 lines of
    // 600 KB (24 MB: more than one body may hold); --linger-ms long enough that only the limits cut.
    const short = Array.from({ length: 150_000 }, (_, i) => `s${i}`);
    const long = Array.from({ length: 40 }, (_, i) => `${i}`.padEnd(600_000, 'v'));
    const r = await inProcess(['produce', 'big', '--batch', '100000', '--linger-ms', '600000', '-o', 'json'], env, [...short, ...long].join('\n') + '\n');
    expect(r.error).toBeUndefined();
    expect(JSON.parse(r.out)).toEqual({ topic: 'big', produced: 150_040 });
    const hw = await (await fetch(`${server.url}/v1/topics/big`, { headers: { authorization: `Bearer ${apiKey}` } })).json() as { partition_info: Array<{ high_watermark: number }> };
    expect(hw.partition_info[0]!.high_watermark).toBe(150_040);
    const first = await (await fetch(`${server.url}/v1/topics/big/partitions/0/records?offset=99999&max_records=2`, { headers: { authorization: `Bearer ${apiKey}` } })).json() as { records: Array<{ value: string }> };
    expect(first.records.map((x) => x.value)).toEqual(['s99999', 's100000']);
    const last = await (await fetch(`${server.url}/v1/topics/big/partitions/0/records?offset=150039&max_records=1`, { headers: { authorization: `Bearer ${apiKey}` } })).json() as { records: Array<{ value: string }> };
    expect(last.records[0]!.value.slice(0, 3)).toBe('39v');
  }, 300_000);

  it('halves a batch a server with a smaller body limit refuses (413), once each, and names a line that is too large alone', async () => {
    const { server, apiKey, close } = await startServerWithTenant('cli-produce-limit', { body_limits: { json: 1 << 20, kv: 1 << 20, records: 64 * 1024, vectors: 1 << 20 } });
    onTestFinished(close);
    const env = { QUARTZ_URL: server.url, QUARTZ_API_KEY: apiKey };
    expect((await inProcess(['topic', 'create', 'small'], env)).error).toBeUndefined();
    const lines = Array.from({ length: 1000 }, (_, i) => `${i}`.padStart(200, '.'));
    const r = await inProcess(['produce', 'small', '--batch', '1000', '--linger-ms', '600000', '-o', 'json'], env, lines.join('\n') + '\n');
    expect(r.error).toBeUndefined();
    expect(JSON.parse(r.out)).toEqual({ topic: 'small', produced: 1000 });
    const page = await (await fetch(`${server.url}/v1/topics/small/partitions/0/records?offset=0&max_records=1000&max_bytes=67108864`, { headers: { authorization: `Bearer ${apiKey}` } })).json() as { records: Array<{ value: string }> };
    // Each line once, in order: a refused request stored nothing.
    expect(page.records.map((x) => x.value)).toEqual(lines);

    const tooLarge = await inProcess(['produce', 'small'], env, 'a\nb\n\n' + 'x'.repeat(100_000) + '\nc\n');
    expect(tooLarge.error).toMatch(/^quartz: line 4 of stdin: .* \(413 too_large\); 2 record\(s\) were produced before it$/);

    // stdin left open (a `tail -f`): the refusal ends the command, not the next line that may never come.
    const open = new PassThrough();
    open.write('y'.repeat(100_000) + '\n');
    const stopped = await inProcess(['produce', 'small'], env, open);
    expect(stopped.error).toMatch(/^quartz: line 1 of stdin: .* \(413 too_large\); 0 record\(s\) were produced before it$/);
  }, 300_000);

  it('refuses a line longer than any record can be without reading on for its newline, after producing the lines before it', async () => {
    const { server, apiKey, close } = await startServerWithTenant('cli-produce-line');
    onTestFinished(close);
    const env = { QUARTZ_URL: server.url, QUARTZ_API_KEY: apiKey };
    expect((await inProcess(['topic', 'create', 'lines'], env)).error).toBeUndefined();
    // 2 MiB and then stdin stays open, no newline: the whole of it was waited for and held.
    const open = new PassThrough();
    open.write('first\r\nsecond\n');
    open.write('z'.repeat(2 * 2 ** 20));
    const r = await inProcess(['produce', 'lines', '-o', 'json'], env, open);
    expect(r.error).toBe('quartz: line 3 of stdin is longer than 896 KiB, more than one record may hold; 2 record(s) were produced before it');
    const page = await (await fetch(`${server.url}/v1/topics/lines/partitions/0/records?offset=0`, { headers: { authorization: `Bearer ${apiKey}` } })).json() as { records: Array<{ value: string }> };
    expect(page.records.map((x) => x.value)).toEqual(['first', 'second']);
  }, 300_000);
});
