/**
 * Command-line flags of the benches: `--name value` options, `--name` switches and, where a
 * bench takes them, positional arguments. Each bench names the flags it knows, so a mistyped one
 * (`--quartzonly`) stops the run with a one-line error instead of being ignored while the bench
 * runs at its full, slow default.
 */

export interface FlagSpec {
  /** Flags followed by a value: `--mb 4`. */
  values?: readonly string[];
  /** Flags that stand alone: `--quick`. */
  switches?: readonly string[];
  /** Whether bare arguments (such as `.wasm` files) are taken. */
  positionals?: boolean;
}

export interface Flags {
  /** The value given after `--name`, or undefined when the flag is absent. */
  string(name: string): string | undefined;
  /** `--name` as a number (`fallback` when absent); refuses what is not a finite number at least 0, or above 0 with `positive`. */
  number(name: string, fallback: number, check?: 'non-negative' | 'positive'): number;
  /** Whether the switch `--name` was given. */
  has(name: string): boolean;
  /** `--name a,b,c` as a list (`fallback` when absent). */
  list(name: string, fallback: readonly string[]): string[];
  readonly positionals: readonly string[];
}

/** A flag the bench does not take, a missing value or a value that is not a number. */
export class FlagError extends Error {}

/**
 * Reads `argv` against `spec`; throws a `FlagError` on what it does not take.
 *
 * @example
 * const flags = readFlags({ values: ['mb'], switches: ['quick'] }, ['--mb', '4']);
 * flags.number('mb', 64); // 4
 */
export function readFlags(spec: FlagSpec, argv: readonly string[]): Flags {
  const values = new Map<string, string>();
  const switches = new Set<string>();
  const positionals: string[] = [];
  const known = [...(spec.values ?? []), ...(spec.switches ?? [])].map((n) => `--${n}`).join(', ') || 'none';
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('--')) {
      if (!spec.positionals) throw new FlagError(`unexpected argument '${arg}'; flags: ${known}`);
      positionals.push(arg);
      continue;
    }
    // `--name=value`: the one way to give a value that starts with `--` (node flags for
    // `--server-node-args`), since a separate one that does is read as a forgotten value.
    const eq = arg.indexOf('=');
    const name = arg.slice(2, eq < 0 ? undefined : eq);
    if (spec.switches?.includes(name)) {
      if (eq >= 0) throw new FlagError(`--${name} takes no value`);
      switches.add(name);
    } else if (spec.values?.includes(name)) {
      const value = eq >= 0 ? arg.slice(eq + 1) : argv[++i];
      if (value === undefined || (eq < 0 && value.startsWith('--'))) throw new FlagError(`${arg} needs a value (one that starts with --: --${name}=VALUE)`);
      values.set(name, value);
    } else {
      throw new FlagError(`unknown flag --${name}; flags: ${known}`);
    }
  }
  return {
    string: (name) => values.get(name),
    number(name, fallback, check = 'non-negative') {
      const raw = values.get(name);
      if (raw === undefined) return fallback;
      const n = Number(raw);
      const ok = Number.isFinite(n) && (check === 'positive' ? n > 0 : n >= 0);
      if (!ok) throw new FlagError(`--${name} must be a ${check === 'positive' ? 'positive' : 'non-negative'} number, got '${raw}'`);
      return n;
    },
    has: (name) => switches.has(name),
    list: (name, fallback) => values.get(name)?.split(',') ?? [...fallback],
    positionals,
  };
}

/**
 * This process's flags (`process.argv` after the script). On a flag it does not take, or a value
 * `number` cannot use, prints the error on one line and exits with status 2.
 */
export function parseFlags(spec: FlagSpec): Flags {
  const flags = refusing(() => readFlags(spec, process.argv.slice(2)));
  return { ...flags, number: (name, fallback, check) => refusing(() => flags.number(name, fallback, check)) };
}

function refusing<T>(read: () => T): T {
  try {
    return read();
  } catch (err) {
    if (err instanceof FlagError) refuseFlag(err.message);
    throw err;
  }
}

/** The same one-line error and exit status for a flag's value that only the bench can judge (an unknown scenario). */
export function refuseFlag(message: string): never {
  console.error(`bench: ${message}`);
  process.exit(2);
}
