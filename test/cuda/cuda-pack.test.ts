/**
 * The optional CUDA package: scripts/pack-cuda.mjs packs kfac-peft-<platform>-<arch>-cuda13
 * (pinned to our version); installed next to the packed main package in an empty folder,
 * `kfac-peft info --json` and `doctor --json` must report the CUDA binary found, loaded, and
 * its device state ("no device" here). A version mismatch must be refused with the reason.
 * Skips when no toolkit with cuBLAS and cuSOLVER headers exists (the CUDA addon cannot be built).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';

import { cudaPackageName } from '../../lib/native/loader.js';
import { packageRoot } from '../../lib/native/loader.js';
// @ts-expect-error: a plain ESM script without types
import { findCuda } from '../../scripts/find-cuda.mjs';

const root = packageRoot();
const toolkit = findCuda() as { root: string | null; libDir: string | null; reason: string | null };
const temp = mkdtempSync(join(tmpdir(), 'kfac-cuda-pack-'));
afterAll(() => rmSync(temp, { recursive: true, force: true }));

const env: NodeJS.ProcessEnv = Object.fromEntries(
  Object.entries(process.env).filter(([k]) => !k.toLowerCase().startsWith('npm_') && !k.startsWith('KFAC_BACKEND') && !k.startsWith('KFAC_PEFT_')),
);
const npm = (args: string[], cwd: string) => execFileSync('npm', args, { cwd, env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

describe(`npm pack of ${cudaPackageName()}${toolkit.root ? '' : ` (skipped: ${toolkit.reason})`}`, () => {
  test.skipIf(!toolkit.root)(
    'installs with the main package into an empty folder; info and doctor report found, loaded, device state',
    () => {
      const version = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version;
      const packed = execFileSync(process.execPath, [join(root, 'scripts', 'pack-cuda.mjs'), '--out', temp], { cwd: root, env, encoding: 'utf8' });
      const cudaTgz = packed.trim().split('\n').pop()!;
      expect(cudaTgz).toContain(`${cudaPackageName()}-${version}.tgz`);
      const listing = execFileSync('tar', ['-tzf', cudaTgz], { encoding: 'utf8' });
      expect(listing).toMatch(/package\/kfac_peft_cuda\.node/);
      expect(listing).not.toMatch(/libcublas|libcusolver|libcudart/); // never bundled

      npm(['pack', '--pack-destination', temp, '--silent'], root);
      const mainTgz = join(temp, readdirSync(temp).find((f) => f.startsWith('kfac-peft-0') || f === `kfac-peft-${version}.tgz`)!);
      const app = join(temp, 'app');
      mkdirSync(app);
      writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true, type: 'module' }));
      npm(['install', mainTgz, cudaTgz, '--prefer-offline', '--no-audit', '--no-fund'], app);

      const cli = join(app, 'node_modules', '.bin', 'kfac-peft');
      const runEnv = { ...env, LD_LIBRARY_PATH: `${toolkit.libDir}:${process.env['LD_LIBRARY_PATH'] ?? ''}` };
      const info = spawnSync(cli, ['info', '--json'], { cwd: app, env: runEnv, encoding: 'utf8' });
      expect(info.status).toBe(0);
      const j = JSON.parse(info.stdout) as { cuda: { found: boolean; loaded: boolean; usable: boolean; binary: string; reason: string | null; info: { deviceCount: number } }; backend: { selected: string } };
      expect(j.cuda.found).toBe(true);
      expect(j.cuda.loaded).toBe(true);
      expect(j.cuda.binary).toContain(join('node_modules', cudaPackageName(), 'kfac_peft_cuda.node'));
      if (!j.cuda.usable) {
        expect(j.cuda.info.deviceCount).toBe(0);
        expect(j.cuda.reason).toMatch(/^no CUDA device/);
        expect(j.backend.selected).toBe('cpu');
      }
      const doctor = spawnSync(cli, ['doctor', '--json'], { cwd: app, env: runEnv, encoding: 'utf8' });
      expect(doctor.status).toBe(0);
      const d = JSON.parse(doctor.stdout) as { ok: boolean; cuda: { found: boolean; loaded: boolean } };
      expect(d).toMatchObject({ ok: true, cuda: { found: true, loaded: true } });

      // A CUDA package of another version is refused, with the reason.
      const pj = join(app, 'node_modules', cudaPackageName(), 'package.json');
      writeFileSync(pj, readFileSync(pj, 'utf8').replace(`"version": "${version}"`, '"version": "0.0.0-other"'));
      const mismatch = spawnSync(cli, ['doctor', '--json'], { cwd: app, env: runEnv, encoding: 'utf8' });
      expect(mismatch.status).toBe(0);
      const m = JSON.parse(mismatch.stdout) as { cuda: { loaded: boolean; attempts: { error: string }[] } };
      expect(m.cuda.loaded).toBe(false);
      expect(m.cuda.attempts.map((a) => a.error).join('\n')).toMatch(new RegExp(`${cudaPackageName()}@0\\.0\\.0-other does not match kfac-peft@${version.replace(/\./g, '\\.')}`));
    },
    1_200_000,
  );
});
