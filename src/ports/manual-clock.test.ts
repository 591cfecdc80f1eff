import { describe, expect, it } from 'vitest';
import { ErrorCode, QuartzError } from '../core/errors.js';
import { MANUAL_CLOCK_START, ManualClock } from './manual-clock.js';

describe('ManualClock', () => {
  it('starts at a fixed time and only moves on advance', async () => {
    const clock = new ManualClock();
    expect(clock.now()).toBe(MANUAL_CLOCK_START);
    await clock.advance(1500);
    expect(clock.now()).toBe(MANUAL_CLOCK_START + 1500);
    expect(new ManualClock(5).now()).toBe(5);
  });

  it('runs due tasks in due order at their own time, awaiting each', async () => {
    const clock = new ManualClock(0);
    const seen: string[] = [];
    clock.schedule(30, () => void seen.push(`c@${clock.now()}`));
    clock.schedule(10, async () => {
      await Promise.resolve();
      seen.push(`a@${clock.now()}`);
      // Scheduled from inside the window: still runs in this advance.
      clock.schedule(5, () => void seen.push(`a2@${clock.now()}`));
    });
    clock.schedule(10, () => void seen.push(`b@${clock.now()}`));
    clock.schedule(100, () => void seen.push('late'));
    await clock.advance(50);
    expect(seen).toEqual(['a@10', 'b@10', 'a2@15', 'c@30']);
    expect(clock.now()).toBe(50);
    expect(clock.pendingCount).toBe(1);
  });

  it('cancels a task', async () => {
    const clock = new ManualClock(0);
    let ran = false;
    const cancel = clock.schedule(10, () => void (ran = true));
    cancel();
    cancel();
    await clock.advance(20);
    expect(ran).toBe(false);
    expect(clock.pendingCount).toBe(0);
  });

  it('rejects negative or non-finite delays', async () => {
    const clock = new ManualClock(0);
    expect(() => clock.schedule(-1, () => undefined)).toThrow(QuartzError);
    expect(() => clock.schedule(Number.NaN, () => undefined)).toThrow(/delay/);
    await expect(clock.advance(-5)).rejects.toMatchObject({ code: ErrorCode.INVALID_ARGUMENT });
  });
});
