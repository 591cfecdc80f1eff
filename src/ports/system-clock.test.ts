import { describe, expect, it, vi } from 'vitest';
import { ErrorCode } from '../core/errors.js';
import { systemClock, timerScheduler } from './system-clock.js';

describe('systemClock and timerScheduler', () => {
  it('reads wall time', () => {
    const before = Date.now();
    const now = systemClock.now();
    expect(now).toBeGreaterThanOrEqual(before);
    expect(now).toBeLessThanOrEqual(Date.now());
  });

  it('runs a task after its delay, and not a cancelled one', async () => {
    const start = Date.now();
    let cancelledRan = false;
    timerScheduler.schedule(5, () => void (cancelledRan = true))();
    const ranAt = await new Promise<number>((resolve) => timerScheduler.schedule(20, () => resolve(Date.now())));
    expect(ranAt - start).toBeGreaterThanOrEqual(19);
    expect(cancelledRan).toBe(false);
  });

  it('runs a task on time when the wall clock is set back meanwhile (NTP, an operator), not an hour late', async () => {
    vi.useFakeTimers({ now: Date.UTC(2026, 0, 1) });
    try {
      let ran = 0;
      timerScheduler.schedule(60_000, () => void ran++);
      vi.setSystemTime(Date.now() - 3_600_000); // the wall clock goes back an hour; elapsed time does not
      await vi.advanceTimersByTimeAsync(59_000);
      expect(ran).toBe(0);
      await vi.advanceTimersByTimeAsync(2_500);
      expect(ran).toBe(1);
    } finally {
      vi.useRealTimers();
    }
  });

  it('rejects bad delays', () => {
    expect(() => timerScheduler.schedule(-1, () => undefined)).toThrow(expect.objectContaining({ code: ErrorCode.INVALID_ARGUMENT }));
  });
});
