// What one O_DSYNC write costs on this disk while something else runs (e.g. `bench http --only
// mixed` in another shell): every --interval-ms, one 8 KiB pwrite into a file written through once
// beforehand, as the write-ahead log's frames are (wal.ts), timed around the system call alone, so
// the figure is the kernel's and the device's (and this process's preemption), not an event loop's.
//   node bench/http/disk-probe.mjs [--dir DIR (os.tmpdir())] [--seconds S (30)] [--interval-ms MS (10)]
// Prints the count, p50, p90, p99 and max (ms), and how many took 5, 10 and 20 ms or more.
import { closeSync, constants, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { dir: { type: 'string' }, seconds: { type: 'string' }, 'interval-ms': { type: 'string' } } });
const dir = values.dir ?? tmpdir();
const seconds = Number(values.seconds ?? 30);
const intervalMs = Number(values['interval-ms'] ?? 10);
if (!(seconds > 0) || !(intervalMs > 0)) {
  console.error('disk-probe: --seconds and --interval-ms must be positive numbers');
  process.exit(2);
}

const FRAME = 8192;
const FILE_BYTES = 2 << 20;
const path = join(dir, `disk-probe-${process.pid}`);
const fd = openSync(path, constants.O_RDWR | constants.O_CREAT | constants.O_DSYNC, 0o644);
const frame = Buffer.alloc(FRAME, 0x5a);
// Written through once, so the timed writes overwrite blocks already allocated (no size change to flush).
for (let at = 0; at < FILE_BYTES; at += FRAME) writeSync(fd, frame, 0, FRAME, at);

/** Each write's time in the system call (ms). @type {number[]} */
const durations = [];
let position = 0;
const until = Date.now() + seconds * 1000;
const timer = setInterval(() => {
  const start = process.hrtime.bigint();
  writeSync(fd, frame, 0, FRAME, position);
  durations.push(Number(process.hrtime.bigint() - start) / 1e6);
  position = (position + FRAME) % FILE_BYTES;
  if (Date.now() >= until) finish();
}, intervalMs);

function finish() {
  clearInterval(timer);
  closeSync(fd);
  rmSync(path, { force: true });
  const sorted = Float64Array.from(durations).sort();
  const at = (/** @type {number} */ q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))].toFixed(2);
  const over = (/** @type {number} */ ms) => sorted.filter((d) => d >= ms).length;
  console.log(
    `disk probe: ${sorted.length} O_DSYNC 8 KiB writes over ${seconds} s in ${dir}: p50 ${at(0.5)} ms, p90 ${at(0.9)} ms, p99 ${at(0.99)} ms, max ${at(1)} ms; ` +
      `≥ 5 ms ${over(5)}, ≥ 10 ms ${over(10)}, ≥ 20 ms ${over(20)}`,
  );
}
