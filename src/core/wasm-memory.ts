/**
 * Moving whole buffers across the JS↔WASM boundary. Views into linear memory are only
 * valid until the next call that may grow memory, so take them after the call, never before.
 */
import type { QuartzExports } from './loader.js';

/** Copies `bytes` into a fresh allocation in `wasm` and returns its pointer (free it with `wasm.free`). */
export function copyIn(wasm: QuartzExports, bytes: Uint8Array): number {
  const ptr = wasm.alloc(bytes.length || 1);
  new Uint8Array(wasm.memory.buffer, ptr, bytes.length).set(bytes);
  return ptr;
}

/** A view of `length` bytes at `ptr`; valid until memory grows. */
export function viewOf(wasm: QuartzExports, ptr: number, length: number): Uint8Array {
  return new Uint8Array(wasm.memory.buffer, ptr, length);
}

/** A copy of `length` bytes at `ptr`, safe to keep. */
export function copyOut(wasm: QuartzExports, ptr: number, length: number): Uint8Array {
  return new Uint8Array(wasm.memory.buffer, ptr, length).slice();
}
