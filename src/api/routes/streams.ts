/**
 * Stream routes: topics, produce, consume with long-poll, consumer groups with lag. A consume
 * waits at most the server's cap; shutdown or a client hang-up ends the wait and the request
 * answers with what the log holds.
 */
import type { Context } from 'hono';
import type { ConsumeOptions, ConsumeResult, StreamStore } from '../../engine/streams/stream-store.js';
import { readBody, readJson } from '../body.js';
import { scopeOf, type AppDeps, type AppEnv } from '../context.js';
import { plainResponse } from '../middleware/request.js';
import { tenantAuth } from '../middleware/auth.js';
import { consumeResultJson, parseProduceJson, produceResultJson } from '../record-codec.js';
import type { ApiRouter } from '../router.js';
import { AUTHED_ERRORS, errorResponses, jsonBody, jsonResponse, tenantSecurity } from '../schemas/common.js';
import {
  CommitBody,
  ConsumeQuery,
  ConsumeResult as ConsumeResultSchema,
  CreateTopicBody,
  GroupList,
  GroupOffsets,
  GroupOffsetsQuery,
  GroupParam,
  PartitionParam,
  ProduceBody,
  ProduceResult,
  TopicConfig,
  TopicDescription,
  TopicList,
  TopicParam,
} from '../schemas/streams.js';
import { invalid, param, parseWith, queryInt } from '../validation.js';

function partitionOf(raw: string): number {
  if (!/^\d{1,5}$/.test(raw)) throw invalid(`partition: expected a non-negative integer, got ${JSON.stringify(raw.slice(0, 40))}`);
  return Number(raw);
}

/** The tenant's stream store; synchronous once the tenant is open. */
function streamsOf(deps: AppDeps, c: Context<AppEnv>): StreamStore | Promise<StreamStore> {
  const scope = scopeOf(deps.engine, c.get('tenant').id);
  return scope instanceof Promise ? scope.then((s) => s.streams) : scope.streams;
}

export function streamRoutes(router: ApiRouter<AppEnv>, deps: AppDeps): void {
  const auth = tenantAuth(deps);
  const tags = ['Streams'];
  const { json: jsonLimit, records: recordsLimit } = deps.config.body_limits;
  const store = async (c: Context<AppEnv>): Promise<StreamStore> => (await deps.engine.tenant(c.get('tenant').id)).streams;

  router.add(
    'post',
    '/v1/topics',
    {
      tags,
      summary: 'Create a topic',
      description: "Names starting with '__' belong to the system.",
      security: tenantSecurity,
      request: { body: jsonBody(CreateTopicBody) },
      responses: { '201': jsonResponse(TopicConfig, 'Created'), ...errorResponses(...AUTHED_ERRORS, 409, 413) },
    },
    auth,
    async (c) => {
      const { name, ...options } = parseWith(CreateTopicBody, await readJson(c.req.raw, jsonLimit));
      return c.json(await (await store(c)).createTopic(name, options), 201);
    },
  );

  router.add(
    'get',
    '/v1/topics',
    { tags, summary: 'List topics', security: tenantSecurity, responses: { '200': jsonResponse(TopicList, 'Topics by name'), ...errorResponses(...AUTHED_ERRORS) } },
    auth,
    async (c) => c.json({ topics: (await store(c)).listTopics() }),
  );

  router.add(
    'get',
    '/v1/topics/:t',
    {
      tags,
      summary: 'Describe a topic',
      security: tenantSecurity,
      request: { params: TopicParam },
      responses: { '200': jsonResponse(TopicDescription, 'Config and per-partition offsets'), ...errorResponses(...AUTHED_ERRORS, 404) },
    },
    auth,
    async (c) => c.json((await store(c)).describeTopic(param(c, 't'))),
  );

  router.add(
    'delete',
    '/v1/topics/:t',
    {
      tags,
      summary: 'Delete a topic, its records and its committed offsets',
      security: tenantSecurity,
      request: { params: TopicParam },
      responses: { '204': { description: 'Deleted' }, ...errorResponses(...AUTHED_ERRORS, 404) },
    },
    auth,
    async (c) => {
      await (await store(c)).deleteTopic(param(c, 't'));
      return c.body(null, 204);
    },
  );

  router.add(
    'post',
    '/v1/topics/:t/records',
    {
      tags,
      summary: 'Produce records',
      description: 'Answers once the records are durable. `encoding` (utf8 default, or base64) applies to the key, value and header values of its record.',
      security: tenantSecurity,
      request: { params: TopicParam, body: jsonBody(ProduceBody) },
      responses: { '200': jsonResponse(ProduceResult, 'One offset per record, in order'), ...errorResponses(...AUTHED_ERRORS, 404, 413) },
    },
    auth,
    async (c) => {
      const records = parseProduceJson(await readBody(c.req.raw, recordsLimit));
      const streams = streamsOf(deps, c);
      const result = await (streams instanceof Promise ? await streams : streams).produce(param(c, 't'), records);
      return plainResponse(c, deps, produceResultJson(result), 200, { 'content-type': 'application/json' });
    },
  );

  router.add(
    'get',
    '/v1/topics/:t/partitions/:p/records',
    {
      tags,
      summary: 'Consume records',
      description: 'Reads from `offset`. At the end of the log with `max_wait_ms`, waits until a record arrives or the wait (capped by the server) ends.',
      security: tenantSecurity,
      request: { params: PartitionParam, query: ConsumeQuery },
      responses: { '200': jsonResponse(ConsumeResultSchema, 'Records and offsets'), ...errorResponses(...AUTHED_ERRORS, 404) },
    },
    auth,
    async (c) => {
      const topic = param(c, 't');
      const partition = partitionOf(param(c, 'p'));
      const found = streamsOf(deps, c);
      const streams = found instanceof Promise ? await found : found;
      let offset = queryInt(c.req.query('offset'), 'offset', 0, Number.MAX_SAFE_INTEGER);
      offset ??= streams.describeTopic(topic).partition_info[partition]?.log_start_offset ?? 0;
      const options: ConsumeOptions = {
        max_records: queryInt(c.req.query('max_records'), 'max_records', 1, 100_000),
        max_bytes: queryInt(c.req.query('max_bytes'), 'max_bytes', 1, 64 * 1024 * 1024),
      };
      // Waits longer than the cap are shortened, as Kafka's fetch.max.wait.ms is by the broker.
      const wait = Math.min(queryInt(c.req.query('max_wait_ms'), 'max_wait_ms', 0, Number.MAX_SAFE_INTEGER, 0), deps.config.long_poll_max_ms);
      let result: ConsumeResult;
      if (wait > 0 && deps.shutdownSignal?.aborted !== true) {
        c.set('longPoll', true);
        const signal = deps.shutdownSignal === undefined ? c.req.raw.signal : AbortSignal.any([c.req.raw.signal, deps.shutdownSignal]);
        try {
          result = await streams.consume(topic, partition, offset, { ...options, max_wait_ms: wait, signal });
        } catch (err) {
          if (!signal.aborted) throw err;
          result = await streams.consume(topic, partition, offset, options);
        }
      } else {
        result = await streams.consume(topic, partition, offset, options);
      }
      return plainResponse(c, deps, consumeResultJson(result), 200, { 'content-type': 'application/json' });
    },
  );

  router.add(
    'get',
    '/v1/groups',
    { tags, summary: 'List consumer groups', security: tenantSecurity, responses: { '200': jsonResponse(GroupList, 'Groups with committed offsets'), ...errorResponses(...AUTHED_ERRORS) } },
    auth,
    async (c) => c.json({ groups: await (await store(c)).listGroups() }),
  );

  router.add(
    'post',
    '/v1/groups/:g/offsets',
    {
      tags,
      summary: "Commit a group's offset for a partition",
      security: tenantSecurity,
      request: { params: GroupParam, body: jsonBody(CommitBody) },
      responses: { '204': { description: 'Committed' }, ...errorResponses(...AUTHED_ERRORS, 404, 413) },
    },
    auth,
    async (c) => {
      const body = parseWith(CommitBody, await readJson(c.req.raw, jsonLimit));
      await (await store(c)).commitOffset(param(c, 'g'), body.topic, body.partition, body.offset, body.metadata);
      return c.body(null, 204);
    },
  );

  router.add(
    'get',
    '/v1/groups/:g/offsets',
    {
      tags,
      summary: "A group's committed offsets with lag",
      description: 'Every partition of `topic`, or of every topic the group committed to.',
      security: tenantSecurity,
      request: { params: GroupParam, query: GroupOffsetsQuery },
      responses: { '200': jsonResponse(GroupOffsets, 'Per partition: committed offset, high watermark, lag'), ...errorResponses(...AUTHED_ERRORS, 404) },
    },
    auth,
    async (c) => {
      const group = param(c, 'g');
      const rows = await (await store(c)).fetchOffsets(group, c.req.query('topic') || undefined);
      return c.json({
        group,
        offsets: rows.map((r) => ({ topic: r.topic, partition: r.partition, offset: r.offset, high_watermark: r.high_watermark, lag: r.lag })),
      });
    },
  );
}
