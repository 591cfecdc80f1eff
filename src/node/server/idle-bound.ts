/**
 * The idle bound of docs/configuration.md (Connections and timeouts): a connection with a request
 * open on which nothing moves (a body that stalls, a client that stops reading its answer) is
 * closed after `idleMs` without a byte read or written.
 *
 * NOTE: node's own `server.timeout` does this by giving the socket a new timer at every request
 * after a keep-alive wait (a Timeout, a bound function, an insert into a timer list, and its
 * removal when the answer finishes and the keep-alive timer takes over): ~0.1 µs per request,
 * though most answers here (a hot KV GET) are written whole within the event turn their request
 * arrived in, which leaves nothing to bound. Here the timer is armed only for a request that is
 * still open once its listener returns; the server runs with `server.timeout` 0, under which node
 * only clears the keep-alive timer when a request begins.
 */
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';

/** Whether nothing of the request is left to read: all of it read, or a request without a body. */
function bodyDone(req: IncomingMessage): boolean {
  // node marks even a bodiless request complete only after the listener ran (see early-answer.ts).
  if (req.complete) return true;
  const declared = req.headers['content-length'];
  return (declared === undefined || declared === '0') && req.headers['transfer-encoding'] === undefined;
}

/** Whether the answer is ended and all of it handed to the kernel, the request read whole. */
function closedInTurn(req: IncomingMessage, res: ServerResponse): boolean {
  const socket = res.socket;
  return res.writableEnded && socket !== null && socket.writableLength === 0 && bodyDone(req);
}

/**
 * `listener`, with the idle bound armed on the request's connection unless the request is over
 * when `listener` returns.
 *
 * @example
 * const server = createServer(idleBound(listener, 120_000)); // server.timeout stays 0
 */
export function idleBound(listener: RequestListener, idleMs: number): RequestListener {
  return (req, res) => {
    listener(req, res);
    if (!closedInTurn(req, res)) req.socket.setTimeout(idleMs);
  };
}
