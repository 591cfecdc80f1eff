/**
 * The `quartz` command tree (commander). Every command gets --help; global options pick the
 * server, the key and the output mode.
 */
import { Command } from 'commander';
import { packageVersion } from '../package-info.js';
import { unknownVariableMessage, unknownVariables } from '../variables.js';
import { adminCommands } from './commands/admin.js';
import { accountCommands, kvCommands, vectorCommands } from './commands/data.js';
import { serveCommand } from './commands/serve.js';
import { topicCommands } from './commands/streams.js';
import type { CliIo } from './context.js';
import { errorLine } from './output.js';

/** Where commander's own suggestion starts ("\n(Did you mean --file?)"): its one line break of its own. */
const SUGGESTION = '\n(Did you mean ';

/**
 * A usage error of commander's as one line per part, written as `errorLine` writes ours: it quotes
 * the unknown option or command as typed, and argv can hold line breaks and escape sequences.
 *
 * @example
 * usageErrorLine("error: unknown option '--\u001b[2J'\n"); // "error: unknown option '--\\u001b[2J'\n"
 */
export function usageErrorLine(text: string): string {
  const body = text.endsWith('\n') ? text.slice(0, -1) : text;
  const at = body.lastIndexOf(SUGGESTION);
  if (at < 0) return errorLine(body) + '\n';
  return `${errorLine(body.slice(0, at))}\n${errorLine(body.slice(at + 1))}\n`;
}

/**
 * @example
 * await buildProgram(io).parseAsync(process.argv);
 */
export function buildProgram(io: CliIo): Command {
  const program = new Command('quartz')
    .description('QuartzDB: run the server, or talk to one over HTTP API v1')
    .version(packageVersion(), '-v, --version')
    .option('--url <url>', 'server URL (else QUARTZ_URL, `quartz login`, or http://127.0.0.1:8787)')
    .option('--api-key <key>', 'API key (else QUARTZ_API_KEY or `quartz login`)')
    .option('--timeout <seconds>', 'give up on a server silent this long (else QUARTZ_TIMEOUT, or 30; 0: no limit)')
    .option('-o, --output <mode>', 'table (for people) or json (for scripts)', 'table')
    .showHelpAfterError()
    .configureOutput({ writeOut: (s) => io.stdout.write(s), writeErr: (s) => io.stderr.write(s), outputError: (s, write) => write(usageErrorLine(s)) })
    // A QUARTZ_* name with a slip in it is otherwise silently ignored, and the command
    // talks to the default server. `serve` logs the same warning in its own log format.
    .hook('preAction', (_program, command) => {
      if (command.name() === 'serve') return;
      for (const unknown of unknownVariables(io.env)) io.stderr.write(`quartz: ${unknownVariableMessage(unknown)}\n`);
    });
  serveCommand(program, io);
  accountCommands(program, io);
  kvCommands(program, io);
  vectorCommands(program, io);
  topicCommands(program, io);
  adminCommands(program, io);
  return program;
}
