/**
 * The app's MetricsPort on prom-client: request counts and latency histograms by route pattern,
 * method and status, the process's default metrics, and engine figures gathered at scrape time.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { MetricsPort } from '../../api/ports.js';
import type { Engine } from '../../engine/engine.js';

/** Usage metrics summed over tenants for the current period, as gauges. */
const ENGINE_FIGURES = [
  ['records_produced', 'quartz_records_produced', 'Records produced this period, all tenants'],
  ['bytes_stored', 'quartz_bytes_stored', 'Bytes stored (KV, logs, vectors), all tenants'],
  ['vectors_stored', 'quartz_vectors_stored', 'Vectors stored, all tenants'],
  ['api_calls', 'quartz_api_calls', 'API calls this period, all tenants'],
] as const;

function currentPeriod(now: number): string {
  return new Date(now).toISOString().slice(0, 7);
}

/**
 * @example
 * const metrics = createMetrics(engine);
 * const app = createApp({ engine, config, metrics });
 */
export function createMetrics(engine: Engine): MetricsPort & { registry: Registry } {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'quartz_process_' });
  const requests = new Counter({
    name: 'quartz_http_requests_total',
    help: 'HTTP requests by route pattern, method and status',
    labelNames: ['route', 'method', 'status'] as const,
    registers: [registry],
  });
  const latency = new Histogram({
    name: 'quartz_http_request_duration_seconds',
    help: 'HTTP request latency by route pattern, method and status',
    labelNames: ['route', 'method', 'status'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  });
  const children = new Map<string, { count: { inc(): void }; latency: { observe(value: number): void } }>();
  const gauges = ENGINE_FIGURES.map(([field, name, help]) => ({ field, gauge: new Gauge({ name, help, registers: [registry] }) }));
  const tenants = new Gauge({ name: 'quartz_tenants', help: 'Tenants registered', registers: [registry] });
  const live = (name: string, help: string) => new Gauge({ name, help: `${help} (tenants opened since start)`, registers: [registry] });
  const openTenants = live('quartz_open_tenants', 'Tenants whose services are open');
  const topics = live('quartz_topics', 'Topics');
  const partitions = live('quartz_partitions', 'Partitions');
  const segments = live('quartz_segments', 'Sealed log segments');
  const logBytes = live('quartz_log_bytes', 'Bytes in partition logs');
  const cacheHits = live('quartz_segment_cache_hits', 'Segment cache lookups answered from memory');
  const cacheMisses = live('quartz_segment_cache_misses', 'Segment cache lookups that loaded from storage');
  const cacheRatio = live('quartz_segment_cache_hit_ratio', 'Segment cache hits / lookups (0 before any lookup)');
  const collections = live('quartz_collections', 'Vector collections');
  const vectors = live('quartz_vectors', 'Vectors in collections');

  async function collectEngine(): Promise<void> {
    const period = currentPeriod(engine.context.clock.now());
    const sums = new Map<string, number>();
    const ids = new Set<string>();
    for await (const row of engine.tenants.exportUsage({ from: period, to: period })) {
      ids.add(row.tenant_id);
      for (const { field } of gauges) sums.set(field, (sums.get(field) ?? 0) + row[field]);
    }
    for (const { field, gauge } of gauges) gauge.set(sums.get(field) ?? 0);
    let count = 0;
    let cursor: string | null = null;
    do {
      const page: { tenants: unknown[]; cursor: string | null } = await engine.tenants.list({ cursor, limit: 1000 });
      count += page.tenants.length;
      cursor = page.cursor;
    } while (cursor !== null);
    tenants.set(count);

    const st = await engine.stats();
    openTenants.set(st.open_tenants);
    topics.set(st.topics);
    partitions.set(st.partitions);
    segments.set(st.segments);
    logBytes.set(st.log_bytes);
    cacheHits.set(st.cache_hits);
    cacheMisses.set(st.cache_misses);
    const lookups = st.cache_hits + st.cache_misses;
    cacheRatio.set(lookups === 0 ? 0 : st.cache_hits / lookups);
    collections.set(st.collections);
    vectors.set(st.vectors);
  }

  return {
    registry,
    observeRequest(route, method, status, seconds) {
      // prom-client hashes a label object on every call; the label children are looked up once
      // per (route, method, status). Routes are patterns, so the map stays as small as the series.
      const id = `${route} ${method} ${status}`;
      let series = children.get(id);
      if (series === undefined) {
        const labels = { route, method, status: String(status) };
        series = { count: requests.labels(labels), latency: latency.labels(labels) };
        children.set(id, series);
      }
      series.count.inc();
      series.latency.observe(seconds);
    },
    async render() {
      await collectEngine();
      return { contentType: registry.contentType, body: await registry.metrics() };
    },
  };
}
