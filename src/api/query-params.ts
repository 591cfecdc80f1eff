/**
 * Refusing query parameters a route does not take, as request bodies refuse fields they do not
 * have: a misspelt `?tll=60` stored a key that never expires, a misspelt `?ofset=5` read from the
 * log start. The parameters a route takes are the ones its OpenAPI description lists, so the
 * document and the check cannot disagree.
 */
import type { z } from '@hono/zod-openapi';
import { closestKey, editDistance, unknownKeysMessage } from '../engine/known-options.js';
import { invalid } from './validation.js';

/** The parameters of a route's documented query object (none without one), in its order. */
export function queryNames(query: z.ZodType | undefined): readonly string[] {
  if (query === undefined) return [];
  const names = Object.keys((query as z.ZodObject).shape);
  // `refuseUnknownQuery` keeps the names it has seen as bits of one small integer.
  if (names.length > 30) throw new Error(`a route takes at most 30 query parameters, not ${names.length}`);
  return names;
}

/**
 * A parameter's name as hono's `c.req.query` matches it (`+` is a space, escapes decoded), or
 * undefined when its escapes decode to nothing (`%FF`): then it names no parameter.
 */
function decodedName(raw: string): string | undefined {
  if (!raw.includes('%') && !raw.includes('+')) return raw;
  try {
    return decodeURIComponent(raw.replace(/\+/g, ' '));
  } catch {
    return undefined;
  }
}

/**
 * The known parameter `name` most likely meant: `closestKey`'s pick (bodies use it too), or for a
 * name of three letters the one a single edit away, which `closestKey` leaves alone (`tll` for
 * `ttl`): query names are short, and a route takes only a few.
 */
function meantBy(name: string, known: readonly string[]): string | undefined {
  return closestKey(name, known) ?? (name.length === 3 ? known.find((k) => editDistance(name, k, 1) === 1) : undefined);
}

function unknownMessage(unknown: readonly string[], known: readonly string[]): string {
  return `query: ${unknownKeysMessage(unknown, known, 'parameter', { meantBy, noneKnown: 'this route takes no query parameters' })}`;
}

/**
 * Throws INVALID_ARGUMENT, naming the parameter, when `query` (a request target's text after `?`,
 * as sent) holds a parameter not in `known` (an empty name `=5` included), or one of them twice
 * (which value was meant is not for the server to guess). Empty pairs (`a=1&&b=2`, a trailing
 * `&` or a bare `?`) name nothing and pass.
 *
 * @example
 * refuseUnknownQuery('tll=60', ['ttl']); // query: unknown parameter 'tll'; did you mean 'ttl'?
 * refuseUnknownQuery('limit=1&limit=2', ['cursor', 'limit']); // query: parameter 'limit' is given more than once
 */
export function refuseUnknownQuery(query: string, known: readonly string[]): void {
  let unknown: string[] | undefined;
  let repeated: string | undefined;
  let seen = 0;
  for (let at = 0; at < query.length; ) {
    let end = query.indexOf('&', at);
    if (end < 0) end = query.length;
    if (end > at) {
      const eq = query.indexOf('=', at);
      const raw = query.slice(at, eq >= 0 && eq < end ? eq : end);
      const name = decodedName(raw);
      const i = name === undefined ? -1 : known.indexOf(name);
      if (i < 0) {
        const shown = name ?? raw;
        if (!(unknown ??= []).includes(shown)) unknown.push(shown);
      } else if ((seen & (1 << i)) !== 0) repeated ??= name;
      else seen |= 1 << i;
    }
    at = end + 1;
  }
  if (unknown !== undefined) throw invalid(unknownMessage(unknown, known));
  if (repeated !== undefined) throw invalid(`query: parameter '${repeated}' is given more than once; send it once`);
}

/**
 * The query of a request URL (`c.req.url`): the text after its first `?`, up to a `#`; empty
 * when it has none.
 */
export function queryOfUrl(url: string): string {
  const q = url.indexOf('?');
  if (q < 0) return '';
  const hash = url.indexOf('#', q);
  return url.slice(q + 1, hash < 0 ? url.length : hash);
}
