/**
 * Entry of the `quartz` CLI (bin/quartz.js runs the compiled copy): parses the command line and
 * turns any failure into one line on stderr and a non-zero exit code.
 */
import { QuartzError } from '../../core/errors.js';
import { CliError } from './client.js';
import { errorLine } from './output.js';
import { buildProgram } from './program.js';

const io = { env: process.env, stdout: process.stdout, stderr: process.stderr, stdin: process.stdin };

// `quartz consume | head` closes stdout early: that is a normal end, not an error.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(0);
  throw err;
});

try {
  await buildProgram(io).parseAsync(process.argv);
} catch (err) {
  let line: string;
  if (err instanceof CliError) line = err.message;
  else if (err instanceof QuartzError) line = `quartz: ${err.message}`;
  else line = `quartz: ${(err as Error)?.message ?? String(err)}`;
  process.stderr.write(errorLine(line) + '\n');
  process.exitCode = err instanceof CliError ? err.exitCode : 1;
}
