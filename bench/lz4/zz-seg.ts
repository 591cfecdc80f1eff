import { init } from '../../src/node/core.js';
import { SegmentWriter } from '../../src/core/segment.js';
import { dataset } from './segment-bench.js';
import { minorPageFaults } from '../lib/cpu.js';
await init();
const records = dataset('1kb-json', 50_000);
let payload = 0; for (const r of records) payload += r.key!.length + r.value!.length;
const cpu = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1000; };
const rows: Record<string, number[]> = { appends: [], finish: [], 'finish faults': [], whole: [], 'finishParts': [] };
let keep: unknown;
for (let run = 0; run < 9; run++) {
  const w = new SegmentWriter({ baseOffset: 0, codec: 'lz4', createdAt: 0 });
  const c0 = cpu();
  for (let i = 0; i < records.length; i += 500) w.append(records.slice(i, i + 500));
  const c1 = cpu(); const f0 = minorPageFaults();
  const useParts = run % 2 === 1;
  keep = useParts ? w.finishParts() : w.finish();
  const c2 = cpu(); const f1 = minorPageFaults();
  if (run < 1) continue;
  rows.appends!.push(c1 - c0);
  (useParts ? rows.finishParts! : rows.finish!).push(c2 - c1);
  if (!useParts) { rows['finish faults']!.push(f1 - f0); rows.whole!.push(c2 - c0); }
}
const med = (v: number[]) => v.sort((a, b) => a - b)[v.length >> 1]!;
console.log(`payload ${(payload / 1e6).toFixed(1)} MB`, Object.entries(rows).map(([k, v]) => `${k} ${med(v).toFixed(1)}`).join(' | '), keep ? '' : '');
