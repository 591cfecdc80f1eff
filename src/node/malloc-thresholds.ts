/**
 * glibc's malloc thresholds, raised once per Node process, from the Node entry of the core
 * (`core.ts`, which the disk storage, the server and Node users of `quartzdb/core` import).
 *
 * Two costs come from glibc's thresholds as a process starts (mmap 128 KiB, trim 128 KiB):
 * - lmdb's writer copies each value above a page into overflow pages it `malloc`s per
 *   transaction and frees at the commit; a produce group's tail entries free megabytes at once,
 *   the writer thread's arena gave them back to the kernel past the trim threshold, and the next
 *   commit faulted them in again (4-9 faults per 1,000 records of 100 B, about a fifth of the
 *   process's CPU per record; docs/benchmarks.md, "The 100 B row in process", session 18).
 * - a buffer above the mmap threshold is mmap'd fresh and faults in every page as it is written:
 *   `SegmentWriter.finish()`'s ~17 MB result of an 8 MiB segment of 1 KB JSON faulted 4,211
 *   pages per encode (docs/benchmarks.md, "glibc's thresholds: one block of 31 MiB").
 *
 * glibc raises both by itself (mallopt(3), "dynamic mmap threshold"): freeing a block it had
 * mmap'd sets the mmap threshold to the block's size and the trim threshold to twice that, for
 * blocks up to 32 MiB including glibc's chunk header. A long-running process gets there by
 * chance, when some large buffer dies; a fresh one did not before its first minutes of produce.
 * So this frees one block of 31 MiB early (32 MiB exactly is past the limit and changes nothing):
 * buffers up to 31 MiB then come from the arenas, and each arena keeps up to 62 MiB free at its
 * top instead of trimming it. 16 MiB kept the produce gains but not the segment encode's (its
 * result is above it). The memory it costs is in docs/configuration.md (Memory); setting
 * `MALLOC_MMAP_THRESHOLD_` or `MALLOC_TRIM_THRESHOLD_` turns glibc's dynamic thresholds off,
 * and with them this. Elsewhere (musl, macOS) this is one dropped allocation.
 */
const RAISING_BLOCK_BYTES = 31 << 20;

/**
 * Allocates a block glibc mmaps (untouched: calloc's mmap'd pages are zero already, so no page is
 * faulted in) and drops it; the next garbage collection frees it, which raises the thresholds.
 * Called once per process, from `core.ts`'s module body.
 */
export function raiseMallocThresholds(): void {
  void new ArrayBuffer(RAISING_BLOCK_BYTES);
}
