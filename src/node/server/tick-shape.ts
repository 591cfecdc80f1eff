/**
 * Keeps one of node's `process.nextTick` queue entries alive for the life of the process.
 *
 * NOTE: works around a V8 effect on node's `nextTick`, which builds every queue entry with one
 * object literal (`{ [async_id_symbol], [trigger_async_id_symbol], callback, args }`). The hidden
 * classes ("maps") of that literal are held only weakly; when a full GC runs while no entry is
 * alive (the queue is drained after every tick), it collects them, later entries get new maps,
 * and the literal's optimized code then defines each property through the V8 runtime. node's
 * HTTP server queues several ticks per request: server processes in that state spent ~2 µs more
 * CPU per KV GET (perf: `Runtime_DefineKeyedOwnPropertyInLiteral` under `endReadable`, `onwrite`,
 * ...). A bare hono server never showed it, showed it every time with a forced full GC every
 * 200 ms, and never with forced GCs and one entry kept alive as here (its maps stay alive).
 */
import { createHook } from 'node:async_hooks';

let kept: object | undefined;

/**
 * Captures one nextTick entry (through an async hook enabled only around one `nextTick` call) and
 * keeps it. Idempotent; returns the kept entry.
 *
 * @example
 * keepTickShape(); // once, at server start
 */
export function keepTickShape(): object | undefined {
  if (kept !== undefined) return kept;
  const hook = createHook({
    init(_asyncId, type, _triggerAsyncId, resource) {
      if (type === 'TickObject' && kept === undefined) kept = resource as object;
    },
  });
  hook.enable();
  try {
    process.nextTick(() => undefined);
  } finally {
    hook.disable();
  }
  return kept;
}
