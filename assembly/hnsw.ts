// HNSW vector index (Malkov & Yashunin, "Efficient and robust approximate nearest neighbor search
// using Hierarchical Navigable Small World graphs", TPAMI 2018) over f32 vectors kept in this
// instance's linear memory. One wasm instance holds exactly one index: its state is this file's
// globals, so the JS wrapper instantiates the module once per index.
//
// Layout: a node's level-0 record is [count u32][M0 links u32][label u32][level u32][upper ptr]
// padded to 16 bytes, followed by its vector (dims rounded up to 4 floats, zero padded). Records
// live in chunks of 1024 so the index grows without a declared capacity; only the first chunk is
// ever copied, while it grows from 32 to 128 to 1024 nodes (see addChunk).
// Levels above 0 live in a per-node block of level × (1 + M) u32.
// Distances are "smaller is closer": squared L2, or 1 - dot for cosine (unit vectors) and dot.
import { crc32c } from './crc32c';

const METRIC_L2: i32 = 0;
const METRIC_COSINE: i32 = 1;
const METRIC_DOT: i32 = 2;

const MAX_DIMS: i32 = 4096;
const MAX_LEVEL: i32 = 30;
const CHUNK_SHIFT: u32 = 10;
const CHUNK_NODES: u32 = 1 << CHUNK_SHIFT;
const CHUNK_MASK: u32 = CHUNK_NODES - 1;
const FLAG_DELETED: u8 = 1;
const NONE: u32 = 0xffffffff;

// Error codes handed to JS (src/core/hnsw.ts maps them to QuartzError).
const E_ARG: i32 = -1;
const E_NONFINITE: i32 = -2;
const E_ZERO: i32 = -3;
const E_CORRUPT: i32 = -4;
const E_VERSION: i32 = -5;

// Exact-scan threshold: scanning `a` allowed vectors costs `a` distances; the graph walk costs
// about filterBeta × ef / selectivity (selectivity = a / live). Exact wins when
// a² ≤ filterBeta × ef × live; unfiltered (a = live) that is live ≤ filterBeta × ef. filterBeta
// is the measured distances-per-result of a walk (bench/hnsw --filter prints it).
let filterBeta: f64 = 16.0;

// ---- configuration ----
let dims: i32 = 0;
let dimsPadded: i32 = 0;
let metric: i32 = 0;
let M: i32 = 16;
let M0: i32 = 32;
let efConstruction: i32 = 200;
let levelMult: f64 = 0;
let rng: u64 = 0;

let labelOff: usize = 0;
let levelOff: usize = 0;
let upperOff: usize = 0;
let vecOff: usize = 0;
let recSize: usize = 0;
let upperStride: usize = 0; // bytes of one upper level list: (1 + M) u32

// ---- storage ----
let chunkTable: usize = 0;
let chunkCount: u32 = 0;
let chunkTableCap: u32 = 0;
let capacity: u32 = 0; // slots backed by chunks
let slots: u32 = 0; // high-water mark of used slots
let live: u32 = 0;
let deletedCount: u32 = 0;
let entry: u32 = NONE;
let maxLevel: i32 = -1;
let upperBytes: usize = 0;

let visited: usize = 0; // u32 epoch tag per slot
let epoch: u32 = 0;
let allowTags: usize = 0; // u32 epoch tag per slot for the current filter
let allowEpoch: u32 = 0;
let flags: usize = 0; // u8 per slot

let freeList: usize = 0;
let freeLen: u32 = 0;
let freeCap: u32 = 0;

// id → slot: open addressing, pairs of (key u32, slot + 1 u32; 0 = empty), linear probing.
let mapPtr: usize = 0;
let mapBits: u32 = 0;
let mapCount: u32 = 0;

// ---- search scratch (allocated up front, grown only on insert or when ef grows) ----
let candHeap: usize = 0; // min-heap of (f32 dist, u32 slot)
let candLen: i32 = 0;
let candCap: u32 = 0;
let resHeap: usize = 0; // max-heap of (f32 dist, u32 slot)
let resLen: i32 = 0;
let resCap: i32 = 0;
let gather: usize = 0; // (slot, vector pointer) of the unvisited neighbours of the node being expanded
let sortBuf: usize = 0; // sorted (dist, slot) candidates for neighbour selection
let sortCap: i32 = 0;
let shrinkBuf: usize = 0; // candidates when a full neighbour list must be pruned
let queryBuf: usize = 0;
let allowList: usize = 0; // slots allowed by the current filter
let allowLen: u32 = 0;
let allowListCap: u32 = 0;
let filterActive: bool = false;

let touchSink: u32 = 0;
let touchSecond: bool = false; // vectors span more than one cache line
let distCount: f64 = 0;
let lastPlan: i32 = 0;
let lastErrorIndex: i32 = 0;
let lastErrorReason: i32 = 0;

// ================================================================ helpers

// @ts-ignore: decorator
@inline function rec(slot: u32): usize {
  return load<usize>(chunkTable + (<usize>(slot >>> CHUNK_SHIFT) << alignof<usize>())) + <usize>(slot & CHUNK_MASK) * recSize;
}

// @ts-ignore: decorator
@inline function vecOf(slot: u32): usize {
  return rec(slot) + vecOff;
}

// @ts-ignore: decorator
@inline function linksAt(slot: u32, level: i32): usize {
  if (level == 0) return rec(slot);
  return load<usize>(rec(slot) + upperOff) + <usize>(level - 1) * upperStride;
}

// @ts-ignore: decorator
@inline function levelOf(slot: u32): i32 {
  return load<i32>(rec(slot) + levelOff);
}

// @ts-ignore: decorator
@inline function isDeleted(slot: u32): bool {
  return (load<u8>(flags + <usize>slot) & FLAG_DELETED) != 0;
}

// @ts-ignore: decorator
@inline function maxLinks(level: i32): i32 {
  return level == 0 ? M0 : M;
}

function hsum(v: v128): f32 {
  return f32x4.extract_lane(v, 0) + f32x4.extract_lane(v, 1) + f32x4.extract_lane(v, 2) + f32x4.extract_lane(v, 3);
}

function l2sq(a: usize, b: usize): f32 {
  const bytes = <usize>dimsPadded << 2;
  const end16 = bytes & ~(<usize>63);
  let s0 = f32x4.splat(0);
  let s1 = s0;
  let i: usize = 0;
  for (; i < end16; i += 64) {
    const d0 = f32x4.sub(v128.load(a + i), v128.load(b + i));
    const d1 = f32x4.sub(v128.load(a + i, 16), v128.load(b + i, 16));
    const d2 = f32x4.sub(v128.load(a + i, 32), v128.load(b + i, 32));
    const d3 = f32x4.sub(v128.load(a + i, 48), v128.load(b + i, 48));
    s0 = f32x4.add(s0, f32x4.add(f32x4.mul(d0, d0), f32x4.mul(d1, d1)));
    s1 = f32x4.add(s1, f32x4.add(f32x4.mul(d2, d2), f32x4.mul(d3, d3)));
  }
  for (; i < bytes; i += 16) {
    const d = f32x4.sub(v128.load(a + i), v128.load(b + i));
    s0 = f32x4.add(s0, f32x4.mul(d, d));
  }
  return hsum(f32x4.add(s0, s1));
}

function dot(a: usize, b: usize): f32 {
  const bytes = <usize>dimsPadded << 2;
  const end16 = bytes & ~(<usize>63);
  let s0 = f32x4.splat(0);
  let s1 = s0;
  let i: usize = 0;
  for (; i < end16; i += 64) {
    s0 = f32x4.add(s0, f32x4.add(f32x4.mul(v128.load(a + i), v128.load(b + i)), f32x4.mul(v128.load(a + i, 16), v128.load(b + i, 16))));
    s1 = f32x4.add(s1, f32x4.add(f32x4.mul(v128.load(a + i, 32), v128.load(b + i, 32)), f32x4.mul(v128.load(a + i, 48), v128.load(b + i, 48))));
  }
  for (; i < bytes; i += 16) {
    s0 = f32x4.add(s0, f32x4.mul(v128.load(a + i), v128.load(b + i)));
  }
  return hsum(f32x4.add(s0, s1));
}

// @ts-ignore: decorator
@inline function distance(a: usize, b: usize): f32 {
  if (metric == METRIC_L2) return l2sq(a, b);
  return <f32>1.0 - dot(a, b);
}

// The exact scan measures two vectors per pass against the same query: the two sums are
// independent dependency chains, so their add latencies overlap (one sum alone waits on each add).
// Each sum takes exactly the steps of l2sq/dot, in their order, so the distances are bit-identical.
/** The second distance of the last distancePair (a function returns one value). */
let pairSecond: f32 = 0;

function l2sqPair(q: usize, a: usize, b: usize): f32 {
  const bytes = <usize>dimsPadded << 2;
  const end16 = bytes & ~(<usize>63);
  let a0 = f32x4.splat(0);
  let a1 = a0;
  let b0 = a0;
  let b1 = a0;
  let i: usize = 0;
  for (; i < end16; i += 64) {
    const q0 = v128.load(q + i);
    const q1 = v128.load(q + i, 16);
    const q2 = v128.load(q + i, 32);
    const q3 = v128.load(q + i, 48);
    const x0 = f32x4.sub(q0, v128.load(a + i));
    const x1 = f32x4.sub(q1, v128.load(a + i, 16));
    const y0 = f32x4.sub(q0, v128.load(b + i));
    const y1 = f32x4.sub(q1, v128.load(b + i, 16));
    a0 = f32x4.add(a0, f32x4.add(f32x4.mul(x0, x0), f32x4.mul(x1, x1)));
    b0 = f32x4.add(b0, f32x4.add(f32x4.mul(y0, y0), f32x4.mul(y1, y1)));
    const x2 = f32x4.sub(q2, v128.load(a + i, 32));
    const x3 = f32x4.sub(q3, v128.load(a + i, 48));
    const y2 = f32x4.sub(q2, v128.load(b + i, 32));
    const y3 = f32x4.sub(q3, v128.load(b + i, 48));
    a1 = f32x4.add(a1, f32x4.add(f32x4.mul(x2, x2), f32x4.mul(x3, x3)));
    b1 = f32x4.add(b1, f32x4.add(f32x4.mul(y2, y2), f32x4.mul(y3, y3)));
  }
  for (; i < bytes; i += 16) {
    const qi = v128.load(q + i);
    const x = f32x4.sub(qi, v128.load(a + i));
    const y = f32x4.sub(qi, v128.load(b + i));
    a0 = f32x4.add(a0, f32x4.mul(x, x));
    b0 = f32x4.add(b0, f32x4.mul(y, y));
  }
  pairSecond = hsum(f32x4.add(b0, b1));
  return hsum(f32x4.add(a0, a1));
}

function dotPair(q: usize, a: usize, b: usize): f32 {
  const bytes = <usize>dimsPadded << 2;
  const end16 = bytes & ~(<usize>63);
  let a0 = f32x4.splat(0);
  let a1 = a0;
  let b0 = a0;
  let b1 = a0;
  let i: usize = 0;
  for (; i < end16; i += 64) {
    const q0 = v128.load(q + i);
    const q1 = v128.load(q + i, 16);
    const q2 = v128.load(q + i, 32);
    const q3 = v128.load(q + i, 48);
    a0 = f32x4.add(a0, f32x4.add(f32x4.mul(q0, v128.load(a + i)), f32x4.mul(q1, v128.load(a + i, 16))));
    b0 = f32x4.add(b0, f32x4.add(f32x4.mul(q0, v128.load(b + i)), f32x4.mul(q1, v128.load(b + i, 16))));
    a1 = f32x4.add(a1, f32x4.add(f32x4.mul(q2, v128.load(a + i, 32)), f32x4.mul(q3, v128.load(a + i, 48))));
    b1 = f32x4.add(b1, f32x4.add(f32x4.mul(q2, v128.load(b + i, 32)), f32x4.mul(q3, v128.load(b + i, 48))));
  }
  for (; i < bytes; i += 16) {
    const qi = v128.load(q + i);
    a0 = f32x4.add(a0, f32x4.mul(qi, v128.load(a + i)));
    b0 = f32x4.add(b0, f32x4.mul(qi, v128.load(b + i)));
  }
  pairSecond = <f32>1.0 - hsum(f32x4.add(b0, b1));
  return <f32>1.0 - hsum(f32x4.add(a0, a1));
}

/** distance(q, a), and distance(q, b) into pairSecond. */
// @ts-ignore: decorator
@inline function distancePair(q: usize, a: usize, b: usize): f32 {
  if (metric == METRIC_L2) return l2sqPair(q, a, b);
  return dotPair(q, a, b);
}

function nextRandom(): u64 {
  // xorshift64*: seeded per index so builds are reproducible.
  let x = rng;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  rng = x;
  return x * 0x2545f4914f6cdd1d;
}

function randomLevel(): i32 {
  const u = <f64>((nextRandom() >> 11) + 1) * (1.0 / 9007199254740992.0); // (0, 1]
  const l = <i32>Math.floor(-Math.log(u) * levelMult);
  return l > MAX_LEVEL ? MAX_LEVEL : l;
}

function zalloc(bytes: usize): usize {
  const p = heap.alloc(bytes);
  memory.fill(p, 0, bytes);
  return p;
}

function grow(ptr: usize, oldBytes: usize, newBytes: usize): usize {
  const p = ptr == 0 ? heap.alloc(newBytes) : heap.realloc(ptr, newBytes);
  memory.fill(p + oldBytes, 0, newBytes - oldBytes);
  return p;
}

// ================================================================ heaps

// @ts-ignore: decorator
@inline function candPush(d: f32, s: u32): void {
  let i = candLen++;
  while (i > 0) {
    const p = (i - 1) >> 1;
    const pp = candHeap + (<usize>p << 3);
    if (load<f32>(pp) <= d) break;
    store<u64>(candHeap + (<usize>i << 3), load<u64>(pp));
    i = p;
  }
  const at = candHeap + (<usize>i << 3);
  store<f32>(at, d);
  store<u32>(at, s, 4);
}

function candPop(): void {
  const n = --candLen;
  if (n == 0) return;
  const lastD = load<f32>(candHeap + (<usize>n << 3));
  const last = load<u64>(candHeap + (<usize>n << 3));
  let i = 0;
  while (true) {
    let c = 2 * i + 1;
    if (c >= n) break;
    let cd = load<f32>(candHeap + (<usize>c << 3));
    if (c + 1 < n) {
      const rd = load<f32>(candHeap + (<usize>(c + 1) << 3));
      if (rd < cd) { c++; cd = rd; }
    }
    if (lastD <= cd) break;
    store<u64>(candHeap + (<usize>i << 3), load<u64>(candHeap + (<usize>c << 3)));
    i = c;
  }
  store<u64>(candHeap + (<usize>i << 3), last);
}

// @ts-ignore: decorator
@inline function resPush(d: f32, s: u32): void {
  let i = resLen++;
  while (i > 0) {
    const p = (i - 1) >> 1;
    const pp = resHeap + (<usize>p << 3);
    if (load<f32>(pp) >= d) break;
    store<u64>(resHeap + (<usize>i << 3), load<u64>(pp));
    i = p;
  }
  const at = resHeap + (<usize>i << 3);
  store<f32>(at, d);
  store<u32>(at, s, 4);
}

function resPop(): void {
  const n = --resLen;
  if (n == 0) return;
  resSiftDown(load<f32>(resHeap + (<usize>n << 3)), load<u64>(resHeap + (<usize>n << 3)), n);
}

/** Replaces the worst result with a closer one: one sift-down instead of a push and a pop. */
function resReplaceTop(d: f32, s: u32): void {
  resSiftDown(d, (<u64>s << 32) | <u64>reinterpret<u32>(d), resLen);
}

function resSiftDown(lastD: f32, last: u64, n: i32): void {
  let i = 0;
  while (true) {
    let c = 2 * i + 1;
    if (c >= n) break;
    let cd = load<f32>(resHeap + (<usize>c << 3));
    if (c + 1 < n) {
      const rd = load<f32>(resHeap + (<usize>(c + 1) << 3));
      if (rd > cd) { c++; cd = rd; }
    }
    if (lastD >= cd) break;
    store<u64>(resHeap + (<usize>i << 3), load<u64>(resHeap + (<usize>c << 3)));
    i = c;
  }
  store<u64>(resHeap + (<usize>i << 3), last);
}

function ensureResCap(ef: i32): void {
  if (ef + 2 <= resCap) return;
  const cap = ef + 2;
  resHeap = grow(resHeap, <usize>resCap << 3, <usize>cap << 3);
  resCap = cap;
}

function ensureSortCap(n: i32): void {
  if (n <= sortCap) return;
  sortBuf = grow(sortBuf, <usize>sortCap << 3, <usize>n << 3);
  sortCap = n;
}

/** Drains the result heap into sortBuf, ascending by distance; returns the count. */
function drainResultsSorted(): i32 {
  const n = resLen;
  ensureSortCap(n);
  for (let i = n - 1; i >= 0; i--) {
    store<u64>(sortBuf + (<usize>i << 3), load<u64>(resHeap));
    resPop();
  }
  return n;
}

function newEpoch(): u32 {
  epoch++;
  if (epoch == 0) {
    memory.fill(visited, 0, <usize>capacity << 2);
    epoch = 1;
  }
  return epoch;
}

// ================================================================ id map

// @ts-ignore: decorator
@inline function mapHash(key: u32): u32 {
  return (key * 0x9e3779b1) >>> (32 - mapBits);
}

function mapGet(key: u32): u32 {
  const mask = (<u32>1 << mapBits) - 1;
  let i = mapHash(key);
  while (true) {
    const p = mapPtr + (<usize>i << 3);
    const v = load<u32>(p, 4);
    if (v == 0) return NONE;
    if (load<u32>(p) == key) return v - 1;
    i = (i + 1) & mask;
  }
}

function mapInsertRaw(key: u32, slot: u32): bool {
  const mask = (<u32>1 << mapBits) - 1;
  let i = mapHash(key);
  while (true) {
    const p = mapPtr + (<usize>i << 3);
    const v = load<u32>(p, 4);
    if (v == 0) {
      store<u32>(p, key);
      store<u32>(p, slot + 1, 4);
      mapCount++;
      return true;
    }
    if (load<u32>(p) == key) return false;
    i = (i + 1) & mask;
  }
}

function mapPut(key: u32, slot: u32): bool {
  if ((mapCount + 1) * 2 > (<u32>1 << mapBits)) {
    const oldPtr = mapPtr;
    const oldSize = <u32>1 << mapBits;
    mapBits++;
    mapPtr = zalloc(<usize>8 << mapBits);
    mapCount = 0;
    for (let i: u32 = 0; i < oldSize; i++) {
      const p = oldPtr + (<usize>i << 3);
      const v = load<u32>(p, 4);
      if (v != 0) mapInsertRaw(load<u32>(p), v - 1);
    }
    heap.free(oldPtr);
  }
  return mapInsertRaw(key, slot);
}

function mapRemove(key: u32): void {
  const mask = (<u32>1 << mapBits) - 1;
  let i = mapHash(key);
  while (true) {
    const p = mapPtr + (<usize>i << 3);
    const v = load<u32>(p, 4);
    if (v == 0) return;
    if (load<u32>(p) == key) break;
    i = (i + 1) & mask;
  }
  // Backward-shift deletion keeps probe chains intact without tombstones.
  let j = i;
  while (true) {
    j = (j + 1) & mask;
    const pj = mapPtr + (<usize>j << 3);
    if (load<u32>(pj, 4) == 0) break;
    const home = mapHash(load<u32>(pj));
    const between = i <= j ? (home > i && home <= j) : (home > i || home <= j);
    if (between) continue;
    store<u64>(mapPtr + (<usize>i << 3), load<u64>(pj));
    i = j;
  }
  store<u64>(mapPtr + (<usize>i << 3), 0);
  mapCount--;
}

// ================================================================ storage growth

// The first chunk starts this small and grows to 4x that, then to CHUNK_NODES: a small index (a
// collection of a hundred vectors) would otherwise commit a whole chunk, ~300 KiB at 32 dims,
// 3 MiB at 768. Not by doubling all the way: the copies left behind (up to 512 nodes) could not be
// reused for chunks, and the allocator doubled the memory earlier (20,000 x 128: 28 MiB, not 18).
const FIRST_CHUNK_NODES: u32 = 32;

function addChunk(): void {
  if (chunkCount == 1 && capacity < CHUNK_NODES) {
    // Moves chunk 0 (realloc): safe because no caller of newSlot holds a record pointer across it.
    const next = capacity < FIRST_CHUNK_NODES << 2 ? capacity << 2 : CHUNK_NODES;
    store<usize>(chunkTable, grow(load<usize>(chunkTable), <usize>capacity * recSize, <usize>next * recSize));
    growSlotTables(next);
    return;
  }
  if (chunkCount == chunkTableCap) {
    const cap = chunkTableCap == 0 ? 16 : chunkTableCap * 2;
    chunkTable = grow(chunkTable, <usize>chunkTableCap << alignof<usize>(), <usize>cap << alignof<usize>());
    chunkTableCap = cap;
  }
  const nodes = chunkCount == 0 ? FIRST_CHUNK_NODES : CHUNK_NODES;
  store<usize>(chunkTable + (<usize>chunkCount << alignof<usize>()), zalloc(<usize>nodes * recSize));
  chunkCount++;
  growSlotTables(capacity + nodes);
}

/** Grows the per-slot tables (visit and filter tags, flags, the candidate heap) to `newCapacity` slots. */
function growSlotTables(newCapacity: u32): void {
  const old = capacity;
  capacity = newCapacity;
  visited = grow(visited, <usize>old << 2, <usize>capacity << 2);
  allowTags = grow(allowTags, <usize>old << 2, <usize>capacity << 2);
  flags = grow(flags, <usize>old, <usize>capacity);
  candHeap = grow(candHeap, <usize>candCap << 3, <usize>(capacity + 1) << 3);
  candCap = capacity + 1;
}

function newSlot(): u32 {
  if (slots == capacity) addChunk();
  return slots++;
}

// ================================================================ search

/**
 * Best-first search of one layer from `ep` (paper, Algorithm 2). Deleted nodes (and, with a
 * filter, disallowed ones) are traversed but never enter the results. Leaves up to `ef` results
 * in the result heap.
 */
function searchLayer(q: usize, ep: u32, level: i32, ef: i32, useFilter: bool): void {
  const ep0 = newEpoch();
  const checkDeleted = deletedCount > 0;
  candLen = 0;
  resLen = 0;
  let worst: f32 = Infinity;
  const d0 = distance(q, vecOf(ep));
  store<u32>(visited + (<usize>ep << 2), ep0);
  candPush(d0, ep);
  if (!(checkDeleted && isDeleted(ep)) && !(useFilter && load<u32>(allowTags + (<usize>ep << 2)) != allowEpoch)) {
    resPush(d0, ep);
    worst = d0;
  }
  let sink: u32 = 0;
  let evaluated: u32 = 1;
  while (candLen > 0) {
    const cd = load<f32>(candHeap);
    const c = load<u32>(candHeap, 4);
    if (cd > worst && resLen >= ef) break;
    candPop();
    const links = linksAt(c, level);
    const cnt = load<u32>(links);
    // Gather unvisited neighbours first, touching each vector so the cache misses overlap
    // (wasm has no prefetch instruction); then compute their distances back to back.
    let nNew: u32 = 0;
    for (let i: u32 = 0; i < cnt; i++) {
      const n = load<u32>(links + 4 + (<usize>i << 2));
      const vp = visited + (<usize>n << 2);
      if (load<u32>(vp) != ep0) {
        store<u32>(vp, ep0);
        const v = vecOf(n);
        const g = gather + (<usize>nNew << 3);
        store<u32>(g, n);
        store<usize>(g, v, 4);
        nNew++;
        sink ^= load<u32>(v);
      }
    }
    evaluated += nNew;
    for (let j: u32 = 0; j < nNew; j++) {
      const g = gather + (<usize>j << 3);
      const n = load<u32>(g);
      if (touchSecond && j + 1 < nNew) sink ^= load<u32>(load<usize>(g, 12), 64);
      const d = distance(q, load<usize>(g, 4));
      if (resLen < ef || d < worst) {
        candPush(d, n);
        if (checkDeleted && isDeleted(n)) continue;
        if (useFilter && load<u32>(allowTags + (<usize>n << 2)) != allowEpoch) continue;
        if (resLen < ef) resPush(d, n);
        else resReplaceTop(d, n);
        worst = load<f32>(resHeap);
      }
    }
  }
  touchSink = sink;
  distCount += <f64>evaluated;
}

/** Greedy descent on an upper layer (ef = 1). */
function greedy(q: usize, ep: u32, epDist: f32, level: i32): u32 {
  let cur = ep;
  let curDist = epDist;
  let changed = true;
  while (changed) {
    changed = false;
    const links = linksAt(cur, level);
    const cnt = load<u32>(links);
    for (let i: u32 = 0; i < cnt; i++) {
      const n = load<u32>(links + 4 + (<usize>i << 2));
      const d = distance(q, vecOf(n));
      if (d < curDist) {
        curDist = d;
        cur = n;
        changed = true;
      }
    }
  }
  greedyDist = curDist;
  return cur;
}
let greedyDist: f32 = 0;

function descend(q: usize, toLevel: i32): u32 {
  let cur = entry;
  let curDist = distance(q, vecOf(cur));
  for (let l = maxLevel; l > toLevel; l--) {
    cur = greedy(q, cur, curDist, l);
    curDist = greedyDist;
  }
  return cur;
}

// ================================================================ construction

/**
 * Neighbour selection heuristic (paper, Algorithm 4, without extending candidates or keeping
 * pruned ones): walk candidates nearest first and keep one only if it is closer to the base than
 * to every neighbour kept so far. `buf` holds `len` (dist, slot) pairs sorted ascending.
 * Writes the kept slots to `out` (a links list: count, then slots) and returns how many.
 */
function selectNeighbours(buf: usize, len: i32, maxM: i32, out: usize): i32 {
  let n = 0;
  for (let i = 0; i < len && n < maxM; i++) {
    const e = load<u32>(buf + (<usize>i << 3), 4);
    if (len > maxM) {
      const de = load<f32>(buf + (<usize>i << 3));
      const ve = vecOf(e);
      let good = true;
      for (let j = 0; j < n; j++) {
        if (distance(ve, vecOf(load<u32>(out + 4 + (<usize>j << 2)))) < de) {
          good = false;
          break;
        }
      }
      if (!good) continue;
    }
    store<u32>(out + 4 + (<usize>n << 2), e);
    n++;
  }
  store<u32>(out, <u32>n);
  return n;
}

function insertionSort(buf: usize, len: i32): void {
  for (let i = 1; i < len; i++) {
    const item = load<u64>(buf + (<usize>i << 3));
    const d = load<f32>(buf + (<usize>i << 3));
    let j = i - 1;
    while (j >= 0 && load<f32>(buf + (<usize>j << 3)) > d) {
      store<u64>(buf + (<usize>(j + 1) << 3), load<u64>(buf + (<usize>j << 3)));
      j--;
    }
    store<u64>(buf + (<usize>(j + 1) << 3), item);
  }
}

/** Adds `slot` to `s`'s list at `level`, pruning with the heuristic when the list is full. */
function addLink(s: u32, slot: u32, level: i32): void {
  const links = linksAt(s, level);
  const cnt = <i32>load<u32>(links);
  const maxM = maxLinks(level);
  if (cnt < maxM) {
    store<u32>(links + 4 + (<usize>cnt << 2), slot);
    store<u32>(links, <u32>(cnt + 1));
    return;
  }
  const vs = vecOf(s);
  store<f32>(shrinkBuf, distance(vs, vecOf(slot)));
  store<u32>(shrinkBuf, slot, 4);
  for (let i = 0; i < cnt; i++) {
    const m = load<u32>(links + 4 + (<usize>i << 2));
    const p = shrinkBuf + (<usize>(i + 1) << 3);
    store<f32>(p, distance(vs, vecOf(m)));
    store<u32>(p, m, 4);
  }
  insertionSort(shrinkBuf, cnt + 1);
  selectNeighbours(shrinkBuf, cnt + 1, maxM, links);
}

/** Links a slot whose vector, label and level are set (paper, Algorithm 1). */
function linkNode(slot: u32, level: i32): void {
  if (entry == NONE) {
    entry = slot;
    maxLevel = level;
    return;
  }
  const q = vecOf(slot);
  let cur = entry;
  let curDist = distance(q, vecOf(cur));
  for (let l = maxLevel; l > level; l--) {
    cur = greedy(q, cur, curDist, l);
    curDist = greedyDist;
  }
  for (let l = min(level, maxLevel); l >= 0; l--) {
    searchLayer(q, cur, l, efConstruction, false);
    const n = drainResultsSorted();
    if (n > 0) cur = load<u32>(sortBuf, 4);
    const own = linksAt(slot, l);
    const kept = selectNeighbours(sortBuf, n, maxLinks(l), own);
    for (let i = 0; i < kept; i++) {
      addLink(load<u32>(own + 4 + (<usize>i << 2)), slot, l);
    }
  }
  if (level > maxLevel) {
    entry = slot;
    maxLevel = level;
  }
}

/**
 * Detaches a tombstoned slot before it is reused. Each out-neighbour n drops its link to the
 * slot and, in its place, links to the nearest of the slot's neighbours that it lacks, so paths
 * that ran through the old node survive. n's other links stay as they were: re-pruning them with
 * the heuristic thins lists that reverse links had filled, which measurably costs recall.
 */
function detachSlot(x: u32): void {
  const oldLevel = levelOf(x);
  for (let l = 0; l <= oldLevel; l++) {
    const xl = linksAt(x, l);
    const xc = load<u32>(xl);
    for (let i: u32 = 0; i < xc; i++) {
      const n = load<u32>(xl + 4 + (<usize>i << 2));
      if (n == x) continue;
      const nl = linksAt(n, l);
      let nc = load<u32>(nl);
      const ep0 = newEpoch();
      store<u32>(visited + (<usize>n << 2), ep0);
      for (let j: u32 = 0; j < nc; j++) {
        const m = load<u32>(nl + 4 + (<usize>j << 2));
        if (m == x) {
          nc--;
          store<u32>(nl + 4 + (<usize>j << 2), load<u32>(nl + 4 + (<usize>nc << 2)));
          j--;
          continue;
        }
        store<u32>(visited + (<usize>m << 2), ep0);
      }
      store<u32>(visited + (<usize>x << 2), ep0);
      const vn = vecOf(n);
      let best: u32 = NONE;
      let bestD: f32 = Infinity;
      for (let j: u32 = 0; j < xc; j++) {
        const m = load<u32>(xl + 4 + (<usize>j << 2));
        if (load<u32>(visited + (<usize>m << 2)) == ep0) continue;
        const d = distance(vn, vecOf(m));
        if (d < bestD) {
          bestD = d;
          best = m;
        }
      }
      if (best != NONE && nc < <u32>maxLinks(l)) {
        store<u32>(nl + 4 + (<usize>nc << 2), best);
        nc++;
      }
      store<u32>(nl, nc);
    }
  }
  if (entry == x) {
    // Pick the highest remaining node as the new entry point (rare: only when the entry is reused).
    entry = NONE;
    maxLevel = -1;
    for (let s: u32 = 0; s < slots; s++) {
      if (s == x) continue;
      const l = levelOf(s);
      if (l > maxLevel) {
        maxLevel = l;
        entry = s;
      }
    }
  }
  // The slot keeps its level: stale links from elsewhere must keep pointing at a node that has
  // the level they were made on.
  for (let l = 0; l <= oldLevel; l++) store<u32>(linksAt(x, l), 0);
}

function setUpper(slot: u32, level: i32): void {
  const r = rec(slot);
  store<i32>(r + levelOff, level);
  if (level > 0) {
    const bytes = <usize>level * upperStride;
    store<usize>(r + upperOff, zalloc(bytes));
    upperBytes += bytes;
  } else {
    store<usize>(r + upperOff, 0);
  }
}

function deleteSlot(slot: u32): void {
  const f = flags + <usize>slot;
  store<u8>(f, load<u8>(f) | FLAG_DELETED);
  deletedCount++;
  live--;
  mapRemove(load<u32>(rec(slot) + labelOff));
  if (freeLen == freeCap) {
    const cap = freeCap == 0 ? 64 : freeCap * 2;
    freeList = grow(freeList, <usize>freeCap << 2, <usize>cap << 2);
    freeCap = cap;
  }
  store<u32>(freeList + (<usize>freeLen << 2), slot);
  freeLen++;
}

/**
 * Writes the unit-length copy of the f32 vector at `src` to `dst` (which may be `src`). The norm
 * is taken in f64: in f32 the squares of subnormal components round to 0 and those of components
 * near f32's maximum overflow, which made a nonzero vector "all zeros" (refused after the engine
 * had logged it) or normalised it to zeros. The caller has checked that some component is nonzero.
 */
function normaliseInto(dst: usize, src: usize): void {
  let s: f64 = 0;
  for (let j = 0; j < dims; j++) {
    const x = <f64>load<f32>(src + (<usize>j << 2));
    s += x * x;
  }
  const inv = 1.0 / Math.sqrt(s);
  for (let j = 0; j < dims; j++) store<f32>(dst + (<usize>j << 2), <f32>(<f64>load<f32>(src + (<usize>j << 2)) * inv));
}

function insertOne(id: u32, src: usize): void {
  const existing = mapGet(id);
  if (existing != NONE) deleteSlot(existing);
  let slot: u32;
  let level: i32;
  if (freeLen > 0) {
    // A reused slot stays flagged deleted until linked, so its own linking never returns it.
    slot = load<u32>(freeList + (<usize>(--freeLen) << 2));
    detachSlot(slot);
    level = levelOf(slot);
  } else {
    slot = newSlot();
    store<u8>(flags + <usize>slot, FLAG_DELETED);
    deletedCount++;
    level = randomLevel();
    setUpper(slot, level);
  }
  const r = rec(slot);
  const v = r + vecOff;
  if (metric == METRIC_COSINE) {
    normaliseInto(v, src);
  } else {
    for (let j = 0; j < dims; j++) store<f32>(v + (<usize>j << 2), load<f32>(src + (<usize>j << 2)));
  }
  store<u32>(r + labelOff, id);
  mapPut(id, slot);
  linkNode(slot, level);
  store<u8>(flags + <usize>slot, 0);
  deletedCount--;
  live++;
}

// ================================================================ exports

/** Sets up an empty index; returns 0 or E_ARG. Call once per instance. */
export function hnsw_init(d: i32, m: i32, mLinks: i32, efC: i32, seed: u32): i32 {
  if (d < 1 || d > MAX_DIMS || m < METRIC_L2 || m > METRIC_DOT || mLinks < 2 || mLinks > 128 || efC < 1 || efC > 4096) return E_ARG;
  dims = d;
  dimsPadded = (d + 3) & ~3;
  metric = m;
  M = mLinks;
  M0 = mLinks * 2;
  efConstruction = efC;
  levelMult = 1.0 / Math.log(<f64>mLinks);
  rng = (<u64>seed << 1) ^ 0x9e3779b97f4a7c15;
  if (rng == 0) rng = 1;
  labelOff = 4 + (<usize>M0 << 2);
  levelOff = labelOff + 4;
  upperOff = labelOff + 8;
  vecOff = (upperOff + sizeof<usize>() + 15) & ~(<usize>15);
  recSize = vecOff + (<usize>dimsPadded << 2);
  upperStride = <usize>(1 + M) << 2;
  touchSecond = dimsPadded > 16;
  mapBits = 4;
  mapPtr = zalloc(<usize>8 << mapBits);
  gather = zalloc(<usize>M0 << 3);
  shrinkBuf = zalloc(<usize>(2 * M0 + 2) << 3);
  queryBuf = zalloc(<usize>dimsPadded << 2);
  ensureResCap(efConstruction);
  ensureSortCap(efConstruction + 2);
  return 0;
}

/** Validates then inserts (or replaces) `n` vectors: ids at `idsPtr`, flat f32 at `vecPtr`. */
export function hnsw_add_batch(idsPtr: usize, vecPtr: usize, n: i32): i32 {
  const stride = <usize>dims << 2;
  for (let i = 0; i < n; i++) {
    const src = vecPtr + <usize>i * stride;
    let s: f64 = 0;
    for (let j = 0; j < dims; j++) {
      const x = load<f32>(src + (<usize>j << 2));
      if (!isFinite<f32>(x)) {
        lastErrorIndex = i;
        return E_NONFINITE;
      }
      s += <f64>x * <f64>x;
    }
    if (metric == METRIC_COSINE && !(s > 0)) {
      lastErrorIndex = i;
      return E_ZERO;
    }
  }
  for (let i = 0; i < n; i++) insertOne(load<u32>(idsPtr + (<usize>i << 2)), vecPtr + <usize>i * stride);
  return n;
}

/**
 * Rewrites the stored unit vectors of `n` present ids (at `idsPtr`) from their original values
 * (flat f32 at `vecPtr`) as normaliseInto gives them, keeping the graph. For snapshots of builds
 * that normalised in f32 (components past ~1.8e19 were stored as zeros). Cosine only; returns the
 * ids rewritten, or E_ZERO / E_NONFINITE at hnsw_last_error_index for a value no insert would take.
 */
export function hnsw_renormalise(idsPtr: usize, vecPtr: usize, n: i32): i32 {
  if (metric != METRIC_COSINE) return 0;
  const stride = <usize>dims << 2;
  let done = 0;
  for (let i = 0; i < n; i++) {
    const src = vecPtr + <usize>i * stride;
    let zero = true;
    for (let j = 0; j < dims; j++) {
      const x = load<f32>(src + (<usize>j << 2));
      if (!isFinite<f32>(x)) {
        lastErrorIndex = i;
        return E_NONFINITE;
      }
      if (x != 0) zero = false;
    }
    if (zero) {
      lastErrorIndex = i;
      return E_ZERO;
    }
    const slot = mapGet(load<u32>(idsPtr + (<usize>i << 2)));
    if (slot == NONE) continue;
    normaliseInto(vecOf(slot), src);
    done++;
  }
  return done;
}

/** Removes `id`; returns 1 if it was present. Its node stays in the graph as a tombstone. */
export function hnsw_delete(id: u32): i32 {
  const slot = mapGet(id);
  if (slot == NONE) return 0;
  deleteSlot(slot);
  return 1;
}

export function hnsw_has(id: u32): i32 {
  return mapGet(id) != NONE ? 1 : 0;
}

/** Copies the stored vector of `id` (unit length for cosine) to `out`; returns 1 if present. */
export function hnsw_get_vector(id: u32, out: usize): i32 {
  const slot = mapGet(id);
  if (slot == NONE) return 0;
  memory.copy(out, vecOf(slot), <usize>dims << 2);
  return 1;
}

export function hnsw_size(): u32 {
  return live;
}

/**
 * Sets the allow-set for filtered searches from `n` ids at `idsPtr` (unknown ids are ignored);
 * returns how many live vectors it allows. `n` < 0 clears the filter.
 */
export function hnsw_set_filter(idsPtr: usize, n: i32): i32 {
  if (n < 0) {
    filterActive = false;
    return 0;
  }
  allowEpoch++;
  if (allowEpoch == 0) {
    memory.fill(allowTags, 0, <usize>capacity << 2);
    allowEpoch = 1;
  }
  if (<u32>n > allowListCap) {
    allowList = grow(allowList, <usize>allowListCap << 2, <usize>n << 2);
    allowListCap = <u32>n;
  }
  allowLen = 0;
  for (let i = 0; i < n; i++) {
    const slot = mapGet(load<u32>(idsPtr + (<usize>i << 2)));
    if (slot == NONE) continue;
    const tp = allowTags + (<usize>slot << 2);
    if (load<u32>(tp) == allowEpoch) continue;
    store<u32>(tp, allowEpoch);
    store<u32>(allowList + (<usize>allowLen << 2), slot);
    allowLen++;
  }
  filterActive = true;
  return <i32>allowLen;
}

/** Makes sure searches with this ef need no allocation (the wrapper calls it when ef grows). */
export function hnsw_reserve(ef: i32): void {
  ensureResCap(ef);
  ensureSortCap(ef + 2);
}

/** Offers one scanned vector to the top-k result heap. */
// @ts-ignore: decorator
@inline function scanOffer(k: i32, d: f32, s: u32): void {
  if (resLen < k) {
    resPush(d, s);
  } else if (d < load<f32>(resHeap)) {
    resReplaceTop(d, s);
  }
}

function exactScan(k: i32, fromAllowList: bool): void {
  resLen = 0;
  const q = queryBuf;
  // Vectors are measured in pairs (distancePair) and offered in scan order, so the heap sees
  // exactly the sequence a one-at-a-time scan gives it.
  if (fromAllowList) {
    let i: u32 = 0;
    for (; i + 1 < allowLen; i += 2) {
      const s = load<u32>(allowList + (<usize>i << 2));
      const t = load<u32>(allowList + (<usize>i << 2), 4);
      const d = distancePair(q, vecOf(s), vecOf(t));
      if (!isDeleted(s)) scanOffer(k, d, s);
      if (!isDeleted(t)) scanOffer(k, pairSecond, t);
    }
    if (i < allowLen) {
      const s = load<u32>(allowList + (<usize>i << 2));
      if (!isDeleted(s)) scanOffer(k, distance(q, vecOf(s)), s);
    }
    distCount += <f64>allowLen;
    return;
  }
  // Every slot: walk each chunk's records with a pointer instead of looking each slot up. A
  // deleted slot's vector is still in place, so it is measured with its pair and not offered.
  const checkDeleted = deletedCount > 0;
  for (let c: u32 = 0; c < chunkCount; c++) {
    const first = c << CHUNK_SHIFT;
    if (first >= slots) break;
    const end = slots - first < CHUNK_NODES ? slots - first : CHUNK_NODES;
    let v = load<usize>(chunkTable + (<usize>c << alignof<usize>())) + vecOff;
    let i: u32 = 0;
    for (; i + 1 < end; i += 2, v += recSize << 1) {
      const s = first + i;
      const d = distancePair(q, v, v + recSize);
      if (!checkDeleted || !isDeleted(s)) scanOffer(k, d, s);
      if (!checkDeleted || !isDeleted(s + 1)) scanOffer(k, pairSecond, s + 1);
    }
    if (i < end && (!checkDeleted || !isDeleted(first + i))) scanOffer(k, distance(q, v), first + i);
  }
  distCount += <f64>slots;
}

function searchOne(src: usize, k: i32, ef: i32, outIds: usize, outScores: usize): i32 {
  // Copy (and normalise, for cosine) the query into the padded buffer the kernels read.
  let zero = true;
  for (let j = 0; j < dims; j++) {
    const x = load<f32>(src + (<usize>j << 2));
    if (!isFinite<f32>(x)) return E_NONFINITE;
    if (x != 0) zero = false;
    store<f32>(queryBuf + (<usize>j << 2), x);
  }
  if (metric == METRIC_COSINE) {
    if (zero) return E_ZERO;
    normaliseInto(queryBuf, queryBuf);
  }
  if (ef < k) ef = k;
  ensureResCap(ef);
  ensureSortCap(ef + 2);
  const available = filterActive ? allowLen : live;
  const want = <u32>k < available ? <u32>k : available;
  if (live == 0 || want == 0) {
    lastPlan = 0;
    return 0;
  }
  // Unfiltered, everything is allowed (a = live), so the rule reads live ≤ filterBeta × ef: small
  // indexes are scanned exactly, for fewer distances than a walk and with exact results.
  const a = <f64>available;
  const useExact = available <= <u32>k || a * a <= filterBeta * <f64>ef * <f64>live;
  if (useExact) {
    lastPlan = 2;
    exactScan(k, filterActive);
  } else {
    lastPlan = 1;
    const ep = descend(queryBuf, 0);
    searchLayer(queryBuf, ep, 0, ef, filterActive);
    if (<u32>resLen < want) {
      // The walk can miss matches (a sparse filter, or tombstones cutting the graph); k matches
      // are promised whenever k exist, so fall back to the exact scan.
      lastPlan = 3;
      exactScan(k, filterActive);
    }
  }
  while (resLen > k) resPop();
  const n = resLen;
  for (let i = n - 1; i >= 0; i--) {
    const d = load<f32>(resHeap);
    const slot = load<u32>(resHeap, 4);
    resPop();
    store<u32>(outIds + (<usize>i << 2), load<u32>(rec(slot) + labelOff));
    store<f32>(outScores + (<usize>i << 2), metric == METRIC_L2 ? d : <f32>1.0 - d);
  }
  return n;
}

/**
 * k nearest neighbours of the query at `qPtr` (dims f32), best first: ids to `outIds`, scores to
 * `outScores`. Uses the filter set by hnsw_set_filter when `useFilter` is 1. Returns the count.
 */
export function hnsw_search(qPtr: usize, k: i32, ef: i32, useFilter: i32, outIds: usize, outScores: usize): i32 {
  if (useFilter == 0) filterActive = false;
  return searchOne(qPtr, k, ef, outIds, outScores);
}

/**
 * `nq` queries at once: result i goes to outIds/outScores + i × k, its count to outCounts[i].
 * Returns 0, or a negative error with lastErrorIndex set to the query's index.
 */
export function hnsw_search_batch(qPtr: usize, nq: i32, k: i32, ef: i32, useFilter: i32, outIds: usize, outScores: usize, outCounts: usize): i32 {
  if (useFilter == 0) filterActive = false;
  for (let i = 0; i < nq; i++) {
    const r = searchOne(qPtr + <usize>i * (<usize>dims << 2), k, ef, outIds + <usize>i * (<usize>k << 2), outScores + <usize>i * (<usize>k << 2));
    if (r < 0) {
      lastErrorIndex = i;
      return r;
    }
    store<i32>(outCounts + (<usize>i << 2), r);
  }
  return 0;
}

/** Sets the exact-scan cost factor (see filterBeta); the bench uses it to measure both plans. */
export function hnsw_set_filter_beta(beta: f64): void {
  filterBeta = beta < 0 ? 0 : beta;
}

export function hnsw_last_error_index(): i32 {
  return lastErrorIndex;
}

export function hnsw_last_error_reason(): i32 {
  return lastErrorReason;
}

/** 1 graph walk, 2 exact scan, 3 graph walk that fell back to an exact scan, 0 nothing to search. */
export function hnsw_last_plan(): i32 {
  return lastPlan;
}

/** Distances computed since the last reset (for the bench's cost model). */
export function hnsw_take_distance_count(): f64 {
  const c = distCount;
  distCount = 0;
  return c;
}

/** Bytes held by vectors and graph links (level-0 records of used slots plus upper lists). */
/** Bytes of one level-0 record (links + vector), for the wrapper's memory budget. */
export function hnsw_record_bytes(): f64 {
  return <f64>recSize;
}

export function hnsw_graph_bytes(): f64 {
  return <f64>slots * <f64>recSize + <f64>upperBytes;
}

// ================================================================ snapshot
// Format v1 (docs/format.md, "HNSW index snapshot"); all little-endian.
// 0: magic "QHNS"  4: version u16  6: metric u8  7: reserved u8  8: dims u32  12: M u32
// 16: efConstruction u32  20: slots u32  24: live u32  28: entry u32 (0xffffffff = none)
// 32: maxLevel i32  36: rng u64  44: freeLen u32  48: node records  …  free list  …  crc32c u32
// Both directions stream through a small buffer, so a snapshot never has to fit in the index's
// memory next to the index (linear memory never shrinks).
const MAGIC: u32 = 0x534e4851; // "QHNS"
const VERSION: u16 = 1;
const HEADER: usize = 48;

let snapSlot: u32 = 0;
let snapFree: u32 = 0;
let snapPhase: i32 = 0; // writer: 0 header, 1 nodes, 2 free list, 3 checksum, 4 done
let snapCrc: u32 = 0;

function nodeBytes(s: u32): usize {
  let size: usize = 8 + (<usize>dims << 2);
  const level = levelOf(s);
  for (let l = 0; l <= level; l++) size += 4 + (<usize>load<u32>(linksAt(s, l)) << 2);
  return size;
}

/** The largest node record a snapshot of this index can hold: the chunk size readers need. */
export function hnsw_max_record_bytes(): usize {
  return 8 + (<usize>dims << 2) + (<usize>(1 + M0) << 2) + <usize>MAX_LEVEL * upperStride;
}

/** Starts writing a snapshot; returns its total size in bytes. */
export function hnsw_snapshot_begin(): f64 {
  snapSlot = 0;
  snapFree = 0;
  snapPhase = 0;
  snapCrc = 0;
  let size = <f64>HEADER + 4 + 4 * <f64>freeLen;
  for (let s: u32 = 0; s < slots; s++) size += <f64>nodeBytes(s);
  return size;
}

/**
 * Writes the next part of the snapshot to `out` (at most `cap` bytes, cap ≥ the header and
 * hnsw_max_record_bytes()); returns the bytes written, 0 once the snapshot is complete.
 */
export function hnsw_snapshot_next(out: usize, cap: usize): usize {
  let p = out;
  const end = out + cap;
  if (snapPhase == 0) {
    store<u32>(p, MAGIC);
    store<u16>(p, VERSION, 4);
    store<u8>(p, <u8>metric, 6);
    store<u8>(p, 0, 7);
    store<u32>(p, dims, 8);
    store<u32>(p, M, 12);
    store<u32>(p, efConstruction, 16);
    store<u32>(p, slots, 20);
    store<u32>(p, live, 24);
    store<u32>(p, entry, 28);
    store<i32>(p, maxLevel, 32);
    store<u64>(p, rng, 36);
    store<u32>(p, freeLen, 44);
    p += HEADER;
    snapPhase = 1;
  }
  while (snapPhase == 1 && snapSlot < slots) {
    const s = snapSlot;
    if (p + nodeBytes(s) > end) break;
    // node: label u32, level u16, flags u16, per level (count u32, links), vector dims × f32
    const r = rec(s);
    const level = levelOf(s);
    store<u32>(p, load<u32>(r + labelOff));
    store<u16>(p, <u16>level, 4);
    store<u16>(p, <u16>load<u8>(flags + <usize>s), 6);
    p += 8;
    for (let l = 0; l <= level; l++) {
      const links = linksAt(s, l);
      const bytes: usize = 4 + (<usize>load<u32>(links) << 2);
      memory.copy(p, links, bytes);
      p += bytes;
    }
    memory.copy(p, r + vecOff, <usize>dims << 2);
    p += <usize>dims << 2;
    snapSlot++;
  }
  if (snapPhase == 1 && snapSlot == slots) snapPhase = 2;
  if (snapPhase == 2) {
    const room = <u32>((end - p) >> 2);
    const n = min(room, freeLen - snapFree);
    memory.copy(p, freeList + (<usize>snapFree << 2), <usize>n << 2);
    p += <usize>n << 2;
    snapFree += n;
    if (snapFree == freeLen) snapPhase = 3;
  }
  snapCrc = crc32c(snapCrc, out, p - out);
  if (snapPhase == 3 && p + 4 <= end) {
    store<u32>(p, snapCrc);
    p += 4;
    snapPhase = 4;
  }
  return p - out;
}

/** CRC32C over `len` bytes, continuing `crc` (the reader checks a snapshot before parsing it). */
export function hnsw_checksum(crc: u32, ptr: usize, len: usize): u32 {
  return crc32c(crc, ptr, len);
}

function corrupt(reason: i32): i32 {
  lastErrorReason = reason;
  return E_CORRUPT;
}

let restoreSlots: u32 = 0;
let restoreLive: u32 = 0;
let restoreEntry: u32 = 0;
let restoreTop: i32 = 0;
let restoreFree: u32 = 0;
let restoreDeleted: u32 = 0;
let restoreEpoch: u32 = 0;

/**
 * Starts loading a snapshot into this fresh instance from its 48-byte header; `bodyLen` is the
 * length of everything between the header and the checksum (already verified by the caller).
 */
export function hnsw_restore_begin(src: usize, bodyLen: f64): i32 {
  if (load<u32>(src) != MAGIC) return corrupt(2);
  if (load<u16>(src, 4) != VERSION) return E_VERSION;
  if (load<u8>(src, 7) != 0) return corrupt(3);
  if (hnsw_init(load<i32>(src, 8), <i32>load<u8>(src, 6), load<i32>(src, 12), load<i32>(src, 16), 0) != 0) return corrupt(3);
  rng = load<u64>(src, 36);
  restoreSlots = load<u32>(src, 20);
  restoreLive = load<u32>(src, 24);
  restoreEntry = load<u32>(src, 28);
  restoreTop = load<i32>(src, 32);
  restoreFree = load<u32>(src, 44);
  restoreDeleted = 0;
  // Each node takes at least 12 + dims × 4 bytes, which bounds the counts before any allocation.
  if (<f64>restoreSlots * <f64>(12 + dims * 4) + 4 * <f64>restoreFree > bodyLen) return corrupt(4);
  const n = restoreSlots;
  if (n == 0 ? (restoreEntry != NONE || restoreTop != -1) : (restoreEntry >= n || restoreTop < 0 || restoreTop > MAX_LEVEL)) return corrupt(5);
  if (restoreFree > 0) {
    freeList = grow(0, 0, <usize>restoreFree << 2);
    freeCap = restoreFree;
  }
  return 0;
}

/**
 * Consumes whole node records (then free-list entries) from `len` bytes at `src`; returns the
 * bytes consumed, so the caller passes the rest again with the next part.
 */
export function hnsw_restore_feed(src: usize, len: usize): i32 {
  const end = src + len;
  let p = src;
  const n = restoreSlots;
  while (slots < n) {
    if (p + 8 > end) return <i32>(p - src);
    const label = load<u32>(p);
    const level = <i32>load<u16>(p, 4);
    const f = load<u16>(p, 6);
    if (level > restoreTop || f > 1) return corrupt(7);
    // Measure the record before taking it, so a record split across parts waits for the rest.
    let q = p + 8;
    for (let l = 0; l <= level; l++) {
      if (q + 4 > end) return <i32>(p - src);
      const cnt = load<u32>(q);
      if (cnt > <u32>maxLinks(l)) return corrupt(8);
      q += 4 + (<usize>cnt << 2);
    }
    if (q + (<usize>dims << 2) > end) return <i32>(p - src);
    const slot = newSlot();
    const r = rec(slot);
    store<u32>(r + labelOff, label);
    setUpper(slot, level);
    q = p + 8;
    for (let l = 0; l <= level; l++) {
      const cnt = load<u32>(q);
      const bytes: usize = 4 + (<usize>cnt << 2);
      const links = linksAt(slot, l);
      memory.copy(links, q, bytes);
      for (let i: u32 = 0; i < cnt; i++) if (load<u32>(links + 4 + (<usize>i << 2)) >= n) return corrupt(9);
      q += bytes;
    }
    const v = r + vecOff;
    const vbytes = <usize>dims << 2;
    for (let j: usize = 0; j < vbytes; j += 4) {
      const x = load<f32>(q + j);
      if (!isFinite<f32>(x)) return corrupt(10);
      store<f32>(v + j, x);
    }
    p = q + vbytes;
    if (f != 0) {
      store<u8>(flags + <usize>slot, FLAG_DELETED);
      restoreDeleted++;
    } else if (!mapPut(label, slot)) {
      return corrupt(11);
    }
    if (slots == n) restoreEpoch = newEpoch();
  }
  if (n == 0 && restoreEpoch == 0) restoreEpoch = newEpoch();
  while (freeLen < restoreFree) {
    if (p + 4 > end) return <i32>(p - src);
    const s = load<u32>(p);
    if (s >= n || !isDeleted(s) || load<u32>(visited + (<usize>s << 2)) == restoreEpoch) return corrupt(16);
    store<u32>(visited + (<usize>s << 2), restoreEpoch);
    store<u32>(freeList + (<usize>freeLen << 2), s);
    freeLen++;
    p += 4;
  }
  if (p != end) return corrupt(15);
  return <i32>(p - src);
}

/** Finishes a restore: checks what needs every node present. Returns 0 or an error. */
export function hnsw_restore_end(): i32 {
  const n = restoreSlots;
  if (slots != n || freeLen != restoreFree) return corrupt(6);
  // Links above level 0 must point at nodes that have that level.
  for (let s: u32 = 0; s < n; s++) {
    const level = levelOf(s);
    for (let l = 1; l <= level; l++) {
      const links = linksAt(s, l);
      const cnt = load<u32>(links);
      for (let i: u32 = 0; i < cnt; i++) if (levelOf(load<u32>(links + 4 + (<usize>i << 2))) < l) return corrupt(12);
    }
  }
  if (n > 0 && levelOf(restoreEntry) != restoreTop) return corrupt(13);
  if (restoreLive != n - restoreDeleted || restoreFree != restoreDeleted) return corrupt(14);
  live = restoreLive;
  deletedCount = restoreDeleted;
  entry = n > 0 ? restoreEntry : NONE;
  maxLevel = restoreTop;
  return 0;
}
