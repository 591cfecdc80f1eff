import { existsSync, readFileSync } from 'node:fs';

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
