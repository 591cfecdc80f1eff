/**
 * Shapes shared by every route's OpenAPI description: the error body and helpers that attach
 * JSON bodies and the usual error responses to a route.
 */
import { z } from '@hono/zod-openapi';
import type { RouteDoc } from '../router.js';

export const ErrorSchema = z
  .object({
    error: z.string().openapi({ example: 'not_found', description: 'A code from the table in docs/api.md' }),
    message: z.string().openapi({ example: "topic 'orders' does not exist" }),
  })
  .openapi('Error');

const ERROR_TEXT: Record<number, string> = {
  400: 'Bad input; the message names the field',
  401: 'Missing or unknown API key',
  404: 'No such resource (or it belongs to another tenant)',
  405: 'Method not allowed',
  409: 'Already exists',
  412: 'If-Match / If-None-Match did not hold',
  413: 'Body larger than the limit for this route',
  429: 'Rate limit exceeded; see Retry-After',
  501: 'Not available in this home',
};

type Responses = RouteDoc['responses'];

/** JSON responses for the given error statuses, plus 401 and 429 on authenticated routes. */
export function errorResponses(...statuses: number[]): Responses {
  const out: Responses = {};
  for (const s of statuses) out[String(s)] = { description: ERROR_TEXT[s] ?? 'Error', content: { 'application/json': { schema: ErrorSchema } } };
  return out;
}

export function jsonBody(schema: z.ZodType, description?: string): NonNullable<RouteDoc['request']>['body'] {
  return { required: true, description, content: { 'application/json': { schema } } };
}

export function jsonResponse(schema: z.ZodType, description: string): Responses[string] {
  return { description, content: { 'application/json': { schema } } };
}

export const rateLimitHeaders = z.object({
  'X-RateLimit-Limit': z.string().openapi({ description: 'Requests per minute of the plan (limited plans only)' }),
  'X-RateLimit-Remaining': z.string().openapi({ description: 'Requests left in the bucket' }),
  'X-RateLimit-Reset': z.string().openapi({ description: 'Seconds until the bucket is full' }),
});

/** Security requirement of tenant routes: either header works. */
export const tenantSecurity: Array<Record<string, string[]>> = [{ bearerAuth: [] }, { apiKeyHeader: [] }];
export const adminSecurity: Array<Record<string, string[]>> = [{ adminBearer: [] }, { adminKeyHeader: [] }];

/** The errors every authenticated route can answer. */
export const AUTHED_ERRORS = [400, 401, 429] as const;
