import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { fileAssets } from './assets.js';

describe('fileAssets', () => {
  it('serves swagger-ui-dist under /docs/ and the playground build at /', async () => {
    const playground = await mkdtemp(join(tmpdir(), 'quartz-playground-'));
    await writeFile(join(playground, 'index.html'), '<h1>playground</h1>');
    await mkdir(join(playground, 'assets'));
    await writeFile(join(playground, 'assets', 'app.js'), 'export {}');
    const assets = fileAssets({ playgroundDir: playground });
    const css = await assets('/docs/swagger-ui.css');
    expect(css?.headers.get('content-type')).toBe('text/css; charset=utf-8');
    expect((await css!.text()).length).toBeGreaterThan(1000);
    const index = await assets('/');
    expect(index?.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(await index!.text()).toBe('<h1>playground</h1>');
    expect(await (await assets('/assets/app.js'))!.text()).toBe('export {}');
  });

  it('answers undefined (a 404 upstream) for missing files, directories and escapes', async () => {
    const playground = await mkdtemp(join(tmpdir(), 'quartz-playground-'));
    await mkdir(join(playground, 'assets'));
    const assets = fileAssets({ playgroundDir: playground });
    for (const path of ['/', '/missing.js', '/assets', '/../package.json', '/docs/../../package.json', '/docs/%2e%2e/%2e%2e/package.json', '/%00', '/%E0%A4%A']) {
      expect(await assets(path), path).toBeUndefined();
    }
    expect(await fileAssets({ playgroundDir: join(playground, 'nope') })('/')).toBeUndefined();
  });
});
