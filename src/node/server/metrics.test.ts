import { afterEach, describe, expect, it } from 'vitest';
import type { Engine } from '../../engine/engine.js';
import { createTestEngine } from '../../engine/testing.js';
import '../core.js';
import { createMetrics } from './metrics.js';

let engine: Engine | undefined;
afterEach(async () => {
  await engine?.close();
  engine = undefined;
});

function gauge(text: string, name: string): number {
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  if (!m) throw new Error(`no ${name} in the metrics`);
  return Number(m[1]);
}

describe('createMetrics', () => {
  it('spells every value as the text format does, NaN included, even before the event-loop lag has a sample', async () => {
    engine = await createTestEngine();
    const metrics = createMetrics(engine);
    // Within the lag monitor's first 100 ms its mean is NaN, which prom-client writes as `Nan`.
    for (const { body } of [await metrics.render!(), await metrics.render!()]) {
      const samples = body.split('\n').filter((line) => line !== '' && !line.startsWith('#'));
      expect(samples.length).toBeGreaterThan(10);
      for (const line of samples) expect(line).toMatch(/ (\+Inf|-Inf|NaN|[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?)$/);
    }
  });

  it('reports request counters by route and the engine figures', async () => {
    engine = await createTestEngine();
    const { tenant } = await engine.tenants.create({ email: 'm@example.com' });
    const scope = await engine.tenant(tenant.id);
    await scope.streams.createTopic('t', { partitions: 2, segment_bytes: 1024 });
    const utf8 = new TextEncoder();
    for (let b = 0; b < 10; b++) {
      await scope.streams.produce('t', Array.from({ length: 20 }, (_, i) => ({ value: utf8.encode(`record ${b} ${i} ${'x'.repeat(40)}`), partition: 0 })));
    }
    await scope.streams.consume('t', 0, 0);
    await scope.streams.consume('t', 0, 0); // the same segment again: a cache hit
    await scope.vectors.createCollection({ name: 'c', dims: 2, metric: 'l2' });
    await scope.vectors.upsert('c', [
      { id: 'a', values: [1, 2] },
      { id: 'b', values: [3, 4] },
    ]);

    await scope.kv.put('k1', utf8.encode('v'));
    await scope.kv.put('k2', utf8.encode('v'));

    const metrics = createMetrics(engine);
    metrics.observeRequest('/v1/kv/:key{.+}', 'GET', 200, 0.002);
    metrics.observeRequest('/v1/kv/:key{.+}', 'GET', 200, 0.004);
    metrics.observeRequest('/v1/kv/:key{.+}', 'GET', 404, 0.001);
    // Each request after one of another route, method or status goes to its own series.
    metrics.observeRequest('/v1/kv/:key{.+}', 'PUT', 200, 0.001);
    metrics.observeRequest('/v1/kv/:key{.+}', 'DELETE', 200, 0.001);
    metrics.observeRequest('/v1/topics', 'POST', 200, 0.001);
    metrics.observeRequest('/v1/topics/:topic/records', 'POST', 200, 0.001);
    metrics.observeRequest('/v1/kv/:key{.+}', 'PUT', 200, 0.001);
    const { contentType, body } = await metrics.render!();
    expect(body).toContain('quartz_http_requests_total{route="/v1/kv/:key{.+}",method="PUT",status="200"} 2');
    expect(body).toContain('quartz_http_requests_total{route="/v1/kv/:key{.+}",method="DELETE",status="200"} 1');
    expect(body).toContain('quartz_http_requests_total{route="/v1/topics",method="POST",status="200"} 1');
    expect(body).toContain('quartz_http_requests_total{route="/v1/topics/:topic/records",method="POST",status="200"} 1');
    expect(contentType).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(body).toContain('quartz_http_requests_total{route="/v1/kv/:key{.+}",method="GET",status="200"} 2');
    expect(body).toContain('quartz_http_request_duration_seconds_count{route="/v1/kv/:key{.+}",method="GET",status="200"} 2');
    expect(body).toContain('quartz_http_requests_total{route="/v1/kv/:key{.+}",method="GET",status="404"} 1');
    expect(body).toContain('quartz_http_request_duration_seconds_sum{route="/v1/kv/:key{.+}",method="GET",status="200"} 0.006');
    // Buckets are cumulative and bounds inclusive, as prom-client renders them.
    expect(body).toContain('quartz_http_request_duration_seconds_bucket{le="0.001",route="/v1/kv/:key{.+}",method="GET",status="404"} 1');
    expect(body).toContain('quartz_http_request_duration_seconds_bucket{le="0.0025",route="/v1/kv/:key{.+}",method="GET",status="200"} 1');
    expect(body).toContain('quartz_http_request_duration_seconds_bucket{le="0.005",route="/v1/kv/:key{.+}",method="GET",status="200"} 2');
    expect(body).toContain('quartz_http_request_duration_seconds_bucket{le="+Inf",route="/v1/kv/:key{.+}",method="GET",status="200"} 2');
    expect(body).toContain('# TYPE quartz_http_request_duration_seconds histogram');
    expect(gauge(body, 'quartz_tenants')).toBe(1);
    expect(gauge(body, 'quartz_open_tenants')).toBe(1);
    expect(gauge(body, 'quartz_opening_tenants')).toBe(0);
    expect(gauge(body, 'quartz_topics')).toBe(1);
    expect(gauge(body, 'quartz_partitions')).toBe(2);
    expect(gauge(body, 'quartz_segments')).toBeGreaterThan(0);
    expect(gauge(body, 'quartz_log_bytes')).toBeGreaterThan(0);
    const hits = gauge(body, 'quartz_segment_cache_hits_total');
    const misses = gauge(body, 'quartz_segment_cache_misses_total');
    expect(body).toContain('# TYPE quartz_segment_cache_hits_total counter');
    expect(hits).toBeGreaterThan(0);
    expect(misses).toBeGreaterThan(0);
    expect(gauge(body, 'quartz_segment_cache_hit_ratio')).toBeCloseTo(hits / (hits + misses));
    expect(gauge(body, 'quartz_collections')).toBe(1);
    expect(gauge(body, 'quartz_vectors')).toBe(2);
    expect(gauge(body, 'quartz_open_collections')).toBe(1);
    expect(gauge(body, 'quartz_open_collection_bytes')).toBe((await engine.stats()).open_collection_bytes);
    expect(gauge(body, 'quartz_open_collection_bytes')).toBeGreaterThan(64 * 1024);
    expect(gauge(body, 'quartz_collection_evictions_total')).toBe(0);
    expect(gauge(body, 'quartz_collection_idle_closes_total')).toBe(0);
    expect(gauge(body, 'quartz_stored_bytes')).toBeGreaterThan(0);
    expect(gauge(body, 'quartz_kv_cached_keys')).toBe(2);
    expect(gauge(body, 'quartz_kv_cached_key_bytes')).toBe((await engine.stats()).kv_cached_key_bytes);
    expect(gauge(body, 'quartz_kv_cached_key_bytes')).toBeGreaterThan(2 * 170);
    expect(gauge(body, 'quartz_kv_cached_keys_evicted_total')).toBe(0);
    expect(gauge(body, 'quartz_kv_cached_keys_idle_released_total')).toBe(0);
    // Prometheus conventions: counters end in _total and only they do; no doubled prefix.
    const types = [...body.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map(([, name, type]) => ({ name: name!, type: type! }));
    expect(types.filter((t) => t.type === 'counter' && !t.name.endsWith('_total'))).toEqual([]);
    expect(types.filter((t) => t.name.startsWith('quartz_') && t.name.endsWith('_total') && t.type !== 'counter' && !t.name.startsWith('quartz_nodejs_'))).toEqual([]);
    expect(body).toContain('# TYPE quartz_process_cpu_seconds_total counter');
    expect(body).not.toMatch(/quartz_process_process_/);
  });
});
