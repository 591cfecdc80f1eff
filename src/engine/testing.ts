/**
 * Test helpers for engine units: an EngineContext on memory storage, a manual clock and an
 * in-memory usage recorder, so a unit's tests control time and can read what it metered.
 */
import { ManualClock } from '../ports/manual-clock.js';
import { createMemoryStorage, type MemoryStorage } from '../ports/memory-storage.js';
import type { Capabilities, EngineContext, UsageMetric, UsageRecorder } from './context.js';
import { createEngine, type Engine } from './engine.js';

/** What a home without threads or persistence reports; the tests' default. */
export const TEST_CAPABILITIES: Capabilities = { compileWasmAtRuntime: true, threads: false, persistentStorage: false };

/** Sums usage deltas per tenant and metric. */
export class MemoryUsageRecorder implements UsageRecorder {
  private readonly totals = new Map<string, Map<UsageMetric, number>>();

  add(tenantId: string, metric: UsageMetric, delta: number): void {
    let perTenant = this.totals.get(tenantId);
    if (perTenant === undefined) this.totals.set(tenantId, (perTenant = new Map()));
    perTenant.set(metric, (perTenant.get(metric) ?? 0) + delta);
  }

  /** The running total for one tenant and metric (0 when nothing was recorded). */
  get(tenantId: string, metric: UsageMetric): number {
    return this.totals.get(tenantId)?.get(metric) ?? 0;
  }

  /** Every metric recorded for a tenant. */
  snapshot(tenantId: string): Partial<Record<UsageMetric, number>> {
    return Object.fromEntries(this.totals.get(tenantId) ?? []);
  }
}

export interface TestContext extends EngineContext {
  storage: MemoryStorage;
  clock: ManualClock;
  scheduler: ManualClock;
  usage: MemoryUsageRecorder;
}

/**
 * A fresh EngineContext for a unit test. `clock` and `scheduler` are the same ManualClock.
 *
 * @example
 * const ctx = createTestContext();
 * const kv = await KvStore.open(ctx, 't1');
 * await ctx.clock.advance(60_000);
 * expect(ctx.usage.get('t1', 'bytes_stored')).toBe(0);
 */
export function createTestContext(options: { start?: number; capabilities?: Partial<Capabilities> } = {}): TestContext {
  const clock = new ManualClock(options.start);
  return {
    storage: createMemoryStorage(),
    clock,
    scheduler: clock,
    usage: new MemoryUsageRecorder(),
    capabilities: { ...TEST_CAPABILITIES, ...options.capabilities },
  };
}

/**
 * A whole engine on fresh memory storage; with a `clock`, it is both the clock and the scheduler.
 *
 * @example
 * const clock = new ManualClock();
 * const engine = await createTestEngine({ clock });
 */
export function createTestEngine(options: { clock?: ManualClock } = {}): Promise<Engine> {
  const { clock } = options;
  return createEngine({ storage: createMemoryStorage(), capabilities: TEST_CAPABILITIES, ...(clock ? { clock, scheduler: clock } : {}) });
}
