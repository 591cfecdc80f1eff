/** Timing shared by the lz4 benches. */

/** Present under node --expose-gc. */
const gc = (globalThis as { gc?: () => void }).gc;

/**
 * Process CPU seconds of one call of `fn`, from a clean heap so no call pays for an earlier one's
 * garbage. One forced GC finds the garbage but leaves freeing it (sweeping, array buffer backing
 * stores) to helper threads, whose CPU time then lands in the next timed call: with one GC the
 * `{ into }` decode, which allocates nothing, ran 30% of its CPU time off the main thread.
 * A second GC starts by finishing the first one's sweeping (into: 8%, lz4-napi blocks 20 -> 6%).
 */
export function cpuSeconds(fn: () => void): number {
  settleHeap();
  const c0 = process.cpuUsage();
  fn();
  const c = process.cpuUsage(c0);
  return (c.user + c.system) / 1e6;
}

/** The two forced GCs `cpuSeconds` starts with (see there), for timers of their own. */
export function settleHeap(): void {
  gc?.();
  gc?.();
}
