// Preloaded into the server by `bench http --server-timing` (node --import): how long each request
// takes inside the server, from node's `request` event to its response's `finish`, by kind, with
// the server's GC pauses and long event-loop turns, so a latency seen by the client can be split
// into the server's part and the rest (the wait before the request is read, and the client's
// own delay: both processes share the machine's cores). Also timed: each callback `fs.write`
// (the write-ahead log's O_DSYNC frames, wal.ts) from its issue to its callback, i.e. the thread
// pool's queue, the disk's flush and the wait for the loop to run the callback. The bench asks over
// the IPC channel it opens: `mark` starts the count afresh (as its warm-up ends), `report` answers
// with the figures since then.
import fs from 'node:fs';
import http from 'node:http';
import { syncBuiltinESMExports } from 'node:module';
import { PerformanceObserver, constants, performance } from 'node:perf_hooks';
import v8 from 'node:v8';

/** @param {string | undefined} method @param {string | undefined} url */
function kindOf(method, url = '') {
  if (url.startsWith('/v1/kv/')) return method === 'GET' ? 'kv get' : method === 'PUT' ? 'kv put' : 'kv other';
  if (url.includes('/records')) return method === 'POST' ? 'produce' : 'consume';
  if (url.includes('/query')) return 'vector query';
  return 'other';
}

/** Request durations (ms) by kind since the last mark. @type {Map<string, number[]>} */
let byKind = new Map();
/** @type {number[]} */
let gcPauses = [];
/** The young generation's collections (scavenges) among them. @type {number[]} */
let scavenges = [];
/** `fs.write` from its issue to its callback (ms). @type {number[]} */
let fileWrites = [];
/** Turns of the loop longer than LONG_TURN_MS, as a 1 ms timer's lateness. @type {number[]} */
let longTurns = [];
const LONG_TURN_MS = 10;

const emit = http.Server.prototype.emit;
/** @type {any} */ (http.Server.prototype).emit = function (/** @type {string} */ event, /** @type {any[]} */ ...args) {
  if (event === 'request') {
    const [req, res] = /** @type {[http.IncomingMessage, http.ServerResponse]} */ (/** @type {unknown} */ (args));
    const list = byKind;
    const kind = kindOf(req.method, req.url);
    const start = performance.now();
    res.once('finish', () => {
      // A request from before the mark is not counted after it.
      if (list !== byKind) return;
      let durations = list.get(kind);
      if (durations === undefined) list.set(kind, (durations = []));
      durations.push(performance.now() - start);
    });
  }
  return /** @type {(...a: unknown[]) => boolean} */ (emit).call(this, event, ...args);
};

new PerformanceObserver((entries) => {
  for (const e of entries.getEntries()) {
    gcPauses.push(e.duration);
    if (/** @type {{detail?: {kind?: number}}} */ (e).detail?.kind === constants.NODE_PERFORMANCE_GC_MINOR) scavenges.push(e.duration);
  }
}).observe({ entryTypes: ['gc'] });

const write = fs.write;
/** @type {any} */ (fs).write = function (/** @type {any[]} */ ...args) {
  const done = args[args.length - 1];
  if (typeof done !== 'function') return /** @type {any} */ (write).apply(this, args);
  const list = fileWrites;
  const start = performance.now();
  args[args.length - 1] = function (/** @type {any[]} */ ...result) {
    list.push(performance.now() - start);
    return done.apply(this, result);
  };
  return /** @type {any} */ (write).apply(this, args);
};
// `import { write } from 'node:fs'` (wal.ts) reads the builtin's named exports, updated only by this.
syncBuiltinESMExports();

let last = performance.now();
setInterval(() => {
  const now = performance.now();
  if (now - last > LONG_TURN_MS + 1) longTurns.push(now - last - 1);
  last = now;
}, 1).unref();

/** @param {number[]} list */
function figures(list) {
  const sorted = Float64Array.from(list).sort();
  /** @param {number} q */
  // 0 for none: the report crosses the IPC channel as JSON, which has no NaN.
  const at = (q) => (sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]);
  let sum = 0;
  for (const x of sorted) sum += x;
  return { count: sorted.length, sum, p50: at(0.5), p99: at(0.99), max: at(1) };
}

let markedAt = performance.now();
process.on('message', (/** @type {unknown} */ message) => {
  if (message === 'mark') {
    byKind = new Map();
    gcPauses = [];
    scavenges = [];
    fileWrites = [];
    longTurns = [];
    markedAt = performance.now();
  } else if (message === 'report') {
    /** @type {Record<string, ReturnType<typeof figures>>} */
    const kinds = {};
    for (const [kind, list] of byKind) kinds[kind] = figures(list);
    const newSpace = v8.getHeapSpaceStatistics().find((space) => space.space_name === 'new_space');
    process.send?.({
      seconds: (performance.now() - markedAt) / 1000,
      kinds,
      gc: figures(gcPauses),
      scavenges: figures(scavenges),
      newSpaceBytes: newSpace?.space_size ?? 0,
      fileWrites: figures(fileWrites),
      longTurns: figures(longTurns),
    });
  }
});
