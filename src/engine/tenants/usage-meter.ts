/**
 * Usage metering per tenant and billing period (calendar month, UTC). `add()` only bumps numbers
 * in memory; a flush (periodic, and on close) folds them into the `tenants` unit, so metering costs
 * the hot path a map lookup and the storage one batch per interval.
 *
 * Counters (api_calls, records_produced, function_ms) are sums per period. Gauges (bytes_stored,
 * vectors_stored) are levels: a period's row holds the level at its last flush, and the first
 * flush of a new period carries every tenant's non-zero level forward so the export lists them.
 *
 * Keys in the `tenants` unit (UTF-8):
 *   u/<YYYY-MM>/<tenantId> → JSON UsageFigures for that period
 *   g/<tenantId>           → JSON { bytes_stored, vectors_stored }: the current levels
 *   m/period               → the last period flushed
 *   m/clean                → present only while closed cleanly (see `reconcile`)
 *   m/crashes              → how many opens found data but no `m/clean` (decimal)
 *   c/<tenantId>           → the `m/crashes` value when the tenant's levels were last counted
 *
 * A gauge is a level kept as deltas, so deltas a crash loses would leave it wrong for ever. The
 * meter deletes `m/clean` as it opens and writes it back as its last act on close: opened without
 * it, the stored levels may be short of lost deltas, so it counts one more crash. A tenant whose
 * levels were counted before the latest crash has `reconcile` replace them with a count of what it
 * holds, as the engine opens the tenant, whichever later run that is: a clean stop in between does
 * not make levels that missed the crash right.
 */
import { ErrorCode, QuartzError } from '../../core/errors.js';
import { showValue } from '../../core/show-value.js';
import type { Clock, Scheduler } from '../../ports/clock.js';
import { prefixEnd } from '../../ports/storage-checks.js';
import type { BatchOp, OrderedKV, StorageProvider } from '../../ports/storage.js';
import type { LevelCounter, UsageMetric, UsageRecorder } from '../context.js';
import { consoleLogger, type Logger } from '../../ports/logger.js';
import { META_UNIT } from '../data-version.js';

export const USAGE_METRICS: readonly UsageMetric[] = ['api_calls', 'bytes_stored', 'records_produced', 'vectors_stored', 'function_ms'];
const GAUGES = ['bytes_stored', 'vectors_stored'] as const satisfies readonly UsageMetric[];
// No prototype: 'constructor' or 'toString' must not look like a metric.
const METRIC_INDEX: Record<string, number> = Object.assign(Object.create(null) as Record<string, number>, Object.fromEntries(USAGE_METRICS.map((m, i) => [m, i])));
const GAUGE_INDEXES = GAUGES.map((g) => METRIC_INDEX[g]!);
export const DEFAULT_FLUSH_INTERVAL_MS = 60_000;
const PERIOD = /^\d{4}-(0[1-9]|1[0-2])$/;
const PAGE = 500;
const TENANTS_UNIT = 'tenants';
const CLEAN_KEY = new TextEncoder().encode('m/clean');
const CRASHES_KEY = new TextEncoder().encode('m/crashes');

/**
 * Whether the storage holds nothing a level could have missed: no tenant, usage or mark in the
 * `tenants` unit and no unit but it and the data version's. (A tenant the library uses without
 * registering it has units of its own, though its deltas may not have reached `tenants` yet.)
 * Without `listUnits` nothing can be told apart, so it answers false.
 */
async function holdsNothing(storage: StorageProvider, kv: OrderedKV): Promise<boolean> {
  if ((await kv.scan({ limit: 1 })).length > 0 || storage.listUnits === undefined) return false;
  return (await storage.listUnits('')).every((name) => name === TENANTS_UNIT || name === META_UNIT);
}

/**
 * Has the next open of the meter on `storage` take it as a start after a crash, so every tenant's
 * levels (`bytes_stored`, `vectors_stored`) are counted afresh when it is next used: for a tool
 * that changed a stopped server's data under the meter (restoring one collection).
 *
 * @example
 * await distrustUsageLevels(storage);
 */
export async function distrustUsageLevels(storage: StorageProvider): Promise<void> {
  await (await storage.unit(TENANTS_UNIT)).kv.delete(CLEAN_KEY);
}

export type UsageFigures = Record<UsageMetric, number>;

/** One tenant's figures for one period, as the usage export and `GET /v1/usage` show them. */
export interface UsageRow extends UsageFigures {
  tenant_id: string;
  period: string;
}

/** `GET /v1/usage`'s answer: a usage row and whether the tenant's bytes are being counted afresh. */
export interface TenantUsage extends UsageRow {
  /**
   * True while the tenant's `bytes_stored` is being counted afresh after a crash: until then it
   * shows the level stored before the crash plus the changes since, short of what the crash lost.
   */
  recounting: boolean;
}

export interface UsageMeterOptions {
  storage: StorageProvider;
  clock: Clock;
  scheduler: Scheduler;
  /** How often pending counts are persisted (default one minute). */
  flushIntervalMs?: number;
  /** Where a background recount that fails is reported; default the console. */
  logger?: Logger;
}

const utf8 = new TextEncoder();
// ignoreBOM: a tenant id may start with U+FEFF, which the decoder's default would drop.
const utf8Decoder = new TextDecoder('utf-8', { ignoreBOM: true });
const key = (s: string) => utf8.encode(s);

function invalid(message: string): QuartzError {
  return new QuartzError(ErrorCode.INVALID_ARGUMENT, message);
}

/**
 * The billing period ("YYYY-MM", UTC) that contains `ms`.
 *
 * @example
 * periodOf(Date.UTC(2025, 0, 31, 23, 59)); // '2025-01'
 */
export function periodOf(ms: number): string {
  return new Date(ms).toISOString().slice(0, 7);
}

function checkPeriod(period: unknown, what = 'period'): string {
  if (typeof period !== 'string' || !PERIOD.test(period)) throw invalid(`${what} must look like YYYY-MM, got ${showValue(period)}`);
  return period;
}

function zeros(): UsageFigures {
  return { api_calls: 0, bytes_stored: 0, records_produced: 0, vectors_stored: 0, function_ms: 0 };
}

function parseFigures(bytes: Uint8Array | undefined, what: string): UsageFigures | undefined {
  if (bytes === undefined) return undefined;
  try {
    const parsed = JSON.parse(utf8Decoder.decode(bytes)) as Partial<UsageFigures>;
    const out = zeros();
    for (const m of USAGE_METRICS) {
      const v = parsed[m];
      if (v !== undefined) {
        if (typeof v !== 'number' || !Number.isFinite(v)) throw new Error(`${m} is not a number`);
        out[m] = v;
      }
    }
    return out;
  } catch (cause) {
    throw new QuartzError(ErrorCode.CORRUPT_DATA, `stored usage ${what} is unreadable`, { cause });
  }
}

/** Adds a tenant's deltas not yet stored to its figures for `period`: counters of that period, gauges of it and before. */
function addUnstored(figures: UsageFigures, deltas: Map<string, Map<string, Float64Array>>, tenantId: string, period: string): void {
  for (const [deltaPeriod, tenants] of deltas) {
    const slots = tenants.get(tenantId);
    if (slots === undefined || deltaPeriod > period) continue;
    for (const i of GAUGE_INDEXES) figures[USAGE_METRICS[i]!] += slots[i]!;
    if (deltaPeriod === period) for (let i = 0; i < USAGE_METRICS.length; i++) if (!GAUGE_INDEXES.includes(i)) figures[USAGE_METRICS[i]!] += slots[i]!;
  }
}

export class UsageMeter implements UsageRecorder {
  /** Deltas not yet persisted: period → tenant → one slot per metric (USAGE_METRICS order). */
  private pending = new Map<string, Map<string, Float64Array>>();
  /** The deltas a flush took from `pending` and is writing; empty when none is. */
  private writing = new Map<string, Map<string, Float64Array>>();
  /** Flushes that have landed (or failed and given their deltas back): `usage` reads again if one did while it read. */
  private flushes = 0;
  private currentStart = 0;
  private currentEnd = -1;
  private current: Map<string, Float64Array> | undefined;
  private lastFlushedPeriod: string | undefined;
  private flushing: Promise<void> = Promise.resolve();
  private cancelTimer: (() => void) | undefined;
  private closed = false;
  /** Opens that found no clean shutdown: levels counted before the latest of them may be short. */
  private crashes = 0;
  /** Tenants whose levels were checked (and counted afresh if needed) since open. */
  private readonly reconciled = new Set<string>();
  /** Tenants whose bytes are being counted afresh: the count, settled once the level is corrected. */
  private readonly recounts = new Map<string, Promise<void>>();
  /** A period's stored rows summed over tenants, once `totals` asked for it; each flush adds what it changed. */
  private rowSums: { period: string; sums: UsageFigures } | undefined;

  private constructor(
    private readonly kv: OrderedKV,
    private readonly clock: Clock,
    private readonly scheduler: Scheduler,
    private readonly intervalMs: number,
    private readonly logger: Logger,
  ) {}

  /**
   * Opens the meter on the `tenants` unit and starts its periodic flush.
   *
   * @example
   * const usage = await UsageMeter.open({ storage, clock: systemClock, scheduler: timerScheduler });
   * usage.add('t_1', 'api_calls', 1);
   * console.log(await usage.usage('t_1')); // { tenant_id: 't_1', period: '2025-01', api_calls: 1, ... }
   */
  static async open(options: UsageMeterOptions): Promise<UsageMeter> {
    const interval = options.flushIntervalMs ?? DEFAULT_FLUSH_INTERVAL_MS;
    if (!(Number.isFinite(interval) && interval > 0)) throw invalid(`flushIntervalMs must be a positive number, got ${String(interval)}`);
    const unit = await options.storage.unit(TENANTS_UNIT);
    const meter = new UsageMeter(unit.kv, options.clock, options.scheduler, interval, options.logger ?? consoleLogger);
    const last = await unit.kv.get(key('m/period'));
    meter.lastFlushedPeriod = last === undefined ? undefined : utf8Decoder.decode(last);
    const crashes = await unit.kv.get(CRASHES_KEY);
    meter.crashes = crashes === undefined ? 0 : Number(utf8Decoder.decode(crashes));
    if ((await unit.kv.get(CLEAN_KEY)) !== undefined) {
      // From here on a crash loses deltas again: the next open must not trust the levels.
      await unit.kv.delete(CLEAN_KEY);
    } else if (!(await holdsNothing(options.storage, unit.kv))) {
      // A new data directory's levels start at zero with nothing to miss: counting its first open
      // as a crash had every tenant's first request say `recounting`.
      meter.crashes++;
      await unit.kv.put(CRASHES_KEY, utf8.encode(String(meter.crashes)));
    }
    meter.arm();
    return meter;
  }

  /**
   * If the tenant's levels were last counted before the latest crash (or on the first open of data
   * written before this check existed), replaces its gauges with what `counter` counts; otherwise
   * does nothing. Resolves once the vectors are counted; the bytes are counted in the background,
   * after `counter.prepare` (the tenant may be served then), and `usage` says `recounting` until
   * they are.
   * Each count starts in the turn the levels believed are read (in the flush queue, so no flush
   * moves pending deltas into them meanwhile): every delta after it is on both sides, the count
   * as of that moment replaces what was believed then.
   *
   * @example
   * await usage.reconcile('t_1', { vectors: async () => 0, bytes: () => kv.storedBytes() });
   */
  async reconcile(tenantId: string, counter: LevelCounter): Promise<void> {
    if (this.crashes === 0) return;
    // The count of a tenant closed a moment ago ends first: it may yet give the tenant back to be counted.
    await this.recounts.get(tenantId)?.catch(() => undefined);
    if (this.reconciled.has(tenantId)) return;
    this.reconciled.add(tenantId);
    try {
      const counted = await this.kv.get(key(`c/${tenantId}`));
      if (counted !== undefined && Number(utf8Decoder.decode(counted)) >= this.crashes) return;
      await this.inFlushQueue(async () => {
        const stored = await this.storedLevel(tenantId);
        const vectors = await counter.vectors();
        const believedVectors = stored.vectors_stored + this.pendingLevel(tenantId, 'vectors_stored');
        if (vectors !== believedVectors) this.add(tenantId, 'vectors_stored', vectors - believedVectors);
      });
    } catch (err) {
      this.reconciled.delete(tenantId); // tried again on the tenant's next open
      throw err;
    }
    // In the background: the bytes wait for `prepare` (the stream partitions, which may take a
    // while to open), and the tenant is served meanwhile.
    const recount = this.countBytes(tenantId, counter);
    this.recounts.set(tenantId, recount);
    recount.then(
      () => this.recounts.delete(tenantId),
      (err: unknown) => {
        this.recounts.delete(tenantId);
        this.reconciled.delete(tenantId); // tried again on the tenant's next open
        // Closing the tenant or the engine stops the count: not a failure.
        if (!(err instanceof QuartzError && err.code === ErrorCode.STORAGE_CLOSED)) {
          this.logger.error(`counting the stored bytes of tenant '${tenantId}' failed; its level stays as stored`, { tenant: tenantId, err });
        }
      },
    );
  }

  /**
   * Whether the tenant's bytes are being counted afresh (after a crash) at the moment: the count in
   * progress, which settles when it is done, or undefined.
   *
   * @example
   * await usage.recounting('t_1'); // the level is exact from here on
   */
  recounting(tenantId: string): Promise<void> | undefined {
    return this.recounts.get(tenantId);
  }

  /** Runs `task` in the flush queue: no flush moves pending deltas into the stored levels meanwhile. */
  private inFlushQueue<T>(task: () => Promise<T>): Promise<T> {
    const run = this.flushing.then(task);
    this.flushing = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  private async storedLevel(tenantId: string): Promise<UsageFigures> {
    return parseFigures(await this.kv.get(key(`g/${tenantId}`)), `level of tenant '${tenantId}'`) ?? zeros();
  }

  /** The tenant's deltas of `gauge` not stored yet. Called in the flush queue, where no flush is writing. */
  private pendingLevel(tenantId: string, gauge: (typeof GAUGES)[number]): number {
    let sum = 0;
    for (const tenants of this.pending.values()) sum += tenants.get(tenantId)?.[METRIC_INDEX[gauge]!] ?? 0;
    return sum;
  }

  /** Starts the bytes' count in the turn the level believed is read (see reconcile). */
  private startBytes(tenantId: string, stored: UsageFigures, counter: LevelCounter): { believed: number; counting: Promise<number | undefined> } {
    const believed = stored.bytes_stored + this.pendingLevel(tenantId, 'bytes_stored');
    return { believed, counting: counter.bytes() };
  }

  private async countBytes(tenantId: string, counter: LevelCounter): Promise<void> {
    await counter.prepare?.();
    let bytes = await this.inFlushQueue(async () => this.startBytes(tenantId, await this.storedLevel(tenantId), counter));
    for (;;) {
      const exact = await bytes.counting;
      if (exact !== undefined) {
        if (exact !== bytes.believed) this.add(tenantId, 'bytes_stored', exact - bytes.believed);
        break;
      }
      // A write failed under the count, so what storage holds is not known: count again from now.
      bytes = await this.inFlushQueue(async () => this.startBytes(tenantId, await this.storedLevel(tenantId), counter));
    }
    // A crash before the next flush loses the correction, but it also counts one more crash.
    await this.kv.put(key(`c/${tenantId}`), utf8.encode(String(this.crashes)));
  }

  /**
   * Counts `delta` (negative for gauges going down) of `metric` for a tenant. In memory only.
   *
   * @example
   * usage.add('t_1', 'bytes_stored', -1024); // a value was deleted
   */
  add(tenantId: string, metric: UsageMetric, delta: number, now = this.clock.now()): void {
    const index = METRIC_INDEX[metric];
    if (index === undefined) throw invalid(`unknown usage metric ${showValue(metric)}; expected one of ${USAGE_METRICS.join(', ')}`);
    if (typeof delta !== 'number' || !Number.isFinite(delta)) throw invalid(`usage delta for ${metric} must be a finite number, got ${String(delta)}`);
    if (typeof tenantId !== 'string' || tenantId.length === 0) throw invalid('usage tenant id must be a non-empty string');
    if (typeof now !== 'number' || !Number.isFinite(now)) throw invalid(`usage time must be a finite number of ms since the epoch, got ${String(now)}`);
    if (this.current === undefined || now < this.currentStart || now >= this.currentEnd) this.enterPeriod(now);
    let slots = this.current!.get(tenantId);
    if (slots === undefined) this.current!.set(tenantId, (slots = new Float64Array(USAGE_METRICS.length)));
    slots[index]! += delta;
  }

  /**
   * A tenant's figures for a period (default: the current one), including counts not yet flushed.
   *
   * @example
   * const { api_calls, bytes_stored } = await usage.usage('t_1', '2025-01');
   */
  async usage(tenantId: string, period?: string): Promise<TenantUsage> {
    if (typeof tenantId !== 'string' || tenantId.length === 0) throw invalid('tenant id must be a non-empty string');
    const now = this.clock.now();
    const current = periodOf(now);
    const p = period === undefined ? current : checkPeriod(period);
    // Stored rows plus what is not stored yet: the deltas pending and those a flush is writing. A
    // flush that lands while the rows are read moves its deltas into them, so read again then.
    for (;;) {
      const flushes = this.flushes;
      const row = parseFigures(await this.kv.get(key(`u/${p}/${tenantId}`)), `of tenant '${tenantId}' for ${p}`);
      const figures = row ?? zeros();
      if (row === undefined && p >= current) {
        const level = parseFigures(await this.kv.get(key(`g/${tenantId}`)), `level of tenant '${tenantId}'`);
        if (level !== undefined) for (const g of GAUGES) figures[g] = level[g];
      }
      if (flushes !== this.flushes) continue;
      addUnstored(figures, this.writing, tenantId, p);
      addUnstored(figures, this.pending, tenantId, p);
      return { tenant_id: tenantId, period: p, ...figures, recounting: this.recounts.has(tenantId) };
    }
  }

  /**
   * Every tenant's row for each period from `from` to `to` (inclusive, "YYYY-MM"), in period then
   * tenant order, after flushing what is pending. This is what the billing export writes as JSONL.
   *
   * @example
   * for await (const row of usage.export({ from: '2025-01', to: '2025-03' })) console.log(JSON.stringify(row));
   */
  async *export(range: { from?: string; to?: string } = {}): AsyncGenerator<UsageRow> {
    const from = range.from === undefined ? '0000-01' : checkPeriod(range.from, 'from');
    const to = range.to === undefined ? '9999-12' : checkPeriod(range.to, 'to');
    if (from > to) throw invalid(`from (${from}) is after to (${to})`);
    await this.flush();
    yield* this.rows(from, to);
  }

  /** The stored rows from period `from` to `to`, in period then tenant order. */
  private async *rows(from: string, to: string): AsyncGenerator<UsageRow> {
    let start = key(`u/${from}/`);
    const end = prefixEnd(key(`u/${to}/`))!;
    for (;;) {
      const rows = await this.kv.scan({ start, end, limit: PAGE });
      for (const row of rows) {
        const name = utf8Decoder.decode(row.key);
        const period = name.slice(2, 9);
        const tenantId = name.slice(10);
        yield { tenant_id: tenantId, period, ...parseFigures(row.value, `of tenant '${tenantId}' for ${period}`)! };
      }
      if (rows.length < PAGE) return;
      const last = rows[rows.length - 1]!.key;
      start = new Uint8Array(last.length + 1);
      start.set(last);
    }
  }

  /**
   * Every tenant's figures for `period` summed: what the rows `export` lists for it add up to
   * (pending counts are flushed first, as there). The stored rows are read on the first call for
   * a period; from then on each flush adds what it changed, so a metrics scrape costs a flush of
   * what changed since the last one, not a read of every tenant's row.
   *
   * @example
   * const { api_calls, bytes_stored } = await usage.totals('2025-01');
   */
  async totals(period: string): Promise<UsageFigures> {
    const p = checkPeriod(period);
    await this.flush();
    // In the flush queue, so no flush lands between the rows read and the sums kept.
    const run = this.flushing.then(async () => {
      if (this.rowSums?.period !== p) {
        const sums = zeros();
        for await (const row of this.rows(p, p)) for (const m of USAGE_METRICS) sums[m] += row[m];
        this.rowSums = { period: p, sums };
      }
      return { ...this.rowSums.sums };
    });
    this.flushing = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  /**
   * Persists pending counts now (flushes run one at a time, in order).
   *
   * @example
   * await usage.flush();
   */
  flush(): Promise<void> {
    const run = this.flushing.then(() => this.flushOnce());
    this.flushing = run.catch(() => undefined);
    return run;
  }

  /**
   * Stops the periodic flush and persists what is pending.
   *
   * @example
   * await usage.close();
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.cancelTimer?.();
    this.cancelTimer = undefined;
    // Their corrections land in this flush (the engine closes the tenants first, which stops them).
    await Promise.allSettled([...this.recounts.values()]);
    await this.flush();
    await this.kv.put(CLEAN_KEY, new Uint8Array(0));
  }

  private enterPeriod(now: number): void {
    const d = new Date(now);
    this.currentStart = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1);
    this.currentEnd = Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1);
    const period = periodOf(now);
    let map = this.pending.get(period);
    if (map === undefined) this.pending.set(period, (map = new Map()));
    this.current = map;
  }

  private async flushOnce(): Promise<void> {
    const now = periodOf(this.clock.now());
    if (this.pending.size === 0 && this.lastFlushedPeriod === now) return;
    const taken = this.pending;
    this.pending = new Map();
    this.current = undefined;
    this.writing = taken;
    try {
      const ops: BatchOp[] = [];
      const levels = new Map<string, UsageFigures>();
      const levelOf = async (tenantId: string): Promise<UsageFigures> => {
        let level = levels.get(tenantId);
        if (level === undefined) {
          level = parseFigures(await this.kv.get(key(`g/${tenantId}`)), `level of tenant '${tenantId}'`) ?? zeros();
          levels.set(tenantId, level);
        }
        return level;
      };
      const rows = new Map<string, UsageFigures>();
      /** The rows of the summed period (see `totals`) as they were stored before this flush. */
      const stored = new Map<string, UsageFigures>();
      const periods = [...taken.keys()];
      if (!periods.includes(now)) periods.push(now);
      periods.sort();
      let last = this.lastFlushedPeriod;
      for (const period of periods) {
        const tenants = taken.get(period) ?? new Map<string, Float64Array>();
        if (last === undefined || period > last) {
          // First flush of this period: carry every stored level forward so the period lists it.
          for (const [id, level] of await this.allLevels()) {
            if (!levels.has(id)) levels.set(id, level);
            if (!tenants.has(id) && GAUGES.some((g) => level[g] !== 0)) tenants.set(id, new Float64Array(USAGE_METRICS.length));
          }
          last = period;
        }
        for (const [tenantId, slots] of tenants) {
          const rowKey = `u/${period}/${tenantId}`;
          let row = rows.get(rowKey);
          if (row === undefined) {
            row = parseFigures(await this.kv.get(key(rowKey)), `of tenant '${tenantId}' for ${period}`) ?? zeros();
            rows.set(rowKey, row);
            if (period === this.rowSums?.period) stored.set(rowKey, { ...row });
          }
          const level = await levelOf(tenantId);
          USAGE_METRICS.forEach((m, i) => {
            if (GAUGE_INDEXES.includes(i)) {
              level[m] += slots[i]!;
              row[m] = level[m];
            } else {
              row[m] += slots[i]!;
            }
          });
        }
      }
      for (const [rowKey, row] of rows) ops.push({ type: 'put', key: key(rowKey), value: utf8.encode(JSON.stringify(row)) });
      for (const [id, level] of levels) {
        ops.push({ type: 'put', key: key(`g/${id}`), value: utf8.encode(JSON.stringify({ bytes_stored: level.bytes_stored, vectors_stored: level.vectors_stored })) });
      }
      if (last !== undefined && last !== this.lastFlushedPeriod) ops.push({ type: 'put', key: key('m/period'), value: utf8.encode(last) });
      if (ops.length > 0) await this.kv.batch(ops);
      const sums = this.rowSums;
      if (sums !== undefined) {
        for (const [rowKey, before] of stored) {
          const row = rows.get(rowKey)!;
          for (const m of USAGE_METRICS) sums.sums[m] += row[m] - before[m];
        }
      }
      this.lastFlushedPeriod = last;
      this.landed();
    } catch (err) {
      // Nothing was written (the batch is atomic): put the counts back for the next flush.
      for (const [period, tenants] of taken) {
        for (const [tenantId, slots] of tenants) {
          let map = this.pending.get(period);
          if (map === undefined) this.pending.set(period, (map = new Map()));
          const mine = map.get(tenantId);
          if (mine === undefined) map.set(tenantId, slots);
          else for (let i = 0; i < slots.length; i++) mine[i]! += slots[i]!;
        }
      }
      this.landed();
      throw err;
    }
  }

  /** The flush's deltas are stored (or back in `pending`): no longer counted as being written. */
  private landed(): void {
    this.writing = new Map();
    this.flushes++;
  }

  private async allLevels(): Promise<Map<string, UsageFigures>> {
    const out = new Map<string, UsageFigures>();
    let start = key('g/');
    const end = key('g0'); // '0' sorts right after '/'
    for (;;) {
      const rows = await this.kv.scan({ start, end, limit: PAGE });
      for (const row of rows) {
        const id = utf8Decoder.decode(row.key.subarray(2));
        out.set(id, parseFigures(row.value, `level of tenant '${id}'`)!);
      }
      if (rows.length < PAGE) return out;
      const last = rows[rows.length - 1]!.key;
      start = new Uint8Array(last.length + 1);
      start.set(last);
    }
  }

  private arm(): void {
    if (this.closed) return;
    this.cancelTimer = this.scheduler.schedule(this.intervalMs, async () => {
      this.cancelTimer = undefined;
      try {
        await this.flush();
      } catch {
        // The counts stay pending (flushOnce puts them back); the next tick retries.
      }
      this.arm();
    });
  }
}
