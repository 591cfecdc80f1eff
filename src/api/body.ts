/**
 * Request bodies with a size limit: the declared Content-Length is checked before reading, and
 * a body without one (chunked) is counted while it streams, so an oversized upload is refused
 * with 413 without buffering it whole. JSON is parsed whatever the Content-Type says, because
 * `curl -d` labels JSON as form data and people expect it to work. A body is taken as sent: one
 * with a content coding (gzip, br…) is refused, not stored or parsed as its compressed bytes.
 */
import { ErrorCode, QuartzError } from '../core/errors.js';
import type { DirectRequest } from './middleware/request.js';
import { invalid } from './validation.js';

function tooLarge(size: number | undefined, limit: number): QuartzError {
  const what = size === undefined ? 'request body is larger than' : `request body is ${size} bytes; the limit is`;
  return new QuartzError(ErrorCode.TOO_LARGE, `${what} ${limit} bytes`, { details: { limit } });
}

const EMPTY = new Uint8Array(0);

/**
 * The error for a body that stopped before its end: the client went away mid-upload (or its
 * connection broke). It is the client's doing, so a 400 rather than a logged 500; nobody reads it.
 */
export function bodyCutShort(cause?: unknown): QuartzError {
  return new QuartzError(ErrorCode.INVALID_ARGUMENT, 'the request body ended before it was complete', { cause });
}

/**
 * INVALID_ARGUMENT when the body says it is compressed. NOTE: without this a gzip'd KV value was
 * stored as its gzip bytes and served back without its Content-Encoding, as if plain.
 */
function refuseEncoded(encoding: string | null | undefined): void {
  if (encoding === undefined || encoding === null) return;
  const coding = encoding.trim().toLowerCase();
  if (coding === '' || coding === 'identity') return;
  throw new QuartzError(
    ErrorCode.INVALID_ARGUMENT,
    `request bodies are not decoded: Content-Encoding '${coding.slice(0, 32)}' is not supported; send the body uncompressed, without Content-Encoding`,
  );
}

/** TOO_LARGE when a declared Content-Length is over `limit`, before anything is read. */
function refuseDeclared(declared: string, limit: number): void {
  const size = Number(declared);
  if (Number.isFinite(size) && size > limit) throw tooLarge(size, limit);
}

/**
 * A direct request's body (see `DirectRequest.body`) with readBody's limit and errors; the
 * request must declare its Content-Length, which the transport holds the body to.
 *
 * @example
 * const bytes = await readDirectBody(s.request, config.body_limits.vectors);
 */
export async function readDirectBody(request: DirectRequest, limit: number): Promise<Uint8Array> {
  const declared = request.header('content-length');
  if (declared === undefined || request.body === undefined) throw new QuartzError(ErrorCode.INTERNAL, 'a direct route read a body the home cannot give it');
  refuseEncoded(request.header('content-encoding'));
  refuseDeclared(declared, limit);
  const bytes = await request.body();
  if (bytes.length > limit) throw tooLarge(bytes.length, limit);
  return bytes;
}

/**
 * The whole body as bytes, refusing more than `limit` bytes with TOO_LARGE (413).
 *
 * @example
 * const value = await readBody(c.req.raw, config.body_limits.kv);
 */
export async function readBody(request: Request, limit: number): Promise<Uint8Array> {
  refuseEncoded(request.headers.get('content-encoding'));
  const declared = request.headers.get('content-length');
  if (declared !== null) {
    refuseDeclared(declared, limit);
    // The transport holds the body to its declared length, so one read is safe and fastest.
    // NOTE: `request.body` is not touched on this path: on @hono/node-server reading that getter
    // turns the lightweight request into a full web Request with a ReadableStream body.
    let bytes: Uint8Array;
    try {
      bytes = new Uint8Array(await request.arrayBuffer());
    } catch (err) {
      throw bodyCutShort(err);
    }
    if (bytes.length > limit) throw tooLarge(bytes.length, limit);
    return bytes;
  }
  if (request.body === null) return EMPTY;
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    let read: ReadableStreamReadResult<Uint8Array>;
    try {
      read = await reader.read();
    } catch (err) {
      throw bodyCutShort(err);
    }
    const { done, value } = read;
    if (done) break;
    total += value.length;
    if (total > limit) {
      void discardRest(reader);
      throw tooLarge(undefined, limit);
    }
    chunks.push(value);
  }
  if (chunks.length === 1) return chunks[0]!;
  const out = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/**
 * Reads the rest of a refused body and drops it, while the 413 goes out, so the connection can
 * carry the next request. The home bounds how much of it it takes (the Node server: 64 MiB, then
 * it closes the connection, see src/node/server/early-answer.ts). NOTE: cancelling it instead left
 * @hono/node-server's request stream paused with the rest unread: the connection, answered as
 * keep-alive, could carry no other request, and was cut 500 ms later, failing whatever request
 * the client had sent on it meanwhile.
 */
async function discardRest(reader: ReadableStreamDefaultReader<Uint8Array>): Promise<void> {
  try {
    for (;;) {
      const { done } = await reader.read();
      if (done) return;
    }
  } catch {
    // The client went away, or the home closed the connection: nothing is left to drop.
  }
}

// Fatal: JSON must be UTF-8 (RFC 8259), and a lenient decoder would store U+FFFD for the bytes it cannot read.
const decoder = new TextDecoder('utf-8', { fatal: true });

/**
 * The body parsed as JSON (any Content-Type), within `limit` bytes.
 *
 * @example
 * const body = await readJson(c.req.raw, config.body_limits.json);
 */
export async function readJson(request: Request, limit: number): Promise<unknown> {
  return parseJson(await readBody(request, limit));
}

/**
 * A body already read, parsed as JSON, with readJson's errors.
 *
 * @example
 * const body = parseJson(await readBody(c.req.raw, limit));
 */
export function parseJson(bytes: Uint8Array): unknown {
  if (bytes.length === 0) throw invalid('request body is empty; expected a JSON document');
  let text: string;
  try {
    text = decoder.decode(bytes);
  } catch {
    throw invalid('request body is not valid UTF-8, which JSON must be; send binary values base64-encoded');
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw invalid(`request body is not valid JSON: ${(err as Error).message}`);
  }
}
