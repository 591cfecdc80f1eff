/**
 * Reads a V8 `.cpuprofile` (written by `node --cpu-prof`) and lists the functions with the most
 * self time, so a bench run can say where the server's time goes without opening DevTools.
 */

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/**
 * The `top` functions by self time as text lines: percent of busy time, ms, name and place.
 *
 * @example
 * console.log(summarizeProfile(readFileSync('CPU.123.cpuprofile', 'utf8'), 30, process.cwd()));
 */
export function summarizeProfile(text: string, top: number, root: string): string {
  const profile = JSON.parse(text) as CpuProfile;
  if (!Array.isArray(profile.nodes) || !Array.isArray(profile.samples) || !Array.isArray(profile.timeDeltas)) {
    throw new Error('not a V8 CPU profile: nodes, samples and timeDeltas are required');
  }
  const byId = new Map<number, ProfileNode>();
  for (const n of profile.nodes) byId.set(n.id, n);
  const self = new Map<string, number>();
  let busy = 0;
  let idle = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    const node = byId.get(profile.samples[i]!);
    const us = profile.timeDeltas[i] ?? 0;
    if (node === undefined) continue;
    const f = node.callFrame;
    if (f.functionName === '(idle)') {
      idle += us;
      continue;
    }
    busy += us;
    const place = f.url === '' ? '' : ` ${f.url.replace(`file://${root}`, '').replace(/^file:\/\//, '')}:${f.lineNumber + 1}`;
    const name = `${f.functionName || '(anonymous)'}${place}`;
    self.set(name, (self.get(name) ?? 0) + us);
  }
  const lines = [`  busy ${(busy / 1000).toFixed(0)} ms, idle ${(idle / 1000).toFixed(0)} ms`];
  for (const [name, us] of [...self].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    lines.push(`  ${((100 * us) / Math.max(1, busy)).toFixed(1).padStart(5)}%  ${(us / 1000).toFixed(0).padStart(7)} ms  ${name}`);
  }
  return lines.join('\n');
}
