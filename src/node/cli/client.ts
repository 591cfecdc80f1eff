/**
 * The CLI's HTTP client for API v1: connection settings from flags, QUARTZ_URL / QUARTZ_API_KEY,
 * or `quartz login`; failures become one clear line (CliError) for the CLI to print.
 */
import { DEFAULT_URL, readUserConfig } from './user-config.js';

/** An error the CLI prints as one line and exits non-zero on. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
  }
}

export interface Connection {
  url: string;
  apiKey: string | undefined;
  adminKey: string | undefined;
}

type Env = Record<string, string | undefined>;

/**
 * @example
 * const conn = await resolveConnection({ url: undefined }, process.env);
 */
export async function resolveConnection(flags: { url?: string; apiKey?: string }, env: Env): Promise<Connection> {
  const saved = await readUserConfig(env);
  const url = (flags.url ?? nonEmpty(env.QUARTZ_URL) ?? saved.url ?? DEFAULT_URL).replace(/\/+$/, '');
  if (!/^https?:\/\/[^/]+/.test(url)) throw new CliError(`quartz: the server URL must start with http:// or https://, got '${url}'`);
  return {
    url,
    apiKey: flags.apiKey ?? nonEmpty(env.QUARTZ_API_KEY) ?? saved.api_key,
    adminKey: nonEmpty(env.QUARTZ_ADMIN_KEY) ?? saved.admin_key,
  };
}

function nonEmpty(v: string | undefined): string | undefined {
  return v === undefined || v === '' ? undefined : v;
}

export interface RequestOptions {
  method?: string;
  /** JSON body (serialised here) or raw bytes. */
  json?: unknown;
  body?: Uint8Array | string;
  contentType?: string;
  query?: Record<string, string | number | undefined>;
  /** 'api' (default) sends the tenant key, 'admin' the admin key, 'none' nothing. */
  auth?: 'api' | 'admin' | 'none';
  /** Statuses handled by the caller instead of thrown (e.g. 404 for `kv get`). */
  accept?: number[];
  signal?: AbortSignal;
}

function describeNetworkError(err: unknown): string {
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  const code = cause?.code;
  if (code === 'ECONNREFUSED') return 'connection refused';
  if (code === 'ENOTFOUND') return 'host not found';
  if (code === 'ECONNRESET') return 'connection reset';
  if (code === 'ETIMEDOUT' || code === 'UND_ERR_CONNECT_TIMEOUT') return 'timed out';
  // OpenSSL's own text is a line of internals ("…:error:0A00010B:SSL routines:…"); its reason is the readable part.
  const reason = (cause as { reason?: string } | undefined)?.reason;
  if (code?.startsWith('ERR_SSL_') && reason !== undefined) return `TLS failed: ${reason}; does the server speak https?`;
  return cause?.message ?? (err as Error).message;
}

/** The largest page the API's listings answer. */
const MAX_PAGE = 1000;

export class ApiClient {
  constructor(readonly conn: Connection) {}

  /**
   * One request; non-2xx answers (other than `accept`) throw a CliError with the server's message.
   *
   * @example
   * const res = await client.request('/v1/topics');
   */
  async request(path: string, options: RequestOptions = {}): Promise<Response> {
    const url = new URL(this.conn.url + path);
    for (const [k, v] of Object.entries(options.query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v));
    const headers: Record<string, string> = {};
    const auth = options.auth ?? 'api';
    if (auth === 'api') {
      if (this.conn.apiKey === undefined) throw new CliError('quartz: no API key; run `quartz register`, `quartz login`, or set QUARTZ_API_KEY');
      headers.authorization = `Bearer ${this.conn.apiKey}`;
    } else if (auth === 'admin') {
      if (this.conn.adminKey === undefined) throw new CliError('quartz: no admin key; set QUARTZ_ADMIN_KEY or pass --admin-key-file (the server prints where its key file is)');
      headers.authorization = `Bearer ${this.conn.adminKey}`;
    }
    let body: string | Uint8Array | undefined;
    if (options.json !== undefined) {
      body = JSON.stringify(options.json);
      headers['content-type'] = 'application/json';
    } else if (options.body !== undefined) {
      body = options.body;
      headers['content-type'] = options.contentType ?? 'application/octet-stream';
    }
    let res: Response;
    try {
      res = await fetch(url, { method: options.method ?? 'GET', headers, body: body as BodyInit | undefined, signal: options.signal });
    } catch (err) {
      if ((err as Error).name === 'AbortError') throw err;
      throw new CliError(`quartz: cannot reach ${this.conn.url} (${describeNetworkError(err)}) — is \`quartz serve\` running?`);
    }
    if (res.ok || options.accept?.includes(res.status)) return res;
    throw await errorFrom(res);
  }

  /** True when the server at this URL answers the API's health route, i.e. /v1 is there. */
  async servesApi(): Promise<boolean> {
    try {
      const res = await fetch(`${this.conn.url}/v1/health`);
      return res.ok && ((await res.json()) as { status?: unknown } | null)?.status === 'ok';
    } catch {
      return false;
    }
  }

  /**
   * Every item of a paged listing (`{<field>: [...], cursor}`), following cursors page by page:
   * at most `limit` items in all (default: every one), `pageSize` per request (default 1000, the
   * API's largest page).
   *
   * @example
   * const topics = await client.listAll<Topic>('/v1/topics', 'topics');
   */
  async listAll<T>(path: string, field: string, options: { query?: Record<string, string | undefined>; limit?: number; pageSize?: number } = {}): Promise<T[]> {
    const { limit = Infinity, pageSize = MAX_PAGE } = options;
    const items: T[] = [];
    let cursor: string | null = null;
    const followed = new Set<string>();
    while (items.length < limit) {
      const page: Record<string, unknown> = await this.json<Record<string, unknown>>(path, { query: { ...options.query, cursor: cursor ?? undefined, limit: Math.min(pageSize, limit - items.length) } });
      const found = page[field];
      if (!Array.isArray(found)) throw new CliError(`quartz: ${this.conn.url}${path} answered without '${field}'; is it a QuartzDB server?`);
      items.push(...(found as T[]));
      // No cursor at all: a server from before these listings paged, which answered every item.
      cursor = typeof page.cursor === 'string' ? page.cursor : null;
      if (cursor === null) break;
      // A cursor answered before would ask for the same pages again, for ever.
      if (followed.has(cursor)) throw new CliError(`quartz: ${this.conn.url}${path} answered a cursor it had answered before; is it a QuartzDB server?`);
      followed.add(cursor);
    }
    // A server from before paging ignores `limit` and answers every item.
    return items.length > limit ? items.slice(0, limit) : items;
  }

  /** A JSON request answered with JSON. */
  async json<T>(path: string, options: RequestOptions = {}): Promise<T> {
    const res = await this.request(path, options);
    const text = await res.text();
    try {
      return JSON.parse(text) as T;
    } catch {
      const type = res.headers.get('content-type') ?? 'no content type';
      throw new CliError(`quartz: ${this.conn.url} answered ${res.status} with something other than JSON (${type}); is it a QuartzDB server?`);
    }
  }
}

async function errorFrom(res: Response): Promise<CliError> {
  return errorOf(res, await res.text().catch(() => ''));
}

/**
 * The error for a failed answer whose body was read already: the server's `{error, message}`,
 * else its status line.
 *
 * @example
 * if (res.status === 404) throw errorOf(res, await res.text());
 */
export function errorOf(res: Response, text: string): CliError {
  const body = errorBody(text);
  if (body !== undefined) return new CliError(`quartz: ${body.message} (${res.status} ${body.error ?? ''})`.replace(' )', ')'));
  return new CliError(`quartz: the server answered ${res.status} ${res.statusText}`);
}

/**
 * The API path of the resource `name` under `base`. An empty name has none (`base/` names no
 * resource), so it is refused here, before any request.
 *
 * @example
 * namedPath('/v1/topics', 'orders', 'the topic name'); // '/v1/topics/orders'
 */
export function namedPath(base: string, name: string, what: string): string {
  if (name === '') throw new CliError(`quartz: ${what} must not be empty`);
  return `${base}/${encodeURIComponent(name)}`;
}

/** The `{error, message}` JSON of an error answer, undefined for anything else. */
export function errorBody(text: string): { error?: string; message: string } | undefined {
  try {
    const body = JSON.parse(text) as { error?: string; message?: unknown } | null;
    if (typeof body?.message === 'string') return body as { error?: string; message: string };
  } catch {
    // not JSON
  }
  return undefined;
}
