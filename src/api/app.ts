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
import { requestMiddleware, setResponseHeader } from './middleware/request.js';
import { PrincipalCache } from './principal-cache.js';
import { silentLogger, type BackupFn, type LoggerPort, type MetricsPort } from './ports.js';
import { MemoryBucketStore, type BucketStore } from './rate-limit.js';
import { ApiRouter } from './router.js';
import { accountRoutes, adminRoutes } from './routes/admin.js';
import { kvRoutes } from './routes/kv.js';
import { streamRoutes } from './routes/streams.js';
import { systemRoutes } from './routes/system.js';
import { vectorRoutes } from './routes/vectors.js';

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
export function createApp(options: AppOptions): Hono<AppEnv> {
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
  const app = new OpenAPIHono<AppEnv>({ strict: true });
  const router = new ApiRouter(app);

  app.openAPIRegistry.registerComponent('securitySchemes', 'bearerAuth', { type: 'http', scheme: 'bearer', description: 'Tenant API key (qz_…)' });
  app.openAPIRegistry.registerComponent('securitySchemes', 'apiKeyHeader', { type: 'apiKey', in: 'header', name: 'X-API-Key' });
  app.openAPIRegistry.registerComponent('securitySchemes', 'adminBearer', { type: 'http', scheme: 'bearer', description: 'The admin key' });
  app.openAPIRegistry.registerComponent('securitySchemes', 'adminKeyHeader', { type: 'apiKey', in: 'header', name: 'X-API-Key', description: 'The admin key' });

  app.use('*', requestMiddleware(deps));
  const preflight = cors({
    origin: anyOrigin ? '*' : origins,
    allowMethods: ['GET', 'HEAD', 'PUT', 'POST', 'PATCH', 'DELETE', 'OPTIONS'],
    allowHeaders: ['Authorization', 'X-API-Key', 'Content-Type', 'If-Match', 'If-None-Match', 'X-Request-Id'],
    exposeHeaders: EXPOSED,
    maxAge: 600,
  });
  // NOTE: hono's cors() sets its headers on c.res before the handler runs, which makes hono copy
  // every handler response through its body stream (a ReadableStream per request, so
  // @hono/node-server cannot write it in one go). Only preflights go through cors(); other
  // requests get the same headers on the handler's own response.
  app.use('*', async (c, next) => {
    if (c.req.method === 'OPTIONS') return preflight(c, next);
    await next();
    if (c.get('finished') === true) return;
    const headers = setResponseHeader(c, 'access-control-expose-headers', exposed);
    if (anyOrigin) {
      headers.set('access-control-allow-origin', '*');
    } else {
      const origin = c.req.header('origin');
      if (origin !== undefined && origins.includes(origin)) headers.set('access-control-allow-origin', origin);
      headers.append('vary', 'Origin');
    }
  });

  systemRoutes(router, app, deps);
  accountRoutes(router, deps);
  kvRoutes(router, deps);
  vectorRoutes(router, deps);
  streamRoutes(router, deps);
  adminRoutes(router, deps);

  app.notFound((c) => {
    const allowed = router.allowed(c.req.path);
    if (allowed.length > 0) {
      return errorResponse(new QuartzError(ErrorCode.METHOD_NOT_ALLOWED, `${c.req.method} is not allowed on ${c.req.path}; use ${allowed.join(', ')}`), {
        allow: allowed.join(', '),
      });
    }
    return errorResponse(new QuartzError(ErrorCode.NOT_FOUND, `no route for ${c.req.method} ${c.req.path}`));
  });
  app.onError((err, c) => toErrorResponse(err, deps.logger, c.get('requestId')));
  return app;
}

export type { AppEnv } from './context.js';
