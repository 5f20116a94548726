// The parity suite under node's own test runner, for GPU machines without vitest:
//   node --test test/cuda/node-test.mjs
// Every case runs on the CPU and on cuda; without a GPU, cuda is the CPU loopback.
// KFAC_REQUIRE_GPU=1 makes a missing GPU a failure, so a GPU run cannot pass on the loopback.
import assert from 'node:assert/strict';
import test from 'node:test';

import { cases, checkCoverage, deviceCases, enableLoopback, gpuStatus } from './parity.mjs';

const gpu = gpuStatus();
if (process.env.KFAC_REQUIRE_GPU === '1') test('a CUDA device answers', () => assert.ok(gpu.ok, gpu.reason));
if (!gpu.ok) enableLoopback();
const second = gpu.ok ? 'cuda' : 'cuda (CPU loopback)';

test('every op has a parity case or is listed as CPU-only', () => checkCoverage());
for (const c of cases) {
  test(`cpu: ${c.name}`, () => c.run('cpu'));
  test(`${second}: ${c.name}`, () => c.run('cuda'));
}
for (const c of deviceCases) test(`${second}: ${c.name}`, () => c.run());
