/**
 * The OpenAPI checker finds each kind of drift the conformance suite relies on it to find, on a
 * small document written here (the suite itself runs it against the served document).
 */
import { describe, expect, it } from 'vitest';
import { OpenApiChecker, type ObservedAnswer } from './openapi-checker.js';

const error = { description: 'Error', content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } };
const requestId = { 'X-Request-Id': { $ref: '#/components/headers/X-Request-Id' } };

const document = {
  openapi: '3.1.0',
  info: { title: 't', version: '1' },
  paths: {
    '/v1/things/{id}': {
      get: {
        responses: {
          '200': {
            description: 'A thing',
            headers: { ...requestId, ETag: { required: true, schema: { type: 'string', pattern: '^"[0-9]+"$' } } },
            content: { 'application/json': { schema: { $ref: '#/components/schemas/Thing' } } },
          },
          '304': { description: 'Not modified', headers: requestId },
          '404': { ...error, headers: requestId },
        },
      },
      put: { responses: { '200': { description: 'Stored', headers: requestId, content: { '*/*': { schema: { type: 'string', format: 'binary' } } } } } },
    },
    '/v1/things': {
      get: {
        parameters: [{ name: 'limit', in: 'query', schema: { type: 'string' } }],
        responses: { '200': { description: 'Many', headers: requestId, content: { 'application/json': { schema: { $ref: '#/components/schemas/Page' } } } }, '400': { ...error, headers: requestId } },
      },
    },
  },
  components: {
    headers: { 'X-Request-Id': { required: true, schema: { type: 'string' } } },
    schemas: {
      Error: { type: 'object', properties: { error: { type: 'string', example: 'not_found' }, message: { type: 'string' } }, required: ['error', 'message'] },
      Thing: { type: 'object', properties: { id: { type: 'string' }, size: { type: 'integer' }, meta: { type: 'object', additionalProperties: {} } }, required: ['id', 'size'] },
      Page: { allOf: [{ type: 'object', properties: { items: { type: 'array', items: { $ref: '#/components/schemas/Thing' } } }, required: ['items'] }, { type: 'object', properties: { cursor: { type: ['string', 'null'] } } }] },
    },
  },
};

const checker = new OpenApiChecker(document);

function answer(method: string, target: string, status: number, headers: Record<string, string>, body: unknown): ObservedAnswer {
  return { method, target, status, headers: new Headers({ 'x-request-id': 'r-1', ...headers }), body: body === undefined ? '' : typeof body === 'string' ? body : JSON.stringify(body) };
}

const json = { 'content-type': 'application/json' };
const thing = { id: 'a', size: 3, meta: { anything: [1] } };

describe('OpenApiChecker', () => {
  it('passes answers the document describes', () => {
    expect(checker.problems(answer('GET', '/v1/things/a', 200, { ...json, etag: '"7"' }, thing))).toEqual([]);
    expect(checker.problems(answer('GET', '/v1/things/a', 304, {}, undefined))).toEqual([]);
    expect(checker.problems(answer('GET', '/v1/things/a/b%2Fc', 404, json, { error: 'not_found', message: 'm' }))).toEqual([]);
    expect(checker.problems(answer('GET', '/v1/things?limit=1', 200, json, { items: [thing], cursor: null }))).toEqual([]);
    expect(checker.problems(answer('PUT', '/v1/things/a', 200, { 'content-type': 'text/plain;charset=UTF-8' }, 'not json'))).toEqual([]);
    expect(checker.problems(answer('HEAD', '/v1/things/a', 200, { ...json, etag: '"7"' }, ''))).toEqual([]);
    expect(checker.problems(answer('OPTIONS', '/v1/things/a', 204, {}, undefined))).toEqual([]);
    expect(checker.problems(answer('OPTIONS', '/v1/things/a', 200, {}, undefined))).toEqual(['OPTIONS /v1/things/a → 200: OPTIONS on a documented path answers 204']);
  });

  it('names an undocumented status, a body property, a wrong type, a missing field', () => {
    expect(checker.problems(answer('GET', '/v1/things/a', 500, json, { error: 'internal', message: 'm' }))).toEqual([
      'GET /v1/things/{id} → 500 (/v1/things/a): status 500 is not documented (documented: 200, 304, 404)',
    ]);
    expect(checker.problems(answer('GET', '/v1/things/a', 200, { ...json, etag: '"7"' }, { ...thing, extra: 1 }))).toEqual([
      "GET /v1/things/{id} → 200 (/v1/things/a): body: must NOT have unevaluated properties 'extra'",
    ]);
    expect(checker.problems(answer('GET', '/v1/things', 200, json, { items: [{ id: 'a', size: '3' }], cursor: null, more: true }))).toEqual([
      'GET /v1/things → 200 (/v1/things): body at /items/0/size: must be integer',
      "GET /v1/things → 200 (/v1/things): body: must NOT have unevaluated properties 'more'",
    ]);
    expect(checker.problems(answer('GET', '/v1/things/a', 404, json, { error: 'not_found' }))).toEqual([
      "GET /v1/things/{id} → 404 (/v1/things/a): body: must have required property 'message'",
    ]);
  });

  it('names a content type with a parameter the document does not list, and a body where none is documented', () => {
    expect(checker.problems(answer('GET', '/v1/things/a', 404, { 'content-type': 'application/json; charset=utf-8' }, { error: 'e', message: 'm' }))).toEqual([
      "GET /v1/things/{id} → 404 (/v1/things/a): Content-Type 'application/json; charset=utf-8' is not documented (documented: application/json)",
    ]);
    expect(checker.problems(answer('GET', '/v1/things/a', 304, json, { error: 'e', message: 'm' }))).toHaveLength(1);
    expect(checker.problems(answer('HEAD', '/v1/things/a', 200, { ...json, etag: '"7"' }, 'x'))).toEqual(['HEAD /v1/things/{id} → 200 (/v1/things/a): a HEAD answer has a body']);
  });

  it('names missing, malformed and undocumented headers', () => {
    expect(checker.problems(answer('GET', '/v1/things/a', 200, json, thing))).toEqual(['GET /v1/things/{id} → 200 (/v1/things/a): header etag is documented as required but not sent']);
    expect(checker.problems(answer('GET', '/v1/things/a', 200, { ...json, etag: 'W/"7"' }, thing))[0]).toMatch(/header etag: 'W\/"7"' must match pattern/);
    expect(checker.problems(answer('GET', '/v1/things/a', 304, { 'retry-after': '1' }, undefined))).toEqual([
      'GET /v1/things/{id} → 304 (/v1/things/a): header retry-after is sent but not documented for this response',
    ]);
    // HTTP's own and CORS headers are nobody's to document.
    expect(checker.problems(answer('GET', '/v1/things/a', 304, { date: 'x', 'access-control-allow-origin': '*', vary: 'Origin' }, undefined))).toEqual([]);
  });

  it('holds unknown paths to 404 and unknown methods to 405 with the documented Allow', () => {
    const notFound = { error: 'not_found', message: 'm' };
    expect(checker.problems(answer('GET', '/v1/nothing', 404, json, notFound))).toEqual([]);
    expect(checker.problems(answer('GET', '/v1/nothing', 200, json, {}))).toEqual(['GET /v1/nothing → 200 (no documented path): expected 404']);
    const notAllowed = { error: 'method_not_allowed', message: 'm' };
    expect(checker.problems(answer('DELETE', '/v1/things/a', 405, { ...json, allow: 'GET, HEAD, PUT, OPTIONS' }, notAllowed))).toEqual([]);
    expect(checker.problems(answer('DELETE', '/v1/things/a', 405, { ...json, allow: 'GET, HEAD, PUT, PATCH, OPTIONS' }, notAllowed))).toEqual([
      "DELETE /v1/things/a → 405: Allow is 'GET, HEAD, PUT, PATCH, OPTIONS', the document's methods are GET, HEAD, PUT, OPTIONS",
    ]);
    expect(checker.problems(answer('DELETE', '/v1/things/a', 200, json, {}))).toEqual(['DELETE /v1/things/a → 200 (/v1/things/{id} documents no DELETE): expected 405']);
    expect(checker.problems(answer('HEAD', '/v1/nothing', 404, json, ''))).toEqual([]);
    // Outside /v1 (the home's files): only error answers are held to the Error body.
    expect(checker.problems(answer('GET', '/docs/x.css', 200, { 'content-type': 'text/css' }, 'body{}'))).toEqual([]);
    expect(checker.problems(answer('GET', '/nope', 404, json, 'oops'))).toEqual(['GET /nope → 404: the body is not JSON: "oops"']);
  });

  it('holds a query parameter the operation does not document, or one sent twice, to a refusal naming the query', () => {
    const page = { items: [thing], cursor: null };
    const refused = (message: string) => ({ error: 'invalid_argument', message });
    expect(checker.problems(answer('GET', '/v1/things?limt=1', 400, json, refused("query: unknown parameter 'limt'; did you mean 'limit'?")))).toEqual([]);
    expect(checker.problems(answer('GET', '/v1/things?limit=1&limit=2', 400, json, refused("query: parameter 'limit' is given more than once; send it once")))).toEqual([]);
    expect(checker.problems(answer('GET', '/v1/things?&li%6Dit=1&', 200, json, page))).toEqual([]);
    expect(checker.problems(answer('GET', '/v1/things?limt=1', 200, json, page))).toEqual([
      "GET /v1/things → 200 (/v1/things?limt=1): query parameter 'limt' is not documented (documented: limit), yet the answer is a success",
    ]);
    expect(checker.problems(answer('GET', '/v1/things/a?x=1', 404, json, { error: 'not_found', message: 'm' }))).toEqual([]);
    expect(checker.problems(answer('GET', '/v1/things?limt=1', 400, json, refused('limit: expected an integer')))).toEqual([
      "GET /v1/things → 400 (/v1/things?limt=1): query parameter 'limt' is not documented, yet the 400 is about something else: limit: expected an integer",
    ]);
    expect(checker.problems(answer('GET', '/v1/things?limit=1', 400, json, refused("query: unknown parameter 'limit'; known: ")))).toEqual([
      "GET /v1/things → 400 (/v1/things?limit=1): refused a query of documented parameters (limit): query: unknown parameter 'limit'; known: ",
    ]);
  });

  it('refuses a document that is not valid OpenAPI 3.1', () => {
    expect(() => new OpenApiChecker({ ...document, paths: { '/v1/x': { get: { responses: { '200': { content: 5 } } } } } })).toThrow(/not valid OpenAPI 3.1/);
    expect(() => new OpenApiChecker({ ...document, openapi: '3.0.3' })).toThrow(/not an OpenAPI 3.1 document/);
  });

  it('throws with every problem named', () => {
    expect(() => checker.assert(answer('GET', '/v1/things/a', 200, json, { id: 1, size: 2 }))).toThrow(
      /does not match \/v1\/openapi.json:\n {2}GET \/v1\/things\/\{id\} → 200 \(\/v1\/things\/a\): header etag is documented as required but not sent\n {2}.*body at \/id: must be string/,
    );
  });
});
