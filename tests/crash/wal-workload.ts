/** The write-ahead log crash tests' operations, and the state any prefix of them leaves. */
import type { BatchOp } from '../../src/ports/storage.js';
import { key, payload } from './workload.js';

export const WAL_OPS = 60;

const size = (n: number) => 1 + ((n * 37) % 900);

/** Operation n: a put, or an atomic batch (every fourth adds a pair key, every tenth deletes k/n-5). */
export function walOp(n: number): BatchOp[] {
  const ops: BatchOp[] = [{ type: 'put', key: key('k', n), value: payload('k', n, size(n)) }];
  if (n % 4 === 3) ops.push({ type: 'put', key: key('pair', n), value: payload('pair', n, 64) });
  if (n % 10 === 9) ops.push({ type: 'delete', key: key('k', n - 5) });
  return ops;
}

/** Key (as text) → value after operations 0..count-1. */
export function stateAfter(count: number): Map<string, Uint8Array> {
  const state = new Map<string, Uint8Array>();
  for (let n = 0; n < count; n++) {
    for (const op of walOp(n)) {
      const name = new TextDecoder().decode(op.key);
      if (op.type === 'put') state.set(name, op.value);
      else state.delete(name);
    }
  }
  return state;
}
