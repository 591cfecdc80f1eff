/**
 * Runs a crash-test child under node + tsx and SIGKILLs it `ms` after it reports ready, or, given
 * `progress`, `ms` after it has also appended that many lines to its ack file.
 */
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

/** Lines in `file` (0 while it does not exist). */
async function lines(file: string): Promise<number> {
  const text = await readFile(file, 'utf8').catch(() => '');
  let n = 0;
  for (let at = text.indexOf('\n'); at !== -1; at = text.indexOf('\n', at + 1)) n++;
  return n;
}

export async function killAfter(script: URL, args: string[], ms: number, progress?: { ackFile: string; acks: number }): Promise<{ stderr: string }> {
  const acksBefore = progress === undefined ? 0 : await lines(progress.ackFile);
  const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(script), ...args], {
    cwd: fileURLToPath(new URL('../..', import.meta.url)),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  );
  const ready = new Promise<void>((resolve) => {
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('ready\n')) resolve();
    });
  });
  // A child that never gets ready is killed rather than left writing after the test gave up on it.
  const stuck = setTimeout(() => child.kill('SIGKILL'), 120_000);
  const first = await Promise.race([ready.then(() => 'ready' as const), exited]);
  clearTimeout(stuck);
  if (first !== 'ready') throw new Error(`crash child exited before it was ready (${JSON.stringify(first)}): ${stderr}`);
  if (progress !== undefined) {
    // Some work first, however slow the machine (a fixed time alone left a loaded machine's child
    // with almost nothing acknowledged); the random delay after it still places the kill anywhere.
    const end = Date.now() + 120_000;
    let gone = false;
    void exited.then(() => (gone = true));
    while ((await lines(progress.ackFile)) < acksBefore + progress.acks) {
      if (gone || Date.now() > end) {
        child.kill('SIGKILL');
        throw new Error(`crash child acknowledged fewer than ${progress.acks} writes (${gone ? 'it exited' : 'in 120 s'}): ${stderr}`);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  }
  await new Promise((r) => setTimeout(r, ms));
  child.kill('SIGKILL');
  const end = await exited;
  if (end.signal !== 'SIGKILL') throw new Error(`crash child ended on its own (${JSON.stringify(end)}) before the kill: ${stderr}`);
  return { stderr };
}
