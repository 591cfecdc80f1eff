/**
 * Deterministic test and benchmark corpora: newline-delimited JSON log records (repeated field
 * names, ISO timestamps, ids, levels, free text from a word list, numbers), English-like text,
 * and random bytes. Seeded, so every run compresses the same bytes.
 */
import { seededRandom } from '../../src/core/random-testing.js';

const WORDS = (
  'the a request user order payment cache miss hit database query slow fast retry timeout connection ' +
  'closed opened service worker queue message received sent failed succeeded started stopped upstream ' +
  'downstream latency exceeded threshold shard replica leader follower election snapshot compaction ' +
  'segment offset partition topic consumer producer batch flushed written read index vector search ' +
  'tenant key rotated expired token refresh session login logout invalid valid header body response ' +
  'status healthy degraded unavailable restored backoff scheduled cron job finished with error warning'
).split(' ');
const LEVELS = ['debug', 'info', 'info', 'info', 'warn', 'error'];
const SERVICES = ['api-gateway', 'orders', 'payments', 'inventory', 'search', 'auth', 'notifier'];
const METHODS = ['GET', 'POST', 'PUT', 'DELETE'];
const PATHS = ['/v1/kv/', '/v1/topics/', '/v1/collections/', '/v1/functions/', '/v1/groups/'];
const REGIONS = ['eu-west-1', 'us-east-1', 'ap-south-1'];

/** Reproducible corpora: the shared seeded PRNG. */
export const rng = seededRandom;

function hex(rand: () => number, n: number): string {
  let s = '';
  for (let i = 0; i < n; i++) s += ((rand() * 16) | 0).toString(16);
  return s;
}

/** One JSON log line (ending in \n). */
function logLine(rand: () => number, time: number): string {
  const pick = <T>(xs: readonly T[]): T => xs[(rand() * xs.length) | 0]!;
  const words: string[] = [];
  const count = 4 + ((rand() * 10) | 0);
  for (let i = 0; i < count; i++) words.push(pick(WORDS));
  const record = {
    ts: new Date(time).toISOString(),
    level: pick(LEVELS),
    service: pick(SERVICES),
    region: pick(REGIONS),
    trace_id: hex(rand, 32),
    span_id: hex(rand, 16),
    user_id: `u_${(rand() * 100000) | 0}`,
    method: pick(METHODS),
    path: pick(PATHS) + ((rand() * 5000) | 0),
    status: rand() < 0.9 ? 200 : pick([201, 204, 400, 404, 409, 429, 500, 503]),
    duration_ms: Math.round(rand() * 250000) / 100,
    bytes: (rand() * 65536) | 0,
    msg: words.join(' '),
  };
  return JSON.stringify(record) + '\n';
}

/** `size` bytes of JSON log records (the last record is cut to fit). */
export function jsonLogs(size: number, seed = 1): Uint8Array {
  const out = new Uint8Array(size);
  const enc = new TextEncoder();
  const rand = rng(seed);
  let time = Date.UTC(2025, 0, 1);
  let pos = 0;
  while (pos < size) {
    time += (rand() * 50) | 0;
    // Encode a batch at a time: far faster than one encodeInto per record.
    let batch = '';
    for (let i = 0; i < 256; i++) batch += logLine(rand, time + i);
    const bytes = enc.encode(batch);
    const n = Math.min(bytes.length, size - pos);
    out.set(bytes.subarray(0, n), pos);
    pos += n;
  }
  return out;
}

/** `size` bytes of English-like text. */
export function text(size: number, seed = 2): Uint8Array {
  const rand = rng(seed);
  const parts: string[] = [];
  let length = 0;
  while (length < size) {
    const w = WORDS[(rand() * WORDS.length) | 0]!;
    const sep = rand() < 0.08 ? '.\n' : rand() < 0.1 ? ', ' : ' ';
    parts.push(w, sep);
    length += w.length + sep.length;
  }
  return new TextEncoder().encode(parts.join('')).subarray(0, size);
}

/** `size` random bytes (incompressible). */
export function randomBytes(size: number, seed = 3): Uint8Array {
  const rand = rng(seed);
  const out = new Uint8Array(size);
  const words = new Uint32Array(out.buffer, 0, size >>> 2);
  for (let i = 0; i < words.length; i++) words[i] = (rand() * 4294967296) >>> 0;
  for (let i = words.length * 4; i < size; i++) out[i] = (rand() * 256) | 0;
  return out;
}
