/**
 * KV routes: raw bodies with their content type, `?ttl=` seconds, ETag = the key's version,
 * If-Match / If-None-Match preconditions (412), prefix listing with a cursor.
 */
import type { Context } from 'hono';
import { ErrorCode, QuartzError } from '../../core/errors.js';
import { MAX_TTL_SECONDS, type KvEntry, type KvPutOptions, type KvStore } from '../../engine/kv/kv-store.js';
import { JSON_TYPE } from '../errors.js';
import { readBody, readDirectBody } from '../body.js';
import { servicesOf, type AppDeps, type AppEnv } from '../context.js';
import { tenantAuth } from '../middleware/auth.js';
import { plainResponse, type DirectRequest, type PlainAnswer, type RequestPipeline } from '../middleware/request.js';
import type { ApiRouter } from '../router.js';
import { errorResponses, headers, jsonResponse, tenantSecurity } from '../schemas/common.js';
import { KvKeyParam, KvListPage, KvListQuery, KvPutQuery, KvPutResult } from '../schemas/kv.js';
import { invalid, param, queryInt, queryText } from '../validation.js';

const KEY_PATH = '/v1/kv/:key{.+}';

type Awaitable<T> = T | Promise<T>;

/**
 * The decimal digits of a non-negative integer below 2^53. NOTE: versions and expiry times are
 * ~1.8e12, beyond V8's small integers, so a template literal formats them as doubles (~100 ns);
 * two small-integer halves format in ~30 ns.
 */
export function decimal(n: number): string {
  if (n < 1e9) return `${n}`;
  const high = Math.floor(n / 1e9);
  const low = `${n - high * 1e9}`;
  return `${high}${'000000000'.slice(low.length)}${low}`;
}

/**
 * ETags of recent versions, direct-mapped by the version's low bits. NOTE: a hot key's GET
 * formats the same version again and again (a version past 2^31 costs two number-to-text
 * conversions and a concatenation V8 flattens when node writes the head, ~60 ns); a slot holds one
 * version's finished text.
 */
const ETAG_SLOTS = 1024;
const etagVersions = new Float64Array(ETAG_SLOTS).fill(-1);
const etagTexts: string[] = new Array<string>(ETAG_SLOTS).fill('');

export function etagOf(version: number): string {
  const slot = version & (ETAG_SLOTS - 1);
  if (etagVersions[slot] === version) return etagTexts[slot]!;
  const etag = `"${decimal(version)}"`;
  etag.charCodeAt(0); // flattened once here, not at every write of the head (see direct.ts, flat)
  etagVersions[slot] = version;
  etagTexts[slot] = etag;
  return etag;
}

/**
 * Parses an If-Match / If-None-Match list: `*`, or the versions of its tags. Tags no version can be
 * (not digits, or past 2^53, which a number would round) never match. `comparison` is RFC 9110's:
 * If-Match compares strongly, so its weak tags (`W/"v"`) never match; If-None-Match compares
 * weakly, so a weak tag matches by its number.
 */
export function parseEtags(header: string, comparison: 'strong' | 'weak'): '*' | number[] {
  if (header.trim() === '*') return '*';
  const versions: number[] = [];
  for (const m of header.matchAll(/(W\/)?"([^"]*)"/g)) {
    if (m[1] !== undefined && comparison === 'strong') continue;
    if (!/^\d{1,16}$/.test(m[2]!)) continue;
    const version = Number(m[2]);
    if (Number.isSafeInteger(version)) versions.push(version);
  }
  return versions;
}

type Preconditions = Pick<KvPutOptions, 'ifMatch' | 'ifNoneMatch'>;
const NONE: Preconditions = {};

/**
 * The request's If-Match / If-None-Match as the store's conditions. The store checks them in the
 * step that writes: a `*` or a list checked against a version read first would fail when another
 * write came between, though the key still met it.
 */
function preconditions(ifMatch: string | undefined, ifNoneMatch: string | undefined, allowNoneMatch: boolean): Preconditions {
  // Most writes are unconditional.
  if (ifMatch === undefined && ifNoneMatch === undefined) return NONE;
  if (ifMatch !== undefined && ifNoneMatch !== undefined) throw invalid('If-Match and If-None-Match cannot be combined');
  if (ifMatch !== undefined) {
    const tags = parseEtags(ifMatch, 'strong');
    return { ifMatch: tags !== '*' && tags.length === 1 ? tags[0]! : tags };
  }
  if (!allowNoneMatch) throw invalid('If-None-Match is not supported on DELETE');
  return { ifNoneMatch: parseEtags(ifNoneMatch!, 'weak') };
}

/** The tenant's KV store; synchronous once the tenant is open. */
function kvOf(deps: AppDeps, c: Context<AppEnv>): KvStore | Promise<KvStore> {
  const scope = servicesOf(deps.engine, c.get('tenant').id);
  return scope instanceof Promise ? scope.then((s) => s.kv) : scope.kv;
}

/**
 * GET of one key as a plain answer: the value with its content type and ETag, 304 when
 * `If-None-Match` lists the current version, NOT_FOUND when missing. Synchronous while the tenant
 * is open and the storage answers from memory, so the answer can go out in the event turn the
 * request arrived in.
 */
function kvGetAnswer(deps: AppDeps, tenantId: string, key: string, ifNoneMatch: string | undefined): Awaitable<PlainAnswer> {
  const scope = servicesOf(deps.engine, tenantId);
  // Shared entries: the answer's body is written out as it is, never modified.
  const found = scope instanceof Promise ? scope.then((s) => s.kv.getShared(key)) : scope.kv.getShared(key);
  if (found instanceof Promise) return found.then((entry) => answerOf(entry, key, ifNoneMatch));
  return answerOf(found, key, ifNoneMatch);
}

function answerOf(found: KvEntry | undefined, key: string, ifNoneMatch: string | undefined): PlainAnswer {
  if (found === undefined) throw new QuartzError(ErrorCode.NOT_FOUND, `key '${key}' does not exist`);
  const etag = etagOf(found.version);
  if (ifNoneMatch !== undefined) {
    const tags = parseEtags(ifNoneMatch, 'weak');
    if (tags === '*' || tags.includes(found.version)) return { status: 304, headers: { etag }, body: null };
  }
  const headers: Record<string, string> = { 'content-type': found.contentType, etag };
  if (found.expiresAt !== null) headers['x-expires-at'] = decimal(found.expiresAt);
  return { status: 200, headers, body: found.value };
}

/**
 * Request targets a direct KV GET may take as they are: `/v1/kv/` and a key of characters that
 * need no decoding and that URL parsing leaves alone (no `%`, `?`, `#`, `\`, space or non-ASCII), so
 * the key is the path's tail exactly as the hono route's parameter would be. Dot segments
 * (`/./`, `/../`), which URL parsing would resolve, are left to the hono route too.
 */
const DIRECT_KV_PATH = /^\/v1\/kv\/[!$&-;=@-[\]_a-z~]+$/;
const DOT_SEGMENT = /\/\.\.?(?:\/|$)/;
/** Host values @hono/node-server takes without URL parsing (others go its way, and may be refused). */
export const PLAIN_HOST = /^[a-z0-9._-]+(?::(?:[1-5]\d{3,4}|[6-9]\d{3}))?$/;

/**
 * KV GET for a home that serves it without Request/Response objects (see
 * `RequestPipeline.direct`): answers `GET /v1/kv/<key>` exactly as the hono route does, or
 * returns undefined for any other request, which then goes to the app's `fetch`.
 *
 * @example
 * const answer = kvDirect(deps, pipeline)({ method: 'GET', header: (n) => headers[n] }, '/v1/kv/user/42');
 */
export function kvDirect(deps: AppDeps, pipeline: RequestPipeline): (req: DirectRequest, target: string) => Awaitable<PlainAnswer> | undefined {
  const get = pipeline.direct(KEY_PATH, tenantAuth(deps), (s, key) => kvGetAnswer(deps, s.tenant!.id, key, s.request.header('if-none-match')));
  return (req, target) => {
    if (req.method !== 'GET' || !DIRECT_KV_PATH.test(target) || (target.includes('/.') && DOT_SEGMENT.test(target))) return undefined;
    const host = req.header('host');
    if (host === undefined || !PLAIN_HOST.test(host)) return undefined;
    return get(req, target.slice(KV_PREFIX.length));
  };
}
const KV_PREFIX = '/v1/kv/';

function parseTtl(raw: string | undefined): number | undefined {
  if (raw === undefined) return undefined;
  // The engine's range, named here so that every bad ttl gets the same message.
  if (!/^\d{1,12}$/.test(raw) || Number(raw) === 0 || Number(raw) > MAX_TTL_SECONDS) {
    throw invalid(`ttl: expected a whole number of seconds from 1 to ${MAX_TTL_SECONDS}, got ${JSON.stringify(raw.slice(0, 40))}`);
  }
  return Number(raw);
}

/**
 * A PUT of `value` under `key` with the request's Content-Type and preconditions (`header` reads
 * the request's headers by lower-case name): the answer once the write is durable.
 */
function putAnswer(kv: KvStore, key: string, value: Uint8Array, ttl: number | undefined, header: (name: string) => string | undefined): Promise<PlainAnswer> {
  const contentType = header('content-type');
  let pre: Preconditions;
  try {
    pre = preconditions(header('if-match'), header('if-none-match'), true);
  } catch (err) {
    return Promise.reject(err);
  }
  return kv.put(key, value, pre === NONE ? { contentType, ttl } : { contentType, ttl, ...pre }).then(({ version, expiresAt }) => {
    const etag = etagOf(version);
    const body = `{"key":${JSON.stringify(key)},"size":${value.length},"content_type":${JSON.stringify(contentType ?? 'application/octet-stream')},"etag":${JSON.stringify(etag)},"expires_at":${expiresAt === null ? 'null' : expiresAt}}`;
    return { status: 200, headers: { 'content-type': JSON_TYPE, etag }, body };
  });
}

/** `?ttl=<digits>`, the one query a direct PUT takes as it is (parseTtl judges the digits). */
const TTL_QUERY = '?ttl=';
const DIRECT_TTL = /^\?ttl=\d+$/;

/**
 * KV PUT for a home that serves it without Request/Response objects (see
 * `RequestPipeline.direct`): answers `PUT /v1/kv/<key>[?ttl=<seconds>]` with a declared
 * Content-Length exactly as the hono route does, once the write is durable, or returns undefined
 * for any other request (chunked bodies, other queries, keys that need decoding), which then goes
 * to the app's `fetch`.
 *
 * @example
 * const answer = kvPutDirect(deps, pipeline)(request, '/v1/kv/user/42?ttl=60');
 */
export function kvPutDirect(deps: AppDeps, pipeline: RequestPipeline): (req: DirectRequest, target: string) => Promise<PlainAnswer> | PlainAnswer | undefined {
  const limit = deps.config.body_limits.kv;
  // `tail` is the key, then the ttl query if any, as the matcher below let them through.
  const put = pipeline.direct(KEY_PATH, tenantAuth(deps), async (s, tail) => {
    const q = tail.indexOf(TTL_QUERY);
    const key = q < 0 ? tail : tail.slice(0, q);
    const ttl = parseTtl(q < 0 ? undefined : tail.slice(q + TTL_QUERY.length));
    const value = await readDirectBody(s.request, limit);
    const scope = servicesOf(deps.engine, s.tenant!.id);
    return putAnswer(scope instanceof Promise ? (await scope).kv : scope.kv, key, value, ttl, (name) => s.request.header(name));
  });
  return (req, target) => {
    if (req.method !== 'PUT' || req.body === undefined || req.header('content-length') === undefined || req.header('transfer-encoding') !== undefined) return undefined;
    const q = target.indexOf('?');
    const path = q < 0 ? target : target.slice(0, q);
    if (!DIRECT_KV_PATH.test(path) || (path.includes('/.') && DOT_SEGMENT.test(path)) || (q >= 0 && !DIRECT_TTL.test(target.slice(q)))) return undefined;
    const host = req.header('host');
    if (host === undefined || !PLAIN_HOST.test(host)) return undefined;
    return put(req, target.slice(KV_PREFIX.length));
  };
}

export function kvRoutes(router: ApiRouter<AppEnv>, deps: AppDeps): void {
  const auth = tenantAuth(deps);
  const tags = ['KV'];
  const limit = deps.config.body_limits.kv;

  router.add(
    'put',
    KEY_PATH,
    {
      tags,
      summary: 'Store a value',
      description:
        'The raw request body is the value; its Content-Type is kept and returned by GET. `If-Match` (one tag, several, or `*`) writes only while the key is at a listed version (`*`: exists); `If-None-Match: *` only creates, and `If-None-Match` with tags writes unless the key is at one of them. The check and the write are one step; sending both headers is 400.',
      security: tenantSecurity,
      request: {
        params: KvKeyParam,
        query: KvPutQuery,
        // Any type is kept as sent. The docs page sends the first listed type, and sent `*/*` as
        // the Content-Type when it was the only one, which GET then answered with.
        body: {
          required: true,
          content: {
            'text/plain': { schema: { type: 'string' }, example: 'hello' },
            'application/octet-stream': { schema: { type: 'string', format: 'binary' } },
            '*/*': { schema: { type: 'string', format: 'binary' } },
          },
        },
      },
      responses: { '200': { ...jsonResponse(KvPutResult, 'Stored; the ETag header carries the new version'), headers: headers('ETag') }, ...errorResponses(400, 412, 413) },
    },
    auth,
    async (c) => {
      const key = param(c, 'key');
      const ttl = parseTtl(c.req.query('ttl'));
      const value = await readBody(c.req.raw, limit);
      const store = kvOf(deps, c);
      const answer = putAnswer(store instanceof Promise ? await store : store, key, value, ttl, (name) => c.req.header(name));
      const a = answer instanceof Promise ? await answer : answer;
      return plainResponse(c, deps, a.body, a.status, a.headers);
    },
  );

  router.add(
    'get',
    KEY_PATH,
    {
      tags,
      summary: 'Read a value',
      description: 'The raw value with its stored Content-Type and an ETag. `If-None-Match` with the current ETag (or `*`) answers 304.',
      security: tenantSecurity,
      request: { params: KvKeyParam },
      responses: {
        '200': {
          description: 'The value, with the Content-Type it was stored with',
          headers: headers('ETag', 'X-Expires-At'),
          content: { '*/*': { schema: { type: 'string', format: 'binary' } } },
        },
        '304': { description: 'Not modified', headers: headers('ETag') },
        ...errorResponses(400, 404),
      },
    },
    auth,
    (c) => {
      const answer = kvGetAnswer(deps, c.get('tenant').id, param(c, 'key'), c.req.header('if-none-match'));
      if (answer instanceof Promise) return answer.then((a) => plainResponse(c, deps, a.body, a.status, a.headers));
      return plainResponse(c, deps, answer.body, answer.status, answer.headers);
    },
  );

  router.add(
    'delete',
    KEY_PATH,
    {
      tags,
      summary: 'Delete a key',
      description: '`If-Match` (one tag, several, or `*`) deletes only while the key is at a listed version (`*`: exists), checked in the same step as the delete. `If-None-Match` is 400 here.',
      security: tenantSecurity,
      request: { params: KvKeyParam },
      responses: { '204': { description: 'Deleted' }, ...errorResponses(400, 404, 412) },
    },
    auth,
    async (c) => {
      const key = param(c, 'key');
      const kv = await kvOf(deps, c);
      const pre = preconditions(c.req.header('if-match'), c.req.header('if-none-match'), false);
      const existed = await kv.delete(key, pre);
      if (!existed) throw new QuartzError(ErrorCode.NOT_FOUND, `key '${key}' does not exist`);
      return c.body(null, 204);
    },
  );

  router.add(
    'get',
    '/v1/kv',
    {
      tags,
      summary: 'List keys',
      description: 'Keys in byte order, optionally under a prefix; pass `cursor` back for the next page (null on the last).',
      security: tenantSecurity,
      request: { query: KvListQuery },
      responses: { '200': jsonResponse(KvListPage, 'One page of keys'), ...errorResponses(400) },
    },
    auth,
    async (c) => {
      const kv = await kvOf(deps, c);
      const page = await kv.list({
        prefix: queryText(c, 'prefix') ?? '',
        cursor: queryText(c, 'cursor') || null,
        limit: queryInt(c.req.query('limit'), 'limit', 1, 1000, 1000),
      });
      return c.json(page);
    },
  );
}
