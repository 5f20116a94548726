// Builds the CUDA addon (build-cuda/Release/kfac_peft_cuda.node) with cmake-js against the
// toolkit scripts/find-cuda.mjs finds. `--if-available` (CI): when no toolkit with cuBLAS and
// cuSOLVER headers exists, say so clearly and exit 0 instead of failing.
// `-j N` sets the parallel compile jobs (default 1). CUDA_EXTRA_ROOT (see find-cuda.mjs)
// supplies cuBLAS/cuSOLVER headers and libraries from outside the toolkit.
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { findCuda } from './find-cuda.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const ifAvailable = args.includes('--if-available');
const j = args.includes('-j') ? args[args.indexOf('-j') + 1] : '1';

const cuda = findCuda();
if (!cuda.root) {
  const msg = `kfac-peft: CUDA build skipped: ${cuda.reason}`;
  if (ifAvailable) {
    console.log(msg);
    process.exit(0);
  }
  console.error(msg + '\n  Set CUDA_HOME to a toolkit that has cuBLAS and cuSOLVER (headers and libraries).');
  process.exit(1);
}
console.log(`kfac-peft: building the CUDA addon with the toolkit at ${cuda.root}${cuda.extraRoot ? ` and cuBLAS/cuSOLVER from ${cuda.extraRoot}` : ''}`);
const cmakeJs = join(root, 'node_modules', 'cmake-js', 'bin', 'cmake-js');
const t0 = Date.now();
const defs = ['--CDCUDAToolkit_ROOT=' + cuda.root];
if (cuda.extraRoot) defs.push('--CDCUDA_EXTRA_ROOT=' + cuda.extraRoot);
const r = spawnSync(process.execPath, [cmakeJs, 'build', '-O', 'build-cuda', '-p', j, ...defs], {
  cwd: root,
  stdio: 'inherit',
  env: { ...process.env, CUDA_HOME: cuda.root },
});
if (r.status !== 0) {
  console.error('kfac-peft: the CUDA build failed (see above)');
  process.exit(r.status ?? 1);
}
console.log(`kfac-peft: built build-cuda/Release/kfac_peft_cuda.node in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
