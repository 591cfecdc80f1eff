/**
 * Process lifecycle of `quartz serve`: SIGTERM answers pending long-polls with what they have
 * (saying `Connection: close`) and exits 0 promptly, even with a connected client that has sent
 * nothing; SIGKILL in the middle of a produce load from several clients loses no acknowledged
 * record and duplicates none, across a restart on the same data directory.
 */
import { spawn } from 'node:child_process';
import { existsSync, watch } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { BIN, ROOT, cleanEnv, metric, serversKilledAfterEach, tempDir, waitFor } from './server-process.js';

const start = serversKilledAfterEach();

async function tenant(url: string): Promise<Record<string, string>> {
  const res = await fetch(`${url}/v1/auth/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email: 'load@example.com' }) });
  const { api_key } = (await res.json()) as { api_key: string };
  return { authorization: `Bearer ${api_key}`, 'content-type': 'application/json' };
}

describe('quartz serve shutdown', () => {
  it('stopped by SIGTERM or SIGINT while its data directory opens, finishes the start, closes it and exits 130, its LOCK released', async () => {
    for (const signal of ['SIGTERM', 'SIGINT'] as const) {
      const data = await tempDir('stop-starting');
      // The signal goes the moment the LOCK is taken: the engine is opening, no handler of the
      // running server exists yet, and the process used to die of the signal, leaving the LOCK.
      const watcher = watch(data);
      onTestFinished(() => watcher.close());
      const proc = spawn(process.execPath, [BIN, 'serve', '--port', '0', '--data', data], { env: cleanEnv(), cwd: ROOT });
      onTestFinished(() => void proc.kill('SIGKILL'));
      let out = '';
      let err = '';
      proc.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
      proc.stderr.setEncoding('utf8').on('data', (c: string) => (err += c));
      // Once: the LOCK's removal at close is an event on it too, and a second signal ends the process at once.
      let sent = false;
      watcher.on('change', (_event, file) => {
        if (file === 'LOCK' && !sent) {
          sent = true;
          proc.kill(signal);
        }
      });
      const exited = await new Promise<number | string>((resolve) => proc.once('close', (code, sig) => resolve(code ?? sig ?? -1)));
      watcher.close();
      if (out.includes('listening on')) {
        // The signal came after the start on a slow machine: the usual graceful shutdown.
        expect(exited, err).toBe(0);
      } else {
        expect([exited, err], out).toEqual([130, `quartz: ${signal} while starting; stopping once the data directory is open (a second ${signal} exits at once)\nquartz: stopped by ${signal} while starting; the data directory is closed\n`]);
      }
      expect(existsSync(join(data, 'LOCK'))).toBe(false);
      // The directory opens as usual afterwards.
      const again = await start(['--data', data]);
      expect((await fetch(`${again.url}/v1/health`)).status).toBe(200);
      expect(await again.stop()).toBe(0);
    }
  });

  it('ends at once of a second SIGINT, however close behind the first, never hanging with its LOCK held', async () => {
    // process.exit() joined the thread pool while lmdb's writer there waited on the main thread:
    // about one double Ctrl-C in five hung for good, its port closed and its LOCK held.
    for (let round = 0; round < 10; round++) {
      const data = await tempDir('double-sigint');
      const proc = spawn(process.execPath, [BIN, 'serve', '--port', '0', '--data', data], { env: cleanEnv(), cwd: ROOT });
      onTestFinished(() => void proc.kill('SIGKILL'));
      let out = '';
      proc.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
      const closed = new Promise<number | string>((resolve) => proc.once('close', (code, sig) => resolve(code ?? sig ?? -1)));
      await waitFor(() => (out.includes('listening on') ? true : undefined), 45_000, 'the banner');
      proc.kill('SIGINT');
      setTimeout(() => proc.kill('SIGINT'), round % 5);
      const ended = await Promise.race([closed, new Promise<string>((resolve) => setTimeout(() => resolve('still running after 20 s'), 20_000))]);
      // A first SIGINT that finished the shutdown before the second came exits 0.
      expect([0, 'SIGINT'], `round ${round}`).toContain(ended);
    }
  }, 400_000);

  it('answers pending long-polls on SIGTERM and exits 0 quickly', async () => {
    const s = await start(['--data', await tempDir('sigterm')]);
    const headers = await tenant(s.url);
    await fetch(`${s.url}/v1/topics`, { method: 'POST', headers, body: JSON.stringify({ name: 'waiting', partitions: 1 }) });
    // API calls are counted at auth, before the route runs: the count shows the server took the poll.
    const before = await metric(s.url, 'quartz_api_calls');
    // The longest wait a poll may ask for (the default cap): only the shutdown can answer it in time.
    // More polls than node's default of 10 listeners on one signal: a server under load has as many.
    const polls = Array.from({ length: 12 }, () => fetch(`${s.url}/v1/topics/waiting/partitions/0/records?offset=0&max_wait_ms=30000`, { headers }));
    // A client that connected and sent nothing yet, as browsers preconnect: it must not hold up the exit.
    const { hostname, port } = new URL(s.url);
    const silent = connect(Number(port), hostname);
    const silentClosed = new Promise((resolve) => silent.once('close', resolve));
    silent.on('error', () => {});
    await new Promise((resolve) => silent.once('connect', resolve));
    // A fixed sleep here could end before the poll reached the server on a busy machine; the
    // shutdown then cut its connection as never used, and the fetch failed.
    await waitFor(async () => ((await metric(s.url, 'quartz_api_calls')) >= before + polls.length ? true : undefined), 20_000, 'the server to take the long-polls');
    const signalled = Date.now();
    s.proc.kill('SIGTERM');
    const answers = await Promise.all(polls);
    // Generous for a loaded 2-core machine, yet far short of the 30 s wait and of the 10 s shutdown
    // bound (past which the server cuts connections and exits 1, failing the checks below).
    expect(Date.now() - signalled).toBeLessThan(8_000);
    for (const res of answers) {
      expect(res.status).toBe(200);
      // So the client does not send its next request on a connection the server is about to close.
      expect(res.headers.get('connection')).toBe('close');
      expect(await res.json()).toMatchObject({ records: [], next_offset: 0, high_watermark: 0 });
    }
    expect(await s.exited).toBe(0); // 1 had the shutdown reached its bound with a connection open
    await silentClosed;
    expect(s.stderr()).toBe(''); // e.g. no MaxListenersExceededWarning for the waiting polls
    expect(s.stdout()).toMatch(/"msg":"shutting down"/);
    expect(s.stdout()).toMatch(/"msg":"stopped"/);
  });

  it('answers GET /v1/health 503 unavailable once it is shutting down, so a load balancer stops sending', async () => {
    const s = await start(['--data', await tempDir('draining')]);
    const headers = await tenant(s.url);
    await fetch(`${s.url}/v1/topics`, { method: 'POST', headers, body: JSON.stringify({ name: 'waiting', partitions: 1 }) });
    expect((await fetch(`${s.url}/v1/health`)).status).toBe(200);
    const before = await metric(s.url, 'quartz_api_calls');
    const poll = fetch(`${s.url}/v1/topics/waiting/partitions/0/records?offset=0&max_wait_ms=30000`, { headers });
    await waitFor(async () => ((await metric(s.url, 'quartz_api_calls')) > before ? true : undefined), 20_000, 'the server to take the long-poll');
    // A health check whose first bytes came before the signal and the rest after: the connection
    // has a request under way, so the drain answers it rather than close it as idle.
    const { hostname, port, host } = new URL(s.url);
    const check: Socket = connect(Number(port), hostname);
    check.on('error', () => {});
    let answer = '';
    check.on('data', (chunk: Buffer) => (answer += chunk.toString()));
    const closed = new Promise<void>((resolve) => check.on('close', () => resolve()));
    await new Promise((resolve) => check.once('connect', resolve));
    check.write('GET /v1/health HTTP/1.1\r\n');
    // The bytes are in the server's socket buffer once write returns; a scrape answered after them
    // means its event loop has read them (a connection that sent nothing is cut at the drain).
    await metric(s.url, 'quartz_api_calls');
    s.proc.kill('SIGTERM');
    await waitFor(async () => (/"msg":"shutting down"/.test(s.stdout()) ? true : undefined), 20_000, 'the shutdown to begin');
    check.write(`Host: ${host}\r\n\r\n`);
    await closed;
    expect(answer).toMatch(/^HTTP\/1\.1 503 /);
    expect(answer).toMatch(/\r\nconnection: close\r\n/i);
    expect(JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4))).toEqual({ error: 'unavailable', message: 'the server is shutting down' });
    expect((await poll).status).toBe(200);
    expect(await s.exited).toBe(0);
  });

  it('on SIGTERM, finishes writing an answer already ended and answers the request pipelined behind it', async () => {
    const s = await start(['--data', await tempDir('flushing')]);
    const headers = await tenant(s.url);
    // Larger than loopback's socket buffers take, so most of it is still in the server when the signal comes.
    const size = 20 * 2 ** 20;
    expect((await fetch(`${s.url}/v1/kv/big`, { method: 'PUT', headers, body: new Uint8Array(size).fill(97) })).status).toBe(200);
    const { hostname, port, host } = new URL(s.url);
    const head = `Host: ${host}\r\nAuthorization: ${headers.authorization}\r\n`;
    const socket: Socket = connect(Number(port), hostname);
    const chunks: Buffer[] = [];
    const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
    socket.on('error', () => {});
    const started = new Promise<void>((resolve) =>
      socket.once('data', (first: Buffer) => {
        chunks.push(first);
        socket.pause(); // a slow reader: the answer waits in the server's buffer
        resolve();
      }),
    );
    socket.write(`GET /v1/kv/big HTTP/1.1\r\n${head}\r\nPUT /v1/kv/behind HTTP/1.1\r\n${head}Content-Length: 6\r\n\r\nbehind`);
    await started;
    s.proc.kill('SIGTERM');
    // Past the server's 50 ms rounds of closing idle connections, well inside its 10 s bound.
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.resume();
    await closed;
    const text = Buffer.concat(chunks).toString('latin1');
    // node counted such a connection idle once the answer was ended, though bytes of it were
    // still to be written, and the shutdown destroyed it: the client read a cut answer.
    const bodyAt = text.indexOf('\r\n\r\n') + 4;
    expect(text.slice(0, 12)).toBe('HTTP/1.1 200');
    expect(text.length).toBeGreaterThan(bodyAt + size);
    const second = text.slice(bodyAt + size);
    expect(second.slice(0, 12)).toBe('HTTP/1.1 200');
    expect(second).toMatch(/\r\nConnection: close\r\n/i);
    expect(second).toMatch(/"key":"behind"/);
    expect(await s.exited).toBe(0);
    expect(s.stdout()).not.toMatch(/"msg":"request failed"/);
  });

  it('on SIGTERM, waits for a client still sending a refused body within the bound, and exits 0: no request was cut', async () => {
    const s = await start(['--data', await tempDir('lingering')]);
    const { hostname, port, host } = new URL(s.url);
    // A declared body over 64 MiB with a bad key: answered 401 at once, then the server lingers,
    // reading and dropping, while the body keeps coming (so the client reads its 401, not a reset).
    const socket = connect({ port: Number(port), host: hostname, allowHalfOpen: true });
    socket.on('error', () => {});
    let answer = '';
    const answered = new Promise<void>((resolve) =>
      socket.on('data', (chunk: Buffer) => {
        answer += chunk.toString('latin1');
        resolve();
      }),
    );
    socket.write(`PUT /v1/kv/refused HTTP/1.1\r\nHost: ${host}\r\nAuthorization: Bearer qz_nobody\r\nContent-Length: ${100 * 2 ** 20}\r\n\r\n`);
    const sending = setInterval(() => socket.write(Buffer.alloc(16 * 1024, 97)), 200);
    try {
      await answered;
      expect(answer.slice(0, 12)).toBe('HTTP/1.1 401');
      const signalled = Date.now();
      s.proc.kill('SIGTERM');
      // 1 had the server reported the lingering close as a request still running at its bound.
      expect(await s.exited).toBe(0);
      expect(Date.now() - signalled).toBeLessThan(14_000); // the 10 s bound, on a loaded machine
      expect(s.stdout()).not.toMatch(/requests still running/);
    } finally {
      clearInterval(sending);
      socket.destroy();
    }
  }, 60_000);

  it('keeps every acknowledged record exactly once across a SIGKILL during a produce load', async () => {
    const data = await tempDir('sigkill');
    const s = await start(['--data', data]);
    const headers = await tenant(s.url);
    const partitions = 3;
    await fetch(`${s.url}/v1/topics`, { method: 'POST', headers, body: JSON.stringify({ name: 'load', partitions }) });

    const acked = new Map<string, { partition: number; offset: number }>();
    let stop = false;
    const client = async (id: number): Promise<void> => {
      for (let batch = 0; !stop && batch < 10_000; batch++) {
        const values = Array.from({ length: 50 }, (_, i) => `c${id}-b${batch}-r${i}`);
        let res: Response;
        try {
          res = await fetch(`${s.url}/v1/topics/load/records`, { method: 'POST', headers, body: JSON.stringify({ records: values.map((value) => ({ value, key: `k${id}-${batch}` })) }) });
        } catch {
          return; // the server died mid-request: this batch was never acknowledged
        }
        if (res.status !== 200) return;
        const { offsets } = (await res.json()) as { offsets: { partition: number; offset: number }[] };
        values.forEach((v, i) => acked.set(v, offsets[i]!));
      }
    };
    const clients = [0, 1, 2, 3].map(client);
    // Kill in the middle of the load: once some batches are acknowledged (a fixed sleep could
    // end before the first one on a busy machine), with every client still sending.
    await waitFor(() => (acked.size >= 20 * 50 ? true : undefined), 30_000, 'acknowledged batches');
    s.proc.kill('SIGKILL');
    stop = true;
    await Promise.all(clients);
    expect(await s.exited).toBe('SIGKILL');

    const again = await start(['--data', data]);
    const seen = new Map<string, { partition: number; offset: number }>();
    const dupes: string[] = [];
    for (let p = 0; p < partitions; p++) {
      let offset = 0;
      for (;;) {
        const page = (await (await fetch(`${again.url}/v1/topics/load/partitions/${p}/records?offset=${offset}&max_records=5000`, { headers })).json()) as {
          records: { offset: number; value: string }[];
          next_offset: number;
          high_watermark: number;
        };
        for (const r of page.records) {
          if (seen.has(r.value)) dupes.push(r.value);
          seen.set(r.value, { partition: p, offset: r.offset });
        }
        offset = page.next_offset;
        if (offset >= page.high_watermark) break;
      }
    }
    expect(dupes).toEqual([]);
    const missing = [...acked].filter(([v, at]) => {
      const got = seen.get(v);
      return got === undefined || got.partition !== at.partition || got.offset !== at.offset;
    });
    expect(missing).toEqual([]);
  }, 180_000);
});
