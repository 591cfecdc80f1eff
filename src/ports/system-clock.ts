/**
 * Real time for homes that have it: `Date.now()` and `setTimeout`. Platform-free (timers exist in
 * Node, workerd and browsers); the Worker home may swap the scheduler for Durable Object alarms.
 */
import { ErrorCode, QuartzError } from '../core/errors.js';
import type { Clock, Scheduler } from './clock.js';

export const systemClock: Clock = {
  now: () => Date.now(),
};

/** setTimeout caps delays at 2^31-1 ms; longer delays are chained so they still fire on time. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** How long past its elapsed delay a task waits for a wall clock that was set back. */
const WALL_CLOCK_SLACK_MS = 1000;

export const timerScheduler: Scheduler = {
  schedule(delayMs, task) {
    if (!Number.isFinite(delayMs) || delayMs < 0) {
      throw new QuartzError(ErrorCode.INVALID_ARGUMENT, `schedule delay must be a non-negative number of ms, got ${delayMs}`);
    }
    let cancelled = false;
    let timer: ReturnType<typeof setTimeout>;
    const due = Date.now() + delayMs;
    const dueElapsed = performance.now() + delayMs;
    const arm = (ms: number) => {
      timer = setTimeout(() => {
        // Due by the wall clock (a timer may fire a moment early by it, and partition ticks keep
        // phases of it), but at most a second after the delay elapsed: a wall clock set back an
        // hour held every task an hour.
        const left = Math.min(due - Date.now(), dueElapsed + WALL_CLOCK_SLACK_MS - performance.now());
        if (left > 0) return arm(left);
        // A failing background task must not take the process down, but must not vanish either.
        void Promise.resolve()
          .then(task)
          .catch((err: unknown) => console.error('quartz: scheduled task failed', err));
      }, Math.min(ms, MAX_TIMER_MS));
      // Background maintenance must never keep a process alive on its own.
      (timer as { unref?: () => void }).unref?.();
    };
    arm(delayMs);
    return () => {
      if (cancelled) return;
      cancelled = true;
      clearTimeout(timer);
    };
  },
  hold() {
    // A referenced timer that never fires in practice: while it exists, Node does not exit and
    // drop a long-poll whose own (unreferenced) timeout is all that is left to run.
    const timer = setInterval(() => {}, MAX_TIMER_MS);
    return () => clearInterval(timer);
  },
};
