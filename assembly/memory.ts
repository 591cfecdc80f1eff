// Raw allocation for buffers handed across the JS↔WASM boundary. Everything in the core works
// on pointers and lengths; no managed objects are created on hot paths.

export function alloc(size: usize): usize {
  return heap.alloc(size);
}

export function free(ptr: usize): void {
  if (ptr != 0) heap.free(ptr);
}
