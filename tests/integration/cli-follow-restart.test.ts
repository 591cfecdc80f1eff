/**
 * `quartz consume --follow` under a server that restarts: real `quartz` processes follow a real
 * server process that is stopped (SIGTERM, then SIGKILL) and started again on the same port and
 * data directory. The consumers must ride through it and print every record exactly once, in
 * order; with --group, the committed offsets end where the output does.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { buildProgram } from '../../src/node/cli/program.js';
import { freePort } from '../fixtures/free-port.js';
import { BIN, ROOT, cleanEnv, runCli, startServerProcess, tempDir, waitFor, type ServerProcess } from './server-process.js';

const running: Array<ServerProcess | ChildProcessWithoutNullStreams> = [];

afterEach(() => {
  for (const p of running.splice(0)) ('proc' in p ? p.proc : p).kill('SIGKILL');
});

interface Follower {
  proc: ChildProcessWithoutNullStreams;
  lines(): Array<{ partition: number; offset: number; value: string }>;
  stderr(): string;
  exited: Promise<number | string>;
}

function follow(args: string[], env: Record<string, string>): Follower {
  const proc = spawn(process.execPath, [BIN, 'consume', ...args], { env: cleanEnv(env), cwd: ROOT });
  running.push(proc);
  let out = '';
  let err = '';
  proc.stdout.setEncoding('utf8').on('data', (s: string) => (out += s));
  proc.stderr.setEncoding('utf8').on('data', (s: string) => (err += s));
  const exited = new Promise<number | string>((resolve) => proc.once('close', (code, signal) => resolve(code ?? signal ?? -1)));
  return {
    proc,
    lines: () => out.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as { partition: number; offset: number; value: string }),
    stderr: () => err,
    exited,
  };
}

describe('quartz consume --follow across a server restart', () => {
  it('prints every record once, in order, resumes after SIGTERM and SIGKILL restarts, and commits where it stopped', async () => {
    const port = await freePort();
    const data = await tempDir('follow-restart-data');
    const start = async () => {
      const s = await startServerProcess(['--port', String(port), '--data', data]);
      running.push(s);
      return s;
    };
    let server = await start();
    const env = { XDG_CONFIG_HOME: await tempDir('follow-restart-home'), QUARTZ_URL: server.url };
    expect((await runCli(['register', '--email', 'follow@example.com', '--save'], env)).code).toBe(0);
    expect((await runCli(['topic', 'create', 'live', '--partitions', '2'], env)).code).toBe(0);
    const produce = async (values: string[]) => {
      for (const [i, v] of values.entries()) {
        const r = await runCli(['produce', 'live', '--partition', String(i % 2)], env, `${v}\n`);
        expect(r.code, r.stderr).toBe(0);
      }
    };
    const seen = (f: Follower, n: number, what: string) => waitFor(() => (f.lines().length >= n ? true : undefined), 60_000, `${what}: ${n} records (stderr: ${f.stderr()})`);

    await produce(['a0', 'a1', 'a2', 'a3']);
    const plain = follow(['live', '--follow', '--from-beginning', '-o', 'json', '--timeout', '120'], env);
    const grouped = follow(['live', '--follow', '--from-beginning', '--group', 'g', '-o', 'json', '--timeout', '120'], env);
    await seen(plain, 4, 'plain');
    await seen(grouped, 4, 'grouped');

    // A graceful stop, records produced once it is back.
    await server.stop('SIGTERM');
    server = await start();
    await produce(['b0', 'b1', 'b2', 'b3']);
    await seen(plain, 8, 'plain after SIGTERM');
    await seen(grouped, 8, 'grouped after SIGTERM');

    // Killed mid long-poll.
    await server.stop('SIGKILL');
    server = await start();
    await produce(['c0', 'c1']);
    await seen(plain, 10, 'plain after SIGKILL');
    await seen(grouped, 10, 'grouped after SIGKILL');

    for (const f of [plain, grouped]) {
      f.proc.kill('SIGINT');
      expect(await f.exited, f.stderr()).toBe(0);
      const lines = f.lines();
      const byPartition = (p: number) => lines.filter((l) => l.partition === p).map((l) => `${l.offset}:${l.value}`);
      expect(byPartition(0)).toEqual(['0:a0', '1:a2', '2:b0', '3:b2', '4:c0']);
      expect(byPartition(1)).toEqual(['0:a1', '1:a3', '2:b1', '3:b3', '4:c1']);
      expect(f.stderr()).toMatch(/^quartz: lost the server: .*; trying again for up to 120 s \(--timeout\)\n/);
      expect(f.stderr()).toMatch(/answers again; going on from the first record not printed\n$/);
      expect(f.stderr().split('\n').filter((l) => l.includes('lost the server')).length).toBe(2);
    }
    const offsets = await runCli(['consume', 'live', '--group', 'g', '-o', 'json'], env);
    expect([offsets.code, offsets.stdout]).toEqual([0, '']); // the group read everything: nothing left
  }, 300_000);

  it('gives up with one line and exit code 1 once the server has been gone for --timeout', async () => {
    const server = await startServerProcess(['--data', await tempDir('follow-gone-data')]);
    running.push(server);
    const env = { XDG_CONFIG_HOME: await tempDir('follow-gone-home'), QUARTZ_URL: server.url };
    expect((await runCli(['register', '--email', 'gone@example.com', '--save'], env)).code).toBe(0);
    expect((await runCli(['topic', 'create', 'quiet'], env)).code).toBe(0);
    expect((await runCli(['produce', 'quiet'], env, 'first\n')).code).toBe(0);
    const f = follow(['quiet', '--follow', '--from-beginning', '-o', 'json', '--timeout', '2'], env);
    // Once it has printed the record, it is in its loop, waiting on a long-poll.
    await waitFor(() => (f.lines().length === 1 ? true : undefined), 60_000, `the consumer to print the record (stderr: ${f.stderr()})`);
    await server.stop('SIGKILL');
    expect(await f.exited).toBe(1);
    const lines = f.stderr().trim().split('\n');
    expect(lines[0]).toMatch(/^quartz: lost the server: .*; trying again for up to 2 s \(--timeout\)$/);
    expect(lines.at(-1)).toMatch(/^quartz: cannot reach .* \(connection refused\) — is `quartz serve` running\?; gave up after trying again for 2 s \(--timeout\)$/);
    expect(lines.length).toBe(2);
  }, 120_000);

  it('does not retry what the server refuses (topic deleted, key revoked) and stops at once on Ctrl-C while it waits to retry', async () => {
    const adminKey = 'follow-admin-key-0123456789';
    const server = await startServerProcess(['--data', await tempDir('follow-refused-data')], { QUARTZ_ADMIN_KEY: adminKey });
    running.push(server);
    const created = await fetch(`${server.url}/v1/admin/tenants`, { method: 'POST', headers: { authorization: `Bearer ${adminKey}`, 'content-type': 'application/json' }, body: JSON.stringify({ email: 'refused@example.com', plan: 'unlimited' }) });
    expect(created.status).toBe(201);
    const { tenant, key_id, api_key } = (await created.json()) as { tenant: { id: string }; key_id: string; api_key: string };
    const env = { XDG_CONFIG_HOME: await tempDir('follow-refused-home'), QUARTZ_URL: server.url, QUARTZ_API_KEY: api_key };
    for (const t of ['doomed', 'live']) expect((await runCli(['topic', 'create', t, '--partitions', '2'], env)).code).toBe(0);
    expect((await runCli(['produce', 'doomed'], env, 'd0\n')).code).toBe(0);
    expect((await runCli(['produce', 'live'], env, 'l0\n')).code).toBe(0);
    const doomed = follow(['doomed', '--follow', '--from-beginning', '-o', 'json', '--timeout', '0'], env);
    const live = follow(['live', '--follow', '--from-beginning', '--group', 'g', '-o', 'json', '--timeout', '0'], env);
    for (const f of [doomed, live]) await waitFor(() => (f.lines().length === 1 ? true : undefined), 60_000, `a record printed (stderr: ${f.stderr()})`);

    expect((await runCli(['topic', 'rm', 'doomed'], env)).code).toBe(0);
    // Bounded: a command that wrongly retried would wait for ever with --timeout 0.
    const exitWithin = (f: Follower, ms: number) => Promise.race([f.exited, new Promise((resolve) => setTimeout(() => resolve(`still running after ${ms} ms; stderr: ${f.stderr()}`), ms))]);
    expect(await exitWithin(doomed, 20_000)).toBe(1);
    expect(doomed.stderr()).not.toMatch(/lost the server/);
    expect(doomed.stderr().trim().split('\n')).toHaveLength(1);
    expect(doomed.stderr()).toMatch(/not_found|not found|does not exist/);

    const revoked = await fetch(`${server.url}/v1/admin/tenants/${tenant.id}/keys/${key_id}`, { method: 'DELETE', headers: { authorization: `Bearer ${adminKey}` } });
    expect(revoked.status).toBe(204);
    expect(await exitWithin(live, 30_000)).toBe(1); // its long-poll under way (10 s) is answered first
    expect(live.stderr()).not.toMatch(/lost the server/);
    expect(live.stderr().trim().split('\n')).toHaveLength(1);
    expect(live.stderr()).toMatch(/401|unauthorized|API key/i);

    // With --timeout 0 it would wait for the server for ever: Ctrl-C during the wait ends it.
    const key2 = (await (await fetch(`${server.url}/v1/admin/tenants/${tenant.id}/keys`, { method: 'POST', headers: { authorization: `Bearer ${adminKey}` } })).json()) as { api_key: string };
    const waiting = follow(['live', '--follow', '--from-beginning', '-o', 'json', '--timeout', '0'], { ...env, QUARTZ_API_KEY: key2.api_key });
    await waitFor(() => (waiting.lines().length === 1 ? true : undefined), 60_000, `a record printed (stderr: ${waiting.stderr()})`);
    await server.stop('SIGKILL');
    await waitFor(() => (/lost the server/.test(waiting.stderr()) ? true : undefined), 30_000, `the loss noticed (stderr: ${waiting.stderr()})`);
    await new Promise((resolve) => setTimeout(resolve, 1500)); // into the backoff
    waiting.proc.kill('SIGINT');
    expect(await exitWithin(waiting, 5_000)).toBe(0);
  }, 180_000);

  it('waits out a 429 as its Retry-After asks rather than stop', async () => {
    const data = await tempDir('follow-limited-data');
    const config = join(data, '..', `follow-limited-${process.pid}.json`);
    // 12 a minute: a token every 5 s, so the spent bucket is still empty when the consume asks.
    await writeFile(config, JSON.stringify({ plans: { slow: { requests_per_minute: 12 } }, default_plan: 'slow' }));
    const server = await startServerProcess(['--data', data, '--config', config]);
    running.push(server);
    const env = { XDG_CONFIG_HOME: await tempDir('follow-limited-home'), QUARTZ_URL: server.url };
    const reg = await runCli(['register', '--email', 'limited@example.com', '-o', 'json'], env);
    const apiKey = (JSON.parse(reg.stdout) as { api_key: string }).api_key;
    const headers = { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' };
    expect((await fetch(`${server.url}/v1/topics`, { method: 'POST', headers, body: JSON.stringify({ name: 'slow' }) })).status).toBe(201);
    expect((await fetch(`${server.url}/v1/topics/slow/records`, { method: 'POST', headers, body: JSON.stringify({ records: [{ value: 'one' }] }) })).status).toBe(200);
    let spent = 0;
    while ((await fetch(`${server.url}/v1/usage`, { headers })).status !== 429) expect(++spent).toBeLessThan(20);

    // In this process: a node start-up would give the bucket time to refill.
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    let out = '';
    let err = '';
    stdout.on('data', (c: Buffer) => (out += c.toString()));
    stderr.on('data', (c: Buffer) => (err += c.toString()));
    const io = { env: { ...env, QUARTZ_API_KEY: apiKey }, stdout, stderr, stdin: new PassThrough() };
    // It stopped at the first 429: "quartz: rate limit exceeded … (429 rate_limited)".
    await buildProgram(io).parseAsync(['node', 'quartz', 'consume', 'slow', '--from-beginning', '--follow', '--max', '1', '-o', 'json']);
    expect(JSON.parse(out)).toMatchObject({ topic: 'slow', partition: 0, offset: 0, value: 'one' });
    expect(err).toMatch(/^quartz: rate limit of 12 requests per minute exceeded .*\(429 rate_limited\); asking again when Retry-After says \([1-5] s\), for as long as it lasts\n/);

    // Ctrl-C while the first request's 429 is waited out ends it as one in the loops does: exit 0,
    // at once (it killed the process by the signal, before the loops' handler was in place).
    while ((await fetch(`${server.url}/v1/usage`, { headers })).status !== 429) expect(++spent).toBeLessThan(40);
    const waiting = follow(['slow', '--follow', '-o', 'json'], { ...env, QUARTZ_API_KEY: apiKey });
    await waitFor(() => (/asking again when Retry-After says/.test(waiting.stderr()) ? true : undefined), 30_000, `the 429 waited out (stderr: ${waiting.stderr()})`);
    waiting.proc.kill('SIGINT');
    expect(await Promise.race([waiting.exited, new Promise((resolve) => setTimeout(() => resolve('still running after 3 s'), 3_000))])).toBe(0);
  }, 120_000);
  it('waits at least a second when Retry-After asks for no wait (0, a date gone by), rather than ask again at once', async () => {
    // A proxy's 429s for two seconds, then the topic and its one record.
    const headers = ['0', 'Mon, 01 Jan 2001 00:00:00 GMT'];
    let limited = 0;
    let firstAt: number | undefined;
    const fake = createServer((req, res) => {
      firstAt ??= Date.now();
      res.setHeader('content-type', 'application/json');
      if (Date.now() - firstAt < 2_000) {
        res.writeHead(429, { 'retry-after': headers[limited++ % headers.length]! });
        res.end(JSON.stringify({ error: 'rate_limited', message: 'slow down' }));
        return;
      }
      const url = new URL(req.url!, 'http://x');
      if (url.pathname === '/v1/topics/t') {
        res.end(JSON.stringify({ name: 't', partitions: 1, partition_info: [{ partition: 0, log_start_offset: 0, high_watermark: 1 }] }));
        return;
      }
      res.end(JSON.stringify({ records: [{ offset: 0, timestamp: 0, key: null, value: 'one', headers: {}, encoding: 'utf8' }], next_offset: 1, high_watermark: 1, log_start_offset: 0 }));
    });
    await new Promise<void>((resolve) => fake.listen(0, '127.0.0.1', resolve));
    try {
      const stdout = new PassThrough();
      const stderr = new PassThrough();
      let out = '';
      stdout.on('data', (c: Buffer) => (out += c.toString()));
      const env = { XDG_CONFIG_HOME: await tempDir('follow-no-wait-home'), QUARTZ_URL: `http://127.0.0.1:${(fake.address() as AddressInfo).port}`, QUARTZ_API_KEY: 'qz_test' };
      await buildProgram({ env, stdout, stderr, stdin: new PassThrough() }).parseAsync(['node', 'quartz', 'consume', 't', '--from-beginning', '--follow', '--max', '1', '-o', 'json']);
      expect(JSON.parse(out)).toMatchObject({ offset: 0, value: 'one' });
      // Each was a wait of 0: hundreds of requests in those two seconds.
      expect(limited).toBeGreaterThan(0);
      expect(limited).toBeLessThanOrEqual(4);
    } finally {
      fake.closeAllConnections();
      await new Promise((resolve) => fake.close(resolve));
    }
  }, 60_000);
});
