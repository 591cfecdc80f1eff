/** KV shapes: values are raw bodies, so only metadata and listings are JSON. */
import { z } from '@hono/zod-openapi';

export const KvKeyParam = z.object({
  key: z.string().openapi({ description: "The key; may contain '/' (either raw or as %2F)", example: 'user/42' }),
});

export const KvPutQuery = z.object({
  // No example: the docs page fills it in, so every value stored from there expired an hour later.
  ttl: z.string().optional().openapi({ description: 'Seconds until the key expires (whole number, e.g. 3600); none: never' }),
});

export const KvPutResult = z
  .object({
    key: z.string(),
    size: z.number().int(),
    content_type: z.string(),
    etag: z.string().openapi({ example: '"1732212345678"' }),
    expires_at: z.number().int().nullable().openapi({ description: 'ms since the epoch, or null' }),
  })
  .openapi('KvPutResult');

export const KvListQuery = z.object({
  prefix: z.string().optional(),
  cursor: z.string().optional(),
  limit: z.string().optional().openapi({ description: '1-1000, default 1000' }),
});

export const KvListItem = z
  .object({
    key: z.string(),
    size: z.number().int(),
    content_type: z.string(),
    expires_at: z.number().int().nullable(),
  })
  .openapi('KvListItem');

export const KvListPage = z
  .object({ keys: z.array(KvListItem), cursor: z.string().nullable().openapi({ description: 'null on the last page' }) })
  .openapi('KvListPage');
