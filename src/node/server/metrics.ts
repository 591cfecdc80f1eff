/**
 * The app's MetricsPort: request counts and latency histograms by route pattern, method and
 * status, plus prom-client's registry for the process's default metrics and the engine figures
 * gathered at scrape time.
 *
 * NOTE: the request series are kept here, not in prom-client: its label children re-validate and
 * re-hash their label object on every observe, a few microseconds on each request. Here a
 * request adds to one series found by route, method and status, and the text format is written
 * at scrape.
 */
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { MetricsPort } from '../../api/ports.js';
import type { Engine } from '../../engine/engine.js';
import type { BodyBudget } from './body-budget.js';

/** Usage metrics summed over tenants for the current period, as gauges. */
const ENGINE_FIGURES = [
  ['records_produced', 'quartz_records_produced', 'Records produced this period, all tenants'],
  ['bytes_stored', 'quartz_stored_bytes', 'Bytes stored (KV keys and values, stream logs), all tenants'],
  ['vectors_stored', 'quartz_vectors_stored', 'Vectors stored, all tenants'],
  ['api_calls', 'quartz_api_calls', 'API calls this period, all tenants'],
] as const;

/** Latency histogram bucket bounds, in seconds. */
const BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

interface Series {
  /** The rendered label pairs. */
  labels: string;
  /** Observations per bucket (not cumulative); above the last bound counts only in `count`. */
  buckets: Float64Array;
  sum: number;
  count: number;
}

/** A label value in the text format: backslash, double quote and newline escaped. */
function escapeLabel(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

/**
 * Series by route, then method, then status. NOTE: nested rather than one map keyed by a joined
 * string: routes and methods are the same few string objects on every request, so each lookup
 * reuses their cached hash, where a joined key is a new string to build and hash per request
 * (~0.3 µs against ~0.05 µs).
 */
type SeriesTable = Map<string, Map<string, Map<number, Series>>>;

function* allSeries(table: SeriesTable): Generator<Series> {
  for (const byMethod of table.values()) for (const byStatus of byMethod.values()) yield* byStatus.values();
}

/** The request counter and latency histogram in the Prometheus text format (0.0.4). */
function renderRequests(series: SeriesTable): string {
  let counts = '# HELP quartz_http_requests_total HTTP requests by route pattern, method and status\n# TYPE quartz_http_requests_total counter\n';
  let latency = '# HELP quartz_http_request_duration_seconds HTTP request latency by route pattern, method and status\n# TYPE quartz_http_request_duration_seconds histogram\n';
  for (const one of allSeries(series)) {
    counts += `quartz_http_requests_total{${one.labels}} ${one.count}\n`;
    let cumulative = 0;
    for (let i = 0; i < BUCKETS.length; i++) {
      cumulative += one.buckets[i]!;
      latency += `quartz_http_request_duration_seconds_bucket{le="${BUCKETS[i]}",${one.labels}} ${cumulative}\n`;
    }
    latency += `quartz_http_request_duration_seconds_bucket{le="+Inf",${one.labels}} ${one.count}\n`;
    latency += `quartz_http_request_duration_seconds_sum{${one.labels}} ${one.sum}\n`;
    latency += `quartz_http_request_duration_seconds_count{${one.labels}} ${one.count}\n`;
  }
  return `\n${counts}\n${latency}`;
}

function currentPeriod(now: number): string {
  return new Date(now).toISOString().slice(0, 7);
}

/**
 * @example
 * const metrics = createMetrics(engine);
 * const app = createApp({ engine, config, metrics });
 */
export function createMetrics(engine: Engine, bodies?: Pick<BodyBudget, 'heldBytes' | 'refused'>): MetricsPort & { registry: Registry } {
  const registry = new Registry();
  // prom-client's usual names under our prefix: quartz_process_cpu_seconds_total, quartz_nodejs_heap_size_used_bytes, ...
  // The event-loop lag histogram samples every 100 ms, not prom-client's 10: its timer woke an idle
  // server 100 times a second (~1.3% of a core idle, 0.2% at 100 ms); a stall still shows in it.
  collectDefaultMetrics({ register: registry, prefix: 'quartz_', eventLoopMonitoringPrecision: 100 });
  const series: SeriesTable = new Map();
  let lastRoute: string | undefined;
  let lastMethod: string | undefined;
  let lastStatus = 0;
  let lastSeries: Series | undefined;
  const gauges = ENGINE_FIGURES.map(([field, name, help]) => ({ field, gauge: new Gauge({ name, help, registers: [registry] }) }));
  const tenants = new Gauge({ name: 'quartz_tenants', help: 'Tenants registered', registers: [registry] });
  const live = (name: string, help: string) => new Gauge({ name, help: `${help} (tenants opened since start)`, registers: [registry] });
  const openTenants = live('quartz_open_tenants', 'Tenants whose services are open');
  const openingTenants = live('quartz_opening_tenants', 'Tenants still opening, counted in the other figures once open');
  const topics = live('quartz_topics', 'Topics');
  const partitions = live('quartz_partitions', 'Partitions');
  const segments = live('quartz_segments', 'Sealed log segments');
  const logBytes = live('quartz_log_bytes', 'Bytes in partition logs');
  // Counts since start, so counters (rate() works on them); set to the engine's totals at each scrape.
  const liveCounter = (name: string, help: string) => new Counter({ name, help: `${help} (tenants opened since start)`, registers: [registry] });
  const cacheHits = liveCounter('quartz_segment_cache_hits_total', 'Segment cache lookups answered from memory');
  const cacheMisses = liveCounter('quartz_segment_cache_misses_total', 'Segment cache lookups that loaded from storage');
  const cacheRatio = live('quartz_segment_cache_hit_ratio', 'Segment cache hits / lookups (0 before any lookup)');
  const collections = live('quartz_collections', 'Vector collections');
  const vectors = live('quartz_vectors', 'Vectors in collections');
  // Engine-wide (every tenant), not only tenants opened since start.
  const openCollections = new Gauge({ name: 'quartz_open_collections', help: 'Vector collections open in memory', registers: [registry] });
  const openCollectionBytes = new Gauge({ name: 'quartz_open_collection_bytes', help: 'Bytes of open vector collections (wasm memory plus estimated JS heap)', registers: [registry] });
  const evictions = new Counter({ name: 'quartz_collection_evictions_total', help: 'Vector collections closed to stay within the memory budget', registers: [registry] });
  const idleCloses = new Counter({ name: 'quartz_collection_idle_closes_total', help: 'Vector collections closed after going unused for the idle time', registers: [registry] });
  const cachedKeys = new Gauge({ name: 'quartz_kv_cached_keys', help: 'Keys in the KV key caches of every tenant', registers: [registry] });
  const cachedKeyBytes = new Gauge({ name: 'quartz_kv_cached_key_bytes', help: 'Bytes of the KV key caches as their budget counts them', registers: [registry] });
  const keysEvicted = new Counter({ name: 'quartz_kv_cached_keys_evicted_total', help: 'KV cached keys dropped to stay within a bound', registers: [registry] });
  const keysIdleReleased = new Counter({ name: 'quartz_kv_cached_keys_idle_released_total', help: 'KV cached keys dropped because their tenant went unused for the idle time', registers: [registry] });

  if (bodies !== undefined) {
    new Gauge({ name: 'quartz_request_body_bytes', help: 'Request body bytes held in memory, as the body budget counts them', registers: [registry], collect() { this.set(bodies.heldBytes()); } });
    new Counter({ name: 'quartz_request_bodies_refused_total', help: 'Request bodies refused unread to stay within the body budget (503, or 413 for a body larger than it)', registers: [registry], collect() { this.reset(); this.inc(bodies.refused()); } });
  }

  // prom-client counters only go up: a total the engine keeps is set by a reset and one inc.
  const setTotal = (counter: Counter, total: number): void => {
    counter.reset();
    counter.inc(total);
  };

  async function collectEngine(): Promise<void> {
    const period = currentPeriod(engine.context.clock.now());
    const sums = await engine.tenants.usageTotals(period);
    for (const { field, gauge } of gauges) gauge.set(sums[field]);
    tenants.set(await engine.tenants.count());

    const st = await engine.stats();
    openTenants.set(st.open_tenants);
    openingTenants.set(st.opening_tenants);
    topics.set(st.topics);
    partitions.set(st.partitions);
    segments.set(st.segments);
    logBytes.set(st.log_bytes);
    setTotal(cacheHits, st.cache_hits);
    setTotal(cacheMisses, st.cache_misses);
    const lookups = st.cache_hits + st.cache_misses;
    cacheRatio.set(lookups === 0 ? 0 : st.cache_hits / lookups);
    collections.set(st.collections);
    vectors.set(st.vectors);
    openCollections.set(st.open_collections);
    openCollectionBytes.set(st.open_collection_bytes);
    setTotal(evictions, st.collection_evictions);
    setTotal(idleCloses, st.collection_idle_closes);
    cachedKeys.set(st.kv_cached_keys);
    cachedKeyBytes.set(st.kv_cached_key_bytes);
    setTotal(keysEvicted, st.kv_cached_keys_evicted);
    setTotal(keysIdleReleased, st.kv_cached_keys_idle_released);
  }

  return {
    registry,
    observeRequest(route, method, status, seconds) {
      let one: Series;
      // A request like the one before it (a load's usual run of one route, method and status)
      // goes to the same series without the three map lookups.
      if (route === lastRoute && method === lastMethod && status === lastStatus) one = lastSeries!;
      else {
        // Routes are patterns, so the table stays as small as the series.
        let byMethod = series.get(route);
        if (byMethod === undefined) series.set(route, (byMethod = new Map()));
        let byStatus = byMethod.get(method);
        if (byStatus === undefined) byMethod.set(method, (byStatus = new Map()));
        let found = byStatus.get(status);
        if (found === undefined) {
          found = { labels: `route="${escapeLabel(route)}",method="${escapeLabel(method)}",status="${status}"`, buckets: new Float64Array(BUCKETS.length), sum: 0, count: 0 };
          byStatus.set(status, found);
        }
        one = found;
        lastRoute = route;
        lastMethod = method;
        lastStatus = status;
        lastSeries = found;
      }
      let i = 0;
      while (i < BUCKETS.length && seconds > BUCKETS[i]!) i++;
      if (i < BUCKETS.length) one.buckets[i]!++;
      one.sum += seconds;
      one.count++;
    },
    async render() {
      await collectEngine();
      // prom-client writes NaN as `Nan` (the event-loop lag's mean before its first 100 ms sample);
      // the text format spells it `NaN`, and strict readers refuse the other spelling.
      const body = (await registry.metrics()).replace(/ Nan$/gm, ' NaN') + renderRequests(series);
      return { contentType: registry.contentType, body };
    },
  };
}
