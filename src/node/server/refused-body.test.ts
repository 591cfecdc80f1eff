/**
 * A request body refused as too large leaves its connection usable: the server reads the rest of
 * the body and drops it, so the next request on the same keep-alive connection is answered.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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
