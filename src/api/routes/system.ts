/**
 * Routes around the API: health, the OpenAPI document and its docs page (assets served by the
 * home, never a CDN), Prometheus metrics when the home renders them, and static files at `/`.
 */
import type { OpenAPIHono } from '@hono/zod-openapi';
import { ErrorCode, QuartzError } from '../../core/errors.js';
import type { AppDeps, AppEnv } from '../context.js';
import { JSON_TYPE, errorResponse } from '../errors.js';
import type { ApiRouter } from '../router.js';
import { Health } from '../schemas/admin.js';
import { errorResponses, jsonResponse } from '../schemas/common.js';

/** The /docs page: Swagger UI from the server's own /docs assets, pointed at /v1/openapi.json. */
export const DOCS_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>QuartzDB API</title>
<link rel="stylesheet" href="/docs/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/docs/swagger-ui-bundle.js"></script>
<script src="/docs/init.js"></script>
</body>
</html>
`;

/** Kept out of the HTML so a strict Content-Security-Policy (script-src 'self') still works. */
export const DOCS_INIT_JS = `window.ui = SwaggerUIBundle({ url: '/v1/openapi.json', dom_id: '#swagger-ui', deepLinking: true });\n`;

const LANDING_HTML = `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>QuartzDB</title></head>
<body>
<h1>QuartzDB</h1>
<p>The HTTP API lives under <code>/v1</code>. Read the <a href="/docs">API docs</a> or the <a href="/v1/openapi.json">OpenAPI document</a>.</p>
</body>
</html>
`;

function notFound(path: string): QuartzError {
  return new QuartzError(ErrorCode.NOT_FOUND, `no route for ${path}`);
}

export function systemRoutes(router: ApiRouter<AppEnv>, app: OpenAPIHono<AppEnv>, deps: AppDeps): void {
  const { config, clock, startedAt, metrics } = deps;

  router.add(
    'get',
    '/v1/health',
    {
      tags: ['System'],
      summary: 'Liveness and version',
      description:
        'Ok while the server takes requests; 503 `unavailable` once it is shutting down, so a load balancer stops sending it new work while it drains. Any query parameter is taken and ignored (a checker\'s cache buster or `?check=1`): there is none whose misspelling could change the answer.',
      responses: { '200': jsonResponse(Health, 'The server is up'), ...errorResponses(503) },
      'x-quartz-query': 'ignored',
    },
    (c) => {
      if (deps.shutdownSignal?.aborted === true) throw new QuartzError(ErrorCode.UNAVAILABLE, 'the server is shutting down');
      return c.json({ status: 'ok' as const, version: config.version, uptime_s: Math.floor((clock.now() - startedAt) / 1000) });
    },
  );

  let document: string | undefined;
  const documentDoc = {
    tags: ['System'],
    summary: 'This OpenAPI 3.1 document',
    responses: {
      '200': {
        description: 'The document',
        content: {
          'application/json': {
            schema: { type: 'object' as const, properties: { openapi: { type: 'string' as const } }, required: ['openapi', 'info', 'paths'], additionalProperties: true },
          },
        },
      },
    },
  };
  router.add('get', '/v1/openapi.json', documentDoc, (c) => {
    // Built on first request: the registry is complete once createApp returns.
    document ??= JSON.stringify(
      app.getOpenAPI31Document({
        openapi: '3.1.0',
        info: {
          title: 'QuartzDB HTTP API',
          version: config.version,
          description: 'KV, vectors and streams per tenant. Errors are `{error, message}`; the codes are listed in docs/api.md.',
        },
        servers: [{ url: '/' }],
      }),
    );
    return c.body(document, 200, { 'content-type': JSON_TYPE });
  });

  router.add('get', '/docs', undefined, (c) => c.html(DOCS_HTML));
  router.add('get', '/docs/init.js', undefined, (c) => c.body(DOCS_INIT_JS, 200, { 'content-type': 'text/javascript; charset=utf-8' }));

  // A home without metrics has no /metrics route: 404 whatever the method, as for any unknown path.
  const render = metrics?.render?.bind(metrics);
  if (render !== undefined) {
    router.add('get', '/metrics', undefined, async (c) => {
      const { contentType, body } = await render();
      return c.body(body, 200, { 'content-type': contentType });
    });
  }

  router.add('get', '/', undefined, async (c) => (deps.assets === undefined ? undefined : await deps.assets('/')) ?? c.html(LANDING_HTML));
  // Other static files are served when no route matched (see createApp): a catch-all route here
  // would need a lookahead, which hono's fastest router cannot match.
}

/** Paths outside /v1: the home's static files (docs assets, the playground). */
export const STATIC_PATH = /^\/(?!v1\/)./;

/**
 * The home's static file at `path`; a 404 error when it has none.
 *
 * @example
 * app.notFound((c) => serveStatic(deps, c.req.path));
 */
export async function serveStatic(deps: AppDeps, path: string): Promise<Response> {
  const response = deps.assets === undefined ? undefined : await deps.assets(path);
  if (response === undefined) throw notFound(path);
  return response;
}

/** The methods a static file answers. */
export const STATIC_METHODS = ['GET', 'HEAD', 'OPTIONS'];

/**
 * The answer to a method other than GET/HEAD on a static path: 405 with Allow when the home has a
 * file there, else 404 as for any unknown path.
 *
 * @example
 * app.notFound((c) => (c.req.method === 'GET' ? serveStatic(deps, c.req.path) : refuseStaticMethod(deps, c.req.method, c.req.path)));
 */
export async function refuseStaticMethod(deps: AppDeps, method: string, path: string): Promise<Response> {
  const file = deps.assets === undefined ? undefined : await deps.assets(path);
  if (file === undefined) throw notFound(`${method} ${path}`);
  await file.body?.cancel();
  const allow = STATIC_METHODS.join(', ');
  return errorResponse(new QuartzError(ErrorCode.METHOD_NOT_ALLOWED, `${method} is not allowed on ${path}; use ${allow}`), { allow });
}
