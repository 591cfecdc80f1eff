/**
 * The Metrics table of docs/configuration.md cannot drift: it names every metric /metrics
 * serves (beyond prom-client's process and Node ones) with its type, and no other.
 */
import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import type { Engine } from '../../engine/engine.js';
import { createTestEngine } from '../../engine/testing.js';
import '../core.js';
import { BodyBudget } from './body-budget.js';
import { createMetrics } from './metrics.js';

const doc = readFileSync(new URL('../../../docs/configuration.md', import.meta.url), 'utf8');
const defaults = /^quartz_(process|nodejs)_/;

/** metric name → type, from the rows of the table under '## Metrics'. */
function documented(): Map<string, string> {
  const section = doc.slice(doc.indexOf('## Metrics'));
  const rows = section.split('\n').filter((l) => /^\|\s*`quartz_/.test(l)); // any padding of the cells
  const types = new Map<string, string>();
  for (const row of rows) {
    const [, names, type] = row.split('|');
    for (const m of names!.matchAll(/`(quartz_[a-z_]+)`/g)) if (!defaults.test(m[1]!)) types.set(m[1]!, type!.trim());
  }
  return types;
}

let engine: Engine | undefined;
afterEach(async () => {
  await engine?.close();
  engine = undefined;
});

describe('docs/configuration.md metrics table', () => {
  it('names each metric the server registers, with its type, and no other', async () => {
    engine = await createTestEngine();
    const metrics = createMetrics(engine, new BodyBudget({ maxBytes: 2 ** 20, chunkedBytes: 2 ** 20 }));
    metrics.observeRequest('/v1/health', 'GET', 200, 0.001); // the request series appear with the first request
    const { body } = await metrics.render!();
    const served = new Map([...body.matchAll(/^# TYPE (\S+) (\S+)$/gm)].filter((m) => !defaults.test(m[1]!)).map((m) => [m[1]!, m[2]!]));
    expect(served.size).toBeGreaterThan(0);
    expect(new Map([...documented()].sort())).toEqual(new Map([...served].sort()));
  });
});
