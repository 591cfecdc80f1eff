/**
 * Order statistics of the benches' samples, one definition for all: the q-quantile of n samples
 * is the sample at index floor(q·n) in ascending order (so the median of an even count is the
 * upper of the middle two, and p99 of 100 samples is the largest). NaN when there are none.
 */

/** The q-quantile (0 ≤ q ≤ 1) of samples already sorted ascending. */
export function quantileOfSorted(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

/** Sorts `samples` ascending in place (numerically) and returns them. */
export function sortAscending(samples: number[]): number[] {
  return samples.sort((a, b) => a - b);
}

/** The median of `samples` (left unsorted). */
export function median(samples: readonly number[]): number {
  return quantileOfSorted(sortAscending([...samples]), 0.5);
}
