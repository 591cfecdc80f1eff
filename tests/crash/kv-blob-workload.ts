/** What the large-value crash child writes and the parent checks. */
import { payload } from './workload.js';

/** Keys the child overwrites with large values, one loop per key. */
export const BLOB_KEYS = ['big/a', 'big/b'];

/** Step n's value: always above the 1 MiB an entry holds, so every put writes a blob and a pointer. */
export function blobValue(key: string, n: number): Uint8Array {
  return payload(key, n, [1_100_000, 2_500_000, 4_000_000][n % 3]!);
}
