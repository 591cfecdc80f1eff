/** Load generation shared by the benches that drive a store or a peer with requests in flight. */

/**
 * Keeps `workers` calls of `send` outstanding until `total` items are sent, each call carrying
 * `perCall` items (counted as it starts, so the workers stop together at `total`). Returns the
 * items sent: `total` rounded up to a whole number of calls.
 *
 * @example
 * const sent = await keepInFlight(4, 100_000, 1000, () => pipelineOf1000().exec());
 */
export async function keepInFlight(workers: number, total: number, perCall: number, send: () => Promise<unknown>): Promise<number> {
  let sent = 0;
  await Promise.all(
    Array.from({ length: workers }, async () => {
      while (sent < total) {
        sent += perCall;
        await send();
      }
    }),
  );
  return sent;
}
