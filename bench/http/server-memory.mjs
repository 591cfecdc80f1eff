// Preloaded into the server by `bench http` when the mixed load runs more than one round (node
// --import): asked over the IPC channel the bench opens (`memory`), it collects garbage (a full,
// synchronous mark-compact) and answers with what is live then, so rounds can be compared without
// the garbage each one leaves waiting. A bench-only hook: the server itself offers no way to force
// a GC (a route doing so would hand any client a stop-the-world pause).
import { readFileSync } from 'node:fs';
import { getHeapStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

setFlagsFromString('--expose-gc');
/** @type {() => void} */
const gc = runInNewContext('gc');

/** A figure of /proc/self/status in bytes (`VmRSS`, `RssAnon`, …). @param {string} text @param {string} name */
function statusBytes(text, name) {
  const m = new RegExp(`${name}:\\s+(\\d+) kB`).exec(text);
  return m === null ? 0 : Number(m[1]) * 1024;
}

process.on('message', (/** @type {unknown} */ message) => {
  if (message !== 'memory') return;
  const started = performance.now();
  // Without options: gc() is then V8's precise full collection, sweeping finished. NOTE: with
  // {type: 'major', execution: 'sync'} it returned in 6-30 ms on a 130 MiB heap and left heapUsed
  // at 367 MiB where a plain gc() left 280 (1M live objects, 1M dead): an ordinary mark-compact,
  // its garbage partly counted. Twice: the first runs finalizers and weak callbacks (ArrayBuffer
  // backing stores freed by them), the second collects what those released.
  gc();
  gc();
  const gcMs = performance.now() - started;
  const usage = process.memoryUsage();
  const heap = getHeapStatistics();
  const status = readFileSync('/proc/self/status', 'utf8');
  process.send?.({
    kind: 'memory',
    gcMs,
    heapUsed: usage.heapUsed,
    heapCommitted: heap.total_heap_size,
    external: usage.external,
    arrayBuffers: usage.arrayBuffers,
    rss: statusBytes(status, 'VmRSS'),
    anon: statusBytes(status, 'RssAnon'),
  });
});
