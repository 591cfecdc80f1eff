/**
 * The one rule for the engine's bound-like settings (the KV key caches' byte budget and tenant
 * idle time, the open collections' byte budget and idle close): each is a whole number from 0 to
 * Number.MAX_SAFE_INTEGER, or Infinity for no bound. What 0 means is the setting's own (see
 * docs/configuration.md, "Budgets and idle times: one rule").
 */
import { ErrorCode, QuartzError } from '../core/errors.js';
import { showValue } from '../core/show-value.js';

/**
 * Returns `value` if it is a whole number in 0..MAX_SAFE_INTEGER or Infinity; else throws
 * INVALID_ARGUMENT naming the setting. A fraction of a byte or of a millisecond means nothing,
 * and past 2^53 sums of byte counts stop being exact, so neither is taken silently.
 *
 * @example
 * const maxBytes = checkLimit(options.maxOpenBytes ?? DEFAULT_MAX_OPEN_BYTES, 'vectors.maxOpenBytes');
 */
export function checkLimit(value: unknown, name: string): number {
  if (value === Infinity || (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0)) return value;
  throw new QuartzError(ErrorCode.INVALID_ARGUMENT, `${name} must be a whole number from 0 to ${Number.MAX_SAFE_INTEGER}, or Infinity for no bound; got ${showValue(value)}`);
}
