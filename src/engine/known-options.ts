/**
 * Refusing options nobody reads. A misspelt option (`partitons: 3`) left to the defaults would
 * silently change how real data is kept, so it is an error naming the key and, when one is
 * close, the known key it resembles (as Kafka answers "Unknown topic config name").
 */
import { ErrorCode, QuartzError } from '../core/errors.js';
import { showValue } from '../core/show-value.js';

/** Keys named in one message; the rest are counted. */
const MAX_NAMED = 3;

/** Letters only, lower case: `efConstruction`, `ef_construction` and `EF-construction` are one. */
function folded(key: string): string {
  return key.toLowerCase().replace(/[^a-z0-9]/g, '');
}

/**
 * Edits (insert, delete, substitute, swap two neighbours) from `a` to `b`, or more than `limit`.
 *
 * @example
 * editDistance('partitons', 'partitions', 2); // 1
 */
export function editDistance(a: string, b: string, limit = Infinity): number {
  if (Math.abs(a.length - b.length) > limit) return limit + 1;
  let before: number[] = [];
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) best = Math.min(best, before[j - 2]! + 1);
      current.push(best);
    }
    before = previous;
    previous = current;
  }
  return previous[b.length]!;
}

/**
 * The known key `key` was most likely meant to be, or undefined when none is close: the same
 * letters in another case or separator style, else at most one edit per four characters (two
 * at most).
 *
 * @example
 * closestKey('partitons', ['partitions', 'retention_ms']); // 'partitions'
 * closestKey('m', ['M', 'efConstruction']); // 'M'
 */
export function closestKey(key: string, known: readonly string[]): string | undefined {
  const plain = folded(key);
  const sameLetters = known.find((k) => folded(k) === plain);
  if (sameLetters !== undefined) return sameLetters;
  const limit = Math.min(2, Math.floor(plain.length / 4));
  let best: string | undefined;
  let bestDistance = limit + 1;
  for (const k of known) {
    const d = editDistance(plain, folded(k), limit);
    if (d < bestDistance) {
      best = k;
      bestDistance = d;
    }
  }
  return best;
}

/**
 * "unknown field 'partitons'; did you mean 'partitions'?" for the unknown `keys` of an object
 * whose keys are `known`; `noun` is what the caller calls a key (field, option). `meantBy` picks
 * the known key a name most likely meant (`closestKey` unless given); `noneKnown` ends the message
 * when `known` is empty.
 */
export function unknownKeysMessage(
  keys: readonly string[],
  known: readonly string[],
  noun: string,
  { meantBy = closestKey, noneKnown }: { meantBy?: (key: string, known: readonly string[]) => string | undefined; noneKnown?: string } = {},
): string {
  const named = keys.slice(0, MAX_NAMED).map((key) => {
    const shown = showValue(key).replace(/^"|"$/g, "'");
    const meant = meantBy(key, known);
    return { shown, meant: meant === undefined ? undefined : `'${meant}'` };
  });
  const more = keys.length > MAX_NAMED ? ` and ${keys.length - MAX_NAMED} more` : '';
  if (named.length === 1 && named[0]!.meant !== undefined) return `unknown ${noun} ${named[0]!.shown}; did you mean ${named[0]!.meant}?`;
  const list = named.map(({ shown, meant }) => (meant === undefined ? shown : `${shown} (did you mean ${meant}?)`)).join(', ');
  const takes = known.length === 0 && noneKnown !== undefined ? noneKnown : `known: ${known.join(', ')}`;
  return `unknown ${noun}${keys.length > 1 ? 's' : ''} ${list}${more}; ${takes}`;
}

/**
 * Throws INVALID_ARGUMENT when `options` has an own enumerable key not in `known` (a key whose
 * value is undefined counts: it was still written, and most likely misspelt).
 *
 * @example
 * refuseUnknownOptions({ partitons: 3 }, ['partitions'], 'createTopic');
 * // QuartzError invalid_argument: createTopic: unknown option 'partitons'; did you mean 'partitions'?
 */
export function refuseUnknownOptions(options: object, known: readonly string[], what: string, noun = 'option'): void {
  // No array unless a key is unknown: this runs on every vector query and every upserted vector.
  let unknown: string[] | undefined;
  for (const key in options) if (Object.prototype.hasOwnProperty.call(options, key) && !known.includes(key)) (unknown ??= []).push(key);
  if (unknown !== undefined) throw new QuartzError(ErrorCode.INVALID_ARGUMENT, `${what}: ${unknownKeysMessage(unknown, known, noun)}`);
}
