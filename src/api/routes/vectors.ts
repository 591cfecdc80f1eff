/**
 * Vector routes: collections (create, list, describe, delete) and their vectors (upsert, query,
 * get, list, delete). The engine owns the rules; bodies are shape-checked here so a wrong type
 * is reported by field name.
 */
import type { Context } from 'hono';
import { ErrorCode, QuartzError } from '../../core/errors.js';
import type { CollectionInfo as EngineCollectionInfo, QueryMatch, QueryRequest } from '../../engine/vectors/collection.js';
import type { VectorStore } from '../../engine/vectors/vector-store.js';
import { readBody, readDirectBody, readJson } from '../body.js';
import { JSON_TYPE } from '../errors.js';
import { servicesOf, type AppDeps, type AppEnv } from '../context.js';
import { tenantAuth } from '../middleware/auth.js';
import { queryBodyFromBytes } from '../query-body.js';
import { plainResponse, type DirectRequest, type PlainAnswer, type RequestPipeline } from '../middleware/request.js';
import type { ApiRouter } from '../router.js';
import { PLAIN_HOST } from './kv.js';
import { PageQuery, errorResponses, jsonBody, jsonResponse, tenantSecurity } from '../schemas/common.js';
import {
  CollectionInfo,
  CollectionList,
  CollectionParam,
  CreateCollectionBody,
  QueryBody,
  QueryResult,
  UpsertBody,
  UpsertResult,
  VectorListPage,
  VectorListQuery,
  VectorParam,
  VectorRecord,
} from '../schemas/vectors.js';
import { pageOf, param, parseWith, queryBool, queryInt, queryText } from '../validation.js';

/** The engine's collection info in the API's snake_case. */
function collectionJson(info: EngineCollectionInfo) {
  return { name: info.name, dims: info.dims, metric: info.metric, m: info.M, ef_construction: info.efConstruction, count: info.count, created_at: info.created_at };
}

/**
 * `JSON.stringify(id)`: ids of printable ASCII other than `"` and `\` (the usual ones) are
 * quoted as they are, which is all JSON.stringify does to them, without its call into the runtime.
 */
function jsonString(id: string): string {
  for (let i = 0; i < id.length; i++) {
    const c = id.charCodeAt(i);
    if (c < 0x20 || c > 0x7e || c === 0x22 || c === 0x5c) return JSON.stringify(id);
  }
  return `"${id}"`;
}

/**
 * `JSON.stringify(result)`, written out for the usual match shape (about half its cost there);
 * metadata and values, when asked for, still go through JSON.stringify.
 */
export function queryResultJson(result: { matches: QueryMatch[] }): string {
  const { matches } = result;
  let out = '{"matches":[';
  for (let i = 0; i < matches.length; i++) {
    const m = matches[i]!;
    // JSON has no Infinity: a dot score that overflowed f32 is null, as JSON.stringify writes it.
    out += `${i === 0 ? '' : ','}{"id":${jsonString(m.id)},"score":${Number.isFinite(m.score) ? m.score : 'null'}`;
    if (m.metadata !== undefined) out += `,"metadata":${JSON.stringify(m.metadata)}`;
    if (m.values !== undefined) out += `,"values":${JSON.stringify(m.values)}`;
    out += '}';
  }
  return `${out}]}`;
}

const SHARED_METADATA = { sharedMetadata: true };

/**
 * The query's answer as JSON text. The hot read route: an open tenant's open collection is
 * queried without further promises. Matches carry the collection's own metadata objects (no
 * copy each): they are written out here, before anything else runs.
 */
function queryAnswer(deps: AppDeps, tenantId: string, name: string, body: QueryRequest): string | Promise<string> {
  const scope = servicesOf(deps.engine, tenantId);
  if (scope instanceof Promise) return scope.then((s) => answerIn(s.vectors));
  return answerIn(scope.vectors);
  function answerIn(vectors: VectorStore): string | Promise<string> {
    const opened = vectors.openedCollection(name);
    if (opened !== undefined) return queryResultJson(opened.query(body, SHARED_METADATA));
    // Through the store, which keeps the collection open until the query has run.
    return vectors.query(name, body, SHARED_METADATA).then(queryResultJson);
  }
}

/**
 * Request targets a direct query may take as they are: a collection name of the characters names
 * allow, which need no decoding; `.` and `..`, which URL parsing would resolve, are left to the
 * hono route.
 */
const DIRECT_QUERY_PATH = /^\/v1\/collections\/([A-Za-z0-9._-]{1,128})\/query$/;

/**
 * The vector query for a home that serves it without Request/Response objects (see
 * `RequestPipeline.direct`): answers `POST /v1/collections/<name>/query` exactly as the hono
 * route does, or returns undefined for any other request, which then goes to the app's `fetch`.
 * Only requests with a declared Content-Length are taken (chunked bodies go the hono way).
 *
 * @example
 * const answer = vectorQueryDirect(deps, pipeline)(request, '/v1/collections/docs/query');
 */
export function vectorQueryDirect(deps: AppDeps, pipeline: RequestPipeline): (req: DirectRequest, target: string) => PlainAnswer | Promise<PlainAnswer> | undefined {
  const limit = deps.config.body_limits.vectors;
  const query = pipeline.direct(QUERY_PATH, tenantAuth(deps), async (s, name) => {
    const body = queryBodyFromBytes(await readDirectBody(s.request, limit));
    const answer = queryAnswer(deps, s.tenant!.id, name, body);
    return { status: 200, headers: { 'content-type': JSON_TYPE }, body: answer instanceof Promise ? await answer : answer };
  });
  return (req, target) => {
    if (req.method !== 'POST' || req.body === undefined || req.header('content-length') === undefined || req.header('transfer-encoding') !== undefined) return undefined;
    const m = DIRECT_QUERY_PATH.exec(target);
    if (m === null || m[1] === '.' || m[1] === '..') return undefined;
    const host = req.header('host');
    if (host === undefined || !PLAIN_HOST.test(host)) return undefined;
    return query(req, m[1]!);
  };
}

const QUERY_PATH = '/v1/collections/:c/query';

export function vectorRoutes(router: ApiRouter<AppEnv>, deps: AppDeps): void {
  const auth = tenantAuth(deps);
  const tags = ['Vectors'];
  const { json: jsonLimit, vectors: vectorLimit } = deps.config.body_limits;
  const store = async (c: Context<AppEnv>): Promise<VectorStore> => (await deps.engine.services(c.get('tenant').id)).vectors;

  router.add(
    'post',
    '/v1/collections',
    {
      tags,
      summary: 'Create a collection',
      security: tenantSecurity,
      request: { body: jsonBody(CreateCollectionBody) },
      responses: { '201': jsonResponse(CollectionInfo, 'Created'), ...errorResponses(400, 409, 413) },
    },
    auth,
    async (c) => {
      const body = parseWith(CreateCollectionBody, await readJson(c.req.raw, jsonLimit));
      const info = await (await store(c)).createCollection({ name: body.name, dims: body.dims, metric: body.metric, M: body.m, efConstruction: body.ef_construction });
      return c.json(collectionJson(info), 201);
    },
  );

  router.add(
    'get',
    '/v1/collections',
    {
      tags,
      summary: 'List collections',
      description: 'Collections in name order with their live counts, a page at a time; pass `cursor` back for the next page (null on the last).',
      security: tenantSecurity,
      request: { query: PageQuery },
      responses: { '200': jsonResponse(CollectionList, 'One page of collections'), ...errorResponses(400) },
    },
    auth,
    async (c) => {
      const page = await (await store(c)).listCollectionsPage(pageOf(c));
      return c.json({ collections: page.collections.map(collectionJson), cursor: page.cursor });
    },
  );

  router.add(
    'get',
    '/v1/collections/:c',
    {
      tags,
      summary: 'Describe a collection',
      security: tenantSecurity,
      request: { params: CollectionParam },
      responses: { '200': jsonResponse(CollectionInfo, 'Config and live count'), ...errorResponses(400, 404) },
    },
    auth,
    async (c) => c.json(collectionJson(await (await store(c)).describeCollection(param(c, 'c')))),
  );

  router.add(
    'delete',
    '/v1/collections/:c',
    {
      tags,
      summary: 'Delete a collection and its vectors',
      security: tenantSecurity,
      request: { params: CollectionParam },
      responses: { '204': { description: 'Deleted' }, ...errorResponses(400, 404) },
    },
    auth,
    async (c) => {
      await (await store(c)).deleteCollection(param(c, 'c'));
      return c.body(null, 204);
    },
  );

  router.add(
    'post',
    '/v1/collections/:c/upsert',
    {
      tags,
      summary: 'Insert or replace vectors',
      security: tenantSecurity,
      request: { params: CollectionParam, body: jsonBody(UpsertBody) },
      responses: { '200': jsonResponse(UpsertResult, 'Stored'), ...errorResponses(400, 404, 413, 507) },
    },
    auth,
    async (c) => {
      const given = (await readJson(c.req.raw, vectorLimit)) as { vectors: Array<{ metadata?: unknown }> };
      const body = parseWith(UpsertBody, given);
      // zod copies a metadata object key by key, and a "__proto__" key set that way becomes the
      // copy's prototype instead of a key: the key was dropped. Store the objects JSON.parse made.
      const vectors = body.vectors.map((v, i) => (v.metadata === undefined ? v : { ...v, metadata: given.vectors[i]!.metadata as Record<string, unknown> }));
      return c.json(await (await store(c)).upsert(param(c, 'c'), vectors));
    },
  );

  router.add(
    'post',
    QUERY_PATH,
    {
      tags,
      summary: 'Nearest neighbours of a vector (or of a stored vector by id)',
      security: tenantSecurity,
      request: { params: CollectionParam, body: jsonBody(QueryBody) },
      responses: { '200': jsonResponse(QueryResult, 'Best matches first'), ...errorResponses(400, 404, 413) },
    },
    auth,
    async (c) => {
      const body = queryBodyFromBytes(await readBody(c.req.raw, vectorLimit));
      const answer = queryAnswer(deps, c.get('tenant').id, param(c, 'c'), body);
      // The answer goes out with one plain header object, as KV GET does (see plainResponse).
      return plainResponse(c, deps, answer instanceof Promise ? await answer : answer, 200, { 'content-type': JSON_TYPE });
    },
  );

  router.add(
    'get',
    '/v1/collections/:c/vectors/:id',
    {
      tags,
      summary: 'Read a vector',
      security: tenantSecurity,
      request: { params: VectorParam },
      responses: { '200': jsonResponse(VectorRecord, 'The vector'), ...errorResponses(400, 404) },
    },
    auth,
    async (c) => {
      const name = param(c, 'c');
      const id = param(c, 'id');
      const record = await (await store(c)).get(name, id);
      if (record === undefined) throw new QuartzError(ErrorCode.NOT_FOUND, `collection '${name}' has no vector '${id}'`);
      return c.json(record);
    },
  );

  router.add(
    'get',
    '/v1/collections/:c/vectors',
    {
      tags,
      summary: 'List vectors',
      security: tenantSecurity,
      request: { params: CollectionParam, query: VectorListQuery },
      responses: { '200': jsonResponse(VectorListPage, 'One page of vectors'), ...errorResponses(400, 404) },
    },
    auth,
    async (c) => {
      const page = await (await store(c)).listVectors(param(c, 'c'), {
        cursor: queryText(c, 'cursor') || null,
        limit: queryInt(c.req.query('limit'), 'limit', 1, 1000, 100),
        include_metadata: queryBool(c.req.query('include_metadata'), 'include_metadata', false),
        include_values: queryBool(c.req.query('include_values'), 'include_values', false),
      });
      return c.json(page);
    },
  );

  router.add(
    'delete',
    '/v1/collections/:c/vectors/:id',
    {
      tags,
      summary: 'Delete a vector',
      security: tenantSecurity,
      request: { params: VectorParam },
      responses: { '204': { description: 'Deleted' }, ...errorResponses(400, 404) },
    },
    auth,
    async (c) => {
      const name = param(c, 'c');
      const id = param(c, 'id');
      const { deleted } = await (await store(c)).deleteVectors(name, [id]);
      if (deleted === 0) throw new QuartzError(ErrorCode.NOT_FOUND, `collection '${name}' has no vector '${id}'`);
      return c.body(null, 204);
    },
  );
}
