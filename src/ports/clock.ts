/**
 * Time for the engine: a Clock to read it and a Scheduler to be woken by it (TTL purges,
 * segment rolls, retention). Node uses timers; the Worker home will use Durable Object alarms;
 * tests use the manual clock.
 */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
}

export interface Scheduler {
  /** Runs `task` once, `delayMs` from now. Returns a function that cancels it. */
  schedule(delayMs: number, task: () => void | Promise<void>): () => void;
  /**
   * Keeps the host process alive while a caller awaits the engine (a long-poll), although
   * scheduled tasks do not; returns the release. Homes whose timers never hold a process open
   * leave it out.
   */
  hold?(): () => void;
}
