import { describe, expect, it } from 'vitest';
import { isQuartzError } from '../core/errors.js';
import { readBody, readJson } from './body.js';

function chunked(chunks: number, size: number): Request {
  let sent = 0;
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (sent++ === chunks) controller.close();
      else controller.enqueue(new Uint8Array(size).fill(120));
    },
  });
  return new Request('http://x/', { method: 'POST', body, duplex: 'half' } as RequestInit);
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    if (isQuartzError(err)) return err.code;
    throw err;
  }
  return 'ok';
}

describe('readBody', () => {
  it('reads declared and chunked bodies within the limit', async () => {
    expect(await readBody(new Request('http://x/', { method: 'POST', body: 'hello' }), 5)).toEqual(new TextEncoder().encode('hello'));
    expect((await readBody(chunked(3, 10), 30)).length).toBe(30);
    expect((await readBody(new Request('http://x/'), 0)).length).toBe(0);
  });

  it('refuses a declared length over the limit before reading, and a chunked body once it passes the limit', async () => {
    const declared = new Request('http://x/', { method: 'POST', body: 'x'.repeat(11), headers: { 'content-length': '11' } });
    expect(await codeOf(readBody(declared, 10))).toBe('too_large');
    expect(await codeOf(readBody(new Request('http://x/', { method: 'POST', body: 'x'.repeat(11) }), 10))).toBe('too_large');
    expect(await codeOf(readBody(chunked(1000, 1024), 4096))).toBe('too_large');
  });
});

/** A body that sends one chunk, then breaks, as a client going away mid-upload does. */
function cutShort(headers?: Record<string, string>): Request {
  let pulls = 0;
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (pulls++ === 0) controller.enqueue(new Uint8Array(10));
      else controller.error(new Error('aborted'));
    },
  });
  return new Request('http://x/', { method: 'POST', body, headers, duplex: 'half' } as RequestInit);
}

describe('readBody when the client goes away mid-body', () => {
  it('refuses a declared or chunked body that breaks off with invalid_argument, not an internal error', async () => {
    expect(await codeOf(readBody(cutShort(), 100))).toBe('invalid_argument');
    expect(await codeOf(readBody(cutShort({ 'content-length': '50' }), 100))).toBe('invalid_argument');
    expect(await codeOf(readJson(cutShort(), 100))).toBe('invalid_argument');
  });
});

describe('readJson', () => {
  it('parses JSON whatever the content type says', async () => {
    const req = new Request('http://x/', { method: 'POST', body: '{"a":1}', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    expect(await readJson(req, 100)).toEqual({ a: 1 });
  });

  it('empty and malformed bodies are invalid_argument', async () => {
    expect(await codeOf(readJson(new Request('http://x/', { method: 'POST', body: '' }), 100))).toBe('invalid_argument');
    expect(await codeOf(readJson(new Request('http://x/', { method: 'POST', body: '{"a":' }), 100))).toBe('invalid_argument');
  });

  it('refuses bytes that are not UTF-8 rather than reading them as U+FFFD, and keeps a leading BOM optional', async () => {
    const latin1 = Uint8Array.from([...'{"a":"caf'].map((c) => c.charCodeAt(0)).concat(0xe9, 0x22, 0x7d));
    await expect(readJson(new Request('http://x/', { method: 'POST', body: latin1 }), 100)).rejects.toThrow(/request body is not valid UTF-8/);
    const lone = new TextEncoder().encode('{"a":"x"}');
    const wtf8 = Uint8Array.from([...lone.subarray(0, 7), 0xed, 0xa0, 0x80, ...lone.subarray(7)]);
    expect(await codeOf(readJson(new Request('http://x/', { method: 'POST', body: wtf8 }), 100))).toBe('invalid_argument');
    const bom = Uint8Array.from([0xef, 0xbb, 0xbf, ...new TextEncoder().encode('{"a":"é"}')]);
    expect(await readJson(new Request('http://x/', { method: 'POST', body: bom }), 100)).toEqual({ a: 'é' });
  });
});
