// cuBLASLt against the cublasGemmEx path (KFAC_CUBLASLT=0), on a GPU only: the bf16 GEMMs of
// matmul, of linear forward/backward (bf16 activations, bf16 weight) and of the K-FAC factor
// update from a bf16 x (against syrk on the widened copy) run with Lt on and off
// on the same inputs. Both take the same bf16 operands and accumulate in float32, in different
// orders: float32 results agree to K·2^-24 of Σ|a||b| (bounded here by 4·K·2^-24 of the
// row's |A|·|B|); bf16 results may land on either side of a rounding boundary, so one bf16
// spacing (2^-7 of the value) plus that float32 slack. The Lt counters (`cuda.cublasLtCounts`)
// must show that Lt ran with the switch on (and not with it off), so a silent fallback to
// cublasGemmEx cannot pass as parity. A batched matmul with odd sizes ([3, 7, 5] · [3, 5, 9])
// offsets its operands by odd element counts (2-byte aligned), which Lt must be told about.
// Every device tensor is disposed. Without a GPU (or in a build without the hooks) the case
// passes after saying it did not run.
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
      const counts = native().cuda?.cublasLtCounts;
      if (!lt || !counts) {
        console.log('cuBLASLt parity: not run (no CUDA build with the cuBLASLt switch in this process)');
        return;
      }
      const before = lt();
      const live = [];
      const keep = (t) => (live.push(t), t);
      const host = (t) => {
        const h = keep(t.to('cpu', { dtype: 'float32' }));
        return h.toArray();
      };
      // Lt must run with the switch on (a 1×1×1 GEMM may be declined: then it must have been
      // asked, and fell back) and not be asked at all with it off.
      let tiny = false;
      const ran = (fn, on, what) => {
        const c0 = counts();
        const out = fn();
        const c1 = counts();
        const msg = `${what}: calls ${c0.calls} → ${c1.calls}, fallbacks ${c0.fallbacks} → ${c1.fallbacks}`;
        if (!on) assert.ok(c1.calls === c0.calls && c1.fallbacks === c0.fallbacks, `cuBLASLt used while switched off (${msg})`);
        else if (tiny) assert.ok(c1.calls + c1.fallbacks > c0.calls + c0.fallbacks, `cuBLASLt not asked (${msg})`);
        else assert.ok(c1.calls > c0.calls, `cuBLASLt did not run (${msg})`);
        return out;
      };
      try {
        {
          // batched, odd sizes: operand i starts at i·35 bf16 elements, result i at i·63 floats
          const [Bt, M, K, N] = [3, 7, 5, 9];
          const a = keep(Tensor.randn([Bt, M, K], { seed: 7 })), b = keep(Tensor.randn([Bt, K, N], { seed: 8 }));
          const [ah, bh] = [a, b].map((t) => host(keep(t.to('cpu', { dtype: 'bfloat16' }))));
          const ad = keep(a.to('cuda', { dtype: 'bfloat16' })), bd = keep(b.to('cuda', { dtype: 'bfloat16' }));
          const mm = (on) => {
            lt(on);
            return ran(() => host(keep(linalg.matmul(ad, bd))), on, `batched matmul [${Bt}, ${M}, ${K}]·[${Bt}, ${K}, ${N}]`);
          };
          const on = mm(true), off = mm(false);
          const s = new Float64Array(Bt * M * N);
          for (let i = 0; i < Bt; i++) {
            const si = absProduct(ah.subarray(i * M * K), bh.subarray(i * K * N), M, N, K, false);
            for (let j = 0; j < M * N; j++) s[i * M * N + j] = 4 * K * 2 ** -24 * si[j];
          }
          close(on, off, s, 0, `batched matmul [${Bt}, ${M}, ${K}]`);
        }
        for (const [M, N, K] of [[1, 1, 1], [7, 33, 5], [67, 129, 257], [512, 256, 1024]]) {
          tiny = M * N * K === 1;
          const a = keep(Tensor.randn([M, K], { seed: M + K })), b = keep(Tensor.randn([N, K], { seed: N + 3 }));
          const dyt = keep(Tensor.randn([M, N], { seed: 99 }));
          const [ah, bh, dyh] = [a, b, dyt].map((t) => host(keep(t.to('cpu', { dtype: 'bfloat16' }))));
          const ad = keep(a.to('cuda', { dtype: 'bfloat16' })), bd = keep(b.to('cuda', { dtype: 'bfloat16' }));
          const run = (on) => {
            lt(on);
            const c = ran(() => host(keep(linalg.matmul(ad, bd, { transB: true }))), on, `matmul [${M}, ${N}, ${K}]`);
            const y = keep(Tensor.zeros([M, N], { device: 'cuda', dtype: 'bfloat16' }));
            ran(() => F.linearForward(ad, bd, null, y), on, `linear forward [${M}, ${N}, ${K}]`);
            const dy = keep(dyt.to('cuda', { dtype: 'bfloat16' }));
            const dx = keep(Tensor.zeros([M, K], { device: 'cuda', dtype: 'bfloat16' }));
            ran(() => F.linearBackward(ad, bd, dy, { dx, dW: null, db: null }), on, `linear backward [${M}, ${N}, ${K}]`);
            return { c, y: host(y), dx: host(dx) };
          };
          const factor = (lt_) => {
            lt(lt_);
            const Fd = keep(Tensor.zeros([K + 1, K + 1], { device: 'cuda' }));
            ran(() => kfac.updateFactor(Fd, ad, { beta: 0, bias: true }), lt_, `factor update [${M}, ${K}]`);
            return host(Fd);
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
        for (const t of live) t.dispose();
      }
    },
  },
];
