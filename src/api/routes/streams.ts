/**
 * Stream routes: topics, produce, consume with long-poll, consumer groups with lag. A consume
 * waits at most the server's cap; shutdown or a client hang-up ends the wait and the request
 * answers with what the log holds.
 */
import type { Context } from 'hono';
import type { RecordSpans } from '../../core/segment.js';
import type { ConsumeOptions, ConsumeResult, ProduceRecord, StreamStore } from '../../engine/streams/stream-store.js';
import { JSON_TYPE } from '../errors.js';
import { readBody, readDirectBody, readJson } from '../body.js';
import { scopeOf, type AppDeps, type AppEnv } from '../context.js';
import { plainResponse, type DirectRequest, type PlainAnswer, type RequestPipeline } from '../middleware/request.js';
import { tenantAuth } from '../middleware/auth.js';
import { consumeResultJson, parseProduceJson, produceResultJson } from '../record-codec.js';
import { queryNames, refuseUnknownQuery } from '../query-params.js';
import type { ApiRouter } from '../router.js';
import { PLAIN_HOST } from './kv.js';
import { PageQuery, errorResponses, jsonBody, jsonResponse, tenantSecurity } from '../schemas/common.js';
import {
  CommitBody,
  CommitOffsetsBody,
  CommitRequest,
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
import { invalid, pageOf, param, parseWith, queryInt, queryText } from '../validation.js';

function partitionOf(raw: string): number {
  if (!/^\d{1,5}$/.test(raw)) throw invalid(`partition: expected a non-negative integer, got ${JSON.stringify(raw.slice(0, 40))}`);
  return Number(raw);
}

/** The tenant's stream store; synchronous once the tenant is open. */
function streamsOf(deps: AppDeps, tenantId: string): StreamStore | Promise<StreamStore> {
  const scope = scopeOf(deps.engine, tenantId);
  return scope instanceof Promise ? scope.then((s) => s.streams) : scope.streams;
}

const PRODUCE_PATH = '/v1/topics/:t/records';
const CONSUME_PATH = '/v1/topics/:t/partitions/:p/records';
/** A JSON answer's headers: a fresh object each time, since the pipeline adds its own to it. */
const jsonHeaders = (): Record<string, string> => ({ 'content-type': JSON_TYPE });

/**
 * Records appended to `topic`: the answer's JSON once they are durable. NOTE: no async function
 * here or in its callers holds the records while the write waits for the disk: V8 keeps a
 * suspended async function's locals and temporaries, dead or not, so a record object and a view
 * per record would survive every young-generation GC until the commit (the engine drops them
 * once encoded).
 */
function produceAnswer(deps: AppDeps, tenantId: string, topic: string, records: ProduceRecord[] | RecordSpans): Promise<Uint8Array> {
  const streams = streamsOf(deps, tenantId);
  const written = streams instanceof Promise ? streams.then((opened) => opened.produce(topic, records)) : streams.produce(topic, records);
  return written.then(produceResultJson);
}

/** Where a consume starts and how much it takes, from its query (`query` reads a parameter as hono's `c.req.query` does). */
function consumeStart(streams: StreamStore, topic: string, partition: number, query: (name: string) => string | undefined): { offset: number; options: ConsumeOptions } {
  const given = query('offset');
  // An empty offset is mostly a script's variable that lost its value (`?offset=$OFF`): its
  // default, the log start, would silently read the whole log again.
  if (given === '') throw invalid('offset: empty; give the first offset to read, or leave offset out to read from the log start');
  let offset = queryInt(given, 'offset', 0, Number.MAX_SAFE_INTEGER);
  offset ??= streams.describeTopic(topic).partition_info[partition]?.log_start_offset ?? 0;
  const options: ConsumeOptions = {
    max_records: queryInt(query('max_records'), 'max_records', 1, 100_000),
    max_bytes: queryInt(query('max_bytes'), 'max_bytes', 1, 64 * 1024 * 1024),
  };
  return { offset, options };
}

/**
 * A consume's wait: `max_wait_ms` shortened to the server's cap, as Kafka's fetch.max.wait.ms is by
 * the broker. Any run of digits is a wait, however long: a client may send a 64-bit "forever"
 * such as 9223372036854775807, which the integer check (at most 16 digits) refused.
 */
function waitOf(raw: string | undefined, cap: number): number {
  // Past 2^53 the number rounds (past ~309 digits it is Infinity), but it stays above any cap.
  if (raw !== undefined && /^\d+$/.test(raw)) return Math.min(Number(raw), cap);
  return Math.min(queryInt(raw, 'max_wait_ms', 0, Number.MAX_SAFE_INTEGER, 0), cap);
}

/**
 * Request targets the direct routes take as they are: topic names of the characters names allow
 * (`.` and `..`, which URL parsing would resolve, are left to the hono routes), a partition of
 * digits, and a query of characters that need no decoding (no `%`, `+` or `#`).
 */
const DIRECT_PRODUCE_PATH = /^\/v1\/topics\/([A-Za-z0-9._-]{1,249})\/records$/;
const DIRECT_CONSUME_PATH = /^\/v1\/topics\/([A-Za-z0-9._-]{1,249})\/partitions\/(\d{1,5})\/records(?:\?([A-Za-z0-9._=&-]*))?$/;
/** A `max_wait_ms` that asks for no wait (empty or zero): any other goes to the hono route, which has the request's abort signal for a long-poll. */
const NO_WAIT = /^0*$/;

/**
 * The first value of `name` in a query string (without its `?`) that needs no decoding, as hono's
 * `c.req.query(name)` reads it: the text after the first `=` up to the next `&`, empty for a
 * name without `=`, undefined when absent.
 */
export function firstQueryValue(query: string, name: string): string | undefined {
  let at = 0;
  while (at < query.length) {
    let end = query.indexOf('&', at);
    if (end < 0) end = query.length;
    const eq = query.indexOf('=', at);
    const nameEnd = eq >= 0 && eq < end ? eq : end;
    if (nameEnd - at === name.length && query.startsWith(name, at)) return nameEnd === end ? '' : query.slice(eq + 1, end);
    at = end + 1;
  }
  return undefined;
}

interface ConsumeTarget {
  topic: string;
  partition: number;
  query: string;
}

/**
 * Produce and consume for a home that serves them without Request/Response objects (see
 * `RequestPipeline.direct`): answers `POST /v1/topics/<t>/records` with a declared
 * Content-Length and `GET /v1/topics/<t>/partitions/<p>/records[?query]` without a long-poll
 * exactly as the hono routes do, or returns undefined for any other request (chunked bodies,
 * long-polls, targets that need decoding), which then goes to the app's `fetch`.
 *
 * @example
 * const answer = streamsDirect(deps, pipeline)(request, '/v1/topics/orders/partitions/0/records?offset=42');
 */
export function streamsDirect(deps: AppDeps, pipeline: RequestPipeline): (req: DirectRequest, target: string) => Promise<PlainAnswer> | PlainAnswer | undefined {
  const auth = tenantAuth(deps);
  const recordsLimit = deps.config.body_limits.records;
  const produce = pipeline.direct(PRODUCE_PATH, auth, (s, topic) =>
    readDirectBody(s.request, recordsLimit)
      .then((body) => produceAnswer(deps, s.tenant!.id, topic, parseProduceJson(body)))
      .then((body): PlainAnswer => ({ status: 200, headers: jsonHeaders(), body })),
  );
  // The hono route refuses these through its documented query; the same check, the same answer.
  const consumeParams = queryNames(ConsumeQuery);
  const consume = pipeline.direct<ConsumeTarget>(CONSUME_PATH, auth, async (s, { topic, partition, query }) => {
    if (query !== '') refuseUnknownQuery(query, consumeParams);
    const found = streamsOf(deps, s.tenant!.id);
    const streams = found instanceof Promise ? await found : found;
    const { offset, options } = consumeStart(streams, topic, partition, (name) => firstQueryValue(query, name));
    return { status: 200, headers: jsonHeaders(), body: consumeResultJson(await streams.consume(topic, partition, offset, options)) };
  });
  return (req, target) => {
    let m: RegExpExecArray | null;
    if (req.method === 'POST') {
      if (req.body === undefined || req.header('content-length') === undefined || req.header('transfer-encoding') !== undefined) return undefined;
      m = DIRECT_PRODUCE_PATH.exec(target);
    } else if (req.method === 'GET') {
      m = DIRECT_CONSUME_PATH.exec(target);
      if (m !== null) {
        const wait = m[3] === undefined ? undefined : firstQueryValue(m[3], 'max_wait_ms');
        if (wait !== undefined && !NO_WAIT.test(wait)) return undefined;
      }
    } else return undefined;
    if (m === null || m[1] === '.' || m[1] === '..') return undefined;
    const host = req.header('host');
    if (host === undefined || !PLAIN_HOST.test(host)) return undefined;
    return m[2] === undefined ? produce(req, m[1]!) : consume(req, { topic: m[1]!, partition: Number(m[2]), query: m[3] ?? '' });
  };
}

/**
 * A signal that aborts when `request` or `shutdown` does, until `release()`. NOTE: not
 * AbortSignal.any: node (20, and 22 before its fix for nodejs/node#55351) keeps every composite
 * reachable from the long-lived shutdown signal, so each long-poll left about 1 KB behind for the
 * life of the server (40,000 polls grew its heap by 43 MiB).
 */
export function eitherAborts(request: AbortSignal, shutdown: AbortSignal | undefined): { signal: AbortSignal; release(): void } {
  if (shutdown === undefined) return { signal: request, release: () => undefined };
  const controller = new AbortController();
  const abort = (): void => controller.abort();
  request.addEventListener('abort', abort, { once: true });
  shutdown.addEventListener('abort', abort, { once: true });
  if (request.aborted || shutdown.aborted) controller.abort();
  return {
    signal: controller.signal,
    release: () => {
      request.removeEventListener('abort', abort);
      shutdown.removeEventListener('abort', abort);
    },
  };
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
      responses: { '201': jsonResponse(TopicConfig, 'Created'), ...errorResponses(400, 409, 413) },
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
    {
      tags,
      summary: 'List topics',
      description: 'Topics in name order, a page at a time; pass `cursor` back for the next page (null on the last).',
      security: tenantSecurity,
      request: { query: PageQuery },
      responses: { '200': jsonResponse(TopicList, 'One page of topics'), ...errorResponses(400) },
    },
    auth,
    async (c) => c.json((await store(c)).listTopicsPage(pageOf(c))),
  );

  router.add(
    'get',
    '/v1/topics/:t',
    {
      tags,
      summary: 'Describe a topic',
      security: tenantSecurity,
      request: { params: TopicParam },
      responses: { '200': jsonResponse(TopicDescription, 'Config and per-partition offsets'), ...errorResponses(400, 404) },
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
      responses: { '204': { description: 'Deleted' }, ...errorResponses(400, 404) },
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
      responses: { '200': jsonResponse(ProduceResult, 'One offset per record, in order'), ...errorResponses(400, 404, 413) },
    },
    auth,
    (c) =>
      readBody(c.req.raw, recordsLimit)
        .then((body) => {
          const records = parseProduceJson(body);
          return produceAnswer(deps, c.get('tenant').id, param(c, 't'), records);
        })
        .then((body) => plainResponse(c, deps, body, 200, jsonHeaders())),
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
      responses: { '200': jsonResponse(ConsumeResultSchema, 'Records and offsets'), ...errorResponses(400, 404) },
    },
    auth,
    async (c) => {
      const topic = param(c, 't');
      const partition = partitionOf(param(c, 'p'));
      const found = streamsOf(deps, c.get('tenant').id);
      const streams = found instanceof Promise ? await found : found;
      const { offset, options } = consumeStart(streams, topic, partition, (name) => c.req.query(name));
      const wait = waitOf(c.req.query('max_wait_ms'), deps.config.long_poll_max_ms);
      let result: ConsumeResult;
      if (wait > 0 && deps.shutdownSignal?.aborted !== true) {
        c.set('longPoll', true);
        const either = eitherAborts(c.req.raw.signal, deps.shutdownSignal);
        try {
          result = await streams.consume(topic, partition, offset, { ...options, max_wait_ms: wait, signal: either.signal });
        } catch (err) {
          if (!either.signal.aborted) throw err;
          result = await streams.consume(topic, partition, offset, options);
        } finally {
          either.release();
        }
      } else {
        result = await streams.consume(topic, partition, offset, options);
      }
      return plainResponse(c, deps, consumeResultJson(result), 200, jsonHeaders());
    },
  );

  router.add(
    'get',
    '/v1/groups',
    {
      tags,
      summary: 'List consumer groups',
      description: 'Groups with committed offsets, in byte order of their UTF-8 ids, a page at a time; pass `cursor` back for the next page (null on the last).',
      security: tenantSecurity,
      request: { query: PageQuery },
      responses: { '200': jsonResponse(GroupList, 'One page of groups'), ...errorResponses(400) },
    },
    auth,
    async (c) => c.json(await (await store(c)).listGroupsPage(pageOf(c))),
  );

  router.add(
    'post',
    '/v1/groups/:g/offsets',
    {
      tags,
      summary: "Commit a group's offset for a partition, or for several partitions of a topic",
      description: '`{topic, partition, offset, metadata?}` commits one partition; `{topic, offsets: [{partition, offset, metadata?}]}` commits several in one durable write, all or none.',
      security: tenantSecurity,
      request: { params: GroupParam, body: jsonBody(CommitRequest) },
      responses: { '204': { description: 'Committed' }, ...errorResponses(400, 404, 413) },
    },
    auth,
    async (c) => {
      const raw = await readJson(c.req.raw, jsonLimit);
      // The single form's answers (its 400s included) stay as they were; `offsets` picks the other.
      if (typeof raw === 'object' && raw !== null && 'offsets' in raw) {
        if ('partition' in raw || 'offset' in raw) throw invalid('body: either partition and offset, or offsets, not both');
        const body = parseWith(CommitOffsetsBody, raw);
        await (await store(c)).commitOffsets(param(c, 'g'), body.topic, body.offsets);
      } else {
        const body = parseWith(CommitBody, raw);
        await (await store(c)).commitOffset(param(c, 'g'), body.topic, body.partition, body.offset, body.metadata);
      }
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
      responses: { '200': jsonResponse(GroupOffsets, 'Per partition: committed offset, high watermark, lag'), ...errorResponses(400, 404) },
    },
    auth,
    async (c) => {
      const group = param(c, 'g');
      const rows = await (await store(c)).fetchOffsets(group, queryText(c, 'topic') || undefined);
      return c.json({
        group,
        offsets: rows.map((r) => ({ topic: r.topic, partition: r.partition, offset: r.offset, metadata: r.metadata, high_watermark: r.high_watermark, lag: r.lag })),
      });
    },
  );
}
