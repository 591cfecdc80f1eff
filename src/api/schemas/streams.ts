/** Stream shapes: topics, records (per-record utf8/base64 encoding), consumer groups. */
import { z } from '@hono/zod-openapi';
import { MAX_PRODUCE_RECORDS } from '../record-codec.js';
import { PageCursor, strictBody } from './common.js';

export const Encoding = z.enum(['utf8', 'base64']).openapi({ description: 'How key, value and header values are written (default utf8)' });

export const CreateTopicBody = strictBody({
  // The pattern is documented only: the engine checks names and words the error.
  name: z
    .string()
    .min(1)
    .max(249)
    .openapi({ example: 'orders', pattern: '^[A-Za-z0-9._-]{1,249}$', description: "Not '.' or '..'; names starting with '__' belong to the system" }),
  partitions: z.number().int().min(1).max(1024).optional().openapi({ description: 'default 1' }),
  retention_ms: z.number().int().min(-1).optional().openapi({ description: '-1 keeps records forever; default 7 days' }),
  retention_bytes: z.number().int().min(-1).optional(),
  segment_bytes: z.number().int().min(1024).max(2 ** 30).optional(),
  segment_ms: z.number().int().min(1).optional(),
  // Taken as the engine takes it, so a topic's description (which shows it) can be created again.
  compression: z.enum(['lz4', 'none']).optional().openapi({ description: "How sealed segments are compressed: 'lz4' (default) or 'none'" }),
})
  // The docs page sends this when "Try it out" is run as it comes: without it, a sample built
  // from the minimums (1 KiB segments rolled every 1 ms).
  .openapi('CreateTopic', { example: { name: 'orders', partitions: 3 } });

export const TopicConfig = z
  .object({
    name: z.string(),
    partitions: z.number().int(),
    retention_ms: z.number().int(),
    retention_bytes: z.number().int(),
    segment_bytes: z.number().int(),
    segment_ms: z.number().int(),
    compression: z.enum(['lz4', 'none']).openapi({ description: 'How sealed segments are compressed' }),
    created_at: z.number().int(),
  })
  .openapi('Topic');

export const TopicDescription = TopicConfig.extend({
  partition_info: z.array(
    z.object({
      partition: z.number().int(),
      log_start_offset: z.number().int(),
      high_watermark: z.number().int(),
      bytes: z.number().int(),
      segments: z.number().int(),
    }),
  ),
}).openapi('TopicDescription');

export const TopicList = z.object({ topics: z.array(TopicConfig), cursor: PageCursor }).openapi('TopicList');
const topicName = z.string().openapi({ description: 'Topic name', example: 'orders' });
export const TopicParam = z.object({ t: topicName });
export const PartitionParam = z.object({ t: topicName, p: z.string().openapi({ description: 'Partition number', example: '0' }) });

const Header = z.object({ key: z.string(), value: z.string().nullable() });
/** A header as produce takes it: an absent value is null. */
const ProduceHeader = strictBody({ key: z.string(), value: z.string().nullable().optional().openapi({ description: 'null or absent for none' }) });

/** Documented shape; the handler validates records by hand (the hot path) to the same rules. */
export const ProduceBody = strictBody({
  records: z
    .array(
      strictBody({
        key: z.string().nullable().optional(),
        value: z.string().nullable(),
        headers: z.array(ProduceHeader).optional(),
        partition: z.number().int().min(0).optional(),
        encoding: Encoding.optional(),
      }),
    )
    .min(1)
    .max(MAX_PRODUCE_RECORDS),
}).openapi('Produce', { example: { records: [{ key: 'user-42', value: 'hello' }] } });

export const ProduceResult = z
  .object({ offsets: z.array(z.object({ partition: z.number().int(), offset: z.number().int() })) })
  .openapi('ProduceResult');

export const ConsumeQuery = z.object({
  offset: z.string().optional().openapi({ description: 'First offset to read (default: the log start); given empty (`?offset=`), 400 `invalid_argument`' }),
  max_records: z.string().optional().openapi({ description: '1-100000, default 500' }),
  max_bytes: z.string().optional().openapi({ description: 'Approximate record bytes per answer, 1 to 64 MiB, default 1 MiB; at least one record is returned even if it is larger' }),
  max_wait_ms: z.string().optional().openapi({ description: 'Long-poll at the end of the log, capped by the server (default cap 30000)' }),
});

export const ConsumeResult = z
  .object({
    records: z.array(
      z.object({
        offset: z.number().int(),
        timestamp: z.number().int(),
        key: z.string().nullable(),
        value: z.string().nullable(),
        headers: z.array(Header),
        encoding: Encoding,
      }),
    ),
    next_offset: z.number().int(),
    high_watermark: z.number().int(),
    log_start_offset: z.number().int(),
  })
  .openapi('ConsumeResult');

export const GroupList = z.object({ groups: z.array(z.string()), cursor: PageCursor }).openapi('GroupList');
export const GroupParam = z.object({ g: z.string().openapi({ description: 'Consumer group id', example: 'billing' }) });

export const CommitBody = strictBody({
  topic: z.string().min(1),
  partition: z.number().int().min(0),
  offset: z.number().int().min(0).openapi({ description: 'The next offset the group will read' }),
  metadata: z.string().max(4096).optional(),
}).openapi('CommitOffset', { example: { topic: 'orders', partition: 0, offset: 0 } });

export const CommitOffsetsBody = strictBody({
  topic: z.string().min(1),
  offsets: z
    .array(
      strictBody({
        partition: z.number().int().min(0),
        offset: z.number().int().min(0).openapi({ description: 'The next offset the group will read' }),
        metadata: z.string().max(4096).optional(),
      }),
    )
    .min(1)
    .max(1024)
    .openapi({ description: 'One entry per partition (each at most once); all are committed or, if any is invalid, none' }),
}).openapi('CommitOffsets');

export const CommitRequest = z.union([CommitBody, CommitOffsetsBody]);

export const GroupOffsetsQuery = z.object({ topic: z.string().optional() });

export const GroupOffsets = z
  .object({
    group: z.string(),
    offsets: z.array(
      z.object({
        topic: z.string(),
        partition: z.number().int(),
        offset: z.number().int().nullable().openapi({ description: 'null when never committed' }),
        metadata: z.string().nullable().openapi({ description: 'The metadata of the last commit; null when it had none or none was made' }),
        high_watermark: z.number().int(),
        lag: z.number().int().nullable(),
      }),
    ),
  })
  .openapi('GroupOffsets');
