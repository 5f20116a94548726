/**
 * CPU-vs-CUDA parity of every CUDA op (the checks live in test/cuda/parity.mjs, shared with
 * `node --test test/cuda/node-test.mjs`). They skip, saying why, without a CUDA device.
 */
import { describe, expect, test } from 'vitest';

import { loopbackApi } from './cuda/loopback.mjs';
import { checks, gpuStatus, useApi } from './cuda/parity.mjs';

const gpu = gpuStatus();

describe(`cuda parity${gpu.ok ? '' : ` (skipped: ${gpu.reason})`}`, () => {
  test('the check list covers every CUDA op family', () => {
    const names = checks.map((c) => c.name).join('\n');
    for (const op of ['gemm float32', 'TF32', 'bf16', 'factor update', 'eigh (syevd)', 'eighBatched', 'eighRefresh', 'preconditionEigen', 'preconditionInverseFactors', 'clipping', 'AdamW', 'SGD', 'mixed devices'])
      expect(names).toContain(op);
  });
  for (const c of checks) test.skipIf(!gpu.ok)(c.name, () => c.run());
});

// The checks themselves, run through a CPU stand-in for the cuda namespace: their float64
// references, tolerances and option choices must hold for the CPU kernels, so that a failure on
// a GPU machine points at the CUDA code, not at the test.
describe('the parity checks, through the CPU loopback', () => {
  for (const c of checks)
    test(c.name, () => {
      useApi(loopbackApi, true);
      try {
        c.run();
      } finally {
        useApi(undefined, false);
      }
    });
});
