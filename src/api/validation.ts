/**
 * Turning bad input into one clear 400: zod issues become `records[3].value: expected string`,
 * query strings become typed numbers and booleans with the parameter named in the message.
 */
import type { Context } from 'hono';
import type { z } from 'zod';
import { ErrorCode, QuartzError } from '../core/errors.js';
import { DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT, type PageOptions } from '../engine/list-cursor.js';

type Issue = z.core.$ZodIssue;

/** `['records', 3, 'value']` → `records[3].value`. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out === '' ? String(part) : `.${String(part)}`;
  }
  return out;
}

/**
 * The first issues (at most three), each as `path: what was wrong`. Unknown fields come first: a
 * misspelt field is most often why a required one is missing.
 */
export function formatIssues(issues: readonly Issue[]): string {
  const unknownFirst = [...issues.filter((issue) => issue.code === 'unrecognized_keys'), ...issues.filter((issue) => issue.code !== 'unrecognized_keys')];
  return unknownFirst
    .slice(0, 3)
    .map((issue) => {
      const message = issue.message.replace(/^Invalid input: /, '');
      return issue.path.length === 0 ? `body: ${message}` : `${formatPath(issue.path)}: ${message}`;
    })
    .join('; ');
}

export function invalid(message: string): QuartzError {
  return new QuartzError(ErrorCode.INVALID_ARGUMENT, message);
}

/**
 * Checks `value` against `schema`; a mismatch is an INVALID_ARGUMENT naming the field.
 *
 * @example
 * const body = parseWith(createTopicBody, await readJson(c.req.raw, limits.json));
 */
export function parseWith<S extends z.ZodType>(schema: S, value: unknown): z.output<S> {
  const result = schema.safeParse(value);
  if (!result.success) throw invalid(formatIssues(result.error.issues));
  return result.data;
}

/** A query parameter as an integer in [min, max], or `fallback` when absent. */
export function queryInt(raw: string | undefined, name: string, min: number, max: number, fallback: number): number;
export function queryInt(raw: string | undefined, name: string, min: number, max: number, fallback?: undefined): number | undefined;
export function queryInt(raw: string | undefined, name: string, min: number, max: number, fallback?: number): number | undefined {
  if (raw === undefined || raw === '') return fallback;
  if (!/^-?\d{1,16}$/.test(raw)) throw invalid(`${name}: expected an integer, got ${JSON.stringify(raw.slice(0, 40))}`);
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < min || n > max) throw invalid(`${name}: must be an integer from ${min} to ${max}, got ${raw}`);
  return n;
}

/** `true`/`false`/`1`/`0` query flags. */
export function queryBool(raw: string | undefined, name: string, fallback: boolean): boolean {
  if (raw === undefined || raw === '') return fallback;
  if (raw === 'true' || raw === '1') return true;
  if (raw === 'false' || raw === '0') return false;
  throw invalid(`${name}: expected true or false, got ${JSON.stringify(raw.slice(0, 40))}`);
}

/**
 * A text query parameter (a prefix, a cursor, a name). hono hands back a value it cannot decode
 * (`%FF`, an encoded lone surrogate) as it was written, which would be taken as literal text: a
 * list under the prefix `%ED%A0%80` would answer an empty page where the same bytes in a path are
 * a 400. Refused here the same way.
 */
export function queryText(c: Context, name: string): string | undefined {
  const value = c.req.query(name);
  if (value !== undefined && value.includes('%')) {
    for (const pair of new URL(c.req.url).search.slice(1).split('&')) {
      const eq = pair.indexOf('=');
      const rawName = eq < 0 ? pair : pair.slice(0, eq);
      if (decodeQueryPart(rawName) !== name || eq < 0) continue;
      if (decodeQueryPart(pair.slice(eq + 1)) === undefined) throw invalid(`${name}: the query is not valid percent-encoded UTF-8`);
    }
  }
  return value;
}

function decodeQueryPart(raw: string): string | undefined {
  try {
    return decodeURIComponent(raw.replace(/\+/g, ' '));
  } catch {
    return undefined;
  }
}

/** A path parameter the route pattern guarantees (hono types it as possibly undefined). */
export function param(c: Context, name: string): string {
  const value = c.req.param(name);
  if (value === undefined) throw invalid(`missing path parameter ${name}`);
  // hono leaves an undecodable escape (`%FF`, `%G1`) as it was; refuse it rather than store it.
  if (value.includes('%')) {
    try {
      decodeURIComponent(new URL(c.req.url).pathname);
    } catch {
      throw invalid(`${name}: the path is not valid percent-encoded UTF-8`);
    }
  }
  return value;
}

/**
 * The `cursor` and `limit` of a catalog listing's query (an empty cursor is the first page, as
 * in KV list); the engine judges the cursor.
 */
export function pageOf(c: Context): PageOptions {
  return { cursor: queryText(c, 'cursor') || null, limit: queryInt(c.req.query('limit'), 'limit', 1, MAX_PAGE_LIMIT, DEFAULT_PAGE_LIMIT) };
}
