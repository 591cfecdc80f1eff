/**
 * A Clock and Scheduler that only move when a test says so: `advance(ms)` steps time forward
 * and runs every task that falls due, in due order, awaiting each one.
 */
import { ErrorCode, QuartzError } from '../core/errors.js';
import type { Clock, Scheduler } from './clock.js';

interface Pending {
  at: number;
  seq: number;
  task: () => void | Promise<void>;
}

/** 2025-01-01T00:00:00Z: a fixed, realistic starting point so timestamps in tests are stable. */
export const MANUAL_CLOCK_START = Date.UTC(2025, 0, 1);

export class ManualClock implements Clock, Scheduler {
  private current: number;
  private seq = 0;
  private readonly pending: Pending[] = [];

  constructor(start = MANUAL_CLOCK_START) {
    this.current = start;
  }

  now(): number {
    return this.current;
  }

  schedule(delayMs: number, task: () => void | Promise<void>): () => void {
    if (!Number.isFinite(delayMs) || delayMs < 0) {
      throw new QuartzError(ErrorCode.INVALID_ARGUMENT, `schedule delay must be a non-negative number of ms, got ${delayMs}`);
    }
    const entry: Pending = { at: this.current + delayMs, seq: this.seq++, task };
    this.pending.push(entry);
    return () => {
      const i = this.pending.indexOf(entry);
      if (i >= 0) this.pending.splice(i, 1);
    };
  }

  /** Tasks scheduled and not yet run or cancelled. */
  get pendingCount(): number {
    return this.pending.length;
  }

  /**
   * Moves time forward by `ms`, running each task that falls due at its own time (tasks that
   * schedule more tasks inside the window run too). Resolves once they have all finished.
   *
   * @example
   * const clock = new ManualClock();
   * clock.schedule(100, () => console.log('tick'));
   * await clock.advance(100); // logs 'tick'
   */
  async advance(ms: number): Promise<void> {
    if (!Number.isFinite(ms) || ms < 0) {
      throw new QuartzError(ErrorCode.INVALID_ARGUMENT, `advance takes a non-negative number of ms, got ${ms}`);
    }
    const target = this.current + ms;
    for (;;) {
      const next = this.nextDue(target);
      if (next === undefined) break;
      this.pending.splice(this.pending.indexOf(next), 1);
      this.current = next.at;
      await next.task();
    }
    this.current = target;
  }

  private nextDue(target: number): Pending | undefined {
    let best: Pending | undefined;
    for (const p of this.pending) {
      if (p.at <= target && (best === undefined || p.at < best.at || (p.at === best.at && p.seq < best.seq))) best = p;
    }
    return best;
  }
}
