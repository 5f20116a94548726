/**
 * `bench refresh`: the warm eigenbasis refresh against the cold solve of the same EMA factor,
 * on the CPU and, through the same code, on the cuda device (`bench refresh --backend cuda`, which
 * the GPU check runs at the 3B LoRA factor sizes; here the CPU loopback stands in for the GPU).
 * Each row times both on one factor and says whether the refresh fell back to a cold solve.
 */
import { describe, expect, test } from 'vitest';

import { cudaBenchCases } from '../../lib/bench/cuda.js';
import { runRefresh } from '../../lib/bench/eigh.js';
import type { BenchRow } from '../../lib/bench/types.js';
import { enableLoopback, gpuStatus } from '../cuda/parity.mjs';

const opts = { sizes: [24, 40], threads: [1], repeats: 1, peer: false, peerKeepEnv: false, progress: () => {} };

function checkRows(rows: BenchRow[], peer: RegExp): void {
  expect(rows.map((r) => r.shape)).toEqual(['24x24 EMA β=0.95', '40x40 EMA β=0.95']);
  for (const r of rows) {
    expect(r.case).toBe('refresh');
    expect(r.ratio).toBeCloseTo(r.peerMs! / r.ms, 12);
    expect(r.peer).toMatch(peer);
    // the refresh it timed decomposed the factor: ‖FQ − QΛ‖/‖F‖ of its basis is float32 round-off
    const m = /^fellBack=(true|false) offDiagonal=(\S+) residual=(\S+)$/.exec(r.note!);
    expect(m, r.note).not.toBeNull();
    expect(Number(m![3])).toBeLessThan(1e-4);
  }
}

describe('bench refresh', () => {
  test('on the CPU: warm refresh and cold solve of one factor per size and thread count', async () => {
    checkRows(await runRefresh(opts), /^our cold eigh$/);
  });

  test.skipIf(gpuStatus().ok)('--backend cuda runs the same rows where the tensors live (the CPU loopback here)', async () => {
    enableLoopback();
    const c = await cudaBenchCases['refresh']!();
    checkRows(await c.run(opts), /cuSOLVER syevd/);
  });
});
