/**
 * Pipelined requests handled one at a time per connection, so a client that sends many requests
 * and reads no answers holds one answer in the server's memory, not one per request, and each
 * request sees the writes of those before it (RFC 9112 §9.3.2 lets only safe methods run side by
 * side: a GET pipelined after a PUT of its key answered 404, run while the PUT was writing).
 *
 * NOTE: node parses every request in a chunk it reads (64 KiB: hundreds of small GETs) and calls
 * the listener for each at once; it stops reading only between chunks, once the socket's write
 * buffer is full. The answers to all of them were built and queued in memory: 500 pipelined GETs
 * of a 4 MiB value from a client that read nothing grew the server by 2 GiB. Here a request whose
 * answer would queue behind an unfinished one (node has not given its response the socket yet)
 * waits for its turn, and the connection stops reading meanwhile; a request whose connection
 * still holds more unsent answer than its high-water mark waits for it to drain.
 */
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

const WAITING = Symbol('waitingRequests');

type GatedSocket = Socket & { [WAITING]?: number };

/**
 * @example
 * createServer(options, inTurn(listener));
 */
export function inTurn(listener: RequestListener): RequestListener {
  const whenDrained = (req: IncomingMessage, res: ServerResponse): void => {
    const socket = req.socket;
    // NOTE: node ends an unfinished answer whose connection is destroyed (the client reset it,
    // a shutdown cut it) as if written, and hands the connection to the request queued behind:
    // a produce pipelined behind a large GET ran after its client had gone, answering no one.
    // Its turn never comes: the client cannot learn of it, and may send it again elsewhere.
    if (socket.destroyed) return;
    // The previous answer is finished but still buffered over the high-water mark.
    if (socket.writableNeedDrain) socket.once('drain', () => listener(req, res));
    else listener(req, res);
  };
  return (req, res) => {
    // node gives a response its socket at once unless an earlier answer on it is unfinished.
    if (res.socket !== null) return whenDrained(req, res);
    const socket = req.socket as GatedSocket;
    socket[WAITING] = (socket[WAITING] ?? 0) + 1;
    socket.pause(); // read no more requests while this one waits
    res.once('socket', () => {
      const left = --socket[WAITING]!;
      // Resume once none waits (node keeps the socket paused while its own backpressure asks).
      if (left === 0) socket.resume();
      whenDrained(req, res);
    });
  };
}
