import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../ports/manual-clock.js';
import { murmur2 } from './murmur2.js';
import { TickSlots } from './tick-slots.js';

const utf8 = new TextEncoder();
const hashOf = (name: string): number => murmur2(utf8.encode(name)) >>> 0;

/** A member that notes the time of each of its ticks. */
function member(clock: { now(): number }): { ticks: number[]; tick(): undefined } {
  const ticks: number[] = [];
  return {
    ticks,
    tick() {
      ticks.push(clock.now());
      return undefined;
    },
  };
}

describe('TickSlots', () => {
  it('ticks every member once an interval at its own phase, on one timer per occupied slot', async () => {
    const clock = new ManualClock(0);
    const slots = new TickSlots(clock, clock);
    const members = Array.from({ length: 6000 }, (_, i) => ({ name: `log/t1/topic-${i >> 6}/${i & 63}`, m: member(clock) }));
    for (const { name, m } of members) slots.add(m, 60_000, hashOf(name));
    // 600 slots of 100 ms, nearly all occupied by 6,000 partitions: a timer each, not one per partition
    expect(clock.pendingCount).toBe(slots.timers);
    expect(slots.timers).toBeLessThanOrEqual(600);
    expect(slots.timers).toBeGreaterThan(590);
    await clock.advance(180_000);
    const perSlot = new Map<number, number>();
    for (const { name, m } of members) {
      const phase = (hashOf(name) % 600) * 100;
      // first at its phase of the interval (a member joining on its phase waits a whole interval)
      const first = phase === 0 ? 60_000 : phase;
      expect(m.ticks).toEqual([first, first + 60_000, first + 120_000].filter((t) => t <= 180_000));
      perSlot.set(phase, (perSlot.get(phase) ?? 0) + 1);
    }
    // spread: ~10 a slot, never a crowd
    expect(Math.max(...perSlot.values())).toBeLessThanOrEqual(30);
  });

  it('loses no tick of the members left when others leave or join a slot, and frees an empty slot', async () => {
    const clock = new ManualClock(0);
    const slots = new TickSlots(clock, clock);
    const [a, b, c, d] = [member(clock), member(clock), member(clock), member(clock)];
    const stopA = slots.add(a, 1000, 7);
    const stopB = slots.add(b, 1000, 7);
    expect(slots.timers).toBe(1);
    await clock.advance(1000); // the phase of hash 7 in 10 ms slots of 1 s: 70 ms
    expect(a.ticks).toEqual([70]);
    stopA();
    const stopC = slots.add(c, 1000, 7);
    await clock.advance(1000);
    expect(a.ticks).toEqual([70]);
    expect(b.ticks).toEqual([70, 1070]);
    expect(c.ticks).toEqual([1070]);
    // the last members leave between wake-ups: the timer goes; one joining later arms it again
    stopB();
    stopC();
    expect(clock.pendingCount).toBe(0);
    expect(slots.timers).toBe(0);
    const stopD = slots.add(d, 1000, 7);
    expect(clock.pendingCount).toBe(1);
    await clock.advance(2000);
    expect(d.ticks).toEqual([2070, 3070]);
    expect(b.ticks).toEqual([70, 1070]);
    // a member that leaves during a wake-up, before its turn, is not ticked by it
    const e = member(clock);
    const leaver = {
      tick: () => {
        stopE();
        return undefined;
      },
    };
    slots.add(leaver, 1000, 7);
    const stopE = slots.add(e, 1000, 7);
    await clock.advance(1000);
    expect(e.ticks).toEqual([]);
    expect(d.ticks).toEqual([2070, 3070, 4070]);
    stopD();
  });

  it('keeps ticking on phase when the wall clock is set back', async () => {
    const manual = new ManualClock(1_000_000);
    let setBack = 0;
    const clock = { now: () => manual.now() - setBack };
    const slots = new TickSlots(clock, manual);
    const m = member(manual);
    slots.add(m, 1000, 3); // phase 30 ms
    await manual.advance(1000);
    expect(m.ticks).toEqual([1_000_030]);
    // an hour back: the next tick is still due within the interval, not an hour later
    setBack = 3_600_000;
    await manual.advance(3000);
    expect(m.ticks).toEqual([1_000_030, 1_001_030, 1_002_030, 1_003_030]);
  });

  it('waits for the work a wake-up starts before the next', async () => {
    const clock = new ManualClock(0);
    const slots = new TickSlots(clock, clock);
    const done: number[] = [];
    slots.add(
      {
        tick: () =>
          (async () => {
            await Promise.resolve();
            done.push(clock.now());
          })(),
      },
      500,
      1,
    );
    await clock.advance(1200);
    expect(done).toEqual([10, 510, 1010]);
  });

  it('shares one set of slots per clock and scheduler', () => {
    const a = new ManualClock(0);
    const b = new ManualClock(0);
    expect(TickSlots.of(a, a)).toBe(TickSlots.of(a, a));
    expect(TickSlots.of(a, a)).not.toBe(TickSlots.of(b, b));
    expect(TickSlots.of(a, b)).not.toBe(TickSlots.of(b, b));
  });
});
