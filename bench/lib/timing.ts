/**
 * Timing one call: wall and CPU time together, the `BENCH_CLOCK` choice, and the forced GCs that
 * keep one timed call from paying for an earlier one's garbage. Forced GCs need `--expose-gc`,
 * which `npm run bench` passes; without it they do nothing.
 */
import { performance } from 'node:perf_hooks';
import { processCpuUs } from './cpu.js';

const gc = (globalThis as { gc?: () => void }).gc;

/** One full GC, where `--expose-gc` allows it. */
export function collectGarbage(): void {
  gc?.();
}

/**
 * Two full GCs, before a call timed by CPU. One forced GC finds the garbage but leaves freeing it
 * (sweeping, array buffer backing stores) to helper threads, whose CPU time then lands in the
 * next timed call: with one GC the lz4 `{ into }` decode, which allocates nothing, ran 30% of its
 * CPU time off the main thread. A second GC starts by finishing the first one's sweeping (into:
 * 8%, lz4-napi blocks 20 -> 6%).
 */
export function settleHeap(): void {
  gc?.();
  gc?.();
}

/** Process CPU seconds of one call of `fn`, from a settled heap (see `settleHeap`). */
export function cpuSeconds(fn: () => void): number {
  settleHeap();
  const c0 = processCpuUs();
  fn();
  return (processCpuUs() - c0) / 1e6;
}

export interface Timed<T> {
  value: T;
  wallMs: number;
  /** Process CPU time, every thread. */
  cpuMs: number;
}

/** Wall and process CPU milliseconds of a synchronous call. */
export function timeSync<T>(fn: () => T): Timed<T> {
  const w0 = performance.now();
  const c0 = processCpuUs();
  const value = fn();
  return { value, cpuMs: (processCpuUs() - c0) / 1000, wallMs: performance.now() - w0 };
}

/** Wall and process CPU milliseconds of a call, awaited. */
export async function timeAsync<T>(fn: () => Promise<T> | T): Promise<Timed<T>> {
  const w0 = performance.now();
  const c0 = processCpuUs();
  const value = await fn();
  return { value, cpuMs: (processCpuUs() - c0) / 1000, wallMs: performance.now() - w0 };
}

/**
 * `BENCH_CLOCK=cpu` times the benches that offer it (lz4 and its segment table) by process CPU
 * time, which waiting for a core on a shared machine does not inflate; wall clock otherwise.
 */
export const useCpuClock = process.env.BENCH_CLOCK === 'cpu';

/**
 * Seconds of one call by the `BENCH_CLOCK` clock, and its wall-clock window (performance.now
 * milliseconds), to which GC entries can be matched.
 */
export function clockSeconds(fn: () => void): { seconds: number; start: number; end: number } {
  const start = performance.now();
  const c0 = useCpuClock ? processCpuUs() : 0;
  fn();
  const c1 = useCpuClock ? processCpuUs() : 0;
  const end = performance.now();
  return { seconds: useCpuClock ? (c1 - c0) / 1e6 : (end - start) / 1000, start, end };
}

/**
 * `reps` calls of `run` in a row, each timed by the wall clock and process CPU time (warm up
 * before: this times every call); `between` runs after each call, outside the timing. Returns the
 * samples and the last call's value.
 */
export async function timeRepeated<T>(reps: number, run: () => Promise<T>, between?: () => Promise<void>): Promise<{ wallMs: number[]; cpuMs: number[]; last: T | undefined }> {
  const wallMs: number[] = [];
  const cpuMs: number[] = [];
  let last: T | undefined;
  for (let r = 0; r < reps; r++) {
    const t = await timeAsync(run);
    wallMs.push(t.wallMs);
    cpuMs.push(t.cpuMs);
    last = t.value;
    await between?.();
  }
  return { wallMs, cpuMs, last };
}

/**
 * CPU per call of a step run back to back, in `slices` slices of `ms / slices` each, after
 * `warmup` calls: ns per call, sorted, so [0] is the least disturbed slice. The step gets
 * `0 .. cycle-1` in turn (say, which of `cycle` prepared requests); a step that answers later is
 * awaited before the next.
 */
export async function cpuNsPerCall(step: (i: number) => unknown, { ms, warmup, cycle, slices = 5 }: { ms: number; warmup: number; cycle: number; slices?: number }): Promise<number[]> {
  for (let i = 0; i < warmup; i++) await step(i % cycle);
  const perCall: number[] = [];
  for (let slice = 0; slice < slices; slice++) {
    const t0 = performance.now();
    const c0 = processCpuUs();
    let n = 0;
    while (performance.now() - t0 < ms / slices) {
      for (let j = 0; j < cycle; j++) {
        const r = step(j);
        if (r instanceof Promise) await r;
      }
      n += cycle;
    }
    perCall.push(((processCpuUs() - c0) * 1000) / n);
  }
  return perCall.sort((a, b) => a - b);
}
