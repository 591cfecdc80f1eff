/**
 * The outermost middleware: request id, rate-limit headers (also on error responses), metrics
 * by route pattern, and logs — errors and slow requests at info, every request only at debug.
 */
import type { Context, MiddlewareHandler } from 'hono';
import type { AppDeps, AppEnv } from '../context.js';

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;
/** Generated ids: one random prefix per process and a counter, unique without a UUID per request. */
const ID_PREFIX = crypto.randomUUID().slice(0, 8);
let idCounter = 0;
/** Requests slower than this are logged at info (a database does not log every call by default). */
export const SLOW_REQUEST_MS = 1000;

/**
 * @example
 * app.use('*', requestMiddleware(deps));
 */
/**
 * Sets one header on the response and returns its headers, now known to be writable. Responses
 * from fetch() (e.g. proxied assets) have immutable headers: those are copied once.
 */
export function setResponseHeader(c: Context, name: string, value: string): Headers {
  try {
    c.res.headers.set(name, value);
  } catch {
    c.res = new Response(c.res.body, c.res);
    c.res.headers.set(name, value);
  }
  return c.res.headers;
}

export function requestMiddleware(deps: AppDeps): MiddlewareHandler<AppEnv> {
  const { logger, metrics } = deps;
  return async (c, next) => {
    const start = performance.now();
    const incoming = c.req.header('x-request-id');
    const requestId = incoming !== undefined && REQUEST_ID.test(incoming) ? incoming : `${ID_PREFIX}-${(++idCounter).toString(36)}`;
    c.set('requestId', requestId);
    await next();
    if (c.get('finished') !== true) {
      const headers = setResponseHeader(c, 'x-request-id', requestId);
      const rate = c.get('rate');
      if (rate !== undefined) {
        headers.set('x-ratelimit-limit', String(rate.limit));
        headers.set('x-ratelimit-remaining', String(rate.remaining));
        headers.set('x-ratelimit-reset', String(rate.resetSeconds));
        if (!rate.allowed) headers.set('retry-after', String(rate.retryAfterSeconds));
      }
    }
    const status = c.res.status;
    const seconds = (performance.now() - start) / 1000;
    // Unmatched paths share one label so scanners cannot blow up the metric's cardinality.
    const route = c.req.routePath === '/*' || c.req.routePath === '*' ? 'unmatched' : c.req.routePath;
    metrics?.observeRequest(route, c.req.method, status, seconds);
    const fields = { request_id: requestId, method: c.req.method, route, status, ms: Math.round(seconds * 1000) };
    if (status >= 500) logger.error(fields, 'request failed');
    else if (seconds * 1000 >= SLOW_REQUEST_MS && c.get('longPoll') !== true) logger.info(fields, 'slow request');
    else logger.debug(fields, 'request');
  };
}

/**
 * A hot route's response with every header the outer middlewares would add (request id,
 * rate-limit, CORS) already in one plain object. @hono/node-server writes such a response
 * straight from that object; adding headers afterwards through `Response#headers` would build a
 * WHATWG Headers per request and convert every name and value.
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
