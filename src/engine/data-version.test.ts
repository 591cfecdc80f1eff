import { describe, expect, it } from 'vitest';
import { ErrorCode, QuartzError } from '../core/errors.js';
import { createMemoryStorage } from '../ports/memory-storage.js';
import type { StorageProvider } from '../ports/storage.js';
import { DATA_VERSION, META_UNIT, MIGRATIONS, ensureDataVersion, readDataVersion, type Migration } from './data-version.js';

const text = (s: string) => new TextEncoder().encode(s);

function recording(log: number[], count: number, failAt?: number): Migration[] {
  return Array.from({ length: count }, (_, i) => ({
    version: i + 1,
    description: `step ${i + 1}`,
    up: async (storage: StorageProvider) => {
      if (failAt === i + 1) throw new Error('disk on fire');
      log.push(i + 1);
      await (await storage.unit('kv/t1')).kv.put(text(`m${i + 1}`), text('done'));
    },
  }));
}

describe('data versioning', () => {
  it('records the current version on a fresh store; the first migration is a no-op', async () => {
    const storage = createMemoryStorage();
    expect(await readDataVersion(storage)).toBe(0);
    expect(await ensureDataVersion(storage)).toEqual({ from: 0, to: DATA_VERSION, applied: MIGRATIONS.map((m) => m.version) });
    expect(await readDataVersion(storage)).toBe(DATA_VERSION);
    expect(storage.listUnits('')).toEqual([META_UNIT]);
    expect(await ensureDataVersion(storage)).toEqual({ from: DATA_VERSION, to: DATA_VERSION, applied: [] });
  });

  it('runs only the missing migrations, in order', async () => {
    const storage = createMemoryStorage();
    const log: number[] = [];
    await ensureDataVersion(storage, { migrations: recording(log, 2) });
    expect(log).toEqual([1, 2]);
    const result = await ensureDataVersion(storage, { migrations: recording(log, 4) });
    expect(result).toEqual({ from: 2, to: 4, applied: [3, 4] });
    expect(log).toEqual([1, 2, 3, 4]);
  });

  it('resumes after a failed migration without re-running the completed ones', async () => {
    const storage = createMemoryStorage();
    const log: number[] = [];
    const err = await ensureDataVersion(storage, { migrations: recording(log, 3, 2) }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(QuartzError);
    expect((err as QuartzError).message).toMatch(/format version 2 \(step 2\)/);
    expect(await readDataVersion(storage)).toBe(1);
    await ensureDataVersion(storage, { migrations: recording(log, 3) });
    expect(log).toEqual([1, 2, 3]);
  });

  it('refuses a newer format with DATA_VERSION_TOO_NEW and leaves it untouched', async () => {
    const storage = createMemoryStorage();
    await storage.unit(META_UNIT).kv.put(text('data_version'), text(String(DATA_VERSION + 1)));
    const err = await ensureDataVersion(storage, { where: 'data directory /srv/q' }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: ErrorCode.DATA_VERSION_TOO_NEW, details: { found: DATA_VERSION + 1, supported: DATA_VERSION } });
    expect((err as Error).message).toContain(`data directory /srv/q is in format version ${DATA_VERSION + 1}`);
    expect(await readDataVersion(storage)).toBe(DATA_VERSION + 1);
  });

  it('reports an unreadable version record as CORRUPT_DATA, and misnumbered migrations as a bug', async () => {
    const storage = createMemoryStorage();
    await storage.unit(META_UNIT).kv.put(text('data_version'), text('v2'));
    await expect(ensureDataVersion(storage)).rejects.toMatchObject({ code: ErrorCode.CORRUPT_DATA });
    const other = createMemoryStorage();
    const skipped = [{ version: 2, description: 'x', up: async () => undefined }];
    await expect(ensureDataVersion(other, { migrations: skipped })).rejects.toMatchObject({ code: ErrorCode.INTERNAL });
  });
});
