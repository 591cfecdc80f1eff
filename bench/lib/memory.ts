/**
 * The process's peak resident set (Linux): `VmHWM` in /proc/self/status, reset by writing 5 to
 * /proc/self/clear_refs. Exact, where sampling RSS on a timer misses a peak that lasts less than
 * its period or that falls while the event loop is busy.
 */
import { readFileSync, writeFileSync } from 'node:fs';

/** Starts a new peak at the current RSS; false where the kernel offers no reset. */
export function resetPeakRss(): boolean {
  try {
    writeFileSync('/proc/self/clear_refs', '5');
    return true;
  } catch {
    return false;
  }
}

/** Peak RSS since the last reset (or the process start), in MiB; NaN where /proc is missing. */
export function peakRssMiB(): number {
  try {
    const kb = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'))?.[1];
    return kb === undefined ? NaN : Number(kb) / 1024;
  } catch {
    return NaN;
  }
}
