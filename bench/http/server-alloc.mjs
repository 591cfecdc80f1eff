// Preloaded into the server by bench/http/alloc.ts (node --import): asked over the IPC channel
// (`alloc-mark`), it answers with the JS heap's allocation since the previous mark, counted exactly
// from V8's own figures: what is in use now, less what was in use at the mark, plus what each GC
// in between collected (GCProfiler's heap statistics before and after it). A bench-only hook.
import { GCProfiler, getHeapStatistics } from 'node:v8';

/** @typedef {{ spaceName: string, spaceUsedSize: number }} Space */
/** @typedef {{ gcType: string, cost: number, beforeGC: { heapStatistics: { usedHeapSize: number }, heapSpaceStatistics: Space[] }, afterGC: { heapStatistics: { usedHeapSize: number } } }} GcEntry */

let profiler = new GCProfiler();
profiler.start();
let usedAtMark = getHeapStatistics().used_heap_size;

/** Bytes in the young generation before a GC. @param {Space[]} spaces */
function young(spaces) {
  let bytes = 0;
  for (const s of spaces) if (s.spaceName === 'new_space' || s.spaceName === 'new_large_object_space') bytes += s.spaceUsedSize;
  return bytes;
}

process.on('message', (/** @type {unknown} */ message) => {
  if (message !== 'alloc-mark') return;
  const entries = /** @type {GcEntry[]} */ (profiler.stop()?.statistics ?? []);
  const used = getHeapStatistics().used_heap_size;
  profiler = new GCProfiler();
  profiler.start();
  let collected = 0;
  let survived = 0;
  let scavenges = 0;
  let markCompacts = 0;
  let pauseUs = 0;
  for (const e of entries) {
    const freed = e.beforeGC.heapStatistics.usedHeapSize - e.afterGC.heapStatistics.usedHeapSize;
    collected += freed;
    pauseUs += e.cost;
    if (e.gcType === 'Scavenge') {
      scavenges++;
      // What a scavenge did not free of the young generation it copied (to the other semi-space or the old generation).
      survived += young(e.beforeGC.heapSpaceStatistics) - freed;
    } else if (e.gcType === 'MarkSweepCompact') markCompacts++;
  }
  const allocated = used - usedAtMark + collected;
  usedAtMark = used;
  // The rest are incremental marking steps and weak callbacks, parts of the mark-compacts counted.
  process.send?.({ kind: 'alloc-mark', allocated, survived, scavenges, markCompacts, pauseUs });
});
