/**
 * The http benches' vector values: uniform in [-1, 1) with 4 decimals, as the http bench's
 * collection and query bodies hold them (peers.mjs, plain JS, draws the same from dist/).
 */
export function fourDecimalVector(rand: () => number, dims: number): number[] {
  return Array.from({ length: dims }, () => Math.round((rand() * 2 - 1) * 1e4) / 1e4);
}
