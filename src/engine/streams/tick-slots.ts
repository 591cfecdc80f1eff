/**
 * The partitions' roll/retention ticks, on one timer per occupied slot of a tick interval rather
 * than one per partition. Each partition ticks at its own phase of its interval, one of
 * TICK_SLOTS slots picked by a hash of its name, so a tenant's partitions, which open together,
 * do not all tick in the same instant. Partitions that share a slot tick in one timer wake-up;
 * with a timer each, 12,800 partitions kept 12,800 timers re-armed once a minute, each wake-up
 * paying for its own timer, closure and promise chain while almost every tick had nothing to do.
 */
import type { Clock, Scheduler } from '../../ports/clock.js';

/** A tick interval is cut into this many slots: 100 ms slots of a 60 s interval (12,800 partitions: ~21 a slot). */
export const TICK_SLOTS = 600;
/** ...but slots of at least this long, so a short interval still gathers a slot's ticks in one wake-up. */
export const MIN_TICK_SLOT_MS = 10;

export interface Ticking {
  /** Runs what is due; a promise if that is work to wait for, undefined if nothing was due. */
  tick(): Promise<void> | undefined;
}

interface Slot {
  readonly key: string;
  readonly interval: number;
  readonly phase: number;
  readonly members: Set<Ticking>;
  cancel: () => void;
}

/** One set of slots per clock and scheduler, i.e. per engine, without wiring it through the engine's context. */
const bySchedulerAndClock = new WeakMap<Scheduler, WeakMap<Clock, TickSlots>>();

export class TickSlots {
  private readonly slots = new Map<string, Slot>();

  constructor(
    private readonly clock: Clock,
    private readonly scheduler: Scheduler,
  ) {}

  /**
   * The slots every partition of an engine shares (the engine's clock and scheduler name it).
   *
   * @example
   * const remove = TickSlots.of(clock, scheduler).add(log, 60_000, hashOfName);
   */
  static of(clock: Clock, scheduler: Scheduler): TickSlots {
    let byClock = bySchedulerAndClock.get(scheduler);
    if (byClock === undefined) bySchedulerAndClock.set(scheduler, (byClock = new WeakMap()));
    let slots = byClock.get(clock);
    if (slots === undefined) byClock.set(clock, (slots = new TickSlots(clock, scheduler)));
    return slots;
  }

  /** Timers armed: one per slot that has members. */
  get timers(): number {
    return this.slots.size;
  }

  /**
   * Ticks `member` every `intervalMs` at the phase `hash` picks, from the next time that phase
   * comes round; returns what stops it.
   */
  add(member: Ticking, intervalMs: number, hash: number): () => void {
    const slotMs = Math.max(MIN_TICK_SLOT_MS, Math.floor(intervalMs / TICK_SLOTS));
    const phase = (hash % Math.max(1, Math.floor(intervalMs / slotMs))) * slotMs;
    const key = `${intervalMs}:${phase}`;
    let slot = this.slots.get(key);
    if (slot === undefined) {
      slot = { key, interval: intervalMs, phase, members: new Set(), cancel: () => {} };
      this.slots.set(key, slot);
      this.arm(slot);
    }
    slot.members.add(member);
    const joined = slot;
    return () => {
      joined.members.delete(member);
      if (joined.members.size === 0 && this.slots.get(joined.key) === joined) {
        joined.cancel();
        this.slots.delete(joined.key);
      }
    };
  }

  /**
   * Arms the slot's next phase on the clock, never more than an interval away: a late wake-up
   * (a busy event loop) keeps the phase rather than waiting a whole interval from itself, and a
   * wall clock set back does not hold the slot (the delay is what is left of this interval).
   */
  private arm(slot: Slot): void {
    const sinceLast = (((this.clock.now() - slot.phase) % slot.interval) + slot.interval) % slot.interval;
    slot.cancel = this.scheduler.schedule(slot.interval - sinceLast, () => this.fire(slot));
  }

  private fire(slot: Slot): Promise<void> | undefined {
    if (this.slots.get(slot.key) !== slot) return undefined;
    // Re-armed before the ticks run, so a slow roll of one member never delays the slot.
    this.arm(slot);
    let running: Promise<void>[] | undefined;
    for (const member of slot.members) {
      const work = member.tick();
      if (work !== undefined) (running ??= []).push(work);
    }
    return running === undefined ? undefined : Promise.all(running).then(() => undefined);
  }
}
