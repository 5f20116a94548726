/**
 * The packed GEMM panels of a bfloat16 (frozen) Linear weight are cached with the weight: the
 * second call reuses them, a write into the weight makes them stale, disposing the weight or
 * releaseCachedMemory() drops them. Results are checked against a float64 reference each time,
 * so a stale panel (old weight values) fails the test.
 */
import { afterAll, describe, expect, it } from 'vitest';

import { bf16Kernels, info, nn, ops, releaseCachedMemory, setBf16Kernel, Tensor } from '../../lib/index.js';
import { randomF32 } from '../support/helpers.js';

const F = nn.functional;

/** y = x·Wᵀ with x rounded to bf16 as the kernel does, W already bf16 (W given widened). */
function refForward(x: Float32Array, W: Float32Array, N: number, IN: number, OUT: number): { y: Float64Array; mag: Float64Array } {
  const xb = ops.cast(Tensor.from(x, [N, IN]), 'bfloat16');
  const xr = xb.toArray();
  xb.dispose();
  const y = new Float64Array(N * OUT);
  const mag = new Float64Array(N * OUT);
  for (let n = 0; n < N; n++)
    for (let o = 0; o < OUT; o++) {
      let s = 0;
      let m = 0;
      for (let i = 0; i < IN; i++) {
        s += xr[n * IN + i]! * W[o * IN + i]!;
        m += Math.abs(xr[n * IN + i]! * W[o * IN + i]!);
      }
      y[n * OUT + o] = s;
      mag[n * OUT + o] = m;
    }
  return { y, mag };
}

function expectForward(x: Tensor, W: Tensor, N: number, IN: number, OUT: number): void {
  using y = Tensor.empty([N, OUT]);
  y.set(new Float32Array(N * OUT).fill(NaN)); // poisoned: an unwritten element shows
  F.linearForward(x, W, null, y);
  const { y: want, mag } = refForward(x.toArray(), W.toArray(), N, IN, OUT);
  const got = y.toArray();
  for (let i = 0; i < got.length; i++) expect(Math.abs(got[i]! - want[i]!)).toBeLessThanOrEqual(2 * IN * 2 ** -24 * mag[i]! + 1e-30);
}

const panels = (): { entries: number; hits: number; misses: number; bytes: number } => info().memory.weightPanels;

describe.each(['avx512bf16', 'amx'] as const)('bf16 weight panels, kernel %s', (kernel) => {
  const supported = bf16Kernels().supported[kernel] === true;
  if (!supported) console.log(`bf16 kernel ${kernel}: skipped, this CPU/OS/build cannot run it`);
  afterAll(() => setBf16Kernel('auto'));

  it.skipIf(!supported || !info().memory.weightPanels.enabled)('are packed once, follow writes into the weight, and go with it', () => {
    setBf16Kernel(kernel);
    releaseCachedMemory();
    const N = 9, IN = 37, OUT = 21;
    using x = Tensor.from(randomF32(N * IN, 1), [N, IN]);
    using W = ops.cast(Tensor.from(randomF32(OUT * IN, 2), [OUT, IN]), 'bfloat16');
    const p0 = panels();
    expectForward(x, W, N, IN, OUT);
    const p1 = panels();
    expect(p1.misses - p0.misses).toBe(1);
    expect(p1.entries - p0.entries).toBe(1);
    expectForward(x, W, N, IN, OUT);
    const p2 = panels();
    expect(p2.hits - p1.hits).toBe(1); // the second call reused the packed panels
    expect(p2.misses).toBe(p1.misses);

    W.set(randomF32(OUT * IN, 3)); // new weight values: the cached panels are stale
    expectForward(x, W, N, IN, OUT);
    expect(panels().entries).toBe(p2.entries); // replaced, not added

    // The input gradient packs W in the other layout: a second entry, also checked.
    using dy = Tensor.from(randomF32(N * OUT, 4), [N, OUT]);
    using dx = Tensor.empty([N, IN]);
    F.linearBackward(x, W, dy, { dx, dW: null, db: null });
    expect(panels().entries).toBe(p2.entries + 1);
    const dyr = ops.cast(dy, 'bfloat16');
    const D = dyr.toArray();
    dyr.dispose();
    const Wr = W.toArray();
    const got = dx.toArray();
    for (let n = 0; n < N; n++)
      for (let i = 0; i < IN; i++) {
        let s = 0;
        let m = 0;
        for (let o = 0; o < OUT; o++) {
          s += D[n * OUT + o]! * Wr[o * IN + i]!;
          m += Math.abs(D[n * OUT + o]! * Wr[o * IN + i]!);
        }
        expect(Math.abs(got[n * IN + i]! - s)).toBeLessThanOrEqual(2 * OUT * 2 ** -24 * m + 1e-30);
      }

    const before = panels();
    W.dispose(); // the panels go with the weight
    expect(panels().entries).toBe(before.entries - 2);
    expect(panels().bytes).toBeLessThan(before.bytes);
  });

  it.skipIf(!supported || !info().memory.weightPanels.enabled)('releaseCachedMemory() drops them; the next call packs again', () => {
    setBf16Kernel(kernel);
    const N = 3, IN = 65, OUT = 33;
    using x = Tensor.from(randomF32(N * IN, 5), [N, IN]);
    using W = ops.cast(Tensor.from(randomF32(OUT * IN, 6), [OUT, IN]), 'bfloat16');
    expectForward(x, W, N, IN, OUT);
    expect(panels().entries).toBeGreaterThan(0);
    releaseCachedMemory();
    expect(panels().entries).toBe(0);
    expect(panels().bytes).toBe(0);
    const m = panels().misses;
    expectForward(x, W, N, IN, OUT);
    expect(panels().misses).toBe(m + 1);
  });
});

describe('KFAC_BF16_KERNEL', () => {
  it('an unsupported or unknown request is a warning in info(), never silent', async () => {
    const { spawnSync } = await import('node:child_process');
    const { nativePath, native } = await import('../../lib/native/loader.js');
    native();
    const script = `const a = require(process.argv[1]); const c = a.info().cpu; process.stdout.write(JSON.stringify({ k: c.bf16Kernel, r: c.bf16KernelRequest, w: c.bf16KernelWarning ?? null }));`;
    const run = (value: string): { k: string; r: string; w: string | null } => {
      const r = spawnSync(process.execPath, ['-e', script, nativePath()!], { encoding: 'utf8', timeout: 30_000, env: { ...process.env, KFAC_BF16_KERNEL: value } });
      expect(r.status, r.stderr).toBe(0);
      return JSON.parse(r.stdout) as { k: string; r: string; w: string | null };
    };
    const typo = run('avx512-bf16');
    expect(typo.r).toBe('avx512-bf16');
    expect(typo.w).toMatch(/KFAC_BF16_KERNEL=avx512-bf16 is not one of auto, amx, avx512bf16, portable; running/);
    const portable = run('portable');
    expect(portable).toEqual({ k: 'portable', r: 'portable', w: null });
    for (const k of ['amx', 'avx512bf16'] as const) {
      const got = run(k);
      if (bf16Kernels().supported[k]) expect(got).toEqual({ k, r: k, w: null });
      else {
        expect(got.k).not.toBe(k);
        expect(got.w).toMatch(new RegExp(`KFAC_BF16_KERNEL=${k} is not supported by this CPU, OS or build; running ${got.k} instead`));
      }
    }
  });
});
