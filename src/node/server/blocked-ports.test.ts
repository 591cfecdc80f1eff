import { describe, expect, it } from 'vitest';
import { fetchBlockedPorts, isFetchBlockedPort } from './blocked-ports.js';

/** How node's own fetch treats a loopback port: 'bad port' when it refuses to connect at all. */
async function fetchVerdict(port: number): Promise<string> {
  try {
    await fetch(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(5_000) });
    return 'answered';
  } catch (err) {
    return (err as { cause?: Error }).cause?.message === 'bad port' ? 'bad port' : 'other';
  }
}

describe('isFetchBlockedPort', () => {
  it('holds the ports node\'s fetch refuses, and not their neighbours', async () => {
    const blocked = fetchBlockedPorts();
    expect(blocked).toContain(6000);
    for (const port of blocked) expect(await fetchVerdict(port), String(port)).toBe('bad port');
    const neighbours = blocked.flatMap((p) => [p - 1, p + 1]).filter((p) => p > 0 && !isFetchBlockedPort(p));
    for (const port of [...neighbours, 8787]) expect(await fetchVerdict(port), String(port)).not.toBe('bad port');
  }, 120_000);
});
