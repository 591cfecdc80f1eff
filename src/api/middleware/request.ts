/**
 * What every request goes through, around its route: request id, guards (auth, limits), errors
 * as JSON, rate-limit and CORS headers (also on error responses), metrics by route pattern, and
 * logs — errors and slow requests at info, every request only at debug.
 *
 * NOTE: this is one hono handler per route rather than `app.use('*')` middlewares. hono runs a
 * route that matched a single handler directly and hands back its Response as it is; with
 * middlewares it composes async frames, so every request costs several promise hops and
 * @hono/node-server then takes its slower path for promised responses. Guards and handlers may
 * answer synchronously (a cached principal, a KV read from a memory map): such a request is
 * answered within the event turn it arrived in.
 */
import type { Context, Handler } from 'hono';
import type { AppDeps, AppEnv } from '../context.js';
import { toErrorResponse } from '../errors.js';

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;
/** Generated ids: one random prefix per process and a counter, unique without a UUID per request. */
const ID_PREFIX = crypto.randomUUID().slice(0, 8);
let idCounter = 0;
/** Requests slower than this are logged at info (a database does not log every call by default). */
export const SLOW_REQUEST_MS = 1000;

type Awaitable<T> = T | Promise<T>;

/** A check a route runs before its handler (auth, limits): it may set variables; it throws to refuse. */
export type Guard = (c: Context<AppEnv>) => Awaitable<void>;

/** A route's handler as the pipeline runs it: it answers with a Response, or throws. */
export type RouteHandler = (c: Context<AppEnv>) => Awaitable<Response>;

/**
 * Sets the request id on `res` and returns the response whose headers are now known to be
 * writable. Responses from fetch() (e.g. proxied assets) have immutable headers: those are
 * copied once.
 */
function withRequestId(res: Response, requestId: string): Response {
  try {
    res.headers.set('x-request-id', requestId);
    return res;
  } catch {
    const copy = new Response(res.body, res);
    copy.headers.set('x-request-id', requestId);
    return copy;
  }
}

export interface RequestPipeline {
  /**
   * One route as a single hono handler: `guards` in order, then `handler`, with everything above
   * around them; `route` is the pattern metrics and logs name.
   *
   * @example
   * app.get('/v1/kv/:key{.+}', pipeline.route('/v1/kv/:key{.+}', [tenantAuth(deps)], getValue));
   */
  route(route: string, guards: readonly Guard[], handler: RouteHandler): Handler<AppEnv>;
}

function runGuards(c: Context<AppEnv>, guards: readonly Guard[], handler: RouteHandler, from: number): Awaitable<Response> {
  for (let i = from; i < guards.length; i++) {
    const pending = guards[i]!(c);
    if (pending instanceof Promise) return pending.then(() => runGuards(c, guards, handler, i + 1));
  }
  return handler(c);
}

/**
 * @example
 * const pipeline = requestPipeline(deps);
 * app.notFound(pipeline.route('unmatched', [], notFound));
 */
export function requestPipeline(deps: AppDeps): RequestPipeline {
  const { logger, metrics } = deps;

  const finish = (c: Context<AppEnv>, res: Response, route: string, start: number): Response => {
    const requestId = c.get('requestId');
    if (c.get('finished') !== true) {
      res = withRequestId(res, requestId);
      const headers = res.headers;
      const rate = c.get('rate');
      if (rate !== undefined) {
        headers.set('x-ratelimit-limit', String(rate.limit));
        headers.set('x-ratelimit-remaining', String(rate.remaining));
        headers.set('x-ratelimit-reset', String(rate.resetSeconds));
        if (!rate.allowed) headers.set('retry-after', String(rate.retryAfterSeconds));
      }
      // Preflights carry their own CORS headers (hono's cors()).
      if (c.req.method !== 'OPTIONS') {
        const cors: Record<string, string> = {};
        deps.corsHeaders(c.req.header('origin'), cors);
        for (const name in cors) {
          if (name === 'vary') headers.append(name, cors[name]!);
          else headers.set(name, cors[name]!);
        }
      }
    }
    const status = res.status;
    const method = c.req.method;
    const ms = performance.now() - start;
    metrics?.observeRequest(route, method, status, ms / 1000);
    const fields = { request_id: requestId, method, route, status, ms: Math.round(ms) };
    if (status >= 500) logger.error(fields, 'request failed');
    else if (ms >= SLOW_REQUEST_MS && c.get('longPoll') !== true) logger.info(fields, 'slow request');
    else logger.debug(fields, 'request');
    return res;
  };

  const fail = (c: Context<AppEnv>, err: unknown, route: string, start: number): Response => {
    // An error response is new: it gets the request id, rate-limit and CORS headers here.
    c.set('finished', false);
    return finish(c, toErrorResponse(err, logger, c.get('requestId')), route, start);
  };

  return {
    route(route, guards, handler) {
      return (c) => {
        const start = performance.now();
        const incoming = c.req.header('x-request-id');
        c.set('requestId', incoming !== undefined && REQUEST_ID.test(incoming) ? incoming : `${ID_PREFIX}-${(++idCounter).toString(36)}`);
        let out: Awaitable<Response>;
        try {
          out = runGuards(c, guards, handler, 0);
        } catch (err) {
          return fail(c, err, route, start);
        }
        if (out instanceof Promise) {
          return out.then(
            (res) => finish(c, res, route, start),
            (err: unknown) => fail(c, err, route, start),
          );
        }
        return finish(c, out, route, start);
      };
    },
  };
}

/**
 * A hot route's response with every header the pipeline would add (request id, rate-limit,
 * CORS) already in one plain object. @hono/node-server writes such a response straight from
 * that object; adding headers afterwards through `Response#headers` would build a WHATWG Headers
 * per request and convert every name and value.
 *
 * @example
 * return plainResponse(c, deps, bytes, 200, { 'content-type': 'text/plain', etag: '"7"' });
 */
export function plainResponse(c: Context<AppEnv>, deps: AppDeps, body: Uint8Array | string | null, status: number, headers: Record<string, string>): Response {
  headers['x-request-id'] = c.get('requestId');
  const rate = c.get('rate');
  if (rate !== undefined) {
    headers['x-ratelimit-limit'] = String(rate.limit);
    headers['x-ratelimit-remaining'] = String(rate.remaining);
    headers['x-ratelimit-reset'] = String(rate.resetSeconds);
  }
  deps.corsHeaders(c.req.header('origin'), headers);
  c.set('finished', true);
  return new Response(body as BodyInit | null, { status, headers });
}
