/**
 * `quartz serve`: runs the server until SIGTERM/SIGINT/SIGHUP, then shuts down gracefully (bounded).
 */
import { resolve } from 'node:path';
import type { Command } from 'commander';
import pc from 'picocolors';
import { isFetchBlockedPort } from '../../server/blocked-ports.js';
import type { RunningServer } from '../../server/server.js';
import type { ServeFlags } from '../../server/settings.js';
import { CliError } from '../client.js';
import type { CliIo } from '../context.js';

const FS_REASONS: Record<string, string> = {
  ENOTDIR: 'a part of its path is a file, not a directory',
  EACCES: 'permission denied',
  EPERM: 'permission denied',
  EROFS: 'the file system is read-only',
  ENOSPC: 'no space left on the device',
};

/**
 * Ends the process at once, of `signal` as if it had no handler. NOTE: not process.exit(): while
 * the data directory opens, lmdb's writer waits on the thread pool for callbacks of the main
 * thread, and process.exit joins the thread pool first: a second Ctrl-C during the start hung the
 * process for good, its LOCK held and no port listening. The kernel ends it without that join.
 */
function dieOf(signal: NodeJS.Signals): never {
  for (const s of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.removeAllListeners(s);
  process.kill(process.pid, signal);
  // Only if something else in the process still handles it.
  process.kill(process.pid, 'SIGKILL');
  throw new Error('unreachable: the process was killed');
}

export function serveCommand(program: Command, io: CliIo): void {
  program
    .command('serve')
    .description('run the QuartzDB server (HTTP API v1, /docs, /metrics) on embedded storage')
    .option('--host <host>', 'address to listen on; anything beyond loopback must be given explicitly (default 127.0.0.1)')
    .option('--port <port>', 'port to listen on, 0 for any free one (default 8787)')
    .option('--data <dir>', 'data directory (default ./.quartz)')
    .option('--data-dir <dir>', 'the same as --data (the config file calls it data_dir)')
    .option('--config <file>', 'JSON config file (see docs/configuration.md)')
    .option('--default-plan <name>', 'plan given to new registrations (default unlimited)')
    .option('--log-level <level>', 'trace, debug, info, warn, error, fatal or silent (default info)')
    .option('--drop-damaged-log', 'start even if the write-ahead log is damaged: keep the writes before the damage, drop (and log) the acknowledged ones after it')
    .option('--open-collections-max-bytes <bytes>', 'memory budget of open vector collections; the least recently used close beyond it (default 1/8 of RAM, at least 256 MiB)')
    .option('--collection-idle-close-ms <ms>', 'close a vector collection unused this long, 0 never (default 600000)')
    .option('--kv-key-cache-max-bytes <bytes>', 'memory budget of every tenant\'s KV key cache together; the least recently used tenants\' keys go beyond it (default 1/16 of RAM, at least 128 MiB)')
    .option('--tenant-idle-ms <ms>', 'a tenant unused this long lets go of its KV key cache, 0 never (default 600000)')
    .option('--request-bodies-max-bytes <bytes>', 'budget of request bodies held in memory at once; a body past it is refused unread with 503 and Retry-After (default 1/16 of RAM, at least 64 MiB and twice the largest body limit)')
    .addHelpText('after', '\nEnvironment: QUARTZ_HOST, QUARTZ_PORT, QUARTZ_DATA, QUARTZ_CONFIG, QUARTZ_DEFAULT_PLAN, QUARTZ_LOG_LEVEL,\nQUARTZ_REGISTRATION, QUARTZ_CORS_ORIGINS, QUARTZ_ADMIN_KEY, QUARTZ_DROP_DAMAGED_LOG,\nQUARTZ_OPEN_COLLECTIONS_MAX_BYTES, QUARTZ_COLLECTION_IDLE_CLOSE_MS,\nQUARTZ_KV_KEY_CACHE_MAX_BYTES, QUARTZ_TENANT_IDLE_MS, QUARTZ_REQUEST_BODIES_MAX_BYTES. Flags win over the environment, which wins over the file.')
    .action(async ({ dataDir, ...flags }: ServeFlags & { dataDir?: string }) => {
      // Compared resolved: './d' and 'd/' are one directory.
      if (dataDir !== undefined && flags.data !== undefined && resolve(dataDir) !== resolve(flags.data)) {
        throw new CliError('quartz: --data and --data-dir name different directories; give one');
      }
      flags.data ??= dataDir;
      // Handled from the start: a signal while the data directory opens (a service manager's stop, a
      // Ctrl-C) killed the process outright, its LOCK left behind. Now the start finishes, the
      // server closes as on any shutdown, and the process exits 130.
      let server: RunningServer | undefined;
      let stoppedWhileStarting: NodeJS.Signals | undefined;
      let signals = 0;
      const onSignal = (signal: NodeJS.Signals): void => {
        signals++;
        if (signals > 1) {
          io.stderr.write(`quartz: second ${signal}, exiting now\n`);
          dieOf(signal);
        }
        if (server === undefined) {
          stoppedWhileStarting = signal;
          io.stderr.write(`quartz: ${signal} while starting; stopping once the data directory is open (a second ${signal} exits at once)\n`);
          return;
        }
        shutDown(server, signal);
      };
      const shutDown = (running: RunningServer, signal: NodeJS.Signals, exitCode = 0): void => {
        // If closing the engine itself hangs, leave anyway: the data is fsync'd at each acknowledgement.
        setTimeout(() => {
          io.stderr.write('quartz: shutdown did not finish in time, exiting\n');
          process.exit(1);
        }, SHUTDOWN_BOUND_MS + 5_000).unref();
        void running.close(signal).then(
          (inTime) => {
            if (exitCode !== 0) io.stderr.write(`quartz: stopped by ${signal} while starting; the data directory is closed\n`);
            process.exit(inTime ? exitCode : 1);
          },
          (err: unknown) => {
            io.stderr.write(`quartz: shutdown failed: ${(err as Error).message}\n`);
            process.exit(1);
          },
        );
      };
      process.on('SIGTERM', onSignal);
      process.on('SIGINT', onSignal);
      // A closed terminal sends SIGHUP, whose default (node resets nohup's ignore) ends the process
      // at once, cutting long-polls and leaving the LOCK. There is nothing to reload: settings are
      // read at start.
      process.on('SIGHUP', onSignal);
      const stopListening = (): void => {
        process.off('SIGTERM', onSignal);
        process.off('SIGINT', onSignal);
        process.off('SIGHUP', onSignal);
      };
      // Loaded here so client commands never load the engine and the WASM core.
      const { isLoopback, resolveServeSettings } = await import('../../server/settings.js');
      const { SHUTDOWN_BOUND_MS, startServer } = await import('../../server/server.js');
      const settings = await resolveServeSettings(flags, io.env).catch((err: unknown) => {
        stopListening();
        throw err;
      });
      if (stoppedWhileStarting !== undefined) {
        // Nothing is open yet: nothing to close.
        io.stderr.write(`quartz: stopped by ${stoppedWhileStarting} while starting, before the data directory was opened\n`);
        process.exit(130);
      }
      try {
        server = await startServer(settings, io.env);
      } catch (err) {
        // The start's own error is the one line: the process ends with it, whatever signal came.
        stopListening();
        const { code, syscall, path } = err as NodeJS.ErrnoException;
        if (syscall === 'listen' || syscall === 'getaddrinfo') {
          if (code === 'EADDRINUSE') throw new CliError(`quartz: ${settings.host}:${settings.port} is already in use; pick another --port`);
          if (code === 'EACCES') throw new CliError(`quartz: not allowed to listen on ${settings.host}:${settings.port}`);
          if (code === 'EADDRNOTAVAIL') throw new CliError(`quartz: ${settings.host} is not an address of this machine`);
          if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') throw new CliError(`quartz: cannot listen on '${settings.host}': no such host`);
        }
        // A file system error opening the data directory (not a directory, no permission, full disk…);
        // openQuartz reports it as a QuartzError with the file system's error as its cause.
        const fsError = typeof path === 'string' ? (err as NodeJS.ErrnoException) : ((err as { cause?: unknown }).cause as NodeJS.ErrnoException | undefined);
        if (typeof fsError?.path === 'string' && fsError.code !== undefined) {
          throw new CliError(`quartz: cannot use data directory ${settings.dataDir}: ${FS_REASONS[fsError.code] ?? fsError.code} (${fsError.code} on ${fsError.path})`);
        }
        throw err;
      }
      if (stoppedWhileStarting !== undefined) {
        // No banner: whoever waits for it must not take a server that is leaving for a ready one.
        shutDown(server, stoppedWhileStarting, 130);
        return;
      }
      const warnings: string[] = [];
      // The address bound, not the host as typed: '::ffff:127.0.0.1', '127.1' or a name that
      // resolves to loopback were warned of as reachable from beyond.
      if (!isLoopback(server.address)) {
        const who = settings.app.registration_enabled === false ? 'registration is off (keys already given and those the admin creates work)' : 'anyone who can reach it can register (QUARTZ_REGISTRATION=false turns that off)';
        warnings.push(`listening beyond loopback on ${settings.host}: ${who}`);
      }
      const port = Number(new URL(server.url).port);
      if (isFetchBlockedPort(port)) {
        // Started anyway: curl and other clients reach it, and the port may be a deliberate choice.
        warnings.push(`port ${port} is one the fetch standard blocks: browsers and node's fetch (the quartz CLI, the /docs page, browser apps) refuse to connect to it, curl does not; pick another --port for them`);
      }
      // Only now: whoever waits for the banner may signal at once, and must meet the handlers.
      io.stdout.write(banner(server, settings.dataDir, warnings, (io.stdout as { isTTY?: boolean }).isTTY === true));

    });
}

/**
 * What the server prints once it takes requests, in one write so a reader sees it whole. At a
 * terminal, lines for people; otherwise (a pipe, a file, a service manager's journal) JSON lines
 * shaped as the log's own, which a log shipper reading stdout takes, where the plain text among
 * them broke it: one `info` line with the addresses and one `warn` line per warning.
 */
function banner(server: RunningServer, dataDir: string, warnings: string[], terminal: boolean): string {
  const keyWhere = `${server.adminKey.where}${server.adminKey.created ? ' (generated now)' : ''}`;
  if (terminal) {
    const lines = [
      `${pc.bold('QuartzDB')} listening on ${pc.cyan(server.url)}`,
      `  API docs:  ${server.url}/docs`,
      `  metrics:   ${server.url}/metrics`,
      `  data:      ${dataDir}`,
      `  admin key: ${keyWhere}`,
      ...warnings.map((w) => pc.yellow(`  ${w}`)),
    ];
    return lines.join('\n') + '\n';
  }
  const time = Date.now();
  const line = (level: number, fields: Record<string, unknown>, msg: string): string => JSON.stringify({ level, time, service: 'quartz', ...fields, msg }) + '\n';
  const fields = { url: server.url, docs: `${server.url}/docs`, metrics: `${server.url}/metrics`, data_dir: dataDir, admin_key: server.adminKey.where, admin_key_generated: server.adminKey.created };
  return line(30, fields, `QuartzDB listening on ${server.url}`) + warnings.map((w) => line(40, {}, w)).join('');
}
