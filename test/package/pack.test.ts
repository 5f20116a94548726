/**
 * The packed tarball installs into an empty folder and works there: the CLI answers and the
 * API computes. The install must use the prebuilt binary inside the tarball (no compiler run).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

import { packageRoot } from '../../lib/native/loader.js';

const root = packageRoot();
const temp = mkdtempSync(join(tmpdir(), 'kfac-pack-'));
afterAll(() => rmSync(temp, { recursive: true, force: true }));

// A clean environment for npm: nothing inherited from an outer `npm test`.
const env: NodeJS.ProcessEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.toLowerCase().startsWith('npm_')));
const npm = (args: string[], cwd: string) => execFileSync('npm', args, { cwd, env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

describe('npm pack', () => {
  it('installs into an empty folder and runs', () => {
    npm(['pack', '--pack-destination', temp, '--silent'], root);
    const tgz = readdirSync(temp).find((f) => f.endsWith('.tgz'));
    expect(tgz).toBeDefined();
    const listing = execFileSync('tar', ['-tzf', join(temp, tgz!)], { encoding: 'utf8' });
    expect(listing).toMatch(/package\/prebuilds\/[a-z0-9]+-[a-z0-9]+\/kfac_peft\.node/);
    expect(listing).toMatch(/package\/dist\/index\.js/);
    expect(listing).toMatch(/package\/dist\/index\.d\.ts/);
    expect(listing).not.toMatch(/package\/test\//);
    expect(listing).not.toMatch(/package\/build\//);

    const app = join(temp, 'app');
    execFileSync('mkdir', ['-p', app]);
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true, type: 'module' }));
    const log = npm(['install', join(temp, tgz!), '--prefer-offline', '--no-audit', '--no-fund', '--foreground-scripts'], app);
    expect(log).toMatch(/using the prebuilt binary/);

    const info = spawnSync(join(app, 'node_modules', '.bin', 'kfac-peft'), ['info', '--json'], { cwd: app, env, encoding: 'utf8' });
    expect(info.status).toBe(0);
    const j = JSON.parse(info.stdout) as { binary: string; backends: string[] };
    expect(j.binary).toContain(join('node_modules', 'kfac-peft', 'prebuilds'));
    expect(j.backends).toContain('cpu');

    writeFileSync(
      join(app, 'use.mjs'),
      `import { Tensor, linalg, ShapeError } from 'kfac-peft';
       const a = Tensor.from([[1, 2], [3, 4]]);
       const c = linalg.matmul(a, a);
       let typed = false;
       try { linalg.matmul(a, Tensor.zeros([3, 3])); } catch (e) { typed = e instanceof ShapeError; }
       console.log(JSON.stringify({ c: Array.from(c.toArray()), typed }));`,
    );
    const use = spawnSync(process.execPath, ['use.mjs'], { cwd: app, env, encoding: 'utf8' });
    expect(use.status).toBe(0);
    expect(JSON.parse(use.stdout)).toEqual({ c: [7, 10, 15, 22], typed: true });
  });
});
