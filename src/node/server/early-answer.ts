/**
 * Answers sent before their request's body has arrived in full (a 401, 405 or 413 sent on the
 * headers alone): the rest of the body costs the server a bounded amount of reading, and the
 * connection, when the server closes it, closes without a reset, so the client reads its answer.
 *
 * NOTE: node reads and drops the rest of a body nobody read, however large, to keep the
 * connection; @hono/node-server drops at most 64 MiB or 500 ms of it. Either closes a connection
 * with `socket.destroySoon()`, which destroys the socket as soon as the answer is written: bytes
 * the client is still sending then make the kernel reset the connection, and a reset can discard
 * the answer before the client reads it. Here an answer whose declared body is over `DRAIN_BYTES`
 * says `Connection: close` (nothing more of it is read than the linger takes), and such a
 * socket's close lingers after the server's FIN, reading and dropping, until the client closes
 * too or a bound passes, as web servers do (nginx's lingering close).
 */
import { ServerResponse, type IncomingMessage, type OutgoingHttpHeaders, type RequestListener } from 'node:http';
import type { Socket } from 'node:net';

/** How much of a body nobody reads the server drops to keep its connection open. */
export const DRAIN_BYTES = 64 * 1024 * 1024;

/**
 * How long a closing connection waits for more of the client's last bytes after the server's FIN:
 * it keeps reading while they keep coming (a client that reads its answer only once it has sent
 * everything, on a busy machine, may need seconds), up to `LINGER_MAX_MS` in all.
 */
export const LINGER_MS = 5_000;
const LINGER_MAX_MS = 30_000;

const LAST_ANSWER = Symbol('lastAnswer');

/** On a request whose client waits for `100 Continue` before it sends the body: not sent yet. */
const CONTINUE_OWED = Symbol('continueOwed');

type ExpectingRequest = IncomingMessage & { [CONTINUE_OWED]?: boolean };

/**
 * node's 'checkContinue' listener: the request goes to `listener` as any other, and its client is
 * told `100 Continue` only once the route starts reading the body. An answer the route gives on
 * the headers alone (401, 404, 405, 413 on the declared length) is sent instead, and says
 * `Connection: close` (see `EarlyAnswerResponse`): the client has sent none of its body and
 * need not send it (RFC 9110 §10.1.1). NOTE: without this listener node sends 100 Continue as
 * soon as the headers arrive, so a client with a bad key uploaded its whole body before its 401.
 *
 * @example
 * server.on('checkContinue', continueWhenRead(listener));
 */
export function continueWhenRead(listener: RequestListener): RequestListener {
  return (req, res) => {
    const expecting = req as ExpectingRequest;
    expecting[CONTINUE_OWED] = true;
    const read = req._read;
    req._read = function (this: IncomingMessage, size: number) {
      if (expecting[CONTINUE_OWED] === true) {
        expecting[CONTINUE_OWED] = false;
        // After a final answer the body is only being dropped: the client must not be asked for it.
        if (!res.headersSent) res.writeContinue();
      }
      return read.call(this, size);
    };
    listener(req, res);
  };
}

/**
 * The socket's next answers say `Connection: close` and end the connection (the server is
 * shutting down): its client then opens a new connection, which is refused, rather than sending
 * a request the server may cut unanswered when it closes the socket as idle.
 */
export function closeAfterAnswer(socket: Socket): void {
  (socket as Socket & { [LAST_ANSWER]?: true })[LAST_ANSWER] = true;
}

const CLOSE_UNREAD = Symbol('closeUnread');

/**
 * The answer about to be written refuses a body the server will not read, whatever its size (a
 * 503 of the body budget, ./body-budget.ts): it says `Connection: close` and the connection
 * lingers after it, rather than reading up to `DRAIN_BYTES` of a body to keep the connection.
 */
export function closeUnreadBody(res: ServerResponse): void {
  (res as ServerResponse & { [CLOSE_UNREAD]?: true })[CLOSE_UNREAD] = true;
}

/** Pass as `createServer({ ServerResponse: EarlyAnswerResponse })`. */
export class EarlyAnswerResponse extends ServerResponse {
  // One signature for both of writeHead's overloads (with and without a status message).
  override writeHead(statusCode: number, ...rest: any[]): this {
    const req = this.req;
    if ((req.socket as Socket & { [LAST_ANSWER]?: true })[LAST_ANSWER] === true) this.shouldKeepAlive = false;
    // A synchronous answer can come before node marks even a bodiless request complete: look at
    // the framing headers only then.
    if (req.complete && (req as ExpectingRequest)[CONTINUE_OWED] === true) {
      // Its client sent the whole body without waiting for 100 Continue, and the route read it
      // from the buffer (no read asked for more): nothing more of this request can come.
      // NOTE: node closes a connection whose answer goes out before a 100 Continue (its
      // `_expect_continue` flag), which dropped the requests pipelined behind a direct route's
      // answer (KV PUT, produce) and made such a client reconnect for each request.
      (this as ServerResponse & { _expect_continue?: boolean })._expect_continue = false;
    } else if (!req.complete && ((req as ExpectingRequest)[CONTINUE_OWED] === true || (this as ServerResponse & { [CLOSE_UNREAD]?: true })[CLOSE_UNREAD] === true)) {
      // Its client waits for 100 Continue (it may send the body anyway), or the body is refused
      // unread (closeUnreadBody): it is not read.
      this.shouldKeepAlive = false;
      lingerOnClose(req.socket as Socket);
    } else if (!req.complete) {
      const declared = req.headers['content-length'];
      if (declared !== undefined ? Number(declared) > DRAIN_BYTES : req.headers['transfer-encoding'] !== undefined) {
        // More may come than is worth reading. When the declared length says so now, say close.
        if (declared !== undefined) this.shouldKeepAlive = false;
        lingerOnClose(req.socket as Socket);
      }
    }
    if (!this.shouldKeepAlive) {
      // The connection closes after this answer (the client said `Connection: close`, spoke
      // HTTP/1.0, or sent bytes that cannot be parsed): node drains nothing then. NOTE: without
      // the linger the socket was destroyed with bytes unread (a body nobody read, requests
      // pipelined after `Connection: close`), which makes the kernel reset the connection and
      // drop what of the answer was not yet sent: the client met EPIPE or ECONNRESET, or read
      // a large answer cut short.
      lingerOnClose(req.socket as Socket);
    }
    return super.writeHead(statusCode, ...(rest as [string | undefined, OutgoingHttpHeaders | undefined]));
  }
}

const LINGERING = Symbol('lingering');
const LINGER_SET = Symbol('lingerSet');

/**
 * Whether the socket is in a lingering close: its answer is written and its side ended, and it
 * only reads and drops what its client still sends. A shutdown waits for it (within its bound)
 * but does not count it as a request cut.
 */
export function lingering(socket: Socket): boolean {
  return (socket as Socket & { [LINGERING]?: true })[LINGERING] === true;
}

/** How often a lingering connection checks how much it has read. */
const POLL_MS = 50;

/**
 * Makes the socket's `destroySoon` (what node calls once an answer that says close is written,
 * and @hono/node-server once it gives up draining a body: 64 MiB or 500 ms) a lingering close:
 * end our side after what is written, read and drop what still comes, and destroy the socket
 * once the client ends, after `LINGER_MS` without a byte, after `LINGER_MAX_MS`, or once
 * `2 × DRAIN_BYTES` have been read since the answer began (counted from there, not from the
 * FIN: how much the 500 ms drain before it reads depends on the machine's load, and a bound
 * split by a timer would reset a client whose last bytes came slowly).
 *
 * NOTE: progress is read from `socket.bytesRead` on a timer: a 'data' listener would take the
 * socket from node's HTTP parser, which then stops reading it.
 */
export function lingerOnClose(socket: Socket): void {
  if ((socket as Socket & { [LINGER_SET]?: true })[LINGER_SET] === true) return;
  (socket as Socket & { [LINGER_SET]?: true })[LINGER_SET] = true;
  const answeredAt = socket.bytesRead;
  socket.destroySoon = () => {
    if (lingering(socket) || socket.destroyed) return;
    (socket as Socket & { [LINGERING]?: true })[LINGERING] = true;
    const began = Date.now();
    let lastRead = socket.bytesRead;
    let lastProgress = began;
    const done = (): void => {
      clearInterval(poll);
      socket.destroy();
    };
    const poll = setInterval(() => {
      const now = Date.now();
      if (socket.bytesRead !== lastRead) {
        lastRead = socket.bytesRead;
        lastProgress = now;
      }
      if (lastRead - answeredAt > 2 * DRAIN_BYTES || now - lastProgress > LINGER_MS || now - began > LINGER_MAX_MS) done();
    }, POLL_MS);
    poll.unref();
    socket.once('end', done);
    socket.once('close', () => clearInterval(poll));
    socket.end();
  };
}
