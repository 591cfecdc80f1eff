/**
 * The QuartzDB HTTP API v1 as a hono app, free of any runtime's imports: the Node home serves it
 * with @hono/node-server, the Worker home from its fetch handler. Homes plug in metrics, logs,
 * static assets, backups and a shutdown signal through `AppOptions`.
 */
import { OpenAPIHono } from '@hono/zod-openapi';
import type { Hono } from 'hono';
import { cors } from 'hono/cors';
import { ErrorCode, QuartzError } from '../core/errors.js';
import type { Engine } from '../engine/engine.js';
import type { ServerConfig } from './config.js';
import type { AppDeps, AppEnv } from './context.js';
import { errorResponse, toErrorResponse } from './errors.js';
import { requestPipeline, type DirectRequest, type PlainAnswer } from './middleware/request.js';
import { PrincipalCache } from './principal-cache.js';
import { silentLogger, type BackupFn, type LoggerPort, type MetricsPort } from './ports.js';
import { MemoryBucketStore, type BucketStore } from './rate-limit.js';
import { ApiRouter } from './router.js';
import { registerResponseHeaders } from './schemas/common.js';
import { accountRoutes, adminRoutes } from './routes/admin.js';
import { kvDirect, kvPutDirect, kvRoutes } from './routes/kv.js';
import { streamRoutes, streamsDirect } from './routes/streams.js';
import { STATIC_METHODS, STATIC_PATH, refuseStaticMethod, serveStatic, systemRoutes } from './routes/system.js';
import { vectorQueryDirect, vectorRoutes } from './routes/vectors.js';

export interface AppOptions {
  engine: Engine;
  /** Build it with `resolveServerConfig`. */
  config: ServerConfig;
  metrics?: MetricsPort;
  logger?: LoggerPort;
  /** Static files: /docs assets (swagger-ui-dist) and the playground at `/`; undefined → 404. */
  assets?: (path: string) => Promise<Response | undefined>;
  /** Aborts pending long-polls so they answer with what they have. */
  shutdownSignal?: AbortSignal;
  /** Streams `GET /v1/admin/backup`; without it that route answers 501. */
  backup?: BackupFn;
  /** Rate-limit buckets; defaults to this process's memory. */
  buckets?: BucketStore;
}

/**
 * The app's hottest routes (KV GET and PUT, vector query, produce, consume without a long-poll) for a home that can serve them without building a WHATWG
 * Request and Response per call: answers `req` when it is one of them (`target` is the request
 * target as received: path and query), else returns undefined and the request goes to `fetch`.
 * Same answer, headers, errors, metrics and logs as through `fetch`.
 */
export type DirectRoutes = (req: DirectRequest, target: string) => PlainAnswer | Promise<PlainAnswer> | undefined;

/**
 * The hono app with its direct routes, and the CORS headers its answers carry (for answers a home
 * gives before the app, so a browser can read them too).
 */
export type QuartzApp = Hono<AppEnv> & { direct: DirectRoutes; corsHeaders: AppDeps['corsHeaders'] };

/** Headers a browser client may read. */
const EXPOSED = ['ETag', 'X-RateLimit-Limit', 'X-RateLimit-Remaining', 'X-RateLimit-Reset', 'Retry-After', 'X-Request-Id', 'X-Expires-At'];

/**
 * Builds the app.
 *
 * @example
 * const engine = await openQuartz({ dataDir: './.quartz' });
 * const app = createApp({ engine, config: resolveServerConfig({ version: '0.1.0' }) });
 * const res = await app.fetch(new Request('http://localhost/v1/health'));
 */
export function createApp(options: AppOptions): QuartzApp {
  const clock = options.engine.context.clock;
  const origins = options.config.cors_origins;
  const anyOrigin = origins.includes('*');
  const exposed = EXPOSED.join(',');
  const deps: AppDeps = {
    engine: options.engine,
    config: options.config,
    logger: options.logger ?? silentLogger,
    metrics: options.metrics,
    buckets: options.buckets ?? new MemoryBucketStore(),
    clock,
    startedAt: clock.now(),
    assets: options.assets,
    backup: options.backup,
    shutdownSignal: options.shutdownSignal,
    principals: new PrincipalCache(options.engine.tenants, clock),
    corsHeaders: (origin, into) => {
      into['access-control-expose-headers'] = exposed;
      if (anyOrigin) {
        into['access-control-allow-origin'] = '*';
      } else {
        if (origin !== undefined && origins.includes(origin)) into['access-control-allow-origin'] = origin;
        into.vary = 'Origin';
      }
    },
  };
  // The default router (RegExpRouter, else TrieRouter) matches all routes in one regex as long
  // as every pattern is one RegExpRouter supports: keep lookaheads out of route paths.
  const app = new OpenAPIHono<AppEnv>({ strict: true });
  const pipeline = requestPipeline(deps);
  const router = new ApiRouter(app, pipeline, deps.config.body_limits.json);

  app.openAPIRegistry.registerComponent('securitySchemes', 'bearerAuth', { type: 'http', scheme: 'bearer', description: 'Tenant API key (qz_…)' });
  app.openAPIRegistry.registerComponent('securitySchemes', 'apiKeyHeader', { type: 'apiKey', in: 'header', name: 'X-API-Key' });
  app.openAPIRegistry.registerComponent('securitySchemes', 'adminBearer', { type: 'http', scheme: 'bearer', description: 'The admin key' });
  app.openAPIRegistry.registerComponent('securitySchemes', 'adminKeyHeader', { type: 'apiKey', in: 'header', name: 'X-API-Key', description: 'The admin key' });
  registerResponseHeaders((name, header) => app.openAPIRegistry.registerComponent('headers', name, { ...header }));

  /** The methods `path` answers (OPTIONS included), empty when it names nothing. */
  const methodsOf = async (path: string): Promise<string[]> => {
    const api = router.allowed(path);
    if (api.length > 0 || !STATIC_PATH.test(path) || deps.assets === undefined) return api;
    const file = await deps.assets(path);
    if (file === undefined) return [];
    await file.body?.cancel();
    return STATIC_METHODS;
  };
  // Preflights only: other responses get the CORS headers from the request pipeline, on the
  // handler's own response (hono's cors() would set them on c.res before the handler runs,
  // which makes hono copy every response through its body stream).
  const preflight = cors({
    origin: anyOrigin ? '*' : origins,
    allowMethods: (_origin, c) => c.get('allowed') as string[],
    allowHeaders: ['Authorization', 'X-API-Key', 'Content-Type', 'If-Match', 'If-None-Match', 'X-Request-Id'],
    exposeHeaders: EXPOSED,
    maxAge: 600,
  });
  // OPTIONS (RFC 9110 §9.3.7) and the CORS preflight (Fetch standard, CORS-preflight fetch) on a
  // path that exists: 204 listing its methods, in `Allow` and `Access-Control-Allow-Methods` (a
  // browser refuses a method the list lacks). On a path that names nothing: 404, as any method
  // gets there; the preflight fails (a status that is not ok), as the request would have.
  app.on(
    'OPTIONS',
    '*',
    pipeline.route('preflight', [], async (c) => {
      const allowed = await methodsOf(c.req.path);
      if (allowed.length === 0) throw new QuartzError(ErrorCode.NOT_FOUND, `no route for OPTIONS ${c.req.path}`);
      c.set('allowed', allowed);
      const res = (await preflight(c, async () => undefined)) as Response;
      res.headers.set('allow', allowed.join(', '));
      return res;
    }),
  );

  systemRoutes(router, app, deps);
  accountRoutes(router, deps);
  kvRoutes(router, deps);
  vectorRoutes(router, deps);
  streamRoutes(router, deps);
  adminRoutes(router, deps);

  // Nothing matched: the home's static files outside /v1 (GET; other methods 405 where a file is),
  // else 405 with Allow for a known path, else 404.
  const unmatched = pipeline.route('unmatched', [], (c) => {
    const allowed = router.allowed(c.req.path);
    if (allowed.length > 0) {
      return errorResponse(new QuartzError(ErrorCode.METHOD_NOT_ALLOWED, `${c.req.method} is not allowed on ${c.req.path}; use ${allowed.join(', ')}`), {
        allow: allowed.join(', '),
      });
    }
    return errorResponse(new QuartzError(ErrorCode.NOT_FOUND, `no route for ${c.req.method} ${c.req.path}`));
  });
  const staticFile = pipeline.route('static', [], (c) =>
    c.req.method === 'GET' || c.req.method === 'HEAD' ? serveStatic(deps, c.req.path) : refuseStaticMethod(deps, c.req.method, c.req.path),
  );
  app.notFound((c) => (STATIC_PATH.test(c.req.path) && router.allowed(c.req.path).length === 0 ? staticFile(c, noNext) : unmatched(c, noNext)) as Response | Promise<Response>);
  // Routes answer their own errors (see the request pipeline); this catches what escapes hono itself.
  app.onError((err, c) => toErrorResponse(err, deps.logger, c.get('requestId')));
  const kvGet = kvDirect(deps, pipeline);
  const vectorQuery = vectorQueryDirect(deps, pipeline);
  const kvPut = kvPutDirect(deps, pipeline);
  const streams = streamsDirect(deps, pipeline);
  return Object.assign(app, {
    direct: ((req, target) => kvGet(req, target) ?? vectorQuery(req, target) ?? kvPut(req, target) ?? streams(req, target)) satisfies DirectRoutes,
    corsHeaders: deps.corsHeaders,
  });
}

/** The pipeline's handlers never call `next`. */
const noNext = async (): Promise<void> => undefined;

export type { AppEnv } from './context.js';
export type { DirectRequest, PlainAnswer } from './middleware/request.js';
