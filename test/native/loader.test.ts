/** The loader: search order, and one clear error listing every attempt when nothing loads. */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

import { candidatePaths, native, nativePath, packageRoot } from '../../lib/native/loader.js';

const root = packageRoot();
const temp = mkdtempSync(join(tmpdir(), 'kfac-loader-'));
afterAll(() => rmSync(temp, { recursive: true, force: true }));

describe('native loader', () => {
  it('tries an explicit path, then the prebuilt binary, then the local builds', () => {
    const paths = candidatePaths('/pkg');
    const plat = `${process.platform}-${process.arch}`;
    const tail = paths.slice(-3);
    expect(tail).toEqual([`/pkg/prebuilds/${plat}/kfac_peft.node`, '/pkg/build/Release/kfac_peft.node', '/pkg/build/Debug/kfac_peft.node']);
  });

  it('tries only the explicit path when KFAC_PEFT_BINARY_ONLY=1', () => {
    const saved = { b: process.env['KFAC_PEFT_BINARY'], o: process.env['KFAC_PEFT_BINARY_ONLY'] };
    try {
      process.env['KFAC_PEFT_BINARY'] = '/x/sanitized.node';
      process.env['KFAC_PEFT_BINARY_ONLY'] = '1';
      expect(candidatePaths('/pkg')).toEqual(['/x/sanitized.node']);
      process.env['KFAC_PEFT_BINARY_ONLY'] = '0';
      expect(candidatePaths('/pkg')).toHaveLength(4);
    } finally {
      for (const [k, v] of [['KFAC_PEFT_BINARY', saved.b], ['KFAC_PEFT_BINARY_ONLY', saved.o]] as const) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
  });

  it('loads the addon once and reports where from', () => {
    expect(native()).toBe(native());
    expect(nativePath()).toMatch(/kfac_peft\.node$/);
  });

  it('throws one NativeLoadError listing every attempt and the possible solutions', () => {
    // A copy of the compiled package with no binary anywhere, and a broken explicit one.
    execFileSync(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(root, 'tsconfig.build.json'), '--outDir', join(temp, 'dist')], { stdio: 'pipe' });
    writeFileSync(join(temp, 'package.json'), JSON.stringify({ name: 'kfac-peft', version: '0.0.0', type: 'module' }));
    mkdirSync(join(temp, 'prebuilds', `${process.platform}-${process.arch}`), { recursive: true });
    writeFileSync(join(temp, 'prebuilds', `${process.platform}-${process.arch}`, 'kfac_peft.node'), 'not a shared object');
    const script = `
      import { native } from './dist/native/loader.js';
      try { native(); console.log('LOADED'); }
      catch (e) { console.log(JSON.stringify({ name: e.name, code: e.code, attempts: e.attempts, message: e.message })); }`;
    writeFileSync(join(temp, 'probe.mjs'), script);
    const r = spawnSync(process.execPath, [join(temp, 'probe.mjs')], { cwd: temp, env: { ...process.env, KFAC_PEFT_BINARY: join(temp, 'missing.node') }, encoding: 'utf8' });
    const out = JSON.parse(r.stdout.trim()) as { name: string; code: string; attempts: { path: string; error: string }[]; message: string };
    expect(out.name).toBe('NativeLoadError');
    expect(out.code).toBe('ERR_NATIVE_LOAD');
    expect(out.attempts.length).toBe(4);
    expect(out.attempts[0]!.error).toBe('not found');
    expect(out.attempts[1]!.error).not.toBe('not found'); // the broken prebuilt was tried and failed
    expect(out.message).toMatch(/Possible solutions/);
    expect(out.message).toMatch(/npm rebuild kfac-peft/);
  });
});

