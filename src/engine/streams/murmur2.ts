/**
 * Kafka's default key partitioner: `toPositive(murmur2(keyBytes)) % numPartitions`, as in the
 * Java client (`org.apache.kafka.common.utils.Utils.murmur2`) and kafkajs's default partitioner,
 * so a key lands in the same partition whichever of those clients produced it.
 * NOTE: librdkafka (and clients built on it) defaults to `consistent_random` (CRC32); set its
 * `partitioner=murmur2_random` to match.
 */

const SEED = 0x9747b28c;
const M = 0x5bd1e995;

/**
 * Kafka's 32-bit murmur2 of `data` (of `data[start, end)` when given), as a signed int (the Java client's `int`).
 *
 * @example
 * murmur2(new TextEncoder().encode('foobar')); // -790332482
 */
export function murmur2(data: Uint8Array, start = 0, end = data.length): number {
  const length = end - start;
  let h = (SEED ^ length) | 0;
  const whole = start + (length & ~3);
  for (let i = start; i < whole; i += 4) {
    // little-endian 4-byte word, as Kafka reads it
    let k = data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16) | (data[i + 3]! << 24);
    k = Math.imul(k, M);
    k ^= k >>> 24;
    k = Math.imul(k, M);
    h = Math.imul(h, M) ^ k;
  }
  // the tail, as Kafka's falling-through switch: 3 bytes → 2 → 1, then one multiply
  const rest = length & 3;
  if (rest > 0) {
    if (rest === 3) h ^= data[whole + 2]! << 16;
    if (rest >= 2) h ^= data[whole + 1]! << 8;
    h ^= data[whole]!;
    h = Math.imul(h, M);
  }
  h ^= h >>> 13;
  h = Math.imul(h, M);
  h ^= h >>> 15;
  return h | 0;
}

/** Kafka's `Utils.toPositive`: clears the sign bit (not `Math.abs`, which differs for MIN_INT). */
export function toPositive(n: number): number {
  return n & 0x7fffffff;
}

/**
 * The partition Kafka's default partitioner picks for a non-null key.
 *
 * @example
 * partitionForKey(new TextEncoder().encode('user-42'), 12); // same as Kafka's Java client
 */
export function partitionForKey(key: Uint8Array, numPartitions: number, start = 0, end = key.length): number {
  return toPositive(murmur2(key, start, end)) % numPartitions;
}
