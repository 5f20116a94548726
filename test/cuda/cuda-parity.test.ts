/**
 * Backend parity (test/cuda/parity.mjs, shared with `node --test test/cuda/node-test.mjs`):
 * every case runs on the CPU and on the second device — the GPU where one answers, otherwise
 * the CPU loopback (the CPU kernels registered under the cuda id), so that dispatch,
 * transfers, typed errors, references and tolerances are exercised on every machine.
 */
import { describe, test } from 'vitest';

import { cases, checkCoverage, deviceCases, enableLoopback, gpuStatus } from './parity.mjs';

const gpu = gpuStatus();
if (!gpu.ok) enableLoopback();
const second = gpu.ok ? 'cuda (GPU)' : `cuda (CPU loopback: ${gpu.reason})`;

describe('the op list', () => {
  test('every op has a parity case or is listed as CPU-only', () => checkCoverage());
});

for (const [label, dev] of [['cpu', 'cpu'], [second, 'cuda']] as const)
  describe(`parity on ${label}`, () => {
    for (const c of cases) test(c.name, () => c.run(dev));
  });

describe(`device errors on ${second}`, () => {
  for (const c of deviceCases) test(c.name, () => c.run());
});
