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

/**
 * The server could not be reached or stopped answering (refused, reset, cut mid-answer, silent
 * past --timeout, or a 502/503/504 in front of it): what a restart looks like, so a command that
 * waits for ever anyway (`consume --follow`) may try again.
 */
export class ServerUnavailable extends CliError {}

/**
 * A 429: the tenant's rate limit is spent. `retryAfterMs` is what the answer's `Retry-After` asks
 * (seconds or an HTTP date; 1 s when absent or unreadable), so a command that waits anyway
 * (`consume --follow`) waits that long and asks again.
 */
export class RateLimited extends CliError {
  constructor(
    message: string,
    readonly retryAfterMs: number,
  ) {
    super(message);
  }
}

/**
 * An HTTP date starts with its day's name (RFC 9110 §5.6.7, the obsolete forms too). NOTE: V8's
 * Date.parse reads almost anything as a date: '-5', '1.5' and '0.5' were dates of 2001, in the
 * past, so a proxy's malformed Retry-After meant asking again at once, without end.
 */
const HTTP_DATE = /^(mon|tue|wed|thu|fri|sat|sun)[a-z]*,? /i;

/**
 * The wait a `Retry-After` header asks for, in ms: delay-seconds or an HTTP date (RFC 9110
 * §10.2.3); `fallbackMs` when absent or neither.
 *
 * @example
 * retryAfterMs('3', 1000); // 3000
 */
export function retryAfterMs(header: string | null, fallbackMs: number, now = Date.now()): number {
  if (header === null) return fallbackMs;
  const text = header.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const at = HTTP_DATE.test(text) ? Date.parse(text) : Number.NaN;
  return Number.isNaN(at) ? fallbackMs : Math.max(0, at - now);
}

/** Statuses that say the server is not there for now (a proxy's 502/504, a 503), not that the request is wrong. */
const UNAVAILABLE_STATUSES = new Set([502, 503, 504]);

export interface Connection {
  url: string;
  apiKey: string | undefined;
  adminKey: string | undefined;
  /** Where each key came from (`--api-key`, `QUARTZ_API_KEY`, the saved config), named when a header cannot carry it. */
  apiKeyFrom?: string;
  adminKeyFrom?: string;
  /** How long the CLI waits on a silent server (see ApiClient.request); 0: no limit of its own. */
  timeoutMs?: number;
}

/** The default of `--timeout` / QUARTZ_TIMEOUT, in seconds. */
export const DEFAULT_TIMEOUT_S = 30;

type Env = Record<string, string | undefined>;

/**
 * @example
 * const conn = await resolveConnection({ url: undefined }, process.env);
 *
 * `damagedConfig: 'ignore'` is for the commands that save a new config (`login`, `register
 * --save`): the damaged file they replace must not stop them.
 */
export async function resolveConnection(flags: { url?: string; apiKey?: string; timeout?: string }, env: Env, options: { damagedConfig?: 'throw' | 'ignore' } = {}): Promise<Connection> {
  const timeoutMs = timeoutSetting(flags.timeout, env);
  const saved = await readUserConfig(env, { damaged: options.damagedConfig });
  const [apiKey, apiKeyFrom] = flags.apiKey !== undefined ? [flags.apiKey, '--api-key'] : nonEmpty(env.QUARTZ_API_KEY) !== undefined ? [env.QUARTZ_API_KEY, 'QUARTZ_API_KEY'] : [saved.api_key, 'the saved config'];
  const [adminKey, adminKeyFrom] = nonEmpty(env.QUARTZ_ADMIN_KEY) !== undefined ? [env.QUARTZ_ADMIN_KEY, 'QUARTZ_ADMIN_KEY'] : [saved.admin_key, 'the saved config'];
  return {
    url: serverUrl(flags.url ?? nonEmpty(env.QUARTZ_URL) ?? saved.url ?? DEFAULT_URL),
    // Checked when sent, not here: a key the command does not send (register, a --save that
    // replaces the saved key, an admin command) must not stop it.
    apiKey,
    apiKeyFrom,
    adminKey,
    adminKeyFrom,
    timeoutMs,
  };
}

/**
 * `--timeout`, else QUARTZ_TIMEOUT, else 30: seconds (a fraction allowed), 0 for no limit of the
 * CLI's own.
 *
 * @example
 * timeoutSetting('2.5', {}); // 2500
 */
export function timeoutSetting(flag: string | undefined, env: Env): number {
  const [given, from] = flag !== undefined ? [flag, '--timeout'] : [nonEmpty(env.QUARTZ_TIMEOUT), 'QUARTZ_TIMEOUT'];
  if (given === undefined) return DEFAULT_TIMEOUT_S * 1000;
  const seconds = Number(given);
  // A timer longer than 2^31-1 ms fires at once, so such a "timeout" would be none at all.
  if (!/^\d+(\.\d+)?$/.test(given) || seconds * 1000 > 2 ** 31 - 1) throw new CliError(`quartz: ${from} must be a number of seconds ≥ 0 (0: no limit) up to 2147483, got '${given}'`);
  return Math.ceil(seconds * 1000);
}

/**
 * The server URL that API paths are appended to: scheme, host and an optional path prefix, no
 * trailing slash. A query or fragment would swallow the appended path (`http://h?x=1` + `/v1/kv/k`
 * asks for `/` and printed the landing page as the value), and fetch refuses credentials in a URL.
 *
 * @example
 * serverUrl('http://127.0.0.1:8787/quartz/'); // 'http://127.0.0.1:8787/quartz'
 */
export function serverUrl(given: string): string {
  const url = given.replace(/\/+$/, '');
  if (!/^https?:\/\/[^/]+/i.test(url)) throw new CliError(`quartz: the server URL must start with http:// or https://, got '${given}'`);
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new CliError(`quartz: the server URL '${given}' is not a valid URL`);
  }
  if (parsed.search !== '' || parsed.hash !== '' || url.includes('?') || url.includes('#')) {
    throw new CliError(`quartz: the server URL must not have a query or fragment ('?' or '#'), got '${given}'`);
  }
  if (parsed.username !== '' || parsed.password !== '') {
    throw new CliError('quartz: the server URL must not hold a user name or password; give the API key with --api-key or QUARTZ_API_KEY');
  }
  return url;
}

/**
 * `value`, refused with one line naming `what` when an HTTP header cannot carry it (a line break,
 * NUL, a character past U+00FF): fetch refused it with a multi-line TypeError that the CLI
 * reported as 'cannot reach' the server. A key pasted with its line break is the usual case.
 *
 * @example
 * headerValue(flags.apiKey, 'the API key from --api-key');
 */
export function headerValue<T extends string | undefined>(value: T, what: string): T {
  if (value !== undefined && /[\r\n\0]|[^\u0000-\u00ff]/.test(value)) {
    // Not shown: a key is a secret, and the flag's value is the user's own.
    throw new CliError(`quartz: ${what} holds a line break, NUL or a character beyond U+00FF, which an HTTP header cannot carry`);
  }
  return value;
}

function nonEmpty(v: string | undefined): string | undefined {
  return v === undefined || v === '' ? undefined : v;
}

export interface RequestOptions {
  method?: string;
  /** JSON body (serialised here) or raw bytes, whole or streamed (a file, stdin). */
  json?: unknown;
  body?: Uint8Array | string | ReadableStream<Uint8Array>;
  /** The length of a streamed body when known (a regular file): the server can refuse a too-large one before it is sent. */
  contentLength?: number;
  contentType?: string;
  query?: Record<string, string | number | undefined>;
  /** 'api' (default) sends the tenant key, 'admin' the admin key, 'none' nothing. */
  auth?: 'api' | 'admin' | 'none';
  /** Statuses handled by the caller instead of thrown (e.g. 404 for `kv get`). */
  accept?: number[];
  signal?: AbortSignal;
  /** How long the server is asked to hold the answer (a long-poll's `max_wait_ms`): added to the wait for its head. */
  serverWaitMs?: number;
}

function describeNetworkError(err: unknown): string {
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  const code = cause?.code;
  if (code === 'ECONNREFUSED') return 'connection refused';
  if (code === 'ENOTFOUND') return 'host not found';
  if (code === 'ECONNRESET') return 'connection reset';
  if (code === 'ETIMEDOUT' || code === 'UND_ERR_CONNECT_TIMEOUT' || code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') return 'timed out';
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
      headers.authorization = `Bearer ${headerValue(this.conn.apiKey, `the API key from ${this.conn.apiKeyFrom ?? '--api-key'}`)}`;
    } else if (auth === 'admin') {
      if (this.conn.adminKey === undefined) throw new CliError('quartz: no admin key; set QUARTZ_ADMIN_KEY or pass --admin-key-file (the server prints where its key file is)');
      headers.authorization = `Bearer ${headerValue(this.conn.adminKey, `the admin key from ${this.conn.adminKeyFrom ?? 'QUARTZ_ADMIN_KEY'}`)}`;
    }
    let body: RequestOptions['body'];
    if (options.json !== undefined) {
      body = JSON.stringify(options.json);
      headers['content-type'] = 'application/json';
    } else if (options.body !== undefined) {
      body = options.body;
      headers['content-type'] = headerValue(options.contentType ?? 'application/octet-stream', 'the content type');
      if (options.contentLength !== undefined) headers['content-length'] = String(options.contentLength);
    }
    const watch = new Watchdog(this.conn.url, this.conn.timeoutMs ?? DEFAULT_TIMEOUT_S * 1000, options.serverWaitMs ?? 0);
    if (body instanceof ReadableStream) body = watch.upload(body);
    else watch.awaitAnswer();
    const signal = options.signal === undefined ? watch.signal : AbortSignal.any([options.signal, watch.signal]);
    let res: Response;
    try {
      // `duplex: 'half'` is what fetch requires of a streamed body. The API never redirects: a
      // redirect followed would turn a POST into a GET (301, 302) and answer something else.
      const init = { method: options.method ?? 'GET', headers, body: body as BodyInit | undefined, signal, duplex: 'half', redirect: 'manual' } as RequestInit;
      res = await fetch(url, init);
    } catch (err) {
      if (watch.fired !== undefined) throw watch.fired;
      if ((err as Error).name === 'AbortError' || err === options.signal?.reason) throw err;
      // The fetch standard's blocked ports (6000, 6665-6669, 1, …): no connection is tried, so
      // asking whether the server runs sent users looking for a fault that was not there.
      if ((err as { cause?: Error }).cause?.message === 'bad port') {
        throw new CliError(`quartz: cannot reach ${this.conn.url}: fetch never connects to port ${url.port}, one of the ports the fetch standard blocks (other protocols' ports); run the server on another --port`);
      }
      throw new ServerUnavailable(`quartz: cannot reach ${this.conn.url} (${describeNetworkError(err)}) — is \`quartz serve\` running?`);
    } finally {
      watch.answered();
    }
    res = watch.download(res);
    if (res.ok || options.accept?.includes(res.status)) return res;
    const location = res.headers.get('location');
    if (res.status >= 300 && res.status < 400 && location !== null) {
      await res.body?.cancel().catch(() => undefined);
      throw new CliError(`quartz: ${this.conn.url} answered ${res.status} redirecting to ${new URL(location, url).href}; the API does not redirect: give the server's own URL (--url or QUARTZ_URL)`);
    }
    throw await errorFrom(res);
  }

  /** True when the server at this URL answers the API's health route, i.e. /v1 is there. */
  async servesApi(): Promise<boolean> {
    try {
      const res = await this.json<{ status?: unknown }>('/v1/health', { auth: 'none' });
      return res.status === 'ok';
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

  /** A JSON request answered with a JSON object (every answer of the API is one). */
  async json<T>(path: string, options: RequestOptions = {}): Promise<T> {
    return this.answer<T>(await this.request(path, options));
  }

  /** The JSON object of an answer already received (one whose status the caller looked at first). */
  async answer<T>(res: Response): Promise<T> {
    const text = new TextDecoder().decode(await this.body(res));
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      const type = res.headers.get('content-type') ?? 'no content type';
      throw new CliError(`quartz: ${this.conn.url} answered ${res.status} with something other than JSON (${type}); is it a QuartzDB server?`);
    }
    // `null` or `[]` would fail later as a TypeError about reading a property of it.
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
      throw new CliError(`quartz: ${this.conn.url} answered ${res.status} with JSON that is not an object; is it a QuartzDB server?`);
    }
    return parsed as T;
  }

  /**
   * The whole body of an answer. A connection that ends before it (a server killed or a proxy
   * timing out mid-answer) is one line saying so, not undici's bare 'terminated'.
   *
   * @example
   * const bytes = await client.body(await client.request(kvPath(key)));
   */
  async body(res: Response, limit = MAX_ANSWER_BYTES): Promise<Uint8Array> {
    let read: { bytes: Uint8Array; whole: boolean };
    try {
      read = await readUpTo(res, limit);
    } catch (err) {
      if (err instanceof CliError) throw err;
      throw new ServerUnavailable(`quartz: the connection to ${this.conn.url} ended before the whole answer arrived (${describeNetworkError(err)})`);
    }
    if (!read.whole) throw new CliError(`quartz: ${this.conn.url} answered more than ${limit / 2 ** 20} MiB, more than the CLI holds in memory; is it a QuartzDB server?`);
    return read.bytes;
  }
}

/**
 * The most of one answer the CLI holds in memory (a JSON answer, a `kv get` value): ten times the
 * server's default KV value limit. A server sending without end grew the CLI until it died.
 */
export const MAX_ANSWER_BYTES = 256 * 2 ** 20;

/** An error answer's text is a line for the user: a few KiB of it is plenty, an endless one is not read. */
const MAX_ERROR_BODY_BYTES = 64 * 1024;

/** At most `limit` bytes of a body; `whole` false when there was more, which is left unread (cancelled). */
async function readUpTo(res: Response, limit: number): Promise<{ bytes: Uint8Array; whole: boolean }> {
  if (res.body === null) return { bytes: new Uint8Array(0), whole: true };
  const chunks: Uint8Array[] = [];
  let length = 0;
  const reader = res.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    if (length + value.length > limit) {
      await reader.cancel().catch(() => undefined);
      return { bytes: Buffer.concat(chunks, length), whole: false };
    }
    chunks.push(value);
    length += value.length;
  }
  return { bytes: Buffer.concat(chunks, length), whole: true };
}

async function errorFrom(res: Response): Promise<CliError> {
  let text = '';
  try {
    text = new TextDecoder().decode((await readUpTo(res, MAX_ERROR_BODY_BYTES)).bytes);
  } catch (err) {
    // A timeout is its own line; a connection cut mid-error leaves the status line to report.
    if (err instanceof CliError) throw err;
  }
  const error = errorOf(res, text);
  if (res.status === 429) return new RateLimited(error.message, retryAfterMs(res.headers.get('retry-after'), 1000));
  return UNAVAILABLE_STATUSES.has(res.status) ? new ServerUnavailable(error.message) : error;
}

/** Statuses whose answers have no body, which `new Response` refuses one for. */
const NULL_BODY = new Set([101, 103, 204, 205, 304]);

/**
 * How long a request may wait on a silent server: `timeoutMs` of silence while the request body
 * is being taken, then until the answer's head (plus `serverWaitMs`, a long-poll the request asks
 * the server for), then between the answer's bytes. Time the CLI itself spends (reading stdin,
 * writing to a slow disk or pipe) does not count: the timer runs only while the CLI waits on the
 * server.
 */
class Watchdog {
  private readonly controller = new AbortController();
  private timer: NodeJS.Timeout | undefined;
  private headArrived = false;
  /** The error the request failed with when the timer fired. */
  fired: CliError | undefined;

  constructor(
    private readonly url: string,
    private readonly timeoutMs: number,
    private readonly serverWaitMs: number,
  ) {}

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** Waits for the answer's head (the request body, if any, is all sent). */
  awaitAnswer(): void {
    if (!this.headArrived) this.arm(this.timeoutMs + this.serverWaitMs, `no answer from ${this.url} within ${seconds(this.timeoutMs + this.serverWaitMs)}`);
  }

  /** The head is here: the upload's timer stops (a server may answer before taking the whole body). */
  answered(): void {
    this.headArrived = true;
    this.disarm();
  }

  /** The request body, timed from each chunk handed over until fetch asks for the next. */
  upload(body: ReadableStream<Uint8Array>): ReadableStream<Uint8Array> {
    const reader = body.getReader();
    // Until fetch asks for the first bytes: connecting to the server.
    this.arm(this.timeoutMs, `no answer from ${this.url} within ${seconds(this.timeoutMs)}`);
    return new ReadableStream<Uint8Array>(
      {
        pull: async (controller) => {
          this.disarm();
          const { done, value } = await reader.read();
          if (done) {
            controller.close();
            this.awaitAnswer();
            return;
          }
          controller.enqueue(value);
          if (!this.headArrived) this.arm(this.timeoutMs, `${this.url} took none of the request for ${seconds(this.timeoutMs)}`);
        },
        cancel: (reason) => reader.cancel(reason),
      },
      { highWaterMark: 0 },
    );
  }

  /** The answer, its body timed from each read until its next bytes arrive. */
  download(res: Response): Response {
    if (res.body === null || NULL_BODY.has(res.status) || this.timeoutMs === 0) return res;
    const reader = res.body.getReader();
    const body = new ReadableStream<Uint8Array>(
      {
        pull: async (controller) => {
          this.arm(this.timeoutMs, `${this.url} sent nothing more of its answer for ${seconds(this.timeoutMs)}`);
          try {
            const { done, value } = await reader.read();
            if (done) controller.close();
            else controller.enqueue(value);
          } catch (err) {
            throw this.fired ?? err;
          } finally {
            this.disarm();
          }
        },
        cancel: (reason) => reader.cancel(reason),
      },
      { highWaterMark: 0 },
    );
    return new Response(body, { status: res.status, statusText: res.statusText, headers: res.headers });
  }

  private arm(ms: number, what: string): void {
    this.disarm();
    if (this.timeoutMs === 0) return;
    this.timer = setTimeout(() => {
      this.fired = new ServerUnavailable(`quartz: ${what} (--timeout or QUARTZ_TIMEOUT sets how long to wait)`);
      this.controller.abort(this.fired);
    }, ms);
  }

  private disarm(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}

const seconds = (ms: number): string => `${ms / 1000} s`;

/**
 * The error for a failed answer whose body was read already: the server's `{error, message}`,
 * else its status line.
 *
 * @example
 * if (res.status === 404) throw errorOf(res, await res.text());
 */
export function errorOf(res: Response, text: string): CliError {
  const body = errorBody(text);
  // The CLI prints the first line of an error: a message of several lines is joined into one,
  // or the status and code that end the line were cut off.
  if (body !== undefined) return new CliError(`quartz: ${body.message.replace(/\s*[\r\n]+\s*/g, ' ')} (${res.status} ${body.error ?? ''})`.replace(' )', ')'));
  return new CliError(`quartz: the server answered ${res.status} ${res.statusText}`);
}

/**
 * The API path of the resource `name` under `base`. Some names have none, so they are refused
 * here, before any request: an empty one (`base/` names no resource), and `.` and `..`, path
 * segments that URL parsing resolves, percent-encoded or not (`/v1/kv/..` is `/v1/`: the request
 * reached another route and its answer was reported as if about the name).
 *
 * @example
 * namedPath('/v1/topics', 'orders', 'the topic name'); // '/v1/topics/orders'
 */
export function namedPath(base: string, name: string, what: string): string {
  if (name === '') throw new CliError(`quartz: ${what} must not be empty`);
  if (name === '.' || name === '..') throw new CliError(`quartz: ${what} cannot be '${name}': a URL resolves it as a path segment, so no request can name it`);
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
