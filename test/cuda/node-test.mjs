// The CUDA parity checks under node's own test runner, for GPU machines without vitest:
//   node --test test/cuda/node-test.mjs
// Each check skips (with the reason) when no CUDA device answers; KFAC_REQUIRE_GPU=1 turns
// that into a failure, so a GPU run cannot pass by skipping.
import assert from 'node:assert/strict';
import test from 'node:test';

import { checks, gpuStatus } from './parity.mjs';

const gpu = gpuStatus();
if (process.env.KFAC_REQUIRE_GPU === '1') test('a CUDA device answers', () => assert.ok(gpu.ok, gpu.reason));
for (const c of checks) test(c.name, { skip: gpu.ok ? false : gpu.reason }, () => c.run());
