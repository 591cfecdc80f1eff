import { createServer, type RequestListener, type Server } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { idleBound } from './idle-bound.js';

const IDLE_MS = 300;

let server: Server | undefined;
const clients: Socket[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) c.destroy();
  server?.closeAllConnections();
  await new Promise<void>((resolve) => (server === undefined ? resolve() : server.close(() => resolve())));
  server = undefined;
});

/** A server as the Node home runs it: node's own idle timer off, the listener bounded; resolves its port and the server side of each connection. */
async function serve(listener: RequestListener): Promise<{ port: number; accepted: Socket[] }> {
  const accepted: Socket[] = [];
  server = createServer(idleBound(listener, IDLE_MS));
  server.timeout = 0;
  server.keepAliveTimeout = 5_000;
  server.on('connection', (socket: Socket) => accepted.push(socket));
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as AddressInfo).port, accepted };
}

async function client(port: number, request: string): Promise<Socket> {
  const socket = connect(port, '127.0.0.1');
  clients.push(socket);
  await new Promise<void>((resolve) => socket.once('connect', resolve));
  socket.write(request);
  return socket;
}

/** Resolves true once `socket` closes, false if it is still open after `ms`. */
function closesWithin(socket: Socket, ms: number): Promise<boolean> {
  if (socket.destroyed) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

async function until(check: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !check(); i++) await new Promise((resolve) => setTimeout(resolve, 10));
}

describe('idleBound', () => {
  it('closes a connection whose client stops reading a large answer', async () => {
    const { port, accepted } = await serve((_req, res) => res.end(Buffer.alloc(16 * 2 ** 20, 120)));
    const reader = await client(port, 'GET /big HTTP/1.1\r\nHost: x\r\n\r\n');
    reader.pause(); // reads nothing: the answer stops moving once the buffers are full
    await until(() => accepted.length === 1);
    expect(await closesWithin(accepted[0]!, 20 * IDLE_MS)).toBe(true);
  });

  it('closes a connection whose request body stalls', async () => {
    const { port, accepted } = await serve((req, res) => {
      req.resume();
      req.on('end', () => res.end('read'));
    });
    await client(port, 'PUT /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n0123456789');
    await until(() => accepted.length === 1);
    expect(await closesWithin(accepted[0]!, 20 * IDLE_MS)).toBe(true);
  });

  it('arms nothing for an answer written whole in its turn: the idle connection then lives out its keep-alive time', async () => {
    const timeouts: number[] = [];
    const answer: RequestListener = (_req, res) => res.end('small');
    const { port, accepted } = await serve(answer);
    server!.removeAllListeners('request');
    const bounded = idleBound(answer, IDLE_MS);
    server!.on('request', (req, res) => {
      bounded(req, res);
      timeouts.push((req.socket as Socket & { timeout?: number }).timeout ?? 0);
    });
    const socket = await client(port, 'GET /a HTTP/1.1\r\nHost: x\r\n\r\n');
    let read = '';
    socket.on('data', (chunk: Buffer) => (read += chunk.toString('latin1')));
    await until(() => read.includes('small'));
    expect(await closesWithin(accepted[0]!, 3 * IDLE_MS)).toBe(false);
    socket.write('GET /b HTTP/1.1\r\nHost: x\r\n\r\n');
    await until(() => read.split('small').length === 3);
    expect(read.split('small').length).toBe(3);
    expect(timeouts).toEqual([0, 0]);
  });
});
