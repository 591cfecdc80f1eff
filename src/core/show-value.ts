/**
 * Names a caller's argument in an error message, whatever its type. JSON.stringify throws on a
 * BigInt and a template literal throws on a Symbol, so a message built from hostile input would
 * replace the QuartzError it was meant for with a TypeError.
 */

const MAX_SHOWN = 140;

/**
 * A short, safe rendering of any value: strings quoted (and cut), numbers as written (NaN,
 * Infinity), bigints with their `n`, other values by JSON or by kind.
 *
 * @example
 * showValue(10n); // '10n'
 * showValue('a'.repeat(500)); // '"aaa…"' (cut to 140 characters)
 */
export function showValue(value: unknown): string {
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value.length > MAX_SHOWN ? `${value.slice(0, MAX_SHOWN)}…` : value);
    case 'number':
    case 'boolean':
    case 'undefined':
      return String(value);
    case 'bigint':
      return `${value}n`;
    case 'symbol':
      return value.toString();
    case 'function':
      return 'a function';
  }
  if (value === null) return 'null';
  let json: string | undefined;
  try {
    json = JSON.stringify(value);
  } catch {
    json = undefined; // cyclic, or holds a BigInt
  }
  if (json === undefined) return Array.isArray(value) ? 'an array' : 'an object';
  return json.length > MAX_SHOWN ? `${json.slice(0, MAX_SHOWN)}…` : json;
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/**
 * True when `text` has a lone surrogate, which UTF-8 cannot encode: TextEncoder turns it into
 * U+FFFD, so two different names would be stored as one.
 */
export function hasLoneSurrogate(text: string): boolean {
  return LONE_SURROGATE.test(text);
}
