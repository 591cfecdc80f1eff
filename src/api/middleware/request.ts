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
import type { Tenant } from '../../engine/tenants/tenant-registry.js';
import type { AppDeps, AppEnv } from '../context.js';
import { errorHeaders, errorJson, exposedError, toErrorResponse } from '../errors.js';
import type { TakeResult } from '../rate-limit.js';
import type { AuthContext, AuthGuard } from './auth.js';

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

/** A response as plain fields: what a hot route answers and what a home writes without a Response object. */
export interface PlainAnswer {
  status: number;
  /** Lower-case names; the pipeline adds the request id, rate-limit and CORS headers. */
  headers: Record<string, string>;
  body: Uint8Array | string | null;
}

/**
 * A request as a home hands it to a direct route, without a WHATWG Request: the method, and the
 * request's headers by lower-case name.
 */
export interface DirectRequest {
  method: string;
  header(name: string): string | undefined;
  /**
   * The whole request body, for homes that can read it without web streams; only asked for
   * when the request declares a Content-Length, after the route has checked it against its limit.
   */
  body?(): Promise<Uint8Array>;
}

/** What a direct route's handler sees: the request, its id, and what auth found. */
export class DirectState implements AuthContext {
  /** The request as auth reads it (a hono Context's `req` has the same `header`). */
  readonly req: DirectRequest;
  tenant: Tenant | undefined = undefined;
  rate: TakeResult | undefined = undefined;

  constructor(
    readonly request: DirectRequest,
    readonly requestId: string,
  ) {
    this.req = request;
  }

  /** Auth's way of handing over the tenant and the rate-limit outcome (as on a hono Context). */
  set(name: string, value: unknown): void {
    if (name === 'tenant') this.tenant = value as Tenant;
    else if (name === 'rate') this.rate = value as TakeResult | undefined;
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

  /**
   * The same route for a home that serves hot routes without building Request/Response objects
   * (the Node server): tenant auth, then `handler` with the route's parameters as the caller
   * matched them, with the same request id, headers, errors, metrics and logs as `route`. The
   * answer never rejects: errors become their JSON answer.
   *
   * @example
   * const get = pipeline.direct('/v1/kv/:key{.+}', tenantAuth(deps), (s, key) => answerFor(s.tenant!, key));
   * const answer = get(request, 'user/42');
   */
  direct<P = string>(route: string, auth: AuthGuard, handler: (s: DirectState, param: P) => Awaitable<PlainAnswer>): (req: DirectRequest, param: P) => Awaitable<PlainAnswer>;
}

/** The request id to use: the client's when it is a sane token, else a generated one. */
function requestIdOf(incoming: string | undefined): string {
  return incoming !== undefined && REQUEST_ID.test(incoming) ? incoming : `${ID_PREFIX}-${(++idCounter).toString(36)}`;
}

/** Adds the headers every answer carries: request id, rate-limit (limited plans) and CORS. */
function addPipelineHeaders(deps: AppDeps, headers: Record<string, string>, requestId: string, rate: TakeResult | undefined, origin: string | undefined): void {
  headers['x-request-id'] = requestId;
  if (rate !== undefined) {
    headers['x-ratelimit-limit'] = String(rate.limit);
    headers['x-ratelimit-remaining'] = String(rate.remaining);
    headers['x-ratelimit-reset'] = String(rate.resetSeconds);
    if (!rate.allowed) headers['retry-after'] = String(rate.retryAfterSeconds);
  }
  deps.corsHeaders(origin, headers);
}

function runGuards(c: Context<AppEnv>, guards: readonly Guard[], handler: RouteHandler, from: number): Awaitable<Response> {
  for (let i = from; i < guards.length; i++) {
    const pending = guards[i]!(c);
    if (pending instanceof Promise) return pending.then(() => runGuards(c, guards, handler, i + 1));
  }
  return handler(c);
}

/**
 * The answer to HEAD: the GET answer's head, with the `Content-Length` its body would have
 * (RFC 9110 §9.3.2), and no body. hono hands HEAD the GET handler's response and then drops its
 * body unread, so without this the length was missing.
 */
function headAnswer(c: Context<AppEnv>, res: Response): Awaitable<Response> {
  const body = res.body!;
  if (res.headers.has('content-length') || c.get('streamed') === true) {
    // A streamed body must be cancelled, or its source stays open (a backup keeps its lmdb read
    // transaction and blob links until the server stops).
    body.cancel().catch(() => undefined);
    return res;
  }
  // Built in full already (JSON, a KV value): reading it costs no more than sending it would.
  return res.arrayBuffer().then((bytes) => {
    const head = new Response(null, { status: res.status, headers: res.headers });
    head.headers.set('content-length', String(bytes.byteLength));
    return head;
  });
}

/**
 * @example
 * const pipeline = requestPipeline(deps);
 * app.notFound(pipeline.route('unmatched', [], notFound));
 */
export function requestPipeline(deps: AppDeps): RequestPipeline {
  const { logger, metrics } = deps;

  const finish = (c: Context<AppEnv>, res: Response, route: string, start: number): Awaitable<Response> => {
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
      // Preflights carry their own CORS headers (hono's cors()); an OPTIONS refused gets these.
      if (c.req.method !== 'OPTIONS' || res.status >= 400) {
        const cors: Record<string, string> = {};
        deps.corsHeaders(c.req.header('origin'), cors);
        for (const name in cors) {
          if (name === 'vary') headers.append(name, cors[name]!);
          else headers.set(name, cors[name]!);
        }
      }
    }
    observe(route, c.req.method, res.status, start, requestId, c.get('longPoll') === true);
    if (c.req.method === 'HEAD' && res.body !== null) return headAnswer(c, res);
    return res;
  };

  /** Metrics and logs of one answered request. */
  const observe = (route: string, method: string, status: number, start: number, requestId: string, longPoll: boolean): void => {
    const ms = performance.now() - start;
    metrics?.observeRequest(route, method, status, ms / 1000);
    if (status >= 500) logger.error({ request_id: requestId, method, route, status, ms: Math.round(ms) }, 'request failed');
    else if (ms >= SLOW_REQUEST_MS && !longPoll) logger.info({ request_id: requestId, method, route, status, ms: Math.round(ms) }, 'slow request');
    else if (logger.debugEnabled !== false) logger.debug({ request_id: requestId, method, route, status, ms: Math.round(ms) }, 'request');
  };

  const finishDirect = (s: DirectState, answer: PlainAnswer, route: string, start: number): PlainAnswer => {
    addPipelineHeaders(deps, answer.headers, s.requestId, s.rate, s.request.header('origin'));
    observe(route, s.request.method, answer.status, start, s.requestId, false);
    return answer;
  };

  const failDirect = (s: DirectState, err: unknown, route: string, start: number): PlainAnswer => {
    const shown = exposedError(err, logger, s.requestId);
    const body = errorJson(shown.code, shown.message);
    return finishDirect(s, { status: shown.status, headers: errorHeaders(shown), body }, route, start);
  };

  const fail = (c: Context<AppEnv>, err: unknown, route: string, start: number): Awaitable<Response> => {
    // An error response is new: it gets the request id, rate-limit and CORS headers here.
    c.set('finished', false);
    return finish(c, toErrorResponse(err, logger, c.get('requestId')), route, start);
  };

  return {
    route(route, guards, handler) {
      return (c) => {
        const start = performance.now();
        c.set('requestId', requestIdOf(c.req.header('x-request-id')));
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

    direct<P>(route: string, auth: AuthGuard, handler: (s: DirectState, param: P) => Awaitable<PlainAnswer>) {
      const run = (s: DirectState, param: P): Awaitable<PlainAnswer> => {
        const admitted = auth(s);
        return admitted instanceof Promise ? admitted.then(() => handler(s, param)) : handler(s, param);
      };
      return (req: DirectRequest, param: P) => {
        const start = performance.now();
        const s = new DirectState(req, requestIdOf(req.header('x-request-id')));
        let out: Awaitable<PlainAnswer>;
        try {
          out = run(s, param);
        } catch (err) {
          return failDirect(s, err, route, start);
        }
        if (out instanceof Promise) {
          return out.then(
            (answer) => finishDirect(s, answer, route, start),
            (err: unknown) => failDirect(s, err, route, start),
          );
        }
        return finishDirect(s, out, route, start);
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
  addPipelineHeaders(deps, headers, c.get('requestId'), c.get('rate'), c.req.header('origin'));
  c.set('finished', true);
  return new Response(body as BodyInit | null, { status, headers });
}
