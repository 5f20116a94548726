// cuBLASLt against the cublasGemmEx path (KFAC_CUBLASLT=0), on a GPU only: the bf16 GEMMs of
// matmul, of linear forward/backward (bf16 activations, bf16 weight) and of the K-FAC factor
// update from a bf16 x (against syrk on the widened copy) run with Lt on and off
// on the same inputs. Both take the same bf16 operands and accumulate in float32, in different
// orders: float32 results agree to K·2^-24 of Σ|a||b| (bounded here by 4·K·2^-24 of the
// row's |A|·|B|); bf16 results may land on either side of a rounding boundary, so one bf16
// spacing (2^-7 of the value) plus that float32 slack. Without a GPU (or in a build without the
// hook) the case passes after saying it did not run.
import assert from 'node:assert/strict';

import { kfac, linalg, nn, Tensor } from '../../dist/index.js';
import { native } from '../../dist/native/loader.js';

const F = nn.functional;

function close(got, want, scale, rel, what) {
  let worst = 0;
  for (let i = 0; i < want.length; i++) {
    const e = Math.abs(got[i] - want[i]) / (rel * Math.abs(want[i]) + scale[i] + 1e-30);
    if (!(e <= 1)) assert.fail(`${what}: element ${i} Lt ${got[i]} vs GemmEx ${want[i]} (${e.toFixed(2)}× the bound)`);
    worst = Math.max(worst, e);
  }
  return worst;
}

function absProduct(a, b, M, N, K, tB) {
  const s = new Float64Array(M * N);
  for (let i = 0; i < M; i++)
    for (let j = 0; j < N; j++) {
      let t = 0;
      for (let k = 0; k < K; k++) t += Math.abs(a[i * K + k] * (tB ? b[j * K + k] : b[k * N + j]));
      s[i * N + j] = t;
    }
  return s;
}

export const ltCases = [
  {
    name: 'cuBLASLt bf16 GEMMs match the cublasGemmEx / syrk path (matmul, linear forward and backward, factor update)',
    run() {
      const lt = native().cuda?.cublasLt;
      if (!lt) {
        console.log('cuBLASLt parity: not run (no CUDA build with the cuBLASLt switch in this process)');
        return;
      }
      const before = lt();
      try {
        for (const [M, N, K] of [[1, 1, 1], [7, 33, 5], [67, 129, 257], [512, 256, 1024]]) {
          const a = Tensor.randn([M, K], { seed: M + K }), b = Tensor.randn([N, K], { seed: N + 3 });
          const dyt = Tensor.randn([M, N], { seed: 99 });
          const [ah, bh, dyh] = [a, b, dyt].map((t) => t.to('cpu', { dtype: 'bfloat16' }).toArray());
          const ad = a.to('cuda', { dtype: 'bfloat16' }), bd = b.to('cuda', { dtype: 'bfloat16' });
          const run = (on) => {
            lt(on);
            const c = linalg.matmul(ad, bd, { transB: true }).to('cpu').toArray();
            const y = Tensor.zeros([M, N], { device: 'cuda', dtype: 'bfloat16' });
            F.linearForward(ad, bd, null, y);
            const dy = dyt.to('cuda', { dtype: 'bfloat16' });
            const dx = Tensor.zeros([M, K], { device: 'cuda', dtype: 'bfloat16' });
            F.linearBackward(ad, bd, dy, { dx, dW: null, db: null });
            return { c, y: y.to('cpu', { dtype: 'float32' }).toArray(), dx: dx.to('cpu', { dtype: 'float32' }).toArray() };
          };
          const factor = (lt_) => {
            lt(lt_);
            const Fd = Tensor.zeros([K + 1, K + 1], { device: 'cuda' });
            kfac.updateFactor(Fd, ad, { beta: 0, bias: true });
            return Fd.to('cpu').toArray();
          };
          // xᵀx / M from bf16 x: cuBLASLt (bf16 in, float32 sums) against syrk on the widened copy
          const fOn = factor(true), fOff = factor(false);
          const fs = new Float64Array(fOn.length);
          for (let i = 0; i <= K; i++)
            for (let j = 0; j <= K; j++) {
              let t = 0;
              for (let r = 0; r < M; r++) t += Math.abs((i < K ? ah[r * K + i] : 1) * (j < K ? ah[r * K + j] : 1));
              fs[i * (K + 1) + j] = (4 * M * 2 ** -24 * t) / M;
            }
          close(fOn, fOff, fs, 0, `factor update [${M}, ${K}]`);
          const on = run(true), off = run(false);
          const s = absProduct(ah, bh, M, N, K, true).map((v) => 4 * K * 2 ** -24 * v);
          close(on.c, off.c, s, 0, `matmul [${M}, ${N}, ${K}]`);
          close(on.y, off.y, s, 2 ** -7, `linear y [${M}, ${N}, ${K}]`);
          assert.ok(on.dx.every(Number.isFinite), 'dx finite');
          close(on.dx, off.dx, absProduct(dyh, bh, M, K, N, false).map((v) => 4 * N * 2 ** -24 * v), 2 ** -7, `linear dx [${M}, ${N}, ${K}]`);
        }
      } finally {
        lt(before);
      }
    },
  },
];
