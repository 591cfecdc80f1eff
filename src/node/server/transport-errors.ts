/**
 * Requests refused before they reach the app, answered as the app answers errors: `{error,
 * message}` JSON with its status. Five places refuse them: node's HTTP parser (malformed request
 * line or headers, a method it does not know, conflicting lengths, headers over node's size limit, a request too slow to
 * arrive), the Host check HTTP/1.1 asks of every server (missing or repeated), an `Expect` other
 * than 100-continue, CONNECT, and @hono/node-server when it cannot build a URL from the request (an
 * invalid Host, a backslash in the path). Left to themselves, the first three answer a bare status
 * (or let a repeated Host through), CONNECT a closed connection, the last an empty 400.
 */
import { getRequestListener, RequestError } from '@hono/node-server';
import { STATUS_CODES, maxHeaderSize, type IncomingMessage, type RequestListener, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Socket } from 'node:net';
import { lingerOnClose } from './early-answer.js';
import { ErrorCode, QuartzError } from '../../core/errors.js';
import { JSON_TYPE, errorJson, errorResponse, toErrorResponse } from '../../api/errors.js';
import type { LoggerPort } from '../../api/ports.js';

/** A complete HTTP/1.1 answer that closes the connection, for a socket no response object owns. */
function rawAnswer(status: number, code: ErrorCode, message: string): string {
  const body = errorJson(code, message);
  return `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: ${JSON_TYPE}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`;
}

/**
 * Whether the bytes node's parser gave up on begin with a request line that alone passes node's
 * header limit: then the target is what is too long, and RFC 9110 §15.5.15 answers 414. When the
 * bytes start elsewhere (the request came in pieces, only the last is kept), 431 covers it.
 */
function requestLineOverflows(packet: Buffer | undefined): boolean {
  if (packet === undefined || packet.length < maxHeaderSize) return false;
  if (!METHOD_TOKEN.test(packet.toString('latin1', 0, 34))) return false;
  const lineEnd = packet.indexOf('\r\n');
  return lineEnd < 0 || lineEnd >= maxHeaderSize;
}

/** A request line's method as RFC 9110 §9.1 spells one (a token), up to the space before the target. */
const METHOD_TOKEN = /^([!#$%&'*+.^_`|~0-9A-Za-z-]{1,32}) /;

/** What node's parser error is, in the status and code node itself would answer with. */
function parserRefusal(err: NodeJS.ErrnoException & { reason?: string; rawPacket?: Buffer }): [number, ErrorCode, string] {
  switch (err.code) {
    case 'HPE_INVALID_METHOD': {
      // A well-formed method node's parser does not know (methods are case-sensitive: `get` too):
      // 501, as RFC 9110 §15.6.2 asks for a method the server does not recognize.
      const method = METHOD_TOKEN.exec(err.rawPacket?.toString('latin1', 0, 34) ?? '')?.[1];
      if (method !== undefined) return [501, ErrorCode.NOT_IMPLEMENTED, `the method ${method} is not implemented by this server`];
      return [400, ErrorCode.INVALID_ARGUMENT, `the request is not valid HTTP/1.1: ${err.reason ?? err.code}`];
    }
    case 'HPE_HEADER_OVERFLOW':
      if (requestLineOverflows(err.rawPacket)) return [414, ErrorCode.TOO_LARGE, `the request target is longer than the server accepts (${maxHeaderSize} bytes with the headers)`];
      return [431, ErrorCode.TOO_LARGE, 'the request line and headers are larger than the server accepts'];
    case 'HPE_CHUNK_EXTENSIONS_OVERFLOW':
      return [413, ErrorCode.TOO_LARGE, 'the chunk extensions of the request body are larger than the server accepts'];
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return [408, ErrorCode.TIMEOUT, 'the request did not arrive in full within the server request timeout'];
    case 'HPE_PAUSED_H2_UPGRADE':
      return [400, ErrorCode.INVALID_ARGUMENT, 'HTTP/2 is not served on this port; use HTTP/1.1'];
    default:
      // llhttp's reason names the fault ("Invalid method encountered") without echoing the bytes.
      return [400, ErrorCode.INVALID_ARGUMENT, `the request is not valid HTTP/1.1: ${err.reason ?? err.code ?? 'parse error'}`];
  }
}

/** The fields of node's ServerResponse for the request a socket is answering (`socket._httpMessage`). */
interface PendingAnswer {
  headersSent?: boolean;
  req?: { complete?: boolean };
  shouldKeepAlive?: boolean;
  _last?: boolean;
}

/**
 * node's 'clientError' listener: the answer node would give, as JSON. NOTE: with a listener
 * attached node neither answers nor closes the socket; this does both.
 *
 * @example
 * server.on('clientError', answerClientError);
 */
export function answerClientError(err: NodeJS.ErrnoException, socket: Duplex): number | undefined {
  const http = socket as Duplex & { _httpMessage?: PendingAnswer | null; parser?: { incoming?: unknown } | null };
  if (err.code === 'ECONNRESET') {
    socket.destroy();
    return undefined;
  }
  if (!socket.writable) {
    // Our side has ended after its last answer (an answer said close; none is pending, or a
    // request still reading its body would wait on a socket nobody ends), and that answer may
    // still be on its way: the parser, which fails on each chunk from here, has consumed these
    // bytes, so returning drops them, until the client closes, the lingering close's bounds or
    // the idle timeout. NOTE:
    // destroying the socket here, with bytes unread, made the kernel reset the connection and
    // drop the part of the answer not yet sent: a client that pipelined a request after
    // `Connection: close` read a large answer cut short.
    if (socket.writableEnded && http._httpMessage == null && !socket.destroyed) return undefined;
    socket.destroy();
    return undefined;
  }
  // The fault is in bytes after a complete request whose answer is yet to come or going out (data
  // after `Connection: close`, which RFC 9112 §9.6 says to ignore, or pipelined garbage). That
  // request may have written: its own answer goes out, then the connection closes and the bytes
  // after it get none. A refusal written now would be read as that request's answer (a PUT that
  // stored its value answered 400 or 501), and cutting the connection would leave it unanswered.
  const pending = http._httpMessage;
  if (pending != null && pending.req?.complete === true) {
    if (!pending.headersSent) pending.shouldKeepAlive = false; // says `Connection: close`
    pending._last = true; // node closes the connection once this answer is written
    // ... with the bytes after it unread: lingering, so no reset drops the answer's unsent part
    lingerOnClose(socket as Socket);
    return undefined;
  }
  // Mid-body of a request being answered already: nothing more can be written.
  if (pending?.headersSent === true) {
    socket.destroy();
    return undefined;
  }
  // The fault is in the body of a request the app has answered already (a 401 or 413 sent before
  // the body was read; node detaches a finished response from its socket), e.g. the client
  // half-closed mid-body: that request has its one answer. Close after it, answering nothing more.
  if (http.parser?.incoming != null && http._httpMessage == null) {
    socket.end();
    return undefined;
  }
  const [status, code, message] = parserRefusal(err);
  socket.end(rawAnswer(status, code, message));
  return status;
}

/**
 * Methods that change nothing: their answer may be dropped with the connection. NOTE: compared,
 * not looked up in a Set: node's parser hands out its own constant method strings, so each
 * comparison is one pointer check where a Set lookup costs ~10-15 ns per request.
 */
const isSafeMethod = (method: string | undefined): boolean => method === 'GET' || method === 'HEAD' || method === 'OPTIONS';

const WRITES_UNANSWERED = Symbol('writesUnanswered');

type CountingSocket = Duplex & { [WRITES_UNANSWERED]?: number };

/**
 * Counts on each connection the writes (methods other than GET, HEAD, OPTIONS) not yet answered,
 * from the moment node parses them: a write pipelined behind a running request (inTurn holds it
 * until its turn) counts too, which `_httpMessage`, the request being answered, does not show.
 * Wrap the listener node calls, outside `inTurn`.
 *
 * @example
 * createServer(options, countWrites(inTurn(listener)));
 */
export function countWrites(listener: RequestListener): RequestListener {
  return (req, res) => {
    if (!isSafeMethod(req.method)) {
      const socket = req.socket as CountingSocket;
      socket[WRITES_UNANSWERED] = (socket[WRITES_UNANSWERED] ?? 0) + 1;
      res.once('close', () => socket[WRITES_UNANSWERED]!--);
    }
    listener(req, res);
  };
}

/**
 * A connection's 'end' (its client half-closed: FIN after its requests). The server runs
 * half-open (server.ts), so node keeps the connection to answer what is running and closes after
 * the last answer: a write (PUT, POST, DELETE, PATCH) may have been done, and its client reads
 * that it was. When no write is left to answer, the connection ends at once, cutting a read that
 * runs, as node does by default: it changed nothing, and a client gone mid long-poll must not
 * hold its waiter and socket for the whole wait. NOTE: a write pipelined behind a running read
 * keeps the connection, and so the reads before and after it run and are answered in order (a
 * long-poll among them waits its wait out); cutting the read dropped the write with it, unanswered.
 *
 * @example
 * server.on('connection', (socket) => socket.once('end', () => endUnlessWriting(socket)));
 */
export function endUnlessWriting(socket: Duplex): void {
  if (((socket as CountingSocket)[WRITES_UNANSWERED] ?? 0) === 0 && socket.writable) socket.end();
}

/**
 * node's 'connect' listener: this is no proxy, so CONNECT is 501 (without a listener node closes
 * the connection without a word).
 *
 * @example
 * server.on('connect', refuseConnect);
 */
export function refuseConnect(_req: IncomingMessage, socket: Duplex): number | undefined {
  if (!socket.writable) {
    socket.destroy();
    return undefined;
  }
  socket.end(rawAnswer(501, ErrorCode.NOT_IMPLEMENTED, 'CONNECT is not implemented: this server is not a proxy'));
  return 501;
}

/**
 * True when `req` lacks the Host header every HTTP/1.1 request must carry, or carries it more than
 * once (RFC 9112 §3.2: 400 for either), having answered it with 400. The server runs with node's
 * own check off (`requireHostHeader: false`), which answers a missing Host with a bare 400; node
 * lets two Host lines through and keeps the first, which a proxy in front may have read otherwise.
 */
export function refusedForHost(req: IncomingMessage, res: ServerResponse): boolean {
  let message: string;
  if (req.headers.host === undefined) {
    if (req.httpVersionMajor !== 1 || req.httpVersionMinor !== 1) return false;
    message = 'an HTTP/1.1 request must carry a Host header';
  } else {
    if (!hostRepeated(req.rawHeaders)) return false;
    message = 'a request must carry one Host header, not several';
  }
  const body = errorJson(ErrorCode.INVALID_ARGUMENT, message);
  res.writeHead(400, { 'content-type': JSON_TYPE, 'content-length': String(Buffer.byteLength(body)), connection: 'close' });
  res.end(body);
  return true;
}

function hostRepeated(raw: string[]): boolean {
  let seen = 0;
  for (let i = 0; i < raw.length; i += 2) if (raw[i]!.length === 4 && raw[i]!.toLowerCase() === 'host' && ++seen > 1) return true;
  return false;
}

/**
 * node's 'checkExpectation' listener: an `Expect` other than `100-continue` (which node answers
 * itself) is 417, as JSON (node answers a bare 417), and the connection closes: the body the
 * client may still send is not a request.
 *
 * @example
 * server.on('checkExpectation', refuseExpectation);
 */
export function refuseExpectation(_req: IncomingMessage, res: ServerResponse): void {
  const body = errorJson(ErrorCode.INVALID_ARGUMENT, 'the only Expect this server meets is 100-continue');
  res.writeHead(417, { 'content-type': JSON_TYPE, 'content-length': String(Buffer.byteLength(body)), connection: 'close' });
  res.end(body);
}

/**
 * @hono/node-server's listener for `fetch`, whose `errorHandler` answers a request it cannot turn
 * into a URL as the client's fault (400 with the adapter's reason, told to `early`), and anything
 * else that escaped the app's own error handling as a 500.
 *
 * NOTE: the adapter builds the URL (and throws) within the listener's synchronous call, before its
 * first await, and calls `errorHandler` there too, with the error only: the request being handed
 * over then is the one refused.
 *
 * @example
 * const hono = adapterListener(app.fetch, { hostname, logger, early: (req, status) => count(req.method, status) });
 */
export function adapterListener(
  fetch: Parameters<typeof getRequestListener>[0],
  options: { hostname: string; logger: LoggerPort; early: (req: IncomingMessage | undefined, status: number) => void },
): RequestListener {
  let handing: IncomingMessage | undefined;
  const listener = getRequestListener(fetch, {
    hostname: options.hostname,
    errorHandler: (err) => {
      if (!(err instanceof RequestError)) return toErrorResponse(err, options.logger, undefined);
      options.early(handing, 400);
      return errorResponse(new QuartzError(ErrorCode.INVALID_ARGUMENT, `the request target or Host header is not valid: ${err.message}`));
    },
  });
  return (req, res) => {
    handing = req;
    try {
      void listener(req, res);
    } finally {
      handing = undefined;
    }
  };
}
