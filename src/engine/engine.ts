/**
 * The engine facade: one object that owns a StorageProvider, checks the data format version,
 * and hands out each tenant's data services (KV, streams, vectors), opened lazily and cached.
 * Platform-free; each home builds it from its own adapters (see src/node/open-quartz.ts).
 */
import { ErrorCode, QuartzError } from '../core/errors.js';
import { init, type InitInput } from '../core/loader.js';
import { showValue } from '../core/show-value.js';
import { refuseUnknownOptions } from './known-options.js';
import { MAX_TENANT_ID, isTenantId } from './tenant-id.js';
import type { BatchEncoder } from '../ports/batch-encoder.js';
import type { Clock, Scheduler } from '../ports/clock.js';
import { consoleLogger, type Logger } from '../ports/logger.js';
import type { StorageProvider } from '../ports/storage.js';
import { systemClock, timerScheduler } from '../ports/system-clock.js';
import type { Capabilities, EngineContext, LevelCounter, UsageRecorder } from './context.js';
import { ensureDataVersion, type DataVersionResult, type Migration } from './data-version.js';
import { HotValues } from './kv/hot-values.js';
import { KeyCache, type KeyCacheStats } from './kv/key-cache.js';
import { KvStore, type KvStoreOptions } from './kv/kv-store.js';
import { SegmentCache } from './streams/segment-cache.js';
import { DEFAULT_SEGMENT_CACHE_BYTES, StreamStore, type StreamStoreOptions } from './streams/stream-store.js';
import { TenantRegistry } from './tenants/tenant-registry.js';
import { UsageMeter } from './tenants/usage-meter.js';
import { OpenCollections, type OpenCollectionsStats } from './vectors/open-collections.js';
import type { SnapshotPolicy } from './vectors/collection.js';
import { VectorStore, type VectorStoreOptions } from './vectors/vector-store.js';

export interface EngineOptions {
  storage: StorageProvider;
  capabilities: Capabilities;
  /** Defaults to wall time. */
  clock?: Clock;
  /** Defaults to timers. */
  scheduler?: Scheduler;
  /** Where the services meter usage; by default a UsageMeter persisted in the `tenants` unit. */
  usage?: UsageRecorder;
  /** Plan given to tenants created without one. */
  defaultPlan?: string;
  /** The WASM core, if the home has not registered a default source for `init()`. */
  wasm?: InitInput;
  kv?: KvEngineOptions;
  /**
   * A tenant unused this long (ms; 0 never) lets go of what it holds only as a cache (its KV key
   * cache and hot entries); its services stay open, so a held scope keeps working. Default 10 minutes.
   */
  tenantIdleMs?: number;
  streams?: StreamStoreOptions;
  vectors?: VectorStoreOptions;
  /** Names the data in messages, e.g. "data directory ./.quartz". */
  where?: string;
  /** Seals large produce batches off the engine's thread; the engine closes it. Default: inline. */
  batchEncoder?: BatchEncoder;
  /** Where background work that fails (a partition's roll or retention, a usage recount, metering KV writes) is reported. Default: the console. */
  logger?: Logger;
  /** Replaces the built-in migrations (tests). */
  migrations?: readonly Migration[];
}

export interface KvEngineOptions extends KvStoreOptions {
  /**
   * Bytes of every tenant's KV key cache together (each key counted at ~170 bytes plus its
   * length); the least recently used tenants' settled keys go first beyond it. Default 128 MiB;
   * Infinity for no bound beyond each tenant's `cachedKeys`.
   */
  keyCacheMaxBytes?: number;
}

/** Every key of EngineOptions (the record makes the compiler check the list is complete). */
export const ENGINE_OPTION_NAMES = Object.keys({
  storage: true,
  capabilities: true,
  clock: true,
  scheduler: true,
  usage: true,
  defaultPlan: true,
  wasm: true,
  kv: true,
  tenantIdleMs: true,
  streams: true,
  vectors: true,
  where: true,
  batchEncoder: true,
  logger: true,
  migrations: true,
} satisfies Record<keyof EngineOptions, true>);

const SECTION_OPTION_NAMES = {
  kv: Object.keys({ maxValueBytes: true, cachedKeys: true, keyCacheMaxBytes: true } satisfies Record<keyof KvEngineOptions, true>),
  streams: Object.keys({ segmentCacheBytes: true } satisfies Record<keyof StreamStoreOptions, true>),
  vectors: Object.keys({ snapshot: true, maxOpenBytes: true, idleCloseMs: true } satisfies Record<keyof VectorStoreOptions, true>),
};
const SNAPSHOT_OPTION_NAMES = Object.keys({ everyMutations: true, everyBytes: true } satisfies Record<keyof SnapshotPolicy, true>);

/**
 * Refuses a key the `kv`, `streams` and `vectors` settings (and `vectors.snapshot`) do not have:
 * a misspelt `maxOpenBytes` would leave the memory budget at its default. `what` names the call.
 */
export function refuseUnknownSectionOptions(options: Pick<EngineOptions, 'kv' | 'streams' | 'vectors'>, what: string): void {
  for (const section of ['kv', 'streams', 'vectors'] as const) {
    const given: unknown = options[section];
    if (given !== null && typeof given === 'object') refuseUnknownOptions(given, SECTION_OPTION_NAMES[section], `${what}: ${section}`);
  }
  const snapshot: unknown = options.vectors?.snapshot;
  if (snapshot !== null && typeof snapshot === 'object') refuseUnknownOptions(snapshot, SNAPSHOT_OPTION_NAMES, `${what}: vectors.snapshot`);
}

/** One tenant's data services. Every call through them is scoped to this tenant. */
export interface TenantScope {
  readonly id: string;
  readonly kv: KvStore;
  readonly streams: StreamStore;
  readonly vectors: VectorStore;
}

/** See `Engine.stats()`. */
export interface EngineStats extends OpenCollectionsStats, KeyCacheStats {
  open_tenants: number;
  /** Tenants whose services or partitions are still opening: their figures count once they are open. */
  opening_tenants: number;
  topics: number;
  partitions: number;
  segments: number;
  log_bytes: number;
  cache_hits: number;
  cache_misses: number;
  collections: number;
  vectors: number;
}

function checkTenantId(id: unknown): asserts id is string {
  if (!isTenantId(id)) {
    throw new QuartzError(
      ErrorCode.INVALID_ARGUMENT,
      `tenant id must be 1-${MAX_TENANT_ID} characters of well-formed Unicode without '/' or control characters, got ${showValue(id)}`,
    );
  }
}

/**
 * What a tenant holds, as the usage gauges count it: KV keys and values plus stream logs; live
 * vectors. The stream logs' sizes change in the background (rolls, retention), so they are read
 * in the same turn as the KV count starts, which is the turn the meter reads its levels in.
 */
function levelCounter(scope: TenantScope): LevelCounter {
  return {
    // The partitions open in the background (see `services`); their sizes are counted, so a
    // recount, and only a recount, waits for them.
    prepare: () => scope.streams.ready(),
    vectors: async () => (await scope.vectors.totals()).vectors,
    bytes: async () => {
      const logs = scope.streams.logTotals().bytes;
      const kv = await scope.kv.storedBytes();
      return kv === undefined ? undefined : logs + kv;
    },
  };
}

export class Engine {
  private readonly scopes = new Map<string, Promise<TenantScope>>();
  /** The same scopes as soon as their KV and vectors are open, their streams' partitions perhaps still opening (see `services`). */
  private readonly servicesOpen = new Map<string, Promise<TenantScope>>();
  /** What each of `scopes` resolved to, once it has: stats() reads these without an await per tenant. */
  private readonly openedScopes = new WeakMap<Promise<TenantScope>, TenantScope>();
  /** Those of `scopes` that failed to open (a damaged partition): stats() counts them neither open nor opening. */
  private readonly failedScopes = new WeakSet<Promise<TenantScope>>();
  /** Tenants being closed by closeTenant: opening one again waits for its close (the store is its unit's only writer). */
  private readonly closingScopes = new Map<string, Promise<void>>();
  private closing: Promise<void> | undefined;

  private constructor(
    /** The context every unit was opened with. */
    readonly context: EngineContext,
    /** What opening found and did to the data format. */
    readonly dataVersion: DataVersionResult,
    /** Tenants, API keys and usage. */
    readonly tenants: TenantRegistry,
    private readonly ownMeter: UsageMeter | undefined,
    private readonly options: EngineOptions,
  ) {}

  /** @internal use createEngine */
  static async create(options: EngineOptions): Promise<Engine> {
    // JavaScript callers: no options or no storage failed as a TypeError deep in the open.
    const storage: unknown = (options as unknown) !== null && typeof options === 'object' ? options.storage : undefined;
    if (storage === null || typeof storage !== 'object' || typeof (storage as StorageProvider).unit !== 'function') {
      throw new QuartzError(ErrorCode.INVALID_ARGUMENT, `createEngine needs options with a storage (a StorageProvider, e.g. createMemoryStorage()), got ${showValue(storage)}`);
    }
    refuseUnknownOptions(options, ENGINE_OPTION_NAMES, 'createEngine');
    refuseUnknownSectionOptions(options, 'createEngine');
    await init(options.wasm);
    const dataVersion = await ensureDataVersion(options.storage, { where: options.where, migrations: options.migrations });
    const clock = options.clock ?? systemClock;
    const scheduler = options.scheduler ?? timerScheduler;
    // One budget for every tenant: a cache per tenant grew with the tenants that read streams.
    const segmentCache = new SegmentCache(options.streams?.segmentCacheBytes ?? DEFAULT_SEGMENT_CACHE_BYTES);
    // One budget for every tenant's open collections, as for the segment cache.
    const openCollections = new OpenCollections(clock, scheduler, options.vectors);
    // One bound for every tenant's KV key cache, and the idle release of a tenant's.
    const keyCache = new KeyCache(scheduler, { maxBytes: options.kv?.keyCacheMaxBytes, idleMs: options.tenantIdleMs });
    // After the settings are checked: the meter flushes on a timer from here on.
    const ownMeter = options.usage === undefined ? await UsageMeter.open({ storage: options.storage, clock, scheduler, logger: options.logger }) : undefined;
    const context: EngineContext = {
      storage: options.storage,
      clock,
      scheduler,
      usage: options.usage ?? ownMeter!,
      capabilities: options.capabilities,
      hotValues: new HotValues(),
      segmentCache,
      openCollections,
      keyCache,
      batchEncoder: options.batchEncoder,
      logger: options.logger,
    };
    let tenants: TenantRegistry;
    try {
      tenants = await TenantRegistry.open(context, { defaultPlan: options.defaultPlan });
    } catch (err) {
      await ownMeter?.close(); // stops its flush timer
      keyCache.close();
      throw err;
    }
    return new Engine(context, dataVersion, tenants, ownMeter, options);
  }

  private check(): void {
    if (this.closing) throw new QuartzError(ErrorCode.STORAGE_CLOSED, 'the engine is closed');
  }

  /**
   * A tenant's KV, streams and vectors, opened on first use and cached.
   *
   * @example
   * const { kv, streams } = await engine.tenant('t1');
   * await kv.put('greeting', new TextEncoder().encode('hi'));
   * await streams.createTopic('orders', { partitions: 3 });
   */
  tenant(id: string): Promise<TenantScope> {
    let scope: Promise<TenantScope> | undefined;
    try {
      this.check();
      // A tenant being opened or open had its id checked then: no pattern test on every request.
      scope = this.scopes.get(id);
      if (scope === undefined) checkTenantId(id);
    } catch (err) {
      // Callers chain .catch() on the result: report bad input there, never as a synchronous throw.
      return Promise.reject(err);
    }
    if (scope === undefined) {
      const closing = this.closingScopes.get(id);
      const services = closing === undefined ? this.openScope(id) : closing.then(() => this.openScope(id));
      // A partition that fails to open (damaged data) stays reported by this promise and by every
      // streams call until the tenant is closed, while its KV and vectors keep serving through
      // `services`: closing them on it failed KV requests in flight, and had every next KV request
      // reopen the whole tenant only to fail again.
      const opening = services.then(async (opened) => {
        await opened.streams.ready();
        return opened;
      });
      scope = opening;
      this.scopes.set(id, opening);
      this.servicesOpen.set(id, services);
      opening.then(
        (opened) => this.openedScopes.set(opening, opened),
        () => this.failedScopes.add(opening),
      );
      // A failed open of the services is not cached: the next call tries again.
      services.catch(() => {
        if (this.scopes.get(id) !== opening) return;
        this.scopes.delete(id);
        this.servicesOpen.delete(id);
      });
    }
    return scope;
  }

  /**
   * The tenant's scope as soon as its KV and vectors are open: after a restart, a KV request to
   * a tenant with thousands of partitions need not wait ~60 µs of CPU for each of them to open.
   * Its streams' partitions may still be opening: every streams call waits for them, and
   * describeTopic, listTopics and logTotals refuse (UNAVAILABLE) until `streams.ready()`.
   *
   * @example
   * const { kv } = await engine.services('t1');
   */
  services(id: string): Promise<TenantScope> {
    const open = this.servicesOpen.get(id);
    if (open !== undefined) return open;
    const whole = this.tenant(id);
    return this.servicesOpen.get(id) ?? whole;
  }

  private async openScope(id: string): Promise<TenantScope> {
    const { context: ctx, options } = this;
    const opened = await Promise.allSettled([
      KvStore.open(ctx, id, options.kv),
      // Its partitions open in the background (see `services`).
      StreamStore.openCatalog(ctx, id, options.streams),
      VectorStore.open(ctx, id, options.vectors),
    ] as const);
    const [kv, streams, vectors] = opened;
    if (kv.status === 'fulfilled' && streams.status === 'fulfilled' && vectors.status === 'fulfilled') {
      const scope = { id, kv: kv.value, streams: streams.value, vectors: vectors.value };
      // Before the scope is handed out, so no vector write runs while the vectors are counted; the
      // bytes are counted in the background, the tenant served meanwhile.
      await ctx.usage.reconcile?.(id, levelCounter(scope)).catch((err: unknown) => {
        (ctx.logger ?? consoleLogger).error(`counting the stored usage of tenant '${id}' failed; its levels stay as stored`, { tenant: id, err });
      });
      return scope;
    }
    // Close whatever did open so no timers or handles leak, then report the first failure.
    await Promise.allSettled(opened.map((o) => (o.status === 'fulfilled' ? o.value.close() : undefined)));
    throw opened.find((o): o is PromiseRejectedResult => o.status === 'rejected')!.reason;
  }

  /**
   * Closes a tenant's services (e.g. after the tenant is deleted); the next `tenant(id)` reopens
   * them, once the close has finished. A second call during a close waits for it.
   */
  async closeTenant(id: string): Promise<void> {
    const scope = this.scopes.get(id);
    if (scope === undefined) return this.closingScopes.get(id);
    this.scopes.delete(id);
    const services = this.servicesOpen.get(id)!;
    this.servicesOpen.delete(id);
    const closing = closeScope(services);
    // A failed close is reported here; a reopen waiting on it tries anyway.
    const done = closing.then(noop, noop);
    this.closingScopes.set(id, done);
    try {
      await closing;
    } finally {
      if (this.closingScopes.get(id) === done) this.closingScopes.delete(id);
    }
  }

  /**
   * Figures over the tenants opened since start (opening every tenant just to count would cost
   * more than the figures are worth): topics, partitions, segments, log bytes, segment-cache
   * lookups, collections and vectors; and, engine-wide, the open collections, their bytes and
   * how many closed for the budget or idleness. For the home's metrics.
   *
   * A tenant still opening (after a restart its partitions open in the background, for seconds
   * with thousands of them) is counted in `opening_tenants` and in no other figure until it is
   * open: a scrape answers from what is known rather than wait for the slowest tenant's open.
   *
   * @example
   * const { segments, cache_hits, cache_misses } = await engine.stats();
   */
  async stats(): Promise<EngineStats> {
    const s: EngineStats = {
      open_tenants: 0,
      opening_tenants: 0,
      topics: 0,
      partitions: 0,
      segments: 0,
      log_bytes: 0,
      cache_hits: 0,
      cache_misses: 0,
      collections: 0,
      vectors: 0,
      ...this.context.openCollections!.stats(),
      ...this.context.keyCache!.stats(),
    };
    const count = (scope: TenantScope, vectors: { collections: number; vectors: number }): void => {
      s.open_tenants++;
      const logs = scope.streams.logTotals();
      s.topics += logs.topics;
      s.partitions += logs.partitions;
      s.segments += logs.segments;
      s.log_bytes += logs.bytes;
      s.collections += vectors.collections;
      s.vectors += vectors.vectors;
    };
    // Tenants open with every figure known are counted in one pass without an await; those with
    // collection counts not read yet after it.
    let later: [string, Promise<TenantScope>, TenantScope][] | undefined;
    for (const [id, pending] of this.scopes) {
      const scope = this.openedScopes.get(pending);
      if (scope === undefined) {
        if (!this.failedScopes.has(pending)) s.opening_tenants++;
        continue;
      }
      const vectors = scope.vectors.knownTotals();
      if (vectors === undefined) (later ??= []).push([id, pending, scope]);
      else count(scope, vectors);
    }
    for (const [id, pending, scope] of later ?? []) {
      if (this.scopes.get(id) !== pending) continue; // closed meanwhile
      let vectors: { collections: number; vectors: number };
      try {
        vectors = await scope.vectors.totals();
      } catch (err) {
        if (this.scopes.get(id) !== pending) continue; // closed (closeTenant) while counted
        throw err;
      }
      if (this.scopes.get(id) !== pending) continue; // closed while its vectors were counted
      count(scope, vectors);
    }
    // One cache for every tenant (counted once, not per tenant).
    s.cache_hits = this.context.segmentCache?.hits ?? 0;
    s.cache_misses = this.context.segmentCache?.misses ?? 0;
    return s;
  }

  /** Closes every tenant scope, the registry, the usage meter (flushing it), the batch encoder, then the storage. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      // The services, not the whole scopes: a tenant whose partitions are still opening closes too.
      const scopes = [...this.servicesOpen.values()];
      this.scopes.clear();
      this.servicesOpen.clear();
      const results = await Promise.allSettled(scopes.map(closeScope));
      // Closes closeTenant began finish before the storage closes under them.
      await Promise.all(this.closingScopes.values());
      this.context.openCollections?.close();
      this.context.keyCache?.close();
      // Services are closed, so nothing meters any more: the last counts reach the meter's flush.
      results.push(...(await Promise.allSettled([this.tenants.close()])));
      if (this.ownMeter) results.push(...(await Promise.allSettled([this.ownMeter.close()])));
      if (this.context.batchEncoder) results.push(...(await Promise.allSettled([this.context.batchEncoder.close()])));
      await this.context.storage.close();
      const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed) throw failed.reason;
    })();
    return this.closing;
  }
}

const noop = (): void => {};

async function closeScope(scope: Promise<TenantScope>): Promise<void> {
  let opened: TenantScope;
  try {
    opened = await scope;
  } catch {
    return; // never opened, nothing to close
  }
  await Promise.all([opened.kv.close(), opened.streams.close(), opened.vectors.close()]);
}

/**
 * Builds the engine on a home's storage: loads the WASM core, checks and migrates the data
 * format, and returns the facade.
 *
 * @example
 * const engine = await createEngine({
 *   storage: createMemoryStorage(),
 *   capabilities: { compileWasmAtRuntime: true, threads: false, persistentStorage: false },
 * });
 * const { tenant, api_key } = await engine.tenants.create({ email: 'a@example.com' });
 * const { kv } = await engine.tenant(tenant.id);
 */
export function createEngine(options: EngineOptions): Promise<Engine> {
  return Engine.create(options);
}
