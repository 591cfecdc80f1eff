// xxHash32 (Yann Collet's XXH32 specification), used by the LZ4 frame format for header,
// block and content checksums. One-shot `xxh32`, and a streaming form (xxh32Init /
// xxh32Stripes / xxh32Digest) so the frame codec can hash each block while it is in cache.

const P1: u32 = 2654435761;
const P2: u32 = 2246822519;
const P3: u32 = 3266489917;
const P4: u32 = 668265263;
const P5: u32 = 374761393;

/** The four accumulators v1..v4 as the lanes of one vector: a 16-byte stripe is one load. */
// @ts-ignore: decorator
@inline function initLanes(seed: u32): v128 {
  let v = i32x4.splat(seed);
  v = i32x4.replace_lane(v, 0, seed + P1 + P2);
  v = i32x4.replace_lane(v, 1, seed + P2);
  return i32x4.replace_lane(v, 3, seed - P1);
}

/**
 * Runs the stripes in [p, end) (end - p a multiple of 16) through the lanes. The input's
 * multiply by P2 does not depend on the lanes, so each stripe's chain is add, rotate, multiply.
 */
// @ts-ignore: decorator
@inline function stripes(lanes: v128, p: usize, end: usize): v128 {
  const p1 = i32x4.splat(P1);
  const p2 = i32x4.splat(P2);
  let v = lanes;
  // Two stripes a turn: both input multiplies issue ahead of the chain, half the loop overhead.
  while (end - p >= 32) {
    const a = i32x4.mul(v128.load(p), p2);
    const b = i32x4.mul(v128.load(p, 16), p2);
    v = i32x4.add(v, a);
    v = i32x4.mul(v128.or(i32x4.shl(v, 13), i32x4.shr_u(v, 19)), p1);
    v = i32x4.add(v, b);
    v = i32x4.mul(v128.or(i32x4.shl(v, 13), i32x4.shr_u(v, 19)), p1);
    p += 32;
  }
  while (p < end) {
    v = i32x4.add(v, i32x4.mul(v128.load(p), p2));
    v = v128.or(i32x4.shl(v, 13), i32x4.shr_u(v, 19));
    v = i32x4.mul(v, p1);
    p += 16;
  }
  return v;
}

/** The final steps: lane merge (or seed + P5 below 16 bytes), the `total & 15` tail bytes, avalanche. */
// @ts-ignore: decorator
@inline function finish(lanes: v128, seed: u32, tail: usize, total: usize): u32 {
  let h: u32;
  if (total >= 16) {
    h = rotl<u32>(i32x4.extract_lane(lanes, 0), 1) + rotl<u32>(i32x4.extract_lane(lanes, 1), 7)
      + rotl<u32>(i32x4.extract_lane(lanes, 2), 12) + rotl<u32>(i32x4.extract_lane(lanes, 3), 18);
  } else {
    h = seed + P5;
  }
  h += <u32>total;
  let p = tail;
  const end = tail + (total & 15);
  while (end - p >= 4) {
    h = rotl<u32>(h + load<u32>(p) * P3, 17) * P4;
    p += 4;
  }
  while (p < end) {
    h = rotl<u32>(h + <u32>load<u8>(p) * P5, 11) * P1;
    p++;
  }
  h ^= h >>> 15;
  h *= P2;
  h ^= h >>> 13;
  h *= P3;
  h ^= h >>> 16;
  return h;
}

/** XXH32 of `len` bytes at `ptr` with `seed`. */
export function xxh32(ptr: usize, len: usize, seed: u32): u32 {
  const whole = len & ~(<usize>15);
  const lanes = stripes(initLanes(seed), ptr, ptr + whole);
  return finish(lanes, seed, ptr + whole, len);
}

// One streaming state: the codec instance is single-threaded and a frame is hashed by one
// call (or one resumed call sequence) at a time.
let streamLanes: v128 = i32x4.splat(0);
let streamSeed: u32 = 0;

/** Starts a streaming XXH32 with `seed`. */
export function xxh32Init(seed: u32): void {
  streamLanes = initLanes(seed);
  streamSeed = seed;
}

/**
 * Hashes the whole 16-byte stripes of [ptr, ptr+len) into the streaming state and returns how
 * many bytes it took (len rounded down to 16); the rest must be offered again with what follows.
 */
export function xxh32Stripes(ptr: usize, len: usize): usize {
  const whole = len & ~(<usize>15);
  streamLanes = stripes(streamLanes, ptr, ptr + whole);
  return whole;
}

/**
 * The streaming hash of `total` bytes, all of whose whole stripes went through xxh32Stripes;
 * `tail` points at the remaining `total & 15` bytes.
 */
export function xxh32Digest(tail: usize, total: usize): u32 {
  return finish(streamLanes, streamSeed, tail, total);
}
