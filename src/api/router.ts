/**
 * Registers each route once for both the router (hono) and the OpenAPI document, runs it through
 * the request pipeline as one handler, and keeps the route table so an unmatched request can be
 * told 405 with an Allow header instead of 404.
 */
import type { OpenAPIHono, RouteConfig } from '@hono/zod-openapi';
import type { AppEnv } from './context.js';
import type { Guard, RequestPipeline, RouteHandler } from './middleware/request.js';
import { readBody } from './body.js';
import { queryNames, queryOfUrl, refuseUnknownQuery } from './query-params.js';
import { pipelineResponses } from './schemas/common.js';

export type Method = 'get' | 'post' | 'put' | 'patch' | 'delete';

/**
 * The OpenAPI part of a route; the router fills in method and path. `x-quartz-query: 'ignored'`
 * marks a route that takes any query parameter and reads none (health: the cache buster or
 * `?check=1` a load balancer or uptime checker adds); without it, one the route does not list is
 * refused.
 */
export type RouteDoc = Omit<RouteConfig, 'method' | 'path'> & { 'x-quartz-query'?: 'ignored' };

interface Entry {
  method: Method;
  pattern: RegExp;
}

/** `/v1/kv/:key{.+}` → `/v1/kv/{key}` (OpenAPI) and a RegExp over raw paths. */
function translate(path: string): { openapi: string; pattern: RegExp } {
  let openapi = '';
  let source = '';
  const re = /:([A-Za-z_][A-Za-z0-9_]*)(\{([^}]*)\})?|([^:]+)/g;
  for (let m = re.exec(path); m !== null; m = re.exec(path)) {
    if (m[1] !== undefined) {
      openapi += `{${m[1]}}`;
      source += m[3] !== undefined ? `(?:${m[3]})` : '[^/]+';
    } else {
      openapi += m[4]!;
      source += m[4]!.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    }
  }
  // 's': a parameter's pattern matches line breaks too (a KV key may hold one).
  return { openapi, pattern: new RegExp(`^${source}$`, 's') };
}

/**
 * The path as hono is given it. NOTE: hono matches the percent-decoded path with patterns built
 * without the 's' flag, so the `.` of `{.+}` (the rest of the path) stopped at a line break, and a
 * key holding one found no route; `[^]` is any character. The route keeps its written form as its
 * name (metrics labels, logs).
 */
function honoPath(path: string): string {
  return path.replaceAll('{.+}', '{[^]+}');
}

/** A guard refusing a query parameter not in `known`; a URL without a query costs one `indexOf`. */
function knownQuery(known: readonly string[]): Guard {
  return (c) => {
    const url = c.req.url;
    if (url.includes('?')) refuseUnknownQuery(queryOfUrl(url), known);
  };
}

/**
 * A guard that reads, and drops, a body sent to a write route that takes none (a DELETE, a key
 * issue), before the route acts. NOTE: such a route acted on the headers alone, so a body cut
 * short (the client gone mid-upload) got 400 from the transport after the key or topic was
 * already deleted. Read first, a cut body is 400 with nothing done, as on routes that read theirs.
 */
function bodyFirst(limit: number): Guard {
  return (c) => {
    const length = c.req.header('content-length');
    if ((length === undefined || length === '0') && c.req.header('transfer-encoding') === undefined) return;
    return readBody(c.req.raw, limit).then(() => undefined);
  };
}

/** `E` is the app's env (always `AppEnv`; the parameter keeps `ApiRouter<AppEnv>` annotations valid). */
export class ApiRouter<E extends AppEnv = AppEnv> {
  private readonly entries: Entry[] = [];

  constructor(
    private readonly app: OpenAPIHono<E>,
    private readonly pipeline: RequestPipeline,
    /** The most a body sent to a write route that takes none may hold (it is read and dropped). */
    private readonly unusedBodyLimit: number,
  ) {}

  /**
   * Adds a route: `doc` goes into /v1/openapi.json with the responses and headers the request
   * pipeline adds (omit it for routes outside the API, like /docs); then the guards (auth), then,
   * on a documented route, the refusal of a query parameter its `doc` does not list (unless it
   * says `x-quartz-query: 'ignored'`); on a write
   * route whose `doc` takes no body, the reading of any body sent (see bodyFirst); then the
   * handler.
   *
   * @example
   * router.add('get', '/v1/health', healthDoc, (c) => c.json({ status: 'ok' }));
   * router.add('get', '/v1/usage', usageDoc, tenantAuth(deps), async (c) => c.json(await usageOf(c)));
   */
  add(method: Method, path: string, doc: RouteDoc | undefined, ...handlers: [...Guard[], RouteHandler]): void {
    const { openapi, pattern } = translate(path);
    this.entries.push({ method, pattern });
    if (doc !== undefined) this.app.openAPIRegistry.registerPath({ ...doc, responses: pipelineResponses(doc, method), method, path: openapi });
    const guards = handlers.slice(0, -1) as Guard[];
    if (doc !== undefined && doc['x-quartz-query'] !== 'ignored') guards.push(knownQuery(queryNames(doc.request?.query)));
    if (method !== 'get' && doc !== undefined && doc.request?.body === undefined) guards.push(bodyFirst(this.unusedBodyLimit));
    const handler = handlers[handlers.length - 1] as RouteHandler;
    (this.app.on as (m: string, p: string, h: unknown) => unknown)(method.toUpperCase(), honoPath(path), this.pipeline.route(path, guards, handler));
  }

  /** Methods some route answers for `path` (HEAD comes with GET), empty when no route matches. */
  allowed(path: string): string[] {
    const methods = new Set<string>();
    for (const e of this.entries) {
      if (e.pattern.test(path)) {
        methods.add(e.method.toUpperCase());
        if (e.method === 'get') methods.add('HEAD');
      }
    }
    if (methods.size > 0) methods.add('OPTIONS');
    return [...methods];
  }
}
