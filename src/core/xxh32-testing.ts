/**
 * XXH32 in plain JS, straight from the specification: tests check the WASM hash against it and
 * build frame headers with it independently of the code under test. Platform-free.
 */

/**
 * @example
 * const headerChecksum = (xxh32Reference(descriptor) >>> 8) & 0xff;
 */
export function xxh32Reference(b: Uint8Array, seed = 0): number {
  const P1 = 2654435761, P2 = 2246822519, P3 = 3266489917, P4 = 668265263, P5 = 374761393;
  const rotl = (x: number, r: number) => ((x << r) | (x >>> (32 - r))) >>> 0;
  const u32 = (i: number) => (b[i]! | (b[i + 1]! << 8) | (b[i + 2]! << 16) | (b[i + 3]! << 24)) >>> 0;
  let i = 0;
  let h: number;
  if (b.length >= 16) {
    const v = [(seed + P1 + P2) >>> 0, (seed + P2) >>> 0, seed >>> 0, (seed - P1) >>> 0];
    for (; i + 16 <= b.length; i += 16) {
      for (let k = 0; k < 4; k++) v[k] = Math.imul(rotl((v[k]! + Math.imul(u32(i + 4 * k), P2)) >>> 0, 13), P1) >>> 0;
    }
    h = (rotl(v[0]!, 1) + rotl(v[1]!, 7) + rotl(v[2]!, 12) + rotl(v[3]!, 18)) >>> 0;
  } else {
    h = (seed + P5) >>> 0;
  }
  h = (h + b.length) >>> 0;
  for (; i + 4 <= b.length; i += 4) h = Math.imul(rotl((h + Math.imul(u32(i), P3)) >>> 0, 17), P4) >>> 0;
  for (; i < b.length; i++) h = Math.imul(rotl((h + Math.imul(b[i]!, P5)) >>> 0, 11), P1) >>> 0;
  h = Math.imul(h ^ (h >>> 15), P2) >>> 0;
  h = Math.imul(h ^ (h >>> 13), P3) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}
