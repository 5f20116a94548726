/**
 * Finds and loads the native addon.
 *
 * Order: an explicit KFAC_PEFT_BINARY path; the prebuilt binary shipped inside the package
 * (prebuilds/<platform>-<arch>/kfac_peft.node); the local node-gyp build (build/Release, then
 * build/Debug). The first that loads wins. With KFAC_PEFT_BINARY_ONLY=1 the explicit path is the
 * only candidate (the sanitizer run uses it, so it never falls back to the normal build). When
 * none loads, one NativeLoadError lists every attempt with its error and the possible solutions. Before that, the backend choice
 * (lib/native/backend.ts) may pick the CUDA binary, a superset of this addon.
 */
import { createRequire } from 'node:module';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { NativeLoadError, errorFromCode } from '../errors.js';
import type { NativeAddon } from './addon.js';
import { decideBackend } from './backend.js';

const require = createRequire(import.meta.url);

let cached: NativeAddon | undefined;
let loadedFrom: string | undefined;

/** The package root: the nearest folder above this file holding our package.json. */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pj = join(dir, 'package.json');
    if (existsSync(pj)) {
      try {
        if ((JSON.parse(readFileSync(pj, 'utf8')) as { name?: string }).name === 'kfac-peft') return dir;
      } catch {
        // not ours; keep walking up
      }
    }
    const up = dirname(dir);
    if (up === dir) throw new NativeLoadError('could not find the kfac-peft package root', []);
    dir = up;
  }
}

/** Places the loader tries, in order. */
export function candidatePaths(root = packageRoot()): string[] {
  const out: string[] = [];
  const env = process.env['KFAC_PEFT_BINARY'];
  if (env) out.push(env);
  if (env && process.env['KFAC_PEFT_BINARY_ONLY'] === '1') return out;
  out.push(join(root, 'prebuilds', `${process.platform}-${process.arch}`, 'kfac_peft.node'));
  out.push(join(root, 'build', 'Release', 'kfac_peft.node'));
  out.push(join(root, 'build', 'Debug', 'kfac_peft.node'));
  return out;
}

/** Loads (once) and returns the native addon. */
export function native(): NativeAddon {
  if (cached) return cached;
  const cuda = decideBackend();  // throws DeviceError when 'cuda' was asked for and is unavailable
  if (cuda.addon) {
    cuda.addon.setErrorFactory(errorFromCode);
    cached = cuda.addon;
    loadedFrom = cuda.path;
    return cuda.addon;
  }
  const attempts: { path: string; error: string }[] = [];
  for (const p of candidatePaths()) {
    if (!existsSync(p)) {
      attempts.push({ path: p, error: 'not found' });
      continue;
    }
    try {
      const addon = require(p) as NativeAddon;
      if (typeof addon.info !== 'function' || typeof addon.setErrorFactory !== 'function')
        throw new Error('not a kfac-peft addon (missing info/setErrorFactory)');
      addon.setErrorFactory(errorFromCode);
      cached = addon;
      loadedFrom = p;
      return addon;
    } catch (e) {
      attempts.push({ path: p, error: e instanceof Error ? e.message.split('\n')[0] ?? String(e) : String(e) });
    }
  }
  const lines = attempts.map((a) => `  - ${a.path}: ${a.error}`).join('\n');
  throw new NativeLoadError(
    `kfac-peft: could not load the native addon for ${process.platform}-${process.arch} (Node ${process.version}, N-API 8 required).\n` +
      `Tried:\n${lines}\n` +
      'Possible solutions:\n' +
      '  1. Reinstall so the build runs: npm rebuild kfac-peft (needs python3, make and a C++17 compiler).\n' +
      '  2. Build from a source checkout: npm run build:native.\n' +
      '  3. Point KFAC_PEFT_BINARY at a kfac_peft.node built for this platform.\n' +
      '  4. Check that your Node.js is version 20 or newer.',
    attempts,
  );
}

/** Where the addon was loaded from (undefined before the first load). */
export function nativePath(): string | undefined {
  return loadedFrom;
}
