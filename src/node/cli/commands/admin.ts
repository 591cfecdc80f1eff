/**
 * Operator commands: backup (a running server's consistent snapshot, via the admin route) and
 * restore (offline, into an empty data directory).
 */
import { once } from 'node:events';
import { open, readFile, rename, rm } from 'node:fs/promises';
import type { Command } from 'commander';
import { ApiClient, CliError, headerValue } from '../client.js';
import { ctxFor, type CliIo } from '../context.js';
import { counted } from '../output.js';
import { progressBar } from '../progress.js';

export function adminCommands(program: Command, io: CliIo): void {
  program
    .command('backup')
    .description("download a consistent snapshot of a running server's data (needs the admin key)")
    .requiredOption('--file <path>', 'where to write the archive')
    .option('--admin-key-file <path>', 'read the admin key from this file (else QUARTZ_ADMIN_KEY)')
    .action(async (flags: { file: string; adminKeyFile?: string }, cmd: Command) => {
      if (flags.file === '') throw new CliError('quartz: --file must not be empty');
      const ctx = ctxFor(cmd, io);
      let client = await ctx.client();
      if (flags.adminKeyFile !== undefined) {
        const key = (await readFile(flags.adminKeyFile, 'utf8').catch((err: NodeJS.ErrnoException) => {
          throw new CliError(`quartz: cannot read ${flags.adminKeyFile} (${err.code ?? err.message})`);
        })).trim();
        client = new ApiClient({ ...client.conn, adminKey: headerValue(key, `the admin key in ${flags.adminKeyFile}`) });
      }
      const partial = `${flags.file}.partial`;
      const cannotWrite = (err: NodeJS.ErrnoException): CliError => new CliError(`quartz: cannot write ${flags.file} (${err.code ?? err.message})`);
      // Opened before the download, so a path that cannot be written fails at once, as one line.
      // Mode 0600: the archive holds every tenant's data, as the data directory (0700) does.
      const handle = await open(partial, 'w', 0o600).catch((err: NodeJS.ErrnoException) => {
        throw cannotWrite(err);
      });
      // Ctrl-C (or a TERM) stops the download and removes the .partial: killed outright, the
      // process left up to the archive's whole size of it behind, and said nothing.
      const stop = new AbortController();
      const onSignal = (signal: NodeJS.Signals): void => stop.abort(new CliError(`quartz: backup stopped by ${signal}; no archive was written`, 130));
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
      let written = 0;
      try {
        let res: Response;
        try {
          res = await client.request('/v1/admin/backup', { auth: 'admin', signal: stop.signal });
        } catch (err) {
          await handle.close();
          await rm(partial, { force: true });
          throw stop.signal.aborted ? stop.signal.reason : err;
        }
        const total = Number(res.headers.get('content-length') ?? 0);
        const out = handle.createWriteStream();
        // A write that fails (a full disk) is reported by the loop below (once() rejects, end() calls back with it), not thrown at the process.
        out.on('error', () => undefined);
        const bar = progressBar(io, 'bytes', total, ctx.out.mode === 'json');
        try {
          for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
            if (!out.write(chunk)) await once(out, 'drain', { signal: stop.signal });
            written += chunk.length;
            bar.update(written);
          }
          await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
        } catch (err) {
          out.destroy();
          await rm(partial, { force: true });
          if (stop.signal.aborted) throw stop.signal.reason;
          if (err instanceof CliError) throw err;
          if ((err as NodeJS.ErrnoException).syscall !== undefined) throw cannotWrite(err as NodeJS.ErrnoException);
          throw new CliError(`quartz: backup interrupted after ${written} bytes (${(err as Error).message})`);
        } finally {
          bar.stop();
        }
        if (total > 0 && written !== total) {
          await rm(partial, { force: true });
          throw new CliError(`quartz: backup ended after ${written} of ${total} bytes`);
        }
        await rename(partial, flags.file).catch(async (err: NodeJS.ErrnoException) => {
          await rm(partial, { force: true });
          throw cannotWrite(err);
        });
      } finally {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
      }
      ctx.out.done(`backup written to ${flags.file} (${counted(written, 'byte')})`, { file: flags.file, bytes: written });
    });

  program
    .command('restore')
    .description('restore a backup archive into an empty data directory (server stopped), then `quartz serve --data DIR`; with --tenant and --collection, only that vector collection, over the server\'s own data directory')
    .requiredOption('--file <path>', 'the archive written by `quartz backup`')
    .requiredOption('--data <dir>', 'an empty or new data directory (with --collection: the server\'s data directory)')
    .option('--tenant <id>', 'with --collection: the tenant whose collection is restored (`quartz usage` prints its id)')
    .option('--collection <name>', 'restore only this vector collection of --tenant, replacing what the data directory holds under its name')
    .action(async (flags: { file: string; data: string; tenant?: string; collection?: string }, cmd: Command) => {
      // An empty --data would restore into the working directory.
      if (flags.data === '') throw new CliError('quartz: --data must not be empty');
      if ((flags.tenant === undefined) !== (flags.collection === undefined)) throw new CliError('quartz: --tenant and --collection go together: restore one collection of one tenant');
      if (flags.tenant === '' || flags.collection === '') throw new CliError('quartz: --tenant and --collection must not be empty');
      const ctx = ctxFor(cmd, io);
      const { restoreBackup, restoreCollection } = await import('../../backup/restore.js');
      let bar: ReturnType<typeof progressBar> | undefined;
      const onProgress = (read: number, total: number): void => {
        bar ??= progressBar(io, 'bytes', total, ctx.out.mode === 'json');
        bar.update(read);
      };
      // Ctrl-C (or a TERM) stops the restore, which leaves the directory as it was before exiting.
      const stop = new AbortController();
      const onSignal = (signal: NodeJS.Signals): void => stop.abort(new CliError(`quartz: restore stopped by ${signal}; ${flags.data} is left as it was`, 130));
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
      const done = (): void => {
        bar?.stop();
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
      };
      if (flags.tenant !== undefined && flags.collection !== undefined) {
        const result = await restoreCollection({ file: flags.file, dataDir: flags.data, tenant: flags.tenant, collection: flags.collection, signal: stop.signal, onProgress }).finally(done);
        ctx.out.done(
          `restored collection '${flags.collection}' of tenant '${flags.tenant}' (${counted(result.entries, 'entry', 'entries')} and ${counted(result.blobs, 'blob')}) into ${flags.data}`,
          { data: flags.data, ...result },
        );
        return;
      }
      const result = await restoreBackup({ file: flags.file, dataDir: flags.data, signal: stop.signal, onProgress }).finally(done);
      ctx.out.done(`restored ${counted(result.entries, 'entry', 'entries')} and ${counted(result.blobs, 'blob')} in ${counted(result.units, 'unit')} into ${flags.data}`, { data: flags.data, ...result });
    });
}
