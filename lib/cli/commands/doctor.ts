/**
 * `kfac-peft doctor [--json]`: checks the installation and prints what it found — the CPU
 * binary (loads? its ISA, threads, version), the CUDA binary (found? loads? version),
 * the driver and device, cuBLAS/cuSOLVER versions, and the backend 'auto' picks. Exits 1
 * only when the CPU path itself is broken (CUDA is optional).
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';

import type { NativeAddon, NativeInfo } from '../../native/addon.js';
import { cudaPackageName, cudaStatus, requestedBackend } from '../../native/loader.js';
import { candidatePaths, packageRoot } from '../../native/loader.js';
import { VERSION } from '../../version.js';
import { parseArgs, UsageError } from '../args.js';

type Level = 'ok' | 'warn' | 'fail';
interface Check {
  name: string;
  level: Level;
  detail: string;
}

function cpuAddon(): { path: string; info: NativeInfo } | { error: string } {
  const require = createRequire(import.meta.url);
  const errors: string[] = [];
  for (const p of candidatePaths(packageRoot())) {
    if (!existsSync(p)) continue;
    try {
      const a = require(p) as NativeAddon;
      return { path: p, info: a.info() };
    } catch (e) {
      errors.push(`${p}: ${e instanceof Error ? e.message.split('\n')[0] : String(e)}`);
    }
  }
  return { error: errors.length ? errors.join('; ') : `no CPU binary found (tried ${candidatePaths(packageRoot()).join(', ')})` };
}

export const DOCTOR_USAGE = `usage: kfac-peft doctor [--json]

Checks the installation: the CPU binary (loads? its ISA, threads, version), the CUDA binary
(found? loads?), the driver and device, cuBLAS/cuSOLVER, and the backend 'auto' picks. Exits 1
only when the CPU path itself is broken (CUDA is optional).

options:
  --json    the checks as JSON
`;

export async function doctorCommand(argv: readonly string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(DOCTOR_USAGE);
    return 0;
  }
  const { positional, flags } = parseArgs(argv, { json: 'boolean' });
  if (positional.length) throw new UsageError(`doctor takes no arguments, got ${positional.join(' ')}`);
  const checks: Check[] = [];
  const add = (name: string, level: Level, detail: string) => checks.push({ name, level, detail });

  const cpu = cpuAddon();
  if ('error' in cpu) {
    add('cpu binary', 'fail', cpu.error);
  } else {
    add('cpu binary', 'ok', cpu.path);
    add('cpu version', cpu.info.version === VERSION ? 'ok' : 'fail', `binary ${cpu.info.version}, package ${VERSION}`);
    const c = cpu.info.cpu;
    add('cpu isa', 'ok', `${c.brand.trim() || 'unknown cpu'}: kernels ${c.kernel} (avx2 ${c.avx2}, fma ${c.fma}, avx512f ${c.avx512f})`);
    add('cpu bf16', c.bf16Kernel === 'portable' || c.bf16KernelWarning ? 'warn' : 'ok', `bf16 GEMM kernel ${c.bf16Kernel} (avx512bf16 ${c.avx512bf16}, amx-bf16 ${c.amxBf16})${c.bf16Kernel === 'portable' ? ': no bf16 instructions, bfloat16 weights run through the float32 fallback' : ''}${c.bf16KernelWarning ? `; ${c.bf16KernelWarning}` : ''}`);
    add('cpu threads', 'ok', `${c.threads} (default ${c.defaultThreads}; KFAC_NUM_THREADS overrides)`);
  }

  const s = cudaStatus();
  for (const a of s.attempts.filter((x) => x.error !== 'not found' && x.error !== 'package not installed')) add('cuda candidate', 'warn', `${a.path}: ${a.error}`);
  add('cuda binary found', s.found ? 'ok' : 'warn', s.found ? (s.binary ?? s.attempts.find((a) => a.error !== 'not found' && a.error !== 'package not installed')?.path ?? '') : `no (install ${cudaPackageName()}@${VERSION}, or npm run build:cuda)`);
  if (s.found) add('cuda binary loads', s.loaded ? 'ok' : 'warn', s.loaded ? 'yes' : (s.reason ?? 'no'));
  if (s.info) {
    const i = s.info;
    add('cuda runtime', 'ok', `${i.runtimeVersion} (driver ${i.driverVersion ?? 'none'}), architectures ${i.architectures}`);
    add('cublas / cusolver', 'ok', `cuBLAS ${i.cublasVersion}, cuSOLVER ${i.cusolverVersion}`);
    add('cuda device', i.deviceCount > 0 ? 'ok' : 'warn', i.deviceCount > 0 ? i.devices.map((d) => `${d.name} (sm_${d.computeCapability.replace('.', '')}, ${(d.memoryBytes / 2 ** 30).toFixed(0)} GiB)`).join(', ') : `no device: ${i.reason ?? 'unknown'}`);
  }
  const req = requestedBackend();
  const picks = req.backend === 'cpu' ? 'cpu' : s.usable ? 'cuda' : req.backend === 'cuda' ? 'none (cuda asked for but unavailable)' : 'cpu';
  add('backend', req.backend === 'cuda' && !s.usable ? 'warn' : 'ok', `${req.backend} (${req.source === 'env' ? 'KFAC_BACKEND' : req.source}) → ${picks}${s.usable || req.backend === 'cpu' ? '' : `: ${s.reason}`}`);

  const ok = !checks.some((c) => c.level === 'fail');
  if (flags['json']) {
    process.stdout.write(
      JSON.stringify(
        {
          ok,
          version: VERSION,
          node: process.version,
          platform: `${process.platform}-${process.arch}`,
          checks,
          cpu: 'error' in cpu ? { error: cpu.error } : { binary: cpu.path, ...cpu.info },
          cuda: { found: s.found, loaded: s.loaded, binary: s.binary, usable: s.usable, reason: s.reason, info: s.info, attempts: s.attempts },
          backend: { requested: req.backend, source: req.source, picks },
        },
        null,
        2,
      ) + '\n',
    );
  } else {
    const mark = { ok: 'ok  ', warn: 'warn', fail: 'FAIL' } as const;
    const w = Math.max(...checks.map((c) => c.name.length));
    process.stdout.write(`kfac-peft ${VERSION} doctor (node ${process.version}, ${process.platform}-${process.arch})\n`);
    for (const c of checks) process.stdout.write(`[${mark[c.level]}] ${c.name.padEnd(w)}  ${c.detail}\n`);
    process.stdout.write(ok ? 'the CPU path works' + (s.usable ? ' and CUDA is usable\n' : '; CUDA is not usable (optional)\n') : 'the CPU path is broken: see FAIL above\n');
  }
  return ok ? 0 : 1;
}
