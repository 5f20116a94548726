// Finds a CUDA toolkit that can build kfac_peft_cuda.node: nvcc plus the cuBLAS and cuSOLVER
// headers and libraries. Looks at CUDAToolkit_ROOT, CUDA_HOME, CUDA_PATH, the nvcc on PATH,
// /usr/local/cuda and /usr/local/cuda-*. As a module: findCuda() → { root, libDir } or
// { root: null, reason }. As a script: prints the root (exit 0) or the reason (exit 1).
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, realpathSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

function candidates() {
  const out = [];
  for (const v of ['CUDAToolkit_ROOT', 'CUDA_HOME', 'CUDA_PATH']) if (process.env[v]) out.push(process.env[v]);
  const which = spawnSync('sh', ['-c', 'command -v nvcc'], { encoding: 'utf8' });
  if (which.status === 0 && which.stdout.trim()) {
    const nvcc = which.stdout.trim();
    out.push(dirname(dirname(nvcc)));
    try {
      out.push(dirname(dirname(realpathSync(nvcc))));
    } catch {
      // a dangling link: ignore
    }
  }
  out.push('/usr/local/cuda');
  try {
    for (const d of readdirSync('/usr/local').sort().reverse()) if (d.startsWith('cuda-')) out.push(join('/usr/local', d));
  } catch {
    // no /usr/local
  }
  return [...new Set(out)];
}

const INCLUDE_DIRS = ['include', 'targets/x86_64-linux/include', 'targets/sbsa-linux/include'];
const LIB_DIRS = ['lib64', 'lib', 'targets/x86_64-linux/lib', 'targets/sbsa-linux/lib'];

export function findCuda() {
  const reasons = [];
  for (const root of candidates()) {
    if (!existsSync(join(root, 'bin', 'nvcc'))) {
      reasons.push(`${root}: no bin/nvcc`);
      continue;
    }
    const inc = INCLUDE_DIRS.map((d) => join(root, d)).find((d) => existsSync(join(d, 'cublas_v2.h')) && existsSync(join(d, 'cusolverDn.h')));
    if (!inc) {
      reasons.push(`${root}: nvcc but no cublas_v2.h/cusolverDn.h`);
      continue;
    }
    const libDir = LIB_DIRS.map((d) => join(root, d)).find((d) => existsSync(join(d, 'libcublas.so')) && existsSync(join(d, 'libcusolver.so')));
    if (!libDir) {
      reasons.push(`${root}: headers but no libcublas.so/libcusolver.so`);
      continue;
    }
    return { root, libDir, reason: null };
  }
  return { root: null, libDir: null, reason: `no CUDA toolkit with cuBLAS and cuSOLVER headers (${reasons.join('; ') || 'nothing found'})` };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === realpathSync(process.argv[1])) {
  const r = findCuda();
  if (r.root) {
    process.stdout.write(`${r.root}\n`);
  } else {
    process.stderr.write(`${r.reason}\n`);
    process.exit(1);
  }
}
