/**
 * Runs `task` over `items` with at most `limit` in flight and settles them all (never stops at
 * the first failure), in input order. Work on many units (a topic's 1,024 partitions) goes to
 * storage together, so an adapter can batch it, but not all at once: a thousand file operations
 * queued together would hold up every other tenant's writes behind them (Node's file I/O runs
 * on a pool of four threads).
 *
 * @example
 * const results = await settleLimited(names, 32, (name) => storage.dropUnit(name));
 */
export async function settleLimited<T, R>(items: readonly T[], limit: number, task: (item: T, index: number) => Promise<R> | R): Promise<PromiseSettledResult<R>[]> {
  const results = new Array<PromiseSettledResult<R>>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      try {
        results[i] = { status: 'fulfilled', value: await task(items[i]!, i) };
      } catch (reason) {
        results[i] = { status: 'rejected', reason };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

/** The first rejection's reason among settled results, thrown; otherwise their values. */
export function valuesOrThrow<R>(results: PromiseSettledResult<R>[]): R[] {
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed !== undefined) throw failed.reason;
  return results.map((r) => (r as PromiseFulfilledResult<R>).value);
}
