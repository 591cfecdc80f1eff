/** Vector collection shapes: requests are validated with these, responses documented. */
import { z } from '@hono/zod-openapi';
import { ErrorCode, QuartzError } from '../../core/errors.js';
import { unknownKeysMessage } from '../../engine/known-options.js';
import { PageCursor, strictBody } from './common.js';

// The pattern is documented only: the engine checks names and words the error.
const name = z.string().min(1).max(128).openapi({ pattern: '^[A-Za-z0-9._-]{1,128}$', description: "Not '.' or '..'" });
export const Metric = z.enum(['cosine', 'l2', 'dot']);

export const CreateCollectionBody = strictBody({
  name,
  dims: z.number().int().min(1).max(4096),
  metric: Metric,
  m: z.number().int().min(4).max(64).optional().openapi({ description: 'HNSW links per node (default 16)' }),
  ef_construction: z.number().int().min(8).max(1000).optional().openapi({ description: 'HNSW build breadth (default 200)' }),
})
  // The docs page sends this when "Try it out" is run as it comes: without it, a sample built
  // from the name's pattern and the minimums (a random name, 1 dimension, m 4).
  .openapi('CreateCollection', { example: { name: 'docs', dims: 3, metric: 'cosine' } });

export const CollectionInfo = z
  .object({
    name: z.string(),
    dims: z.number().int(),
    metric: Metric,
    m: z.number().int(),
    ef_construction: z.number().int(),
    count: z.number().int(),
    created_at: z.number().int(),
  })
  .openapi('Collection');

export const CollectionList = z.object({ collections: z.array(CollectionInfo), cursor: PageCursor }).openapi('CollectionList');

const collectionName = z.string().openapi({ description: 'Collection name', example: 'docs' });
export const CollectionParam = z.object({ c: collectionName });
export const VectorParam = z.object({ c: collectionName, id: z.string().openapi({ description: 'Vector id', example: 'a' }) });

const VectorId = z.string().min(1).openapi({ description: "At most 512 UTF-8 bytes; not '.' or '..'" });
const VectorValues = z.array(z.number()).openapi({ description: 'Exactly `dims` finite numbers; under l2 and dot each at most 1e17 in magnitude' });
const Metadata = z.record(z.string(), z.unknown()).openapi({ description: 'JSON object, at most 10 KiB' });

export const UpsertBody = strictBody({
  vectors: z
    .array(strictBody({ id: VectorId, values: VectorValues, metadata: Metadata.optional() }))
    .min(1)
    .max(10_000),
}).openapi('Upsert', { example: { vectors: [{ id: 'a', values: [0.1, 0.2, 0.3], metadata: { lang: 'en' } }] } });

export const UpsertResult = z.object({ upserted: z.number().int() }).openapi('UpsertResult');

export const QueryBody = strictBody({
  vector: VectorValues.optional(),
  id: z.string().optional().openapi({ description: 'Query with a stored vector instead of `vector`' }),
  k: z.number().int().min(1).max(1000),
  threshold: z.number().optional(),
  filter: z.record(z.string(), z.unknown()).optional().openapi({ description: 'Metadata filter ($eq, $in, $gt, $and, … see docs/vectors.md)' }),
  include_metadata: z.boolean().optional(),
  include_values: z.boolean().optional(),
  ef: z.number().int().min(1).max(10_000).optional(),
}).openapi('Query', { example: { vector: [0.1, 0.2, 0.3], k: 5, include_metadata: true } });

type Issues = string[];

const QUERY_FIELDS = Object.keys(QueryBody.shape);

/** A JSON value's type as zod's messages name it. */
function received(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  // zod names the non-finite numbers (JSON gives Infinity for a literal like 1e400).
  if (typeof value === 'number' && !Number.isFinite(value)) return String(value);
  return typeof value;
}

/** `z.number().int().min(min).max(max)`, with zod's messages (range checks run only on integers). */
function checkInt(issues: Issues, path: string, value: unknown, min: number, max: number): void {
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    issues.push(`${path}: expected number, received ${received(value)}`);
    return;
  }
  if (!Number.isInteger(value)) {
    issues.push(`${path}: expected int, received number`);
    return;
  }
  if (value > Number.MAX_SAFE_INTEGER) issues.push(`${path}: Too big: expected int to be <=${Number.MAX_SAFE_INTEGER}`);
  if (value < Number.MIN_SAFE_INTEGER) issues.push(`${path}: Too small: expected int to be >=${Number.MIN_SAFE_INTEGER}`);
  if (value < min) issues.push(`${path}: Too small: expected number to be >=${min}`);
  if (value > max) issues.push(`${path}: Too big: expected number to be <=${max}`);
}

function checkType(issues: Issues, path: string, value: unknown, type: 'string' | 'number' | 'boolean'): void {
  if (typeof value !== type || (type === 'number' && !Number.isFinite(value))) issues.push(`${path}: expected ${type}, received ${received(value)}`);
}

/**
 * QueryBody.parse written out by hand for the hottest vector route (zod costs about 3% of a query's
 * server CPU there). Same result and, for any JSON document, the same message as
 * `parseWith(QueryBody, value)`; routes/vectors.test.ts compares the two. The OpenAPI document
 * still comes from QueryBody.
 * @example
 * const body = parseQueryBody(await readJson(c.req.raw, limit));
 */
export function parseQueryBody(value: unknown): z.output<typeof QueryBody> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new QuartzError(ErrorCode.INVALID_ARGUMENT, `body: expected object, received ${received(value)}`);
  }
  const body = value as Record<string, unknown>;
  const issues: Issues = [];
  const unknown = Object.keys(body).filter((key) => !QUERY_FIELDS.includes(key));
  // First, as formatIssues puts them: a misspelt field is most often why another is missing.
  if (unknown.length > 0) issues.push(`body: ${unknownKeysMessage(unknown, QUERY_FIELDS, 'field')}`);
  const out: z.output<typeof QueryBody> = { k: 0 };
  const { vector, id, k, threshold, filter, include_metadata, include_values, ef } = body;
  if (vector !== undefined) {
    if (!Array.isArray(vector)) {
      issues.push(`vector: expected array, received ${received(vector)}`);
    } else {
      for (let i = 0; i < vector.length; i++) {
        const x: unknown = vector[i];
        if (typeof x !== 'number' || !Number.isFinite(x)) issues.push(`vector[${i}]: expected number, received ${received(x)}`);
      }
      out.vector = vector as number[];
    }
  }
  if (id !== undefined) {
    checkType(issues, 'id', id, 'string');
    out.id = id as string;
  }
  checkInt(issues, 'k', k, 1, 1000);
  out.k = k as number;
  if (threshold !== undefined) {
    checkType(issues, 'threshold', threshold, 'number');
    out.threshold = threshold as number;
  }
  if (filter !== undefined) {
    if (typeof filter !== 'object' || filter === null || Array.isArray(filter)) issues.push(`filter: expected record, received ${received(filter)}`);
    out.filter = filter as Record<string, unknown>;
  }
  if (include_metadata !== undefined) {
    checkType(issues, 'include_metadata', include_metadata, 'boolean');
    out.include_metadata = include_metadata as boolean;
  }
  if (include_values !== undefined) {
    checkType(issues, 'include_values', include_values, 'boolean');
    out.include_values = include_values as boolean;
  }
  if (ef !== undefined) {
    checkInt(issues, 'ef', ef, 1, 10_000);
    out.ef = ef as number;
  }
  if (issues.length > 0) throw new QuartzError(ErrorCode.INVALID_ARGUMENT, issues.slice(0, 3).join('; '));
  return out;
}

export const QueryResult = z
  .object({
    matches: z.array(z.object({ id: z.string(), score: z.number(), metadata: Metadata.optional(), values: z.array(z.number()).optional() })),
  })
  .openapi('QueryResult', { description: 'Best first; matches of equal score in id order' });

export const VectorRecord = z.object({ id: z.string(), values: z.array(z.number()), metadata: Metadata }).openapi('Vector');

export const VectorListQuery = z.object({
  cursor: z.string().optional(),
  limit: z.string().optional().openapi({ description: '1-1000, default 100' }),
  include_metadata: z.string().optional().openapi({ description: 'true or false (default false)' }),
  include_values: z.string().optional().openapi({ description: 'true or false (default false)' }),
});

export const VectorListPage = z
  .object({
    vectors: z.array(z.object({ id: z.string(), metadata: Metadata.optional(), values: z.array(z.number()).optional() })),
    cursor: z.string().nullable(),
  })
  .openapi('VectorList');
