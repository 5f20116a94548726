/**
 * Finds and loads the native addon (the one loader module: backend choice and loading).
 *
 * Order: an explicit KFAC_PEFT_BINARY path; the prebuilt binary shipped inside the package
 * (prebuilds/<platform>-<arch>/kfac_peft.node); the local node-gyp build (build/Release, then
 * build/Debug). The first that loads wins. With KFAC_PEFT_BINARY_ONLY=1 the explicit path is the
 * only candidate (the sanitizer run uses it, so it never falls back to the normal build). When
 * none loads, one NativeLoadError lists every attempt with its error and the possible solutions.
 * Before that, the backend choice (below) may pick the CUDA binary, a superset of this addon.
 */
import { createRequire } from 'node:module';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { DeviceError, NativeLoadError, describe, errorFromCode, invalidArgument } from '../errors.js';
import type { NativeAddon, NativeCudaInfo } from './addon.js';

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

// ---- backend choice -------------------------------------------------------------------
//
// 'auto' | 'cpu' | 'cuda', from setBackend() or KFAC_BACKEND (default 'auto').
//
// The CUDA binary (kfac_peft_cuda.node) is a superset of the CPU addon: the same ops, whose
// kernels also run on cuda tensors, plus `addon.cuda` (device info, memory statistics). It is
// looked for at KFAC_PEFT_CUDA_BINARY, in the optional package kfac-peft-<platform>-<arch>-cuda13
// (used only when its version equals ours), and in a local cmake-js build (build-cuda/Release).
// 'auto' takes it only when it loads and a device answers; otherwise the CPU addon, with the
// reason recorded. 'cuda' where that fails throws a DeviceError that says why. A failing
// dlopen (no driver, no cuBLAS) is caught, never fatal.

export type Backend = 'auto' | 'cpu' | 'cuda';
const BACKENDS: readonly Backend[] = ['auto', 'cpu', 'cuda'];

/** The name of the optional package with the CUDA binary for this platform. */
export function cudaPackageName(platform = process.platform, arch = process.arch): string {
  return `kfac-peft-${platform}-${arch}-cuda13`;
}

export interface CudaAttempt {
  path: string;
  /** Why this candidate was not used ('not found', a load error, a version mismatch). */
  error: string;
}

export interface CudaStatus {
  /** The CUDA binary that loaded, or null. */
  binary: string | null;
  found: boolean;
  loaded: boolean;
  /** What the CUDA runtime said (only when the binary loaded). */
  info: NativeCudaInfo | null;
  /** A device answers: the CUDA backend is usable. */
  usable: boolean;
  /** Why CUDA is not usable (null when it is). */
  reason: string | null;
  attempts: CudaAttempt[];
}

export interface BackendChoice {
  requested: Backend;
  source: 'api' | 'env' | 'default';
  selected: 'cpu' | 'cuda';
  /** Why this backend was selected. */
  reason: string;
}

let apiChoice: Backend | undefined;
let decided: BackendChoice | undefined;
let status: CudaStatus | undefined;
let cudaAddon: NativeAddon | undefined;

function pkgVersion(root: string): string {
  return (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version;
}

function checkBackend(b: unknown, name: string): Backend {
  if (typeof b !== 'string' || !(BACKENDS as readonly string[]).includes(b)) invalidArgument(name, "'auto', 'cpu' or 'cuda'", typeof b === 'string' ? JSON.stringify(b) : describe(b));
  return b as Backend;
}

/** The backend asked for (setBackend, else KFAC_BACKEND, else 'auto'). */
export function requestedBackend(): { backend: Backend; source: 'api' | 'env' | 'default' } {
  if (apiChoice) return { backend: apiChoice, source: 'api' };
  const env = process.env['KFAC_BACKEND'];
  if (env !== undefined && env !== '') return { backend: checkBackend(env, 'KFAC_BACKEND'), source: 'env' };
  return { backend: 'auto', source: 'default' };
}

/**
 * Chooses the backend for this process. Call before the first op; once the addon is loaded the
 * choice is fixed, and asking for another throws an InvalidArgumentError.
 */
export function setBackend(backend: Backend): void {
  const b = checkBackend(backend, 'backend');
  if (decided && decided.requested !== b)
    invalidArgument('backend', `the backend already in use (${decided.selected}, chosen before the first op)`, JSON.stringify(b));
  apiChoice = b;
}

/** Where the CUDA binary may be, in order; the optional package only when its version matches. */
export function cudaCandidates(root = packageRoot()): { paths: string[]; rejected: CudaAttempt[] } {
  const paths: string[] = [];
  const rejected: CudaAttempt[] = [];
  const env = process.env['KFAC_PEFT_CUDA_BINARY'];
  if (env) paths.push(env);
  const name = cudaPackageName();
  try {
    const pj = createRequire(join(root, 'package.json')).resolve(`${name}/package.json`);
    const v = pkgVersion(dirname(pj));
    const want = pkgVersion(root);
    if (v === want) paths.push(join(dirname(pj), 'kfac_peft_cuda.node'));
    else rejected.push({ path: dirname(pj), error: `${name}@${v} does not match kfac-peft@${want}; install ${name}@${want}` });
  } catch {
    rejected.push({ path: name, error: 'package not installed' });
  }
  paths.push(join(root, 'build-cuda', 'Release', 'kfac_peft_cuda.node'));
  return { paths, rejected };
}

/** Looks for, loads (once) and asks the CUDA binary. Never throws. */
export function cudaStatus(): CudaStatus {
  if (status) return status;
  const s: CudaStatus = { binary: null, found: false, loaded: false, info: null, usable: false, reason: null, attempts: [] };
  let root: string;
  try {
    root = packageRoot();
  } catch (e) {
    s.reason = e instanceof Error ? e.message : String(e);
    return (status = s);
  }
  const { paths, rejected } = cudaCandidates(root);
  s.attempts.push(...rejected);
  const want = pkgVersion(root);
    for (const p of paths) {
    if (!existsSync(p)) {
      s.attempts.push({ path: p, error: 'not found' });
      continue;
    }
    s.found = true;
    try {
      const addon = require(p) as NativeAddon;
      if (typeof addon.info !== 'function' || typeof addon.cuda?.info !== 'function') throw new Error('not a kfac-peft CUDA addon (no cuda.info)');
      const v = addon.info().version;
      if (v !== want) throw new Error(`built for kfac-peft ${v}, this is ${want}`);
      s.binary = p;
      s.loaded = true;
      s.info = addon.cuda.info();
      cudaAddon = addon;
      break;
    } catch (e) {
      s.attempts.push({ path: p, error: e instanceof Error ? (e.message.split('\n')[0] ?? String(e)) : String(e) });
    }
  }
  if (!s.found) s.reason = `no CUDA binary found (install ${cudaPackageName()}@${want}, or build one with npm run build:cuda)`;
  else if (!s.loaded) s.reason = `the CUDA binary did not load: ${s.attempts[s.attempts.length - 1]?.error ?? 'unknown error'}`;
  else if (!s.info || s.info.deviceCount === 0) s.reason = `no CUDA device: ${s.info?.reason ?? 'unknown'}`;
  else s.usable = true;
  return (status = s);
}

/**
 * Decides the backend (once per process) and returns the CUDA addon when CUDA was selected.
 * Throws DeviceError when 'cuda' was asked for and is unavailable.
 */
export function decideBackend(): { choice: BackendChoice; addon: NativeAddon | undefined; path: string | undefined } {
  const { backend, source } = requestedBackend();
  if (backend === 'cpu') {
    decided = { requested: backend, source, selected: 'cpu', reason: `cpu asked for (${source === 'env' ? 'KFAC_BACKEND' : 'setBackend'})` };
    return { choice: decided, addon: undefined, path: undefined };
  }
  const s = cudaStatus();
  if (s.usable && cudaAddon) {
    const dev = s.info?.devices[0];
    decided = { requested: backend, source, selected: 'cuda', reason: `${backend}: the CUDA binary loaded and ${dev ? `${dev.name} (sm_${dev.computeCapability.replace('.', '')})` : 'a device'} answers` };
    return { choice: decided, addon: cudaAddon, path: s.binary ?? undefined };
  }
  if (backend === 'cuda') {
    const where = source === 'env' ? 'KFAC_BACKEND=cuda' : "setBackend('cuda')";
    throw new DeviceError(`backend: the cuda backend is unavailable (${where}): ${s.reason}`, {
      argument: 'backend',
      expected: 'a loadable CUDA binary and a CUDA device',
      got: s.reason ?? 'unknown',
      hint: 'run `npx kfac-peft doctor` for details, or use backend "auto"/"cpu"',
    });
  }
  decided = { requested: backend, source, selected: 'cpu', reason: `auto: ${s.reason}` };
  return { choice: decided, addon: undefined, path: undefined };
}

/** The backend in use (undefined before the first op loads the addon). */
export function backendChoice(): BackendChoice | undefined {
  return decided;
}
