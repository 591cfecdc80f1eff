import { describe, expect, it } from 'vitest';
import { ErrorCode, QuartzError } from '../../core/errors.js';
import { ManualClock } from '../../ports/manual-clock.js';
import { createMemoryStorage } from '../../ports/memory-storage.js';
import type { StorageProvider, UnitStorage } from '../../ports/storage.js';
import type { UsageMetric } from '../context.js';
import { UsageMeter, periodOf, type TenantUsage, type UsageRow } from './usage-meter.js';

const JAN_END = Date.UTC(2025, 0, 31, 23, 59, 0);

function setup(start = JAN_END) {
  const storage = createMemoryStorage();
  const clock = new ManualClock(start);
  return { storage, clock, scheduler: clock };
}

async function collect(it: AsyncIterable<UsageRow>): Promise<UsageRow[]> {
  const out: UsageRow[] = [];
  for await (const row of it) out.push(row);
  return out;
}

function row(tenant_id: string, period: string, figures: Partial<Record<UsageMetric, number>>): UsageRow {
  return { tenant_id, period, api_calls: 0, bytes_stored: 0, records_produced: 0, vectors_stored: 0, function_ms: 0, ...figures };
}

/** What `usage` answers for a tenant whose levels are not being counted afresh. */
function usageOf(tenant_id: string, period: string, figures: Partial<Record<UsageMetric, number>>): TenantUsage {
  return { ...row(tenant_id, period, figures), recounting: false };
}

describe('UsageMeter', () => {
  it('answers every count while a flush is writing them: figures read during a flush never go back', async () => {
    const env = setup(Date.UTC(2025, 4, 10));
    const meter = await UsageMeter.open(env);
    let expected = 0;
    for (let round = 0; round < 6; round++) {
      meter.add('t1', 'api_calls', 5);
      meter.add('t1', 'bytes_stored', 100);
      expected += 5;
      const flushing = meter.flush();
      // Read at every turn of the flush's awaits, with counts arriving meanwhile.
      let flushed = false;
      void flushing.then(() => (flushed = true));
      for (let i = 0; !flushed && i < 50; i++) {
        meter.add('t1', 'api_calls', 1);
        expected += 1;
        const seen = await meter.usage('t1');
        expect(seen.api_calls).toBe(expected);
        expect(seen.bytes_stored).toBe(100 * (round + 1));
      }
      await flushing;
    }
    expect((await meter.usage('t1')).api_calls).toBe(expected);
    await meter.close();
  });

  it('counts in memory, answers with pending counts, and persists them across a reopen', async () => {
    const env = setup(Date.UTC(2025, 4, 10));
    let meter = await UsageMeter.open(env);
    meter.add('t1', 'api_calls', 1);
    meter.add('t1', 'api_calls', 2);
    meter.add('t1', 'bytes_stored', 500);
    meter.add('t1', 'bytes_stored', -200);
    meter.add('t1', 'function_ms', 12.5);
    meter.add('t2', 'records_produced', 7);
    const unit = env.storage.unit('tenants');
    // Nothing counted is written yet (add() is memory only); open wrote only its crash count (m/).
    expect((await unit.kv.scan({})).filter((e) => new TextDecoder().decode(e.key).slice(0, 2) !== 'm/')).toEqual([]);
    expect(await meter.usage('t1')).toEqual(usageOf('t1', '2025-05', { api_calls: 3, bytes_stored: 300, function_ms: 12.5 }));
    await meter.close();
    meter = await UsageMeter.open(env);
    expect(await meter.usage('t1')).toEqual(usageOf('t1', '2025-05', { api_calls: 3, bytes_stored: 300, function_ms: 12.5 }));
    expect(await meter.usage('t2', '2025-05')).toEqual(usageOf('t2', '2025-05', { records_produced: 7 }));
    meter.add('t1', 'api_calls', 1);
    expect((await meter.usage('t1')).api_calls).toBe(4);
    await meter.close();
  });

  it('sums a period over tenants as the export rows add up, across random counts, flushes, month ends and a reopen', async () => {
    const env = setup(Date.UTC(2025, 0, 31, 20));
    let meter = await UsageMeter.open(env);
    let seed = 7;
    const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const metrics: UsageMetric[] = ['api_calls', 'bytes_stored', 'records_produced', 'vectors_stored', 'function_ms'];
    const exported = async (period: string) => {
      const sums: Record<string, number> = {};
      for (const m of metrics) sums[m] = 0;
      for (const r of await collect(meter.export({ from: period, to: period }))) for (const m of metrics) sums[m]! += r[m];
      return sums;
    };
    for (let round = 0; round < 60; round++) {
      for (let i = 0; i < 1 + Math.floor(random() * 20); i++) {
        meter.add(`t${Math.floor(random() * 12)}`, metrics[Math.floor(random() * metrics.length)]!, Math.floor(random() * 200) - 50);
      }
      if (random() < 0.3) await meter.flush();
      if (random() < 0.1) await env.clock.advance(3 * 3600_000); // crosses into February on the way, periodic flushes on the way
      if (random() < 0.05) {
        await meter.close();
        meter = await UsageMeter.open(env);
      }
      const period = periodOf(env.clock.now());
      const totals = await meter.totals(period);
      expect(totals, `round ${round}`).toEqual(await exported(period));
    }
    expect(periodOf(env.clock.now())).toBe('2025-02');
    await meter.close();
  });

  it('flushes periodically on the scheduler', async () => {
    const env = setup(Date.UTC(2025, 4, 10));
    const meter = await UsageMeter.open({ ...env, flushIntervalMs: 10_000 });
    meter.add('t1', 'api_calls', 5);
    await env.clock.advance(10_000);
    const rows = env.storage.unit('tenants').kv.scan({ prefix: new TextEncoder().encode('u/') });
    expect(rows).toHaveLength(1);
    meter.add('t1', 'api_calls', 1);
    await env.clock.advance(10_000);
    // Read straight from storage through a second meter: it only sees what was flushed.
    const reader = await UsageMeter.open(env);
    expect((await reader.usage('t1')).api_calls).toBe(6);
    await meter.close();
    await reader.close();
  });

  it("counts a delta in the period of the caller's time when it passes one (auth reads the clock once per request)", async () => {
    const env = setup(); // 2025-01-31T23:59Z
    const meter = await UsageMeter.open(env);
    meter.add('t1', 'api_calls', 1, Date.UTC(2025, 1, 1, 0, 0, 5)); // read just past midnight by the caller
    meter.add('t1', 'api_calls', 2); // the meter's own clock: still January
    expect(await meter.usage('t1', '2025-02')).toEqual(usageOf('t1', '2025-02', { api_calls: 1 }));
    expect(await meter.usage('t1', '2025-01')).toEqual(usageOf('t1', '2025-01', { api_calls: 2 }));
    expect(() => meter.add('t1', 'api_calls', 1, Number.NaN)).toThrow(/usage time must be a finite number/);
    await meter.close();
  });

  it('splits counters by calendar month (UTC) and carries storage levels into the next month', async () => {
    const env = setup();
    const meter = await UsageMeter.open(env);
    meter.add('t1', 'api_calls', 10);
    meter.add('t1', 'bytes_stored', 100);
    meter.add('t2', 'vectors_stored', 50);
    await meter.flush();
    await env.clock.advance(60_000); // → 2025-02-01T00:00Z
    expect(periodOf(env.clock.now())).toBe('2025-02');
    meter.add('t1', 'api_calls', 1);
    meter.add('t1', 'bytes_stored', -30);
    expect(await meter.usage('t1', '2025-01')).toEqual(usageOf('t1', '2025-01', { api_calls: 10, bytes_stored: 100 }));
    expect(await meter.usage('t1')).toEqual(usageOf('t1', '2025-02', { api_calls: 1, bytes_stored: 70 }));
    expect(await meter.usage('t2')).toEqual(usageOf('t2', '2025-02', { vectors_stored: 50 }));
    // t2 did nothing in February but still stores vectors: the export lists it for February.
    expect(await collect(meter.export({ from: '2025-01', to: '2025-02' }))).toEqual([
      row('t1', '2025-01', { api_calls: 10, bytes_stored: 100 }),
      row('t2', '2025-01', { vectors_stored: 50 }),
      row('t1', '2025-02', { api_calls: 1, bytes_stored: 70 }),
      row('t2', '2025-02', { vectors_stored: 50 }),
    ]);
    expect(await collect(meter.export({ from: '2025-02', to: '2025-02' }))).toHaveLength(2);
    expect(await collect(meter.export({ from: '2025-03' }))).toEqual([]);
    expect(await meter.usage('t1', '2024-12')).toEqual(usageOf('t1', '2024-12', {}));
    await meter.close();
  });

  it('carries the levels of a tenant whose id starts with U+FEFF into the next month as its own (found by the review)', async () => {
    // The levels' decoder dropped a leading BOM: '\uFEFFacme' carried over as 'acme', over acme's own level.
    const env = setup();
    const meter = await UsageMeter.open(env);
    meter.add('acme', 'bytes_stored', 100);
    meter.add('\uFEFFacme', 'bytes_stored', 7);
    meter.add('\uFEFF', 'vectors_stored', 3);
    await meter.flush();
    await env.clock.advance(60_000); // → 2025-02-01T00:00Z
    await meter.flush();
    expect(await meter.usage('acme')).toEqual(usageOf('acme', '2025-02', { bytes_stored: 100 }));
    expect(await meter.usage('\uFEFFacme')).toEqual(usageOf('\uFEFFacme', '2025-02', { bytes_stored: 7 }));
    expect(await meter.usage('\uFEFF')).toEqual(usageOf('\uFEFF', '2025-02', { vectors_stored: 3 }));
    expect((await collect(meter.export({ from: '2025-02' }))).map((r) => r.tenant_id).sort()).toEqual(['acme', '\uFEFF', '\uFEFFacme'].sort());
    await meter.close();
  });

  it('keeps the counts when a flush fails and writes them on the next one', async () => {
    const inner = createMemoryStorage();
    let failing = true;
    const storage: StorageProvider = {
      unit(name: string): UnitStorage {
        const u = inner.unit(name);
        return {
          blobs: u.blobs,
          kv: {
            get: (k) => u.kv.get(k),
            put: (k, v) => u.kv.put(k, v),
            delete: (k) => u.kv.delete(k),
            scan: (o) => u.kv.scan(o),
            batch: (ops) => {
              if (failing) throw new Error('disk full');
              return u.kv.batch(ops);
            },
          },
        };
      },
      dropUnit: (n) => inner.dropUnit(n),
      close: () => inner.close(),
    };
    const clock = new ManualClock(Date.UTC(2025, 4, 10));
    const meter = await UsageMeter.open({ storage, clock, scheduler: clock, flushIntervalMs: 1000 });
    meter.add('t1', 'api_calls', 3);
    await expect(meter.flush()).rejects.toThrow('disk full');
    await clock.advance(1000); // the periodic flush fails too, quietly, and keeps the counts
    meter.add('t1', 'api_calls', 1);
    expect((await meter.usage('t1')).api_calls).toBe(4);
    failing = false;
    await meter.close();
    const reader = await UsageMeter.open({ storage, clock, scheduler: clock });
    expect((await reader.usage('t1')).api_calls).toBe(4);
  });

  it('rejects unknown metrics, non-finite deltas and malformed periods', async () => {
    const meter = await UsageMeter.open(setup());
    const expectCode = async (fn: () => unknown, message: RegExp) => {
      try {
        await fn();
        throw new Error('expected a QuartzError');
      } catch (err) {
        expect(err).toBeInstanceOf(QuartzError);
        expect((err as QuartzError).code).toBe(ErrorCode.INVALID_ARGUMENT);
        expect((err as QuartzError).message).toMatch(message);
      }
    };
    await expectCode(() => meter.add('t1', 'coffees' as UsageMetric, 1), /unknown usage metric "coffees"/);
    await expectCode(() => meter.add('t1', 'api_calls', Number.NaN), /finite number/);
    await expectCode(() => meter.add('', 'api_calls', 1), /tenant id/);
    await expectCode(() => meter.usage('t1', '2025-13'), /period must look like YYYY-MM/);
    await expectCode(() => collect(meter.export({ from: '2025-03', to: '2025-01' })), /is after/);
    await expectCode(() => UsageMeter.open({ ...setup(), flushIntervalMs: 0 }), /flushIntervalMs/);
  });
});
