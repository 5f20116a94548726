/**
 * Backend choice without a GPU: 'auto' falls back to the CPU and says why, 'cuda' where it is
 * unavailable is a typed error that says why, a CUDA binary that fails to load is reported and
 * never crashes the process, and `doctor` checks the installation. When the local CUDA build
 * (build-cuda/) and the CUDA libraries exist, it must load and report its device state.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';

import { cuda, DeviceError, info, InvalidArgumentError, setBackend, Tensor } from '../../lib/index.js';
import { native, packageRoot } from '../../lib/native/loader.js';
// @ts-expect-error: a plain ESM script without types
import { findCuda } from '../../scripts/find-cuda.mjs';

const root = packageRoot();
const temp = mkdtempSync(join(tmpdir(), 'kfac-cuda-'));
afterAll(() => rmSync(temp, { recursive: true, force: true }));

const baseEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('KFAC_BACKEND') && !k.startsWith('KFAC_PEFT_CUDA')));
const run = (env: Record<string, string>, ...args: string[]) =>
  spawnSync(process.execPath, [join(root, 'bin', 'kfac-peft.js'), ...args], { encoding: 'utf8', env: { ...baseEnv, CI: 'true', ...env } });

interface InfoJson {
  backends: string[];
  backend: { requested: string; selected: string; reason: string };
  cuda: { found: boolean; loaded: boolean; usable: boolean; reason: string | null; info: { deviceCount: number; reason: string | null; cublasVersion: string } | null };
}
interface DoctorJson {
  ok: boolean;
  checks: { name: string; level: string; detail: string }[];
  cuda: { found: boolean; loaded: boolean; usable: boolean; reason: string | null; attempts: { path: string; error: string }[] };
  backend: { requested: string; picks: string };
}

// A file that is not a shared object, standing in for a broken CUDA binary.
const bogus = join(temp, 'kfac_peft_cuda.node');
writeFileSync(bogus, 'not an ELF file');
// No real CUDA binary for these checks (build-cuda/ may hold one): point at the bogus one.
const broken = { KFAC_PEFT_CUDA_BINARY: bogus };

describe('backend choice without a usable CUDA binary', () => {
  test("auto picks the CPU and info says why", () => {
    const r = run({ ...broken, KFAC_BACKEND: 'auto', LD_LIBRARY_PATH: '' }, 'info', '--json');
    expect(r.status).toBe(0);
    const j = JSON.parse(r.stdout) as InfoJson;
    expect(j.backend.selected).toBe('cpu');
    expect(j.backend.reason).toMatch(/^auto: /);
    expect(j.backends).toEqual(['cpu']);
    expect(j.cuda.usable).toBe(false);
    const text = run({ ...broken, KFAC_BACKEND: 'auto', LD_LIBRARY_PATH: '' }, 'info');
    expect(text.stdout).toMatch(/backend\s+cpu \(auto: /);
  });

  test('a CUDA binary that fails to load is reported, not fatal', () => {
    const r = run({ ...broken, LD_LIBRARY_PATH: '' }, 'doctor', '--json');
    expect(r.status).toBe(0);
    const j = JSON.parse(r.stdout) as DoctorJson;
    expect(j.ok).toBe(true);
    expect(j.cuda.found).toBe(true);
    expect(j.cuda.loaded).toBe(false);
    expect(j.cuda.attempts.find((a) => a.path === bogus)?.error).toMatch(/invalid ELF|file too short|not a|cannot open/i);
    expect(j.checks.find((c) => c.name === 'cpu binary')?.level).toBe('ok');
    expect(j.checks.find((c) => c.name === 'cuda binary loads')?.level).toBe('warn');
  });

  test("KFAC_BACKEND=cuda where CUDA is unavailable is a typed error that says why", () => {
    const r = run({ ...broken, KFAC_BACKEND: 'cuda', LD_LIBRARY_PATH: '' }, 'info');
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/the cuda backend is unavailable \(KFAC_BACKEND=cuda\): the CUDA binary did not load/);
    expect(r.stderr).toMatch(/doctor/);
    const bench = run({ ...broken, LD_LIBRARY_PATH: '' }, 'bench', 'clip', '--backend', 'cuda', '--json');
    expect(bench.status).toBe(1);
    expect(bench.stderr).toMatch(/cuda backend is unavailable/);
  });

  test('an unknown KFAC_BACKEND is an InvalidArgumentError', () => {
    const r = run({ KFAC_BACKEND: 'tpu' }, 'info');
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/KFAC_BACKEND: expected 'auto', 'cpu' or 'cuda', got "tpu"/);
  });

  test('KFAC_BACKEND=cpu never loads the CUDA binary for ops, and doctor exits 0', () => {
    const r = run({ ...broken, KFAC_BACKEND: 'cpu' }, 'doctor');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/\[ok  \] cpu binary/);
    expect(r.stdout).toMatch(/backend .*cpu \(KFAC_BACKEND\) → cpu/);
  });

  test('doctor fails (exit 1) when no CPU binary loads', () => {
    // A copy of the package with the compiled code and no native binary at all.
    const pkg = join(temp, 'bare');
    mkdirSync(pkg);
    cpSync(join(root, 'dist'), join(pkg, 'dist'), { recursive: true });
    cpSync(join(root, 'bin'), join(pkg, 'bin'), { recursive: true });
    cpSync(join(root, 'package.json'), join(pkg, 'package.json'));
    const r = spawnSync(process.execPath, [join(pkg, 'bin', 'kfac-peft.js'), 'doctor', '--json'], { encoding: 'utf8', env: { ...baseEnv, KFAC_PEFT_BINARY: bogus } });
    expect(r.status).toBe(1);
    const j = JSON.parse(r.stdout) as DoctorJson;
    expect(j.ok).toBe(false);
    expect(j.checks.find((c) => c.name === 'cpu binary')).toMatchObject({ level: 'fail' });
    expect(j.cuda.found).toBe(false);
  });

  test('setBackend after the first op accepts only the backend in use', () => {
    Tensor.zeros([1]).dispose(); // loads the addon: the choice is now fixed
    const inUse = info().backend;
    expect(() => setBackend(inUse.requested)).not.toThrow();
    expect(() => setBackend(inUse.requested === 'cpu' ? 'cuda' : 'cpu')).toThrow(InvalidArgumentError);
    expect(() => setBackend('gpu' as never)).toThrow(/backend: expected 'auto', 'cpu' or 'cuda', got "gpu"/);
  });

  test('tensors move to cuda exactly when the backend has the device; otherwise a DeviceError says why', () => {
    // In this process the backend is whatever 'auto' found (the CPU without a device).
    const t = Tensor.from([1, 2, 3], [3]);
    if (cuda.available()) {
      const d = t.to('cuda');
      expect(d.device).toBe('cuda');
      expect(() => d.toArray()).toThrow(DeviceError);
      expect(Array.from(d.to('cpu').toArray())).toEqual([1, 2, 3]);
      const m = cuda.memory();
      if (m) expect(m.allocated).toBeGreaterThan(0);
      // host waits: counted by the CUDA binary (the download above waited at least once), null otherwise
      const s = cuda.synchronizations();
      if (s !== null) expect(s).toBeGreaterThan(0);
    } else {
      expect([null, 0]).toContain(cuda.synchronizations()); // no CUDA binary, or one without a device
      expect(() => t.to('cuda')).toThrow(DeviceError);
      expect(() => Tensor.zeros([2], { device: 'cuda' })).toThrow(/device 'cuda' is not available in this build/);
    }
  });
});

const local = join(root, 'build-cuda', 'Release', 'kfac_peft_cuda.node');
const toolkit = findCuda() as { root: string | null; libDir: string | null; reason: string | null };
const canLoad = existsSync(local) && toolkit.libDir !== null;

describe("the CUDA probe's words for a machine the build cannot use (the build's own functions, checked on any machine)", () => {
  const reasons = (...a: Parameters<ReturnType<typeof native>['_cudaProbeReasons']>) => native()._cudaProbeReasons(...a);
  const BUILD = '80-real,90-real,90-virtual'; // CMakeLists.txt's default architectures
  test('a driver older than the runtime names both CUDA versions and what to do; no driver at all says so', () => {
    expect(reasons(12040, 13000, 9, 0, BUILD, 'x').driver).toBe(
      'the NVIDIA driver is too old for this build: it supports CUDA 12.4, the build uses CUDA 13.0 (update the driver to one for CUDA 13.0 or newer)',
    );
    expect(reasons(0, 13000, 9, 0, BUILD, 'x').driver).toBe('no CUDA driver is installed (this build needs one for CUDA 13.0)');
  });
  test('machine code runs on its major at an equal or higher minor, PTX on any capability at or above it', () => {
    for (const [major, minor] of [[8, 0], [8, 6], [8, 9], [9, 0], [10, 0], [12, 0]]) expect(reasons(13000, 13000, major!, minor!, BUILD, 'gpu').arch, `${major}.${minor}`).toBe('');
    expect(reasons(13000, 13000, 7, 5, BUILD, 'Tesla T4').arch).toBe(
      'GPU 0 (Tesla T4) has compute capability 7.5, which this build cannot run: it carries sm_80, sm_90, compute_90 (build it for this GPU with CMAKE_CUDA_ARCHITECTURES)',
    );
    // machine code alone does not cross majors: an sm_80-only build cannot run a 9.0 GPU, nor sm_90 a 10.0
    expect(reasons(13000, 13000, 9, 0, '80-real', 'H100').arch).toMatch(/^GPU 0 \(H100\) has compute capability 9\.0, which this build cannot run: it carries sm_80 /);
    expect(reasons(13000, 13000, 10, 0, '90-real', 'B200').arch).toMatch(/compute capability 10\.0/);
    expect(reasons(13000, 13000, 8, 6, '86-real', 'A10').arch).toBe('');
    expect(reasons(13000, 13000, 8, 0, '86-real', 'A100').arch).toMatch(/compute capability 8\.0/); // sm_86 code does not run on 8.0
    // an architecture-specific target runs on its own capability only
    expect(reasons(13000, 13000, 9, 0, '90a-real', 'H100').arch).toBe('');
    expect(reasons(13000, 13000, 10, 0, '90a-real,90a-virtual', 'B200').arch).toMatch(/it carries sm_90a, compute_90a /);
    // a build that names no architecture leaves it to the first kernel launch
    expect(reasons(13000, 13000, 7, 0, '', 'V100').arch).toBe('');
  });
});

describe(`the local CUDA build${canLoad ? '' : ` (skipped: ${existsSync(local) ? toolkit.reason : 'no build-cuda/Release/kfac_peft_cuda.node; run npm run build:cuda'})`}`, () => {
  test.skipIf(!canLoad)('loads and reports its device state (here: no device), cuBLAS/cuSOLVER versions', () => {
    const env = { KFAC_PEFT_CUDA_BINARY: local, LD_LIBRARY_PATH: `${toolkit.libDir}:${process.env['LD_LIBRARY_PATH'] ?? ''}` };
    const r = run(env, 'info', '--json');
    expect(r.status).toBe(0);
    const j = JSON.parse(r.stdout) as InfoJson;
    expect(j.cuda.found).toBe(true);
    expect(j.cuda.loaded).toBe(true);
    expect(j.cuda.info?.cublasVersion).toMatch(/^\d+\.\d+\.\d+$/);
    if (j.cuda.usable) {
      expect(j.backend.selected).toBe('cuda');
      expect(j.backends).toContain('cuda');
    } else {
      expect(j.cuda.info?.deviceCount).toBe(0);
      expect(j.cuda.reason).toMatch(/^no CUDA device: /);
      expect(j.backend.selected).toBe('cpu');
      const forced = run({ ...env, KFAC_BACKEND: 'cuda' }, 'info');
      expect(forced.status).toBe(1);
      expect(forced.stderr).toMatch(/cuda backend is unavailable \(KFAC_BACKEND=cuda\): no CUDA device: /);
    }
    const d = run(env, 'doctor', '--json');
    expect(d.status).toBe(0);
    const dj = JSON.parse(d.stdout) as DoctorJson;
    expect(dj.checks.map((c) => c.name)).toEqual(expect.arrayContaining(['cpu binary', 'cpu isa', 'cuda binary found', 'cuda binary loads', 'cublas / cusolver', 'cuda device', 'backend']));
  });
});
