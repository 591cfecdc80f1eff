/**
 * Text from stored UTF-8 exactly as it was written. TextDecoder's default drops a leading U+FEFF,
 * which renamed keys, ids and names that start with one; `fatal` makes bytes that are not UTF-8
 * throw (a TypeError) instead of turning into U+FFFD.
 */
const exact = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * @example
 * decodeUtf8(new TextEncoder().encode('\uFEFFkey')); // '\uFEFFkey', not 'key'
 */
export function decodeUtf8(bytes: Uint8Array): string {
  return exact.decode(bytes);
}
