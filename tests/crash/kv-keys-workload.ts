/**
 * The logged-batch crash test's writes: step `s` is one batch on one unit, derived from `s` alone,
 * so the test replays the same steps to know what a prefix of them leaves.
 */
import type { BatchOp } from '../../src/ports/storage.js';

/** 40 units, a third of them with names of 1,004 bytes (the limit is 1,024 bytes of UTF-8). */
export const UNITS = Array.from({ length: 40 }, (_, i) => (i % 3 === 0 ? `kv/${'u'.repeat(1000)}${i}` : `kv/t${i}`));

const bytes = (n: number, f: (i: number) => number) => Uint8Array.from({ length: n }, (_, i) => f(i) & 0xff);

/** Binary keys of 1 to 2,048 bytes (MAX_KEY_BYTES), zeros and 0xff among them. */
export const KEYS = [
  bytes(1, () => 0),
  bytes(1, () => 0xff),
  bytes(4, () => 0),
  bytes(512, (i) => i * 31 + 7),
  bytes(2048, (i) => 255 - i),
  bytes(33, (i) => (i * 97) ^ 0x5a),
  new TextEncoder().encode('user/42'),
  bytes(511, (i) => i),
  bytes(3, (i) => [0xff, 0xff, 0xfe][i]!),
];

export function step(s: number): { unit: string; ops: BatchOp[] } {
  const unit = UNITS[(s * 13) % UNITS.length]!;
  const ops: BatchOp[] = [];
  for (let j = 0; j < 1 + (s % 4); j++) {
    const key = KEYS[(s * 7 + j * 3) % KEYS.length]!;
    if ((s + j) % 5 === 4) ops.push({ type: 'delete', key });
    else ops.push({ type: 'put', key, value: new TextEncoder().encode(`v${s}.${j}`.padEnd((s * 37 + j) % 700, '.')) });
  }
  return { unit, ops };
}
