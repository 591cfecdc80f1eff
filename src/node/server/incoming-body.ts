/**
 * A request body read straight from node's IncomingMessage, for the direct routes (./direct.ts):
 * the chunks node hands over, joined once, without the web-stream adaptation @hono/node-server
 * puts around them.
 */
import type { IncomingMessage } from 'node:http';
import { bodyCutShort } from '../../api/body.js';

/**
 * The whole body. The caller checks the declared Content-Length against its limit first; node's
 * parser holds the body to that length.
 *
 * @example
 * const bytes = await incomingBody(req);
 */
export async function incomingBody(req: IncomingMessage): Promise<Uint8Array> {
  // By the next turn of the event loop node's parser has taken all the bytes that came with the
  // headers, so a body sent with them is waiting whole in the request's buffer: one read, no
  // stream events. (Those bytes are there by the first promise job too, but reading then moved the
  // mixed load's latency from GETs to writes without lowering its p99: docs/benchmarks.md.)
  await checkPhase();
  if (req.complete) return (req.read() as Buffer | null) ?? EMPTY;
  return streamed(req);
}

/** Resolvers of the bodies waiting for the next check phase; one immediate serves them all. */
let waiting: Array<() => void> | undefined;

/**
 * Resolves in the next check phase, together with every other body deferred in this turn. NOTE:
 * one immediate for all (not one each) lets their handlers run as one run of promise jobs, so the
 * writes they make reach the write-ahead log before its pump's job and share one frame, issued in
 * this turn instead of after the next turn's poll phase (docs/benchmarks.md, the mixed load's tail).
 */
function checkPhase(): Promise<void> {
  return new Promise<void>((resolve) => {
    if (waiting === undefined) {
      waiting = [];
      setImmediate(releaseWaiting);
    }
    waiting.push(resolve);
  });
}

function releaseWaiting(): void {
  const list = waiting!;
  waiting = undefined;
  for (const resolve of list) resolve();
}

const EMPTY = new Uint8Array(0);

/** The body as its chunks arrive. */
function streamed(req: IncomingMessage): Promise<Uint8Array> {
  // The client may have gone away before this turn: its close event has passed already.
  if (req.destroyed) return Promise.reject(bodyCutShort());
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let total = 0;
    const onData = (chunk: Buffer): void => {
      chunks.push(chunk);
      total += chunk.length;
    };
    const onEnd = (): void => {
      stop();
      resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, total));
    };
    // The client went away mid-body: nobody reads the answer, but the request must still settle.
    const onCut = (): void => {
      stop();
      reject(bodyCutShort());
    };
    const stop = (): void => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onCut);
      req.off('close', onCut);
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onCut);
    req.on('close', onCut);
  });
}
