/**
 * Reusable input/output regions in the shared codec instance, so a codec call costs one copy
 * in and one copy out rather than an allocation each way. Regions grow by doubling; ones
 * above RETAIN_LIMIT are released after the call so one big input does not pin its memory.
 */
import { ErrorCode, QuartzError } from './errors.js';
import type { QuartzExports } from './loader.js';

const RETAIN_LIMIT = 4 << 20;
/**
 * Largest region asked of the allocator: wasm32 memory is at most 4 GiB, and `alloc` takes its
 * size as a u32, so a doubling that reached 2^32 would ask for 0 bytes and get a tiny block.
 */
const MAX_REGION = 2 ** 32 - 2 ** 16;

interface Region {
  ptr: number;
  size: number;
}

interface State {
  regions: (Region | undefined)[];
  /** Some region is above RETAIN_LIMIT: lets releaseLarge skip its scan on the common path. */
  large: boolean;
  /** The buffer `view` covers; memory.grow detaches it and hands out a new one. */
  buffer: ArrayBuffer | undefined;
  view: Uint8Array;
  /** Counts `scratch` calls, so a caller that runs foreign code can tell its regions were reused. */
  epoch: number;
  /** Set while an encoder writes into a region it holds across foreign code (see holdScratch). */
  held: boolean;
}

const states = new WeakMap<QuartzExports, State>();

function stateOf(wasm: QuartzExports): State {
  let state = states.get(wasm);
  if (!state) {
    state = { regions: [], large: false, buffer: undefined, view: new Uint8Array(0), epoch: 0, held: false };
    states.set(wasm, state);
  }
  return state;
}

/**
 * A byte view of the whole instance memory, made once per memory buffer rather than per call.
 * Take it after any call that may grow memory (alloc, scratch), since growth replaces the buffer.
 */
export function memoryView(wasm: QuartzExports): Uint8Array {
  const state = stateOf(wasm);
  const buffer = wasm.memory.buffer;
  if (state.buffer !== buffer) {
    state.buffer = buffer;
    state.view = new Uint8Array(buffer);
  }
  return state.view;
}

/**
 * While held, taking any region throws: an encoder that writes records into its region reads
 * the records' fields (getters, for a library caller) between writes, and a getter that ran the
 * codecs would move or overwrite that region under it. The holder releases it around its own grows.
 */
export function holdScratch(wasm: QuartzExports, held: boolean): void {
  stateOf(wasm).held = held;
}

function takeRegion(state: State): void {
  state.epoch++;
  if (state.held) throw new QuartzError(ErrorCode.INVALID_ARGUMENT, 'the codecs were called while a batch was being encoded (a record field read ran them)');
}

/** Doubles `from` up to `size`, within what the allocator can give. */
function grownSize(from: number, size: number): number {
  if (!(size <= MAX_REGION)) throw new QuartzError(ErrorCode.TOO_LARGE, `a codec region of ${size} bytes is more than wasm memory can hold`);
  let grown = from;
  while (grown < size) grown *= 2;
  return Math.min(grown, MAX_REGION);
}

/** `wasm.alloc`, whose failure (memory cannot grow that far) is a typed error. */
function allocRegion(wasm: QuartzExports, size: number): number {
  try {
    return wasm.alloc(size);
  } catch (cause) {
    throw new QuartzError(ErrorCode.TOO_LARGE, `no room in wasm memory for a codec region of ${size} bytes`, { cause });
  }
}

/** A region of at least `size` bytes in slot `slot` (0 = input, 1 = output, 2 = spare). */
export function scratch(wasm: QuartzExports, slot: number, size: number): number {
  const state = stateOf(wasm);
  takeRegion(state);
  const region = state.regions[slot];
  if (region && region.size >= size) return region.ptr;
  let grown = grownSize(region ? region.size : 4096, size);
  if (region) {
    wasm.free(region.ptr);
    // Forgotten before the allocation, which may fail: the slot must not keep a freed block.
    state.regions[slot] = undefined;
  }
  if (grown > RETAIN_LIMIT) {
    grown = Math.max(size, 1);
    state.large = true;
  }
  const ptr = allocRegion(wasm, grown);
  state.regions[slot] = { ptr, size: grown };
  return ptr;
}

/**
 * `scratch` that keeps the first `keep` bytes of the slot's region when it has to move it (an
 * encoder that writes before it knows how much it will write). Past RETAIN_LIMIT it still
 * doubles, so a region grown many times is copied O(size) bytes in all.
 */
export function scratchGrow(wasm: QuartzExports, slot: number, size: number, keep: number): number {
  const state = stateOf(wasm);
  takeRegion(state);
  const region = state.regions[slot];
  if (region && region.size >= size) return region.ptr;
  const grown = grownSize(region ? region.size : 4096, size);
  // Allocated before the old region is freed (its bytes move over): a failure leaves the slot as it was.
  const ptr = allocRegion(wasm, grown);
  if (grown > RETAIN_LIMIT) state.large = true;
  if (region) {
    if (keep > 0) memoryView(wasm).copyWithin(ptr, region.ptr, region.ptr + keep);
    wasm.free(region.ptr);
  }
  state.regions[slot] = { ptr, size: grown };
  return ptr;
}

/** Bytes of the slot's region (0 before its first use); `scratch` of up to this many does not move it. */
export function scratchSize(wasm: QuartzExports, slot: number): number {
  return stateOf(wasm).regions[slot]?.size ?? 0;
}

/**
 * Changes whenever a scratch region is handed out: if it differs before and after a call into
 * code that may use the codecs (a caller's callback), the regions' contents may be gone.
 */
export function scratchEpoch(wasm: QuartzExports): number {
  return stateOf(wasm).epoch;
}

/** Releases slots that grew past RETAIN_LIMIT; call after the results are copied out. */
export function releaseLarge(wasm: QuartzExports): void {
  const state = stateOf(wasm);
  if (!state.large) return;
  const list = state.regions;
  for (let i = 0; i < list.length; i++) {
    const region = list[i];
    if (region && region.size > RETAIN_LIMIT) {
      wasm.free(region.ptr);
      list[i] = undefined;
    }
  }
  state.large = false;
}

/** Copies `bytes` into scratch slot `slot` and returns the pointer. */
export function scratchIn(wasm: QuartzExports, slot: number, bytes: Uint8Array): number {
  const ptr = scratch(wasm, slot, bytes.length);
  memoryView(wasm).set(bytes, ptr);
  return ptr;
}

/** Exchanges two slots (a grown output moves into the output slot). */
export function swapSlots(wasm: QuartzExports, a: number, b: number): void {
  const list = stateOf(wasm).regions;
  const t = list[a];
  list[a] = list[b];
  list[b] = t;
}

/**
 * A copy of `length` bytes at `ptr` that the caller owns, in an array buffer of its own (never a
 * view of wasm memory, which the next call overwrites or a grow detaches).
 */
export function takeOut(wasm: QuartzExports, ptr: number, length: number): Uint8Array {
  return memoryView(wasm).slice(ptr, ptr + length);
}
