/**
 * A request body refused as too large leaves its connection usable: the server reads the rest of
 * the body and drops it, so the next request on the same keep-alive connection is answered. A
 * body over what the server drops (64 MiB) gets its answer whole, then a clean close.
 */
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DRAIN_BYTES } from './early-answer.js';
import { exchangeRaw, startServerWithTenant, type ServerWithTenant } from '../../../tests/fixtures/server-with-tenant.js';

const LIMIT = 4096;
let running: ServerWithTenant;

beforeAll(async () => {
  running = await startServerWithTenant('refused-body', { body_limits: { json: LIMIT } });
});

afterAll(async () => {
  await running.close();
});

/** A chunked POST of `chunks` chunks of 16 KiB to a JSON route, without a Content-Length. */
function chunkedPost(key: string, chunks: number): string {
  const chunk = `4000\r\n${'x'.repeat(16 * 1024)}\r\n`;
  return `POST /v1/topics HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n${chunk.repeat(chunks)}0\r\n\r\n`;
}

describe('a streamed body over the limit', () => {
  it.each([1, 64])('is refused with 413 and the connection answers the next request (%i × 16 KiB)', async (chunks) => {
    // Both requests on one connection: the second is read only once the first body has been.
    const health = 'GET /v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n';
    const text = await exchangeRaw(running.server.url, chunkedPost(running.apiKey, chunks) + health);
    const statuses = [...text.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1]));
    expect(statuses).toEqual([413, 200]);
    expect(text).toContain('"error":"too_large"');
  });
});

/** What a client sees of a connection: everything read, and how it ended ('end' is the server's FIN). */
interface Seen {
  text: string;
  ended: 'end' | 'still open' | `error ${string}`;
}

/**
 * Writes `head`, then `bodyBytes` of body (chunked when `chunked`) as fast as the server takes
 * them, and returns what it reads back until the server closes. A client that reads while it
 * writes (`readLate` false) stops writing once the server has closed its side; one that reads only
 * once it has written everything (`readLate`) finds the answer waiting, unless a reset dropped it.
 */
function upload(head: string, bodyBytes: number, options: { chunked: boolean; readLate: boolean }): Promise<Seen> {
  const { hostname, port } = new URL(running.server.url);
  return new Promise<Seen>((resolve) => {
    const socket: Socket = connect(Number(port), hostname);
    let text = '';
    let sent = 0;
    let over = false;
    const finish = (ended: Seen['ended']): void => {
      if (over) return;
      over = true;
      socket.destroy();
      resolve({ text, ended });
    };
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => (text += chunk));
    socket.on('end', () => finish('end'));
    socket.on('error', (err: NodeJS.ErrnoException) => finish(`error ${err.code}`));
    setTimeout(() => finish('still open'), 20_000).unref();
    if (options.readLate) socket.pause();
    const piece = Buffer.alloc(1024 * 1024, 0x61);
    const framed = options.chunked ? Buffer.concat([Buffer.from(`${piece.length.toString(16)}\r\n`), piece, Buffer.from('\r\n')]) : piece;
    const pump = (): void => {
      while (!over && sent < bodyBytes) {
        sent += piece.length;
        if (!socket.write(framed)) {
          socket.once('drain', pump);
          return;
        }
      }
      if (over) return;
      if (options.chunked) socket.write('0\r\n\r\n');
      socket.resume();
    };
    socket.write(head);
    pump();
  });
}

describe('a body over what the server drops', () => {
  it('declared: 413 with Connection: close, then the server closes cleanly, reading no more than it must', async () => {
    const size = DRAIN_BYTES + 1;
    const head = `PUT /v1/kv/huge HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${running.apiKey}\r\nContent-Length: ${size}\r\n\r\n`;
    // Only part of the body is sent: the server must not wait for the rest.
    const seen = await upload(head, 1024 * 1024, { chunked: false, readLate: false });
    expect(seen.ended).toBe('end');
    const answer = parseHead(seen.text);
    expect(answer.status).toBe(413);
    expect(answer.connection).toBe('close');
    expect(JSON.parse(answer.body)).toMatchObject({ error: 'too_large' });
  });

  it('chunked, from a client that reads only once it has sent it all: the 413 is there to read, then a clean close', async () => {
    const head = `POST /v1/topics HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${running.apiKey}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n`;
    const seen = await upload(head, DRAIN_BYTES + 16 * 1024 * 1024, { chunked: true, readLate: true });
    expect(seen.ended).toBe('end');
    const answer = parseHead(seen.text);
    expect(answer.status).toBe(413);
    expect(JSON.parse(answer.body)).toMatchObject({ error: 'too_large' });
  });
});

function parseHead(text: string): { status: number; connection: string | undefined; body: string } {
  const at = text.indexOf('\r\n\r\n');
  const head = text.slice(0, at);
  return {
    status: Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1]),
    connection: /\r\nconnection: ([^\r]+)/i.exec(head)?.[1]?.toLowerCase(),
    body: text.slice(at + 4),
  };
}
