/**
 * CPU clocks of the benches. On a shared machine CPU time is what other load disturbs least:
 * waiting for a core does not count. Three clocks, for three questions:
 *   - `processCpuUs`: every thread of this process (V8's GC and compiler helpers, the libuv pool,
 *     lmdb's writer, worker threads): what a piece of work costs in all;
 *   - `mainThreadNs` and `threadTimes` (Linux /proc schedstat): one thread's share, apart from the
 *     helpers, whose time right after a store opens is mostly warm-up;
 *   - `cpuOfPid`: another process (the server the http bench drives), from /proc/PID/stat.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';

/** User + system CPU time of every thread of this process, in microseconds. */
export function processCpuUs(): number {
  const { user, system } = process.cpuUsage();
  return user + system;
}

/**
 * The process's minor page faults so far (Linux; NaN elsewhere). Whether a fresh result's first
 * touch faults depends on the allocator (glibc hands back pages it trimmed from the heap or got by
 * mmap; lz4-napi's mimalloc keeps freed memory), and in this VM each fault costs ~10-25 µs under
 * load, so a side's figure can be its faults: the lz4 benches print them.
 */
export function minorPageFaults(): number {
  try {
    const stat = readFileSync('/proc/self/stat', 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[7]);
  } catch {
    return NaN;
  }
}

/** `processCpuUs` in milliseconds. */
export function processCpuMs(): number {
  return processCpuUs() / 1000;
}

/**
 * CPU time of the main thread in ns (Linux: /proc schedstat), else of the whole process. The
 * process's figure also counts V8's helper threads (JIT compiles, concurrent GC) and the libuv
 * pool, which over a few thousand reads right after a store opens are mostly its warm-up.
 */
export function mainThreadNs(): number {
  const stat = `/proc/self/task/${process.pid}/schedstat`;
  if (existsSync(stat)) return Number(readFileSync(stat, 'utf8').split(' ')[0]);
  return processCpuUs() * 1000;
}

/** CPU time in ns of every thread of this process, by thread id (Linux: /proc schedstat); empty elsewhere. */
export function threadTimes(): Map<string, number> {
  const times = new Map<string, number>();
  let tids: string[];
  try {
    tids = readdirSync('/proc/self/task');
  } catch {
    return times;
  }
  for (const tid of tids) {
    try {
      times.set(tid, Number(readFileSync(`/proc/self/task/${tid}/schedstat`, 'utf8').split(' ')[0]));
    } catch {
      // the thread exited meanwhile
    }
  }
  return times;
}

/**
 * CPU time in ns, between two `threadTimes()`, of the threads that were not running at `known`:
 * taken when a store has opened (the libuv pool and V8's helpers exist by then) and before the
 * first large produce, these are the batch encoder's threads, which start on first use.
 */
export function newThreadsNs(known: Map<string, number>, from: Map<string, number>, to: Map<string, number>): number {
  let ns = 0;
  for (const [tid, t] of to) if (!known.has(tid)) ns += t - (from.get(tid) ?? 0);
  return ns;
}

const CLOCK_TICKS = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout?.trim()) || 100;

/** CPU time (user and system, every thread) another process has used so far, in microseconds (Linux /proc). */
export function cpuOfPid(pid: number): { user: number; sys: number } {
  return cpuOfStat(`/proc/${pid}/stat`);
}

/**
 * CPU time of another process's main thread alone (its JavaScript, for node), in microseconds;
 * the rest of `cpuOfPid` is its other threads: V8's compiler and GC helpers, libuv's pool.
 */
export function mainThreadCpuOfPid(pid: number): { user: number; sys: number } {
  return cpuOfStat(`/proc/${pid}/task/${pid}/stat`);
}

function cpuOfStat(path: string): { user: number; sys: number } {
  const stat = readFileSync(path, 'utf8');
  // Fields after the command name (which may hold spaces): utime and stime are the 12th and 13th.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { user: (Number(fields[11]) * 1e6) / CLOCK_TICKS, sys: (Number(fields[12]) * 1e6) / CLOCK_TICKS };
}
