/**
 * One server-wide budget of request body bytes held in memory at once. A route reads a body whole
 * before it handles it (a KV value of up to 25 MiB, a produce of 16 MiB, a vector upsert of 32
 * MiB), so without a bound 200 clients each sending a 25 MiB PUT made the server hold 5 GB.
 *
 * A request with a body takes its share of the budget when its turn comes, before anything reads
 * the body, and gives it back when its answer is done. A body that would pass the budget is
 * refused unread: 503 `unavailable` with `Retry-After`, and the connection closes after the
 * answer (lingering, see ./early-answer.ts), so the server reads none of it and the client reads
 * its answer. Requests without a body (GETs) are never counted or refused.
 *
 * Rules (docs/configuration.md, Request bodies in memory):
 * - a body counts its declared Content-Length; a chunked body, whose size is unknown until it
 *   ends, counts the largest body limit, all it may grow to;
 * - a body of at most `SMALL_BODY_BYTES` is always admitted (and counted): it holds about what
 *   node's own buffers hold for any connection, so refusing it would protect nothing;
 * - one API key (or no key) holds at most half the budget, or a single body: one client cannot
 *   take the whole budget and starve every other tenant's uploads;
 * - a body larger than the whole budget could never be admitted: 413 `too_large` at once, since
 *   retrying would not help.
 */
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import { ErrorCode } from '../../core/errors.js';
import { JSON_TYPE, errorJson } from '../../api/errors.js';
import { closeUnreadBody } from './early-answer.js';

/** Bodies up to this size are admitted even past the budget. */
export const SMALL_BODY_BYTES = 64 * 1024;

/** Seconds a refused client is told to wait: uploads in flight finish in about that time. */
export const RETRY_AFTER_S = 1;

export interface BodyBudgetOptions {
  /** The most body bytes held at once, every request together. */
  maxBytes: number;
  /** What a chunked body counts: the largest body limit of any route. */
  chunkedBytes: number;
  /** Told of refusals, at most once per `WARN_EVERY_MS`, so the operator learns the budget binds. */
  warn?: (message: string, details: Record<string, unknown>) => void;
  /** Told of each refusal's status (503 or 413), which no route sees: for the request metrics. */
  refusedWith?: (req: IncomingMessage, status: number) => void;
}

const WARN_EVERY_MS = 10_000;

/** Adds the app's CORS headers to an answer (`QuartzApp.corsHeaders`). */
type CorsHeaders = (origin: string | undefined, into: Record<string, string>) => void;

/** The bytes a request's body will hold, or 0 for a request without a body. */
function bodyBytes(req: IncomingMessage, chunkedBytes: number): number {
  const declared = req.headers['content-length'];
  // node's parser has already refused a malformed or doubled length (400).
  if (declared !== undefined) return Number(declared);
  return req.headers['transfer-encoding'] !== undefined ? chunkedBytes : 0;
}

/** Whose share a request's body counts in: its API key as sent (not resolved: that reads storage). */
function holder(req: IncomingMessage): string {
  const auth = req.headers.authorization;
  if (auth !== undefined) return auth;
  const key = req.headers['x-api-key'];
  return typeof key === 'string' ? key : '';
}

function refuse(req: IncomingMessage, res: ServerResponse, status: number, code: ErrorCode, message: string, retry: boolean, cors: CorsHeaders | undefined): void {
  const body = errorJson(code, message);
  const headers: Record<string, string> = { 'content-type': JSON_TYPE, 'content-length': String(Buffer.byteLength(body)) };
  if (retry) headers['retry-after'] = String(RETRY_AFTER_S);
  const origin = req.headers.origin;
  cors?.(typeof origin === 'string' ? origin : undefined, headers);
  if (!req.complete) closeUnreadBody(res);
  res.writeHead(status, headers);
  res.end(body);
}

/**
 * The budget, every request together; `guard` puts it in front of a listener.
 *
 * @example
 * const bodies = new BodyBudget({ maxBytes: 256 * 2 ** 20, chunkedBytes: 32 * 2 ** 20 });
 * const listener = inTurn(bodies.guard(directFirst(app.direct, hono, logger)));
 */
export class BodyBudget {
  readonly maxBytes: number;
  private readonly chunkedBytes: number;
  /** What one API key may hold, unless it holds a single body. */
  private readonly share: number;
  private held = 0;
  private refusals = 0;
  private readonly byHolder = new Map<string, number>();
  private readonly warn: BodyBudgetOptions['warn'];
  private readonly refusedWith: BodyBudgetOptions['refusedWith'];
  private lastWarned = -Infinity;
  private refusalsWarned = 0;

  constructor(options: BodyBudgetOptions) {
    this.maxBytes = options.maxBytes;
    this.warn = options.warn;
    this.refusedWith = options.refusedWith;
    this.chunkedBytes = options.chunkedBytes;
    this.share = Math.floor(options.maxBytes / 2);
  }

  /** Body bytes held now, as the budget counts them. */
  heldBytes(): number {
    return this.held;
  }

  /** Bodies refused since start (503 and 413 together). */
  refused(): number {
    return this.refusals;
  }

  /**
   * `next` with the budget in front. Put it inside `inTurn`, so a pipelined request waiting its
   * turn holds nothing. `cors` adds the app's CORS headers to a refusal, so a browser client can
   * read it and its Retry-After.
   */
  guard(next: RequestListener, cors?: CorsHeaders): RequestListener {
    return (req, res) => {
      const size = bodyBytes(req, this.chunkedBytes);
      if (size === 0) return next(req, res);
      if (size > this.maxBytes && size > SMALL_BODY_BYTES) {
        this.refusals++;
        const what = req.headers['content-length'] === undefined ? `a request body without a Content-Length counts as the largest body limit, ${size} bytes, and` : `request body is ${size} bytes;`;
        const message = `${what} the server holds at most ${this.maxBytes} bytes of request bodies at once (request_bodies_max_bytes)`;
        this.refusedWith?.(req, 413);
        return refuse(req, res, 413, ErrorCode.TOO_LARGE, message, false, cors);
      }
      const who = holder(req);
      const mine = this.byHolder.get(who) ?? 0;
      const fits = this.held + size <= this.maxBytes && (mine === 0 || mine + size <= this.share);
      if (!fits && size > SMALL_BODY_BYTES) {
        this.refusals++;
        const message = `the server is holding as many request bodies as it may (${this.maxBytes} bytes, at most half of it for one API key); this ${size}-byte body was not read: retry after ${RETRY_AFTER_S} s`;
        this.warnRefused();
        this.refusedWith?.(req, 503);
        return refuse(req, res, 503, ErrorCode.UNAVAILABLE, message, true, cors);
      }
      this.held += size;
      this.byHolder.set(who, mine + size);
      // 'close' comes once the answer is written, or when the connection goes first.
      res.once('close', () => this.release(who, size));
      next(req, res);
    };
  }

  private warnRefused(): void {
    const now = Date.now();
    if (this.warn === undefined || now - this.lastWarned < WARN_EVERY_MS) return;
    this.lastWarned = now;
    const since = this.refusals - this.refusalsWarned;
    this.refusalsWarned = this.refusals;
    this.warn('request bodies refused with 503: the budget of request bodies held at once is full (request_bodies_max_bytes)', { max_bytes: this.maxBytes, held_bytes: this.held, refused_since_last_warning: since });
  }

  private release(who: string, size: number): void {
    this.held -= size;
    const left = this.byHolder.get(who)! - size;
    if (left === 0) this.byHolder.delete(who);
    else this.byHolder.set(who, left);
  }
}

/**
 * The budget when none is set: a sixteenth of the machine's memory (or of the cgroup's limit), at
 * least 64 MiB and twice the largest body limit, so one key's largest body and another's fit.
 *
 * @example
 * const maxBytes = defaultRequestBodiesBytes(machineMemory(), 32 * 2 ** 20);
 */
export function defaultRequestBodiesBytes(memory: number, largestBodyLimit: number): number {
  return Math.max(64 * 2 ** 20, 2 * largestBodyLimit, Math.floor(memory / 16));
}
