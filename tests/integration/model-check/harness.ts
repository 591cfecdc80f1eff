/**
 * The plumbing of the model-based test (model-check.test.ts): a seeded generator, the op log kept
 * for failure reports, and an HTTP client that checks every answer is well formed and tells a
 * server that died under a request (the outcome is unknown) from one that misbehaved.
 */
import { ErrorCode, errorStatus } from '../../../src/core/errors.js';

/** mulberry32: small, seedable, good enough to pick operations. */
export class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0;
  }
  next(): number {
    let t = (this.s = (this.s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** An integer in [lo, hi]. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)]!;
  }
  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = Math.floor(this.next() * 256);
    return out;
  }
  /** Well-formed text from a mix of ASCII, reserved URL characters, accents, CJK and emoji. */
  text(maxChars: number): string {
    const n = this.int(0, maxChars);
    let s = '';
    for (let i = 0; i < n; i++) s += this.pick(TEXT_CHARS);
    return s;
  }
}

const TEXT_CHARS = [...'abcxyzABC0189-_.~ /%?#&+=:@!$\'"()*,;[]\\{}|^`<>', 'é', 'ß', 'Ω', '中', '文', '🎉', '😀', '\u00a0', '\u200b', '\ufeff', '\t', '\n', '\r', '\u2028'];

export const utf8 = new TextEncoder();
const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

export function isUtf8(bytes: Uint8Array): boolean {
  try {
    strictUtf8.decode(bytes);
    return true;
  } catch {
    return false;
  }
}

export function sameBytes(a: Uint8Array | null, b: Uint8Array | null): boolean {
  if (a === null || b === null) return a === b;
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

/** A key or id for the log: long ones cut, with their length. */
export function showKey(key: string): string {
  const chars = [...key];
  return chars.length <= 40 ? JSON.stringify(key) : `${JSON.stringify(chars.slice(0, 40).join(''))}…(${chars.length} chars)`;
}

export function show(bytes: Uint8Array | null): string {
  if (bytes === null) return 'null';
  const hex = Buffer.from(bytes.subarray(0, 24)).toString('hex');
  return `${bytes.length}B:${hex}${bytes.length > 24 ? '…' : ''}`;
}

/** A model or protocol violation: fails the run with the seed and the op log. */
export class Violation extends Error {}

/** The request's outcome is unknown: the server was killed (or stopped) while it was under way. */
export class Unknown extends Error {}

/**
 * What the kv, streams and vectors clients share: one client's id, its random ops, its tenant's
 * API and another tenant's (for tenancy probes), the run's op log, and what to check after a
 * restart if the server died under its request.
 */
export abstract class ModelClient {
  inflight: (() => Promise<void>) | undefined;

  constructor(
    protected readonly id: number,
    protected readonly rng: Rng,
    protected readonly api: Api,
    protected readonly other: Api,
    protected readonly log: OpLog,
  ) {}
}

/** The last ops of a run, for the failure report (only the tail matters to find the cause). */
export class OpLog {
  private readonly lines: string[] = [];
  count = 0;
  constructor(private readonly keep: number) {}
  add(line: string): void {
    this.count++;
    this.lines.push(`#${this.count} ${line}`);
    if (this.lines.length > this.keep) this.lines.shift();
  }
  tail(): string {
    return this.lines.join('\n');
  }
}

export interface Answer {
  status: number;
  headers: Headers;
  bytes: Uint8Array;
  /** The body as JSON (a Violation if it is not). */
  readonly json: any;
}

/** How long one request may take before the run calls it a hang (a loaded 2-core box is slow). */
export const REQUEST_BOUND_MS = 30_000;

const STATUS_OF_CODE = new Map<string, number>(Object.values(ErrorCode).map((code) => [code, errorStatus[code]]));

/** The server the clients talk to now, and whether it is being taken down on purpose. */
export interface Target {
  url: string;
  /** Set from the moment the run sends the server a signal until it runs again. */
  stopping: boolean;
}

/**
 * One tenant's view of the server: every call is bounded, every answer checked for shape (no 5xx;
 * errors are `{error, message}` JSON with the status of their code), and a transport failure while
 * the server is being stopped becomes `Unknown`.
 */
export class Api {
  constructor(
    private readonly target: Target,
    private readonly key: string,
    private readonly log: OpLog,
  ) {}

  async call(method: string, path: string, init: { body?: Uint8Array | string | object; headers?: Record<string, string> } = {}): Promise<Answer> {
    const headers: Record<string, string> = { authorization: `Bearer ${this.key}`, ...init.headers };
    let body: Uint8Array | string | undefined;
    if (init.body instanceof Uint8Array || typeof init.body === 'string') body = init.body;
    else if (init.body !== undefined) {
      body = JSON.stringify(init.body);
      headers['content-type'] ??= 'application/json';
    }
    const stopping = this.target.stopping;
    let res: Response;
    let bytes: Uint8Array;
    try {
      res = await fetch(`${this.target.url}${path}`, { method, headers, body: body as BodyInit | undefined, signal: AbortSignal.timeout(REQUEST_BOUND_MS) });
      bytes = new Uint8Array(await res.arrayBuffer());
    } catch (err) {
      if (stopping || this.target.stopping) throw new Unknown(`${method} ${path}: ${String(err)}`);
      if ((err as Error).name === 'TimeoutError') throw new Violation(`${method} ${path}: no answer within ${REQUEST_BOUND_MS} ms (hang)`);
      throw new Violation(`${method} ${path}: transport failure with the server up: ${String(err)} ${String((err as { cause?: unknown }).cause ?? '')}`);
    }
    const text = (): string => Buffer.from(bytes).toString('utf8');
    let parsed: unknown;
    const answer: Answer = {
      status: res.status,
      headers: res.headers,
      bytes,
      // Parsed when asked for: a KV value labelled JSON is the user's bytes, whatever they are.
      get json(): any {
        if (parsed !== undefined) return parsed;
        if (!(res.headers.get('content-type') ?? '').startsWith('application/json')) throw new Violation(`${method} ${path}: ${res.status} is not JSON: ${text().slice(0, 200)}`);
        try {
          return (parsed = JSON.parse(text()));
        } catch {
          throw new Violation(`${method} ${path}: ${res.status} labelled JSON is not JSON: ${text().slice(0, 200)}`);
        }
      },
    };
    if (res.status >= 500) throw new Violation(`${method} ${path}: ${res.status} ${Buffer.from(bytes).toString('utf8').slice(0, 300)}`);
    if (res.status >= 400) {
      const j = answer.json;
      if (j === null || typeof j !== 'object' || typeof j.error !== 'string' || typeof j.message !== 'string' || Object.keys(j).length !== 2) {
        throw new Violation(`${method} ${path}: ${res.status} is not {error, message}: ${Buffer.from(bytes).toString('utf8').slice(0, 200)}`);
      }
      if (STATUS_OF_CODE.get(j.error) !== res.status) throw new Violation(`${method} ${path}: ${res.status} with code ${j.error}`);
      if (res.status === 403) throw new Violation(`${method} ${path}: 403 (another tenant's resources are 404)`);
    }
    if ((res.status === 204 || res.status === 304) && bytes.length !== 0) throw new Violation(`${method} ${path}: ${res.status} with a body`);
    return answer;
  }

  /** `call`, then the status must be one of `expected` (and an error its code). */
  async expect(expected: number | readonly number[], method: string, path: string, init: Parameters<Api['call']>[2] = {}, code?: string): Promise<Answer> {
    const a = await this.call(method, path, init);
    const ok = typeof expected === 'number' ? a.status === expected : expected.includes(a.status);
    if (!ok) throw new Violation(`${method} ${path}: expected ${String(expected)}, got ${a.status} ${Buffer.from(a.bytes).toString('utf8').slice(0, 300)}`);
    if (code !== undefined && a.status >= 400 && a.json.error !== code) throw new Violation(`${method} ${path}: expected code ${code}, got ${a.json.error}: ${a.json.message}`);
    return a;
  }
}

export function check(cond: boolean, what: () => string): asserts cond {
  if (!cond) throw new Violation(what());
}
