import { describe, expect, it } from 'vitest';
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

  it('rejects bad delays', () => {
    expect(() => timerScheduler.schedule(-1, () => undefined)).toThrow(expect.objectContaining({ code: ErrorCode.INVALID_ARGUMENT }));
  });
});
