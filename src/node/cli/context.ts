/**
 * What every CLI command gets: the environment, stdout/stderr writers, the output mode and a
 * lazily built API client. Commands use it instead of process globals so tests can drive them.
 */
import type { Command } from 'commander';
import { ApiClient, CliError, resolveConnection } from './client.js';
import { createOutput, type Out, type OutputMode } from './output.js';

export interface CliIo {
  env: Record<string, string | undefined>;
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  stdin: NodeJS.ReadableStream;
}

export interface GlobalFlags {
  url?: string;
  apiKey?: string;
  output?: string;
  timeout?: string;
}

/** Per-command helpers built from the global flags. */
export interface Ctx {
  io: CliIo;
  out: Out;
  /** The client; `damagedConfig: 'ignore'` (given at the first call) for commands that replace the saved config. */
  client(options?: { damagedConfig?: 'throw' | 'ignore' }): Promise<ApiClient>;
}

export function outputMode(value: string | undefined): OutputMode {
  if (value === undefined || value === 'table' || value === 'text') return 'table';
  if (value === 'json') return 'json';
  throw new CliError(`quartz: --output must be table or json, got '${value}'`);
}

/**
 * @example
 * const ctx = ctxFor(command, io);
 * const topics = await (await ctx.client()).json('/v1/topics');
 */
export function ctxFor(command: Command, io: CliIo): Ctx {
  const flags = command.optsWithGlobals<GlobalFlags>();
  const out = createOutput(outputMode(flags.output), (s) => io.stdout.write(s));
  let client: Promise<ApiClient> | undefined;
  return {
    io,
    out,
    client: (options) => (client ??= resolveConnection({ url: flags.url, apiKey: flags.apiKey, timeout: flags.timeout }, io.env, options).then((c) => new ApiClient(c))),
  };
}

/** The `--limit` (at most this many in all) and `--page-size` (per request, 1-1000) of an ls command. */
export function listFlags(flags: { limit?: string; pageSize: string }): { limit?: number; pageSize: number } {
  const pageSize = intFlag(flags.pageSize, '--page-size', 1)!;
  if (pageSize > 1000) throw new CliError(`quartz: --page-size must be at most 1000, got '${flags.pageSize}'`);
  return { limit: intFlag(flags.limit, '--limit', 1), pageSize };
}

/** Parses a non-negative integer flag, naming it in the error. */
export function intFlag(value: string | undefined, flag: string, min = 0): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value) || Number(value) < min || !Number.isSafeInteger(Number(value))) {
    throw new CliError(`quartz: ${flag} must be an integer ≥ ${min}, got '${value}'`);
  }
  return Number(value);
}
