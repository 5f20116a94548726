/**
 * No kernel reads or writes past a tensor: with KFAC_HOST_GUARD_PAGES=1 every host block is
 * mapped so that its last byte sits just before an inaccessible page (native/core/
 * host_allocator.cpp), and a child process runs the float32 and bfloat16 GEMMs, the Linear ops
 * and the fused ops on odd sizes (test/support/guard-child.mjs). An over-read is a SIGSEGV, an
 * unwritten or wrong element a reference mismatch; either fails here. The child loads the built
 * library (dist/): `npm test` builds it first.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../..', import.meta.url));
const built = existsSync(`${root}/dist/index.js`);

describe('guard pages', () => {
  it.skipIf(process.platform !== 'linux' || !built)('GEMM, Linear and fused kernels stay inside their tensors on odd sizes', () => {
    const r = spawnSync(process.execPath, [`${root}/test/support/guard-child.mjs`, root], {
      encoding: 'utf8',
      timeout: 120_000,
      env: { ...process.env, KFAC_HOST_GUARD_PAGES: '1', KFAC_NUM_THREADS: '2' },
    });
    expect(r.signal, `the child was killed (a read or write past a tensor?): ${r.stderr}`).toBeNull();
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { checked: number; worst: number };
    expect(out.checked).toBeGreaterThan(60);
  });
});
