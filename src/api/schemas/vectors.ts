/** Vector collection shapes: requests are validated with these, responses documented. */
import { z } from '@hono/zod-openapi';

const name = z.string().min(1).max(128);
export const Metric = z.enum(['cosine', 'l2', 'dot']);

export const CreateCollectionBody = z
  .object({
    name,
    dims: z.number().int().min(1).max(4096),
    metric: Metric,
    m: z.number().int().min(4).max(64).optional().openapi({ description: 'HNSW links per node (default 16)' }),
    ef_construction: z.number().int().min(8).max(1000).optional().openapi({ description: 'HNSW build breadth (default 200)' }),
  })
  .openapi('CreateCollection');

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

export const CollectionList = z.object({ collections: z.array(CollectionInfo) }).openapi('CollectionList');

export const CollectionParam = z.object({ c: z.string().openapi({ description: 'Collection name' }) });
export const VectorParam = z.object({ c: z.string(), id: z.string().openapi({ description: 'Vector id' }) });

const Metadata = z.record(z.string(), z.unknown()).openapi({ description: 'JSON object, at most 10 KiB' });

export const UpsertBody = z
  .object({
    vectors: z
      .array(z.object({ id: z.string().min(1), values: z.array(z.number()), metadata: Metadata.optional() }))
      .min(1)
      .max(10_000),
  })
  .openapi('Upsert');

export const UpsertResult = z.object({ upserted: z.number().int() }).openapi('UpsertResult');

export const QueryBody = z
  .object({
    vector: z.array(z.number()).optional(),
    id: z.string().optional().openapi({ description: 'Query with a stored vector instead of `vector`' }),
    k: z.number().int().min(1).max(1000),
    threshold: z.number().optional(),
    filter: z.record(z.string(), z.unknown()).optional().openapi({ description: 'Metadata filter ($eq, $in, $gt, $and, … see docs/vectors.md)' }),
    include_metadata: z.boolean().optional(),
    include_values: z.boolean().optional(),
    ef: z.number().int().min(1).max(10_000).optional(),
  })
  .openapi('Query');

export const QueryResult = z
  .object({
    matches: z.array(z.object({ id: z.string(), score: z.number(), metadata: Metadata.optional(), values: z.array(z.number()).optional() })),
  })
  .openapi('QueryResult');

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
