/**
 * Reusable input/output regions in the shared codec instance, so a codec call costs one copy
 * in and one copy out rather than an allocation each way. Regions grow by doubling; ones
 * above RETAIN_LIMIT are released after the call so one big input does not pin its memory.
 */
import type { QuartzExports } from './loader.js';

const RETAIN_LIMIT = 4 << 20;

interface Region {
  ptr: number;
  size: number;
}

const regions = new WeakMap<QuartzExports, Region[]>();

/** A region of at least `size` bytes in slot `slot` (0 = input, 1 = output, 2 = spare). */
export function scratch(wasm: QuartzExports, slot: number, size: number): number {
  let list = regions.get(wasm);
  if (!list) {
    list = [];
    regions.set(wasm, list);
  }
  const region = list[slot];
  if (region && region.size >= size) return region.ptr;
  if (region) wasm.free(region.ptr);
  let grown = region ? region.size : 4096;
  while (grown < size) grown *= 2;
  if (grown > RETAIN_LIMIT) grown = Math.max(size, 1);
  const ptr = wasm.alloc(grown);
  list[slot] = { ptr, size: grown };
  return ptr;
}

/** Releases slots that grew past RETAIN_LIMIT; call after the results are copied out. */
export function releaseLarge(wasm: QuartzExports): void {
  const list = regions.get(wasm);
  if (!list) return;
  for (let i = 0; i < list.length; i++) {
    const region = list[i];
    if (region && region.size > RETAIN_LIMIT) {
      wasm.free(region.ptr);
      list[i] = undefined as unknown as Region;
    }
  }
}

/** Copies `bytes` into scratch slot `slot` and returns the pointer. */
export function scratchIn(wasm: QuartzExports, slot: number, bytes: Uint8Array): number {
  const ptr = scratch(wasm, slot, bytes.length);
  new Uint8Array(wasm.memory.buffer, ptr, bytes.length).set(bytes);
  return ptr;
}

/** Exchanges two slots (a grown output moves into the output slot). */
export function swapSlots(wasm: QuartzExports, a: number, b: number): void {
  const list = regions.get(wasm);
  if (!list) return;
  const t = list[a];
  list[a] = list[b];
  list[b] = t;
}

/**
 * A copy of `length` bytes at `ptr` that the caller owns. NOTE: Uint8Array.prototype.slice,
 * not ArrayBuffer.prototype.slice, which measured ~10x slower on a wasm memory in V8.
 */
export function takeOut(wasm: QuartzExports, ptr: number, length: number): Uint8Array {
  return new Uint8Array(wasm.memory.buffer, ptr, length).slice();
}
