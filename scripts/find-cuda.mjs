// Finds a CUDA toolkit that can build kfac_peft_cuda.node: nvcc plus the cuBLAS and cuSOLVER
// headers and libraries. Looks at CUDAToolkit_ROOT, CUDA_HOME, CUDA_PATH, the nvcc on PATH,
// /usr/local/cuda and /usr/local/cuda-*. As a module: findCuda() → { root, libDir, extraRoot }
// or { root: null, reason }. As a script: prints the root (exit 0) or the reason (exit 1).
//
// CUDA_EXTRA_ROOT names a second folder with include/ and lib/ that supplies cuBLAS and
// cuSOLVER when the toolkit itself has none (e.g. the nvidia/cu13 folder of the
// nvidia-cublas and nvidia-cusolver Python wheels installed in a virtual environment
// outside the repository). Its libraries may be versioned only (libcublas.so.13).
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

const hasLib = (dir, name) => {
  try {
    return readdirSync(dir).some((f) => f === `lib${name}.so` || f.startsWith(`lib${name}.so.`));
  } catch {
    return false;
  }
};

/** The CUDA_EXTRA_ROOT folder when it holds the cuBLAS/cuSOLVER headers and libraries. */
export function extraRoot() {
  const r = process.env.CUDA_EXTRA_ROOT;
  if (!r) return null;
  const ok = existsSync(join(r, 'include', 'cublas_v2.h')) && existsSync(join(r, 'include', 'cusolverDn.h')) && hasLib(join(r, 'lib'), 'cublas') && hasLib(join(r, 'lib'), 'cusolver');
  return ok ? r : null;
}

export function findCuda() {
  const reasons = [];
  const extra = extraRoot();
  if (process.env.CUDA_EXTRA_ROOT && !extra) reasons.push(`CUDA_EXTRA_ROOT=${process.env.CUDA_EXTRA_ROOT}: no include/cublas_v2.h, include/cusolverDn.h, lib/libcublas.so* and lib/libcusolver.so*`);
  for (const root of candidates()) {
    if (!existsSync(join(root, 'bin', 'nvcc'))) {
      reasons.push(`${root}: no bin/nvcc`);
      continue;
    }
    if (extra) return { root, libDir: join(extra, 'lib'), extraRoot: extra, reason: null };
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
    return { root, libDir, extraRoot: null, reason: null };
  }
  return { root: null, libDir: null, extraRoot: null, reason: `no CUDA toolkit with cuBLAS and cuSOLVER headers (${reasons.join('; ') || 'nothing found'})` };
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
