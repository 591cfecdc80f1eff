import { existsSync, readdirSync, readFileSync } from 'node:fs';

/**
 * CPU time of the main thread in ns (Linux: /proc schedstat), else of the whole process. The
 * process's figure also counts V8's helper threads (JIT compiles, concurrent GC) and the libuv
 * pool, which over a few thousand reads right after a store opens are mostly its warm-up.
 */
export function threadNs(): number {
  const stat = `/proc/self/task/${process.pid}/schedstat`;
  if (existsSync(stat)) return Number(readFileSync(stat, 'utf8').split(' ')[0]);
  const { user, system } = process.cpuUsage();
  return (user + system) * 1000;
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
 * taken when the store has opened (the libuv pool and V8's helpers exist by then) and before the
 * first large produce, these are the batch encoder's threads, which start on first use.
 */
export function newThreadsNs(known: Map<string, number>, from: Map<string, number>, to: Map<string, number>): number {
  let ns = 0;
  for (const [tid, t] of to) if (!known.has(tid)) ns += t - (from.get(tid) ?? 0);
  return ns;
}
