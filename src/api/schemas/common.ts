/**
 * Shapes shared by every route's OpenAPI description: the error body, the response headers, and
 * helpers that attach JSON bodies, error responses and what the request pipeline adds to a route.
 */
import { z } from '@hono/zod-openapi';
import { unknownKeysMessage } from '../../engine/known-options.js';
import type { RouteDoc } from '../router.js';

export const ErrorSchema = z
  .object({
    error: z.string().openapi({ example: 'not_found', description: 'A code from the table in docs/api.md' }),
    message: z.string().openapi({ example: "topic 'orders' does not exist" }),
  })
  .openapi('Error');

const ERROR_TEXT: Record<number, string> = {
  400: 'Bad input; the message names the field or query parameter',
  401: 'Missing, unknown or revoked key, or credentials that disagree (an Authorization header without a Bearer key, or two headers naming different keys)',
  404: 'No such resource (or it belongs to another tenant)',
  409: 'Already exists',
  412: 'If-Match / If-None-Match did not hold',
  413: 'Body larger than the limit for this route, or a value or record over the engine\'s limit',
  429: 'Rate limit exceeded; see Retry-After',
  500: 'Server fault: a generic message; the cause is logged with the request id',
  501: 'Not available in this home',
  503: 'Out of file descriptors just now (nothing acknowledged is lost); retry after Retry-After',
  507: "The server's disk is full (nothing of this request was stored; retry once space is freed), or a vector index ran out of WebAssembly memory",
};

/**
 * A request body's object that refuses fields it does not know (`additionalProperties: false` in
 * the OpenAPI document), naming the one a misspelt field most likely meant: a misspelt option
 * left to its default would silently change how data is kept.
 *
 * @example
 * strictBody({ name: z.string() }).parse({ nmae: 'x' }); // unknown field 'nmae'; did you mean 'name'?
 */
export function strictBody<Shape extends z.ZodRawShape>(shape: Shape) {
  const known = Object.keys(shape);
  return z.strictObject(shape, { error: (issue) => (issue.code === 'unrecognized_keys' ? unknownKeysMessage(issue.keys, known, 'field') : undefined) });
}

/** The query of the catalog listings (topics, collections, groups), paged as KV list is. */
export const PageQuery = z.object({
  cursor: z.string().optional().openapi({ description: "The previous page's `cursor`; only a cursor this API returned is accepted" }),
  limit: z.string().optional().openapi({ description: '1-1000, default 1000' }),
});

/** A listing's `cursor` field. */
export const PageCursor = z.string().nullable().openapi({ description: 'Pass back as `cursor` for the next page; null on the last page' });

type Responses = RouteDoc['responses'];
type Response = Responses[string];
/** An OpenAPI header object, as these responses use it. */
export interface HeaderDoc {
  description: string;
  required?: boolean;
  schema: { type: 'string' | 'integer'; pattern?: string; minimum?: number };
}

/**
 * Response headers, each documented once under `components.headers` (`registerResponseHeaders`)
 * and referenced by every response that carries it.
 */
const RESPONSE_HEADERS = {
  'X-Request-Id': {
    description: "The request's id, also in the server's logs: the client's own `X-Request-Id` when it is 1-128 of `A-Za-z0-9._:-`, else a generated one",
    required: true,
    schema: { type: 'string', pattern: '^[A-Za-z0-9._:-]{1,128}$' },
  },
  'X-RateLimit-Limit': { description: "Requests per minute of the tenant's plan (limited plans only)", schema: { type: 'integer', minimum: 1 } },
  'X-RateLimit-Remaining': { description: 'Requests left in the bucket (limited plans only)', schema: { type: 'integer', minimum: 0 } },
  'X-RateLimit-Reset': { description: 'Seconds until the bucket is full (limited plans only)', schema: { type: 'integer', minimum: 0 } },
  'Retry-After': { description: 'Seconds to wait before retrying: until the bucket holds a request again (429), or a short pause (503)', required: true, schema: { type: 'integer', minimum: 1 } },
  ETag: { description: "The key's version as a strong tag, `\"<version>\"`", required: true, schema: { type: 'string', pattern: '^"[0-9]+"$' } },
  'X-Expires-At': { description: 'When the key expires, ms since the epoch (keys with a TTL only)', schema: { type: 'integer' } },
} satisfies Record<string, HeaderDoc>;

export type ResponseHeader = keyof typeof RESPONSE_HEADERS;

/** Adds the response headers to the document's components (once per app). */
export function registerResponseHeaders(register: (name: string, header: HeaderDoc) => void): void {
  for (const [name, header] of Object.entries(RESPONSE_HEADERS)) register(name, header);
}

/** References to documented response headers, for a response's `headers`. */
export function headers(...names: ResponseHeader[]): Record<string, { $ref: string }> {
  return Object.fromEntries(names.map((name) => [name, { $ref: `#/components/headers/${name}` }]));
}

function errorResponse(status: number): Response {
  return { description: ERROR_TEXT[status] ?? 'Error', content: { 'application/json': { schema: ErrorSchema } } };
}

/** JSON error responses for the given statuses (401, 429, 500 and 503 are added to every route by `pipelineResponses`). */
export function errorResponses(...statuses: number[]): Responses {
  const out: Responses = {};
  for (const s of statuses) out[String(s)] = errorResponse(s);
  return out;
}

export function jsonBody(schema: z.ZodType, description?: string): NonNullable<RouteDoc['request']>['body'] {
  return { required: true, description, content: { 'application/json': { schema } } };
}

export function jsonResponse(schema: z.ZodType, description: string): Response {
  return { description, content: { 'application/json': { schema } } };
}

/** Security requirement of tenant routes: either header works. */
export const tenantSecurity: Array<Record<string, string[]>> = [{ bearerAuth: [] }, { apiKeyHeader: [] }];
export const adminSecurity: Array<Record<string, string[]>> = [{ adminBearer: [] }, { adminKeyHeader: [] }];

/**
 * A route's responses with what the request pipeline adds to every route (src/api/middleware):
 * 400 for a query parameter the route does not list (src/api/query-params.ts); 500 for anything unexpected; 503 with Retry-After when the server is out of file descriptors; 507 on every method but GET (any write may meet a full disk); on
 * key-protected routes 401, and on tenant routes 429 and the rate-limit headers (on every answer
 * once the key is known, so not on 401); `X-Request-Id` on every answer. The router applies it to
 * each route it documents.
 *
 * @example
 * registry.registerPath({ ...doc, responses: pipelineResponses(doc, method), method, path });
 */
export function pipelineResponses(doc: Pick<RouteDoc, 'responses' | 'security'>, method: string): Responses {
  const tenant = doc.security === tenantSecurity;
  const guarded = tenant || doc.security === adminSecurity;
  const writes = method.toLowerCase() !== 'get';
  const all: Responses = { ...errorResponses(400), ...doc.responses, ...errorResponses(...(guarded ? [401] : []), ...(tenant ? [429] : []), 500, 503, ...(writes ? [507] : [])) };
  const out: Responses = {};
  for (const status of Object.keys(all).sort()) {
    const response = all[status]!;
    const limited = tenant && status !== '401' ? headers('X-RateLimit-Limit', 'X-RateLimit-Remaining', 'X-RateLimit-Reset') : {};
    const retry = status === '429' || status === '503' ? headers('Retry-After') : {};
    out[status] = { ...response, headers: { ...headers('X-Request-Id'), ...limited, ...retry, ...(response as { headers?: Record<string, unknown> }).headers } } as Response;
  }
  return out;
}
