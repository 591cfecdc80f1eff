/**
 * lmdb's writer copies each value above a page into overflow pages it `malloc`s per transaction
 * and frees at the commit (liblmdb reuses freed single pages only). A produce group's tail entries
 * free megabytes at once, and glibc gives the top of the writer thread's arena back to the kernel
 * once it passes the trim threshold (128 KiB at start), so the next commit page-faults all of it
 * in again: 4-9 faults per 1,000 records of 100 B, about a fifth of the process's CPU per record
 * in this VM (docs/benchmarks.md, "The 100 B row in process", session 18).
 *
 * glibc raises that threshold by itself (mallopt(3), "dynamic mmap threshold"): freeing a block
 * that it had mmap'd sets the mmap threshold to the block's size and the trim threshold to twice
 * that, up to 32 MiB. A long-running process gets there by chance, when some large buffer dies;
 * a fresh one did not before its first minutes of produce. So the Node home frees one block of
 * this size early: the trim threshold becomes 32 MiB, more than a group commit frees (~2-4 MB
 * at 100 B, ~15 MB at 1 KB). The price: each arena keeps that much free memory, and buffers up to
 * 16 MiB come from the arenas rather than mmap (RSS after 500,000 records of 1 KB produced in
 * process: +~100 MiB; to a `compression: none` topic, whose ~1 MB tail entries are never reused:
 * +~350 MiB). With 8 MiB here the 1 KB commits faulted again.
 * Elsewhere (musl, macOS) this is one dropped allocation.
 */
const RAISING_BLOCK_BYTES = 16 << 20;
let raised = false;

/**
 * Allocates a block glibc mmaps (untouched: calloc's mmap'd pages are zero already, so no page is
 * faulted in) and drops it; the next garbage collection frees it, which raises the thresholds.
 * Once per process.
 */
export function raiseMallocThresholds(): void {
  if (raised) return;
  raised = true;
  void new ArrayBuffer(RAISING_BLOCK_BYTES);
}
