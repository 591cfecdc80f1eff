/** Runs a crash-test child under node + tsx and SIGKILLs it `ms` after it reports ready. */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export async function killAfter(script: URL, args: string[], ms: number): Promise<{ stderr: string }> {
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
  await new Promise((r) => setTimeout(r, ms));
  child.kill('SIGKILL');
  const end = await exited;
  if (end.signal !== 'SIGKILL') throw new Error(`crash child ended on its own (${JSON.stringify(end)}) before the kill: ${stderr}`);
  return { stderr };
}
