/**
 * The QUARTZ_* environment variables QuartzDB reads, so that `quartz serve` can name one it does
 * not know (`QUARTZ_PROT=9000` set by hand and silently ignored would start on the default port).
 * A warning, not a refusal: a shell that runs the server often sets variables for other tools too,
 * and the server starts as it would without them.
 */
import { editDistance } from '../engine/known-options.js';

/** Read by `quartz serve` (see docs/configuration.md) and by the CLI's client commands (docs/cli.md). */
export const KNOWN_VARIABLES: readonly string[] = [
  'QUARTZ_HOST',
  'QUARTZ_PORT',
  'QUARTZ_DATA',
  'QUARTZ_CONFIG',
  'QUARTZ_LOG_LEVEL',
  'QUARTZ_DEFAULT_PLAN',
  'QUARTZ_REGISTRATION',
  'QUARTZ_CORS_ORIGINS',
  'QUARTZ_ADMIN_KEY',
  'QUARTZ_DROP_DAMAGED_LOG',
  'QUARTZ_OPEN_COLLECTIONS_MAX_BYTES',
  'QUARTZ_COLLECTION_IDLE_CLOSE_MS',
  'QUARTZ_KV_KEY_CACHE_MAX_BYTES',
  'QUARTZ_TENANT_IDLE_MS',
  'QUARTZ_REQUEST_BODIES_MAX_BYTES',
  'QUARTZ_URL',
  'QUARTZ_API_KEY',
  'QUARTZ_TIMEOUT',
];

const PREFIX = 'QUARTZ_';

export interface UnknownVariable {
  name: string;
  /** The known name it is closest to, when it is close enough to be a slip (at most half its letters apart). */
  nearest: string | undefined;
}

/**
 * The set (non-empty) QUARTZ_* variables of `env` that QuartzDB does not read, in name order.
 *
 * @example
 * unknownVariables({ QUARTZ_PROT: '9000' }); // [{ name: 'QUARTZ_PROT', nearest: 'QUARTZ_PORT' }]
 */
export function unknownVariables(env: Record<string, string | undefined>): UnknownVariable[] {
  const unknown: UnknownVariable[] = [];
  for (const name of Object.keys(env).sort()) {
    // An empty variable counts as unset, as for the known ones.
    if (!name.startsWith(PREFIX) || KNOWN_VARIABLES.includes(name) || env[name] === undefined || env[name] === '') continue;
    const rest = name.slice(PREFIX.length);
    let nearest: string | undefined;
    let best = Math.max(2, Math.floor(rest.length / 2)) + 1;
    for (const known of KNOWN_VARIABLES) {
      const d = editDistance(rest, known.slice(PREFIX.length), best - 1);
      if (d < best) [nearest, best] = [known, d];
    }
    unknown.push({ name, nearest });
  }
  return unknown;
}

/** The warning line for one unknown variable; its value is never shown (it may be a key). */
export function unknownVariableMessage({ name, nearest }: UnknownVariable): string {
  return `${name} is not a variable QuartzDB reads; ignored${nearest === undefined ? '' : ` (did you mean ${nearest}?)`}`;
}
