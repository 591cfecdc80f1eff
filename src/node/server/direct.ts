/**
 * The Node server's request listener: the app's direct routes (KV GET and PUT, vector query, produce, consume) answered straight from
 * node's IncomingMessage into its ServerResponse, everything else through @hono/node-server.
 *
 * NOTE: @hono/node-server adapts every request into a Request-like object and back, which on a
 * small KV read costs more than the read itself. A direct route gives the same answer, headers,
 * errors, metrics and logs (see `RequestPipeline.direct`); only the adaptation is skipped.
 */
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import { ErrorCode } from '../../core/errors.js';
import type { DirectRequest, DirectRoutes, PlainAnswer } from '../../api/app.js';
import { JSON_TYPE, errorJson } from '../../api/errors.js';
import type { LoggerPort } from '../../api/ports.js';
import { incomingBody } from './incoming-body.js';
import { refusedForHost } from './transport-errors.js';

/**
 * Headers the Fetch adapter reads from the raw list, joining repeats (node's parsed `headers`
 * keeps only the first of these): read them the same way so both paths see the same value.
 * NOTE: compared rather than looked up in a Set (~10-15 ns per lookup, three a GET): the routes
 * ask by constant names.
 */
const firstOnly = (name: string): boolean => name === 'authorization' || name === 'host' || name === 'content-type';

const isWhitespace = (code: number): boolean => code === 9 || code === 10 || code === 13 || code === 32;

/** A header value without surrounding whitespace, as the Fetch Headers class gives it. */
function trimmed(value: string): string {
  if (!isWhitespace(value.charCodeAt(0)) && !isWhitespace(value.charCodeAt(value.length - 1))) return value;
  return value.replace(/^[\t\n\r ]+|[\t\n\r ]+$/g, '');
}

class IncomingRequest implements DirectRequest {
  readonly method: string;

  constructor(private readonly incoming: IncomingMessage) {
    this.method = incoming.method ?? '';
  }

  header(name: string): string | undefined {
    if (firstOnly(name)) {
      const raw = this.incoming.rawHeaders;
      let value: string | undefined;
      for (let i = 0; i < raw.length; i += 2) {
        if (raw[i]!.length === name.length && raw[i]!.toLowerCase() === name) {
          const one = trimmed(raw[i + 1]!);
          value = value === undefined ? one : `${value}, ${one}`;
        }
      }
      return value;
    }
    const value = this.incoming.headers[name];
    return typeof value === 'string' ? trimmed(value) : undefined;
  }

  body(): Promise<Uint8Array> {
    return incomingBody(this.incoming);
  }
}

/**
 * The headers as node's flat `[name, value, …]` list, in the object's order. NOTE: node walks a
 * header object with for-in and a keyed load shared by every response shape the process writes
 * (megamorphic); a list it reads by index, which is cheaper per answer.
 */
function flat(headers: Record<string, string>): string[] {
  const list: string[] = [];
  for (const name in headers) {
    const value = headers[name]!;
    // NOTE: a value built by concatenation (an ETag, a request id) is a V8 rope; node's header
    // check runs a regular expression on it, which takes a slow call into the runtime on a rope
    // (~50-100 ns). charCodeAt makes V8 flatten the rope first, which is cheaper.
    value.charCodeAt(0);
    list.push(name, value);
  }
  return list;
}

/** The fields of node's ServerResponse that decide whether it writes a Content-Length itself. */
interface OwnLength {
  _contentLength?: unknown;
  useChunkedEncodingByDefault?: boolean;
}

/**
 * Sets the answer's length. NOTE: node writes `Content-Length: <n>` itself from `_contentLength`,
 * without the name and value checks a header gets; @hono/node-server has it do so for the hono
 * routes, so this gives the same head as those. Where node would not (an HTTP/1.0 request, or a
 * node without that field), the header, as @hono/node-server does then too.
 */
function setLength(res: ServerResponse, headers: Record<string, string>, length: number): void {
  const own = res as ServerResponse & OwnLength;
  if (own._contentLength === null && own.useChunkedEncodingByDefault === true) own._contentLength = length;
  else headers['Content-Length'] = String(length); // the name as @hono/node-server writes it
}

function write(res: ServerResponse, answer: PlainAnswer, logger: LoggerPort): void {
  const { status, headers, body } = answer;
  try {
    if (body !== null) setLength(res, headers, typeof body === 'string' ? Buffer.byteLength(body) : body.byteLength);
    res.writeHead(status, flat(headers));
    res.end(body ?? undefined);
  } catch (err) {
    // A header node refuses to write: answered as the app answers anything unexpected.
    logger.error({ request_id: headers['x-request-id'], err }, 'could not write a direct answer');
    if (res.headersSent) {
      res.destroy(err as Error);
      return;
    }
    const message = errorJson(ErrorCode.INTERNAL, 'the server failed to handle this request; the error is logged');
    res.writeHead(500, { 'content-type': JSON_TYPE, 'content-length': String(Buffer.byteLength(message)) });
    res.end(message);
  }
}

/** The methods some route of the server answers. */
const SERVER_METHODS = 'GET, HEAD, PUT, POST, PATCH, DELETE, OPTIONS';

/**
 * A request for `*`, the server as a whole: `OPTIONS *` (RFC 9110 §9.3.7) is 204 with the
 * methods the server answers anywhere; any other method has no resource there (400, as the URL
 * adapter answered every `*` before).
 */
function answerAsterisk(req: IncomingMessage, res: ServerResponse): number {
  if (req.method === 'OPTIONS') {
    res.writeHead(204, { allow: SERVER_METHODS });
    res.end();
    return 204;
  }
  const body = errorJson(ErrorCode.INVALID_ARGUMENT, `the request target * names no resource; only OPTIONS * is answered`);
  res.writeHead(400, { 'content-type': JSON_TYPE, 'content-length': String(Buffer.byteLength(body)) });
  res.end(body);
  return 400;
}

/**
 * `early` hears of the answers given here before any route (a Host refused, the `*` target), for
 * the metrics.
 *
 * @example
 * serve({ fetch: app.fetch, port, createServer: (options, listener) => createServer(options, directFirst(app.direct, listener, logger, (req, status) => count(req.method, status))) });
 */
export function directFirst(direct: DirectRoutes, fallback: RequestListener, logger: LoggerPort, early: (req: IncomingMessage, status: number) => void): RequestListener {
  return (req, res) => {
    if (refusedForHost(req, res)) return early(req, 400);
    if (req.url === '*') return early(req, answerAsterisk(req, res));
    const answer = direct(new IncomingRequest(req), req.url ?? '');
    if (answer === undefined) return fallback(req, res);
    if (answer instanceof Promise) void answer.then((a) => write(res, a, logger));
    else write(res, answer, logger);
  };
}
