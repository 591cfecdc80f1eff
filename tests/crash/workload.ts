/**
 * Deterministic contents for the crash tests: the child writes them, the parent recomputes
 * them to check that every acknowledged write came back byte-identical.
 */

/** xorshift-filled bytes of length `size`, unique per (kind, n). */
export function payload(kind: string, n: number, size: number): Uint8Array {
  const out = new Uint8Array(size);
  let s = (n * 2654435761 + kind.length * 97 + kind.charCodeAt(0)) >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = s & 0xff;
  }
  return out;
}

/** Sizes cycle from tiny to big so writes cross lmdb pages, overflow pages and blob sizes. */
export function kvSize(n: number): number {
  return [8, 200, 5000, 70_000, 1][n % 5]!;
}

export function blobSize(n: number): number {
  return [0, 100, 64 * 1024, 300_000][n % 4]!;
}

export function key(kind: string, n: number): Uint8Array {
  return new TextEncoder().encode(`${kind}/${String(n).padStart(8, '0')}`);
}

/** Puts the raw workload issues together per bulk round: enough to take the journal's direct path to lmdb. */
export const BULK_PUTS = 2000;
export const BULK_VALUE_BYTES = 100;

/** Every fifth KV write in the raw workload deletes the key written five steps before. */
export function deletes(n: number): number | undefined {
  return n % 5 === 4 && n >= 5 ? n - 5 : undefined;
}

export interface Ack {
  op: string;
  n: number;
  [field: string]: unknown;
}

/** Acks are JSON lines; a line torn by the kill is ignored (it was not complete, so not acknowledged). */
export function parseAcks(text: string): Ack[] {
  const acks: Ack[] = [];
  for (const line of text.split('\n')) {
    if (!line.endsWith('}')) continue;
    try {
      acks.push(JSON.parse(line) as Ack);
    } catch {
      // torn line
    }
  }
  return acks;
}
