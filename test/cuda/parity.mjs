// CPU-vs-CUDA parity checks of every CUDA op, as plain functions: test/cuda-parity.test.ts
// runs them under vitest and test/cuda/node-test.mjs under `node --test` (GPU machines
// without vitest). Each check throws (node:assert) on a mismatch. They need the built
// dist/ and a CUDA device; `gpuStatus()` says whether there is one and why not.
//
// References: float64 JS for GEMM, the factor update and clipping norms; the library's CPU
// kernels (same arguments) for eigh, refresh, preconditioning and the optimizers. Sizes are
// odd (1, 7, 33, 257 …); outputs are poisoned with NaN before each call so unwritten
// elements show. Tolerances are stated at each check with their reason (u = 2^-24).
import assert from 'node:assert/strict';

import { cuda as deviceApi, DeviceError, NotFiniteError, Tensor } from '../../dist/index.js';
import { cudaStatus } from '../../dist/native/backend.js';
import { native } from '../../dist/native/loader.js';

const U = 2 ** -24;

// The ops under test: the real `cuda` namespace, or (for checking these checks where no GPU
// exists) test/cuda/loopback.mjs, which runs the same calls on the CPU kernels.
let cuda = deviceApi;
let loopback = false;
export function useApi(api = deviceApi, isLoopback = false) {
  cuda = api;
  loopback = isLoopback;
}

/** { ok, reason }: a CUDA device answers through the loaded addon. */
export function gpuStatus() {
  if (deviceApi.available()) return { ok: true, reason: '' };
  const s = cudaStatus();
  return { ok: false, reason: s.reason ?? 'the cuda backend is not in use' };
}

// ---- utilities -----------------------------------------------------------------------

let seed = 1000;
const randn = (shape, std = 1) => Tensor.randn(shape, { seed: seed++, std });
const up = (t, dtype) => cuda.toDevice(t, dtype ? { dtype } : {});
const down = (t) => cuda.toHost(t).toArray();
const poisoned = (shape) => up(Tensor.from(new Float32Array(shape.reduce((a, b) => a * b, 1)).fill(NaN), shape));
const cpu = () => native();
const numel = (s) => s.reduce((a, b) => a * b, 1);

/** A symmetric positive definite n×n matrix with a spread spectrum, as a cpu Tensor. */
function spd(n, shift = 0.1) {
  const x = randn([2 * n + 3, n]).toArray();
  const R = 2 * n + 3;
  const a = new Float32Array(n * n);
  for (let i = 0; i < n; i++)
    for (let j = 0; j <= i; j++) {
      let s = 0;
      for (let r = 0; r < R; r++) s += x[r * n + i] * x[r * n + j];
      a[i * n + j] = a[j * n + i] = s / R + (i === j ? shift : 0);
    }
  return Tensor.from(a, [n, n]);
}

function allFinite(xs, what) {
  for (let i = 0; i < xs.length; i++) assert.ok(Number.isFinite(xs[i]), `${what}[${i}] = ${xs[i]} (unwritten or not finite)`);
}

/** Row-major C = op(A)·op(B) in float64, and |op(A)|·|op(B)| for the error bound. */
function gemm64(a, b, M, N, K, tA, tB) {
  const c = new Float64Array(M * N), absc = new Float64Array(M * N);
  for (let i = 0; i < M; i++)
    for (let j = 0; j < N; j++) {
      let s = 0, t = 0;
      for (let k = 0; k < K; k++) {
        const x = tA ? a[k * M + i] : a[i * K + k];
        const y = tB ? b[j * K + k] : b[k * N + j];
        s += x * y;
        t += Math.abs(x * y);
      }
      c[i * N + j] = s;
      absc[i * N + j] = t;
    }
  return { c, absc };
}

/** Largest eigen-residual ‖A V − V Λ‖_F / ‖A‖_F and orthogonality error max|VᵀV − I| in float64. */
function eigenQuality(A, V, w, n) {
  let r2 = 0, a2 = 0, orth = 0;
  for (let i = 0; i < n; i++)
    for (let j = 0; j < n; j++) {
      let av = 0, vtv = 0;
      for (let k = 0; k < n; k++) {
        av += A[i * n + k] * V[k * n + j];
        vtv += V[k * n + i] * V[k * n + j];
      }
      r2 += (av - V[i * n + j] * w[j]) ** 2;
      a2 += A[i * n + j] ** 2;
      orth = Math.max(orth, Math.abs(vtv - (i === j ? 1 : 0)));
    }
  return { residual: Math.sqrt(r2 / a2), orth };
}

function close(got, want, tol, what) {
  assert.equal(got.length, want.length, `${what}: length`);
  for (let i = 0; i < got.length; i++) {
    const t = typeof tol === 'function' ? tol(i) : tol;
    assert.ok(Math.abs(got[i] - want[i]) <= t, `${what}[${i}]: got ${got[i]}, want ${want[i]} (tolerance ${t})`);
  }
}

// ---- checks --------------------------------------------------------------------------

export const checks = [
  {
    name: 'gemm float32, all transposes, odd sizes (float64 reference)',
    run() {
      for (const [M, N, K] of [[1, 1, 1], [7, 33, 5], [33, 7, 257], [130, 67, 33]])
        for (const tA of [false, true])
          for (const tB of [false, true]) {
            const a = randn(tA ? [K, M] : [M, K]), b = randn(tB ? [N, K] : [K, N]);
            const out = poisoned([M, N]);
            cuda.matmul(up(a), up(b), { transA: tA, transB: tB, out });
            const { c, absc } = gemm64(a.toArray(), b.toArray(), M, N, K, tA, tB);
            // Float32 accumulation of K products: |error| ≤ K·u·(|A||B|)_ij (γ_K bound), doubled for
            // cuBLAS's blocked/split-K order.
            close(down(out), c, (i) => 2 * K * U * absc[i] + 1e-30, `C ${M}x${N}x${K} ${tA}${tB}`);
          }
    },
  },
  {
    name: 'gemm alpha/beta accumulate into out',
    run() {
      const a = randn([9, 13]), b = randn([13, 11]), c0 = randn([9, 11]);
      const out = up(c0);
      cuda.matmul(up(a), up(b), { alpha: 0.5, beta: -2, out });
      const { c, absc } = gemm64(a.toArray(), b.toArray(), 9, 11, 13, false, false);
      const c0a = c0.toArray();
      close(down(out), c.map((v, i) => 0.5 * v - 2 * c0a[i]), (i) => 4 * 13 * U * (absc[i] + Math.abs(c0a[i])), 'alpha·AB + beta·C');
      // K = 0: the product is empty, out = beta·out exactly.
      const out0 = up(c0);
      cuda.matmul(up(Tensor.zeros([9, 0])), up(Tensor.zeros([0, 11])), { beta: 0.5, out: out0 });
      assert.deepEqual(down(out0), c0a.map((v) => Math.fround(0.5 * v)));
    },
  },
  {
    name: 'gemm TF32 (opt-in) within TF32 rounding of the inputs',
    run() {
      const [M, N, K] = [65, 33, 129];
      const a = randn([M, K]), b = randn([K, N]);
      const out = poisoned([M, N]);
      cuda.matmul(up(a), up(b), { tf32: true, out });
      const { c, absc } = gemm64(a.toArray(), b.toArray(), M, N, K, false, false);
      // TF32 keeps 10 mantissa bits: each product is off by at most 2·2^-11 relative, plus float32 accumulation.
      close(down(out), c, (i) => (2 * 2 ** -11 + 2 * K * U) * absc[i] + 1e-30, 'C tf32');
    },
  },
  {
    name: 'gemm bf16 storage with float32 accumulation (reference from the stored bf16 values)',
    run() {
      const [M, N, K] = [31, 17, 257];
      const a = up(randn([M, K]), 'bfloat16'), b = up(randn([K, N]), 'bfloat16');
      const ah = down(a), bh = down(b); // exactly the bf16 values the GPU multiplies
      for (const v of ah) assert.equal(new Float32Array([v])[0], v);
      const out = poisoned([M, N]);
      cuda.matmul(a, b, { out });
      const { c, absc } = gemm64(ah, bh, M, N, K, false, false);
      // Products of bf16 values are exact in float32; only the float32 accumulation rounds.
      close(down(out), c, (i) => 2 * K * U * absc[i] + 1e-30, 'C bf16');
      // bf16 rounding itself: at most 2^-8 relative to the float32 input.
      const src = randn([5, 7]).toArray(), back = down(up(Tensor.from(src, [5, 7]), 'bfloat16'));
      close(back, src, (i) => Math.abs(src[i]) * 2 ** -8, 'bf16 round trip');
    },
  },
  {
    name: 'factor update: EMA, bias column, scale; exactly symmetric (float64 reference)',
    run() {
      for (const [R, d, bias, beta] of [[1, 1, false, 0], [7, 33, true, 0], [257, 31, true, 0.9], [33, 130, false, 0.5]]) {
        const x = randn([R, d]);
        const D = d + (bias ? 1 : 0);
        const F0 = spd(D);
        const F = up(F0);
        const scale = 3;
        cuda.factorUpdate(up(x), F, { beta, scale, bias });
        const xs = x.toArray(), f0 = F0.toArray(), got = down(F);
        const alpha = ((1 - beta) * scale) / R;
        for (let i = 0; i < D; i++)
          for (let j = 0; j < D; j++) {
            let s = 0, t = 0;
            for (let r = 0; r < R; r++) {
              const u = i < d ? xs[r * d + i] : 1, v = j < d ? xs[r * d + j] : 1;
              s += u * v;
              t += Math.abs(u * v);
            }
            const want = beta * f0[i * D + j] + alpha * s;
            // float32 syrk over R rows: ≤ 2·R·u·α·Σ|x_i x_j|, plus rounding of the EMA terms.
            const tol = 2 * R * U * alpha * t + 4 * U * (Math.abs(beta * f0[i * D + j]) + Math.abs(want)) + 1e-30;
            assert.ok(Math.abs(got[i * D + j] - want) <= tol, `F[${i}][${j}] R=${R} d=${d}: got ${got[i * D + j]}, want ${want}`);
            assert.equal(got[i * D + j], got[j * D + i], `F not exactly symmetric at ${i},${j}`);
          }
      }
      // leading dimensions fold into rows: x [2, 3, d] is 6 rows
      const x = randn([2, 3, 5]);
      const F = poisoned([5, 5]), G = poisoned([5, 5]);
      cuda.factorUpdate(up(x), F, {});
      cuda.factorUpdate(up(x.reshape([6, 5])), G, {});
      assert.deepEqual(down(F), down(G));
    },
  },
  {
    name: 'factor update: NaN input is a NotFiniteError; wrong shape a typed error',
    run() {
      const x = Tensor.from(new Float32Array([1, NaN, 3, 4]), [2, 2]);
      assert.throws(() => cuda.factorUpdate(up(x), cuda.zeros([2, 2]), {}), NotFiniteError);
      assert.throws(() => cuda.factorUpdate(up(randn([3, 2])), cuda.zeros([3, 3]), {}), /factor/);
    },
  },
  {
    name: 'eigh (syevd) against the CPU eigh, odd sizes, clamp',
    run() {
      for (const n of [1, 7, 33, 257]) {
        const A = spd(n, 0);
        const g = cuda.eigh(up(A));
        const c = cpu().eigh(A.handle, null, null, {});
        const w = down(g.values), V = down(g.vectors), wc = c.values.toFloat32Array();
        const a = A.toArray();
        let norm = 0;
        for (const v of a) norm += v * v;
        norm = Math.sqrt(norm);
        // Backward-stable solvers: eigenvalues within c·n·u·‖A‖ of each other (c = 8 for both solvers' errors).
        close(w, wc, 8 * Math.max(n, 8) * U * norm, `values n=${n}`);
        for (let i = 1; i < n; i++) assert.ok(w[i - 1] <= w[i], 'values ascend');
        const q = eigenQuality(a, V, w, n);
        assert.ok(q.residual <= 8 * Math.max(n, 8) * U * 10, `residual ${q.residual} n=${n}`);
        assert.ok(q.orth <= 8 * Math.max(n, 8) * U * 10, `orthogonality ${q.orth} n=${n}`);
      }
      // clampNonNegative: an indefinite matrix's negative values become 0
      const B = Tensor.from([[1, 2], [2, 1]]); // eigenvalues -1, 3
      assert.deepEqual(Array.from(down(cuda.eigh(up(B), { clampNonNegative: true }).values)).map((v) => Math.round(v * 1e5) / 1e5), [0, 3]);
    },
  },
  {
    name: 'eighBatched (syevjBatched for r ≤ 32, syevd above) against per-matrix CPU eigh',
    run() {
      for (const [B, r] of [[5, 1], [37, 8], [9, 16], [3, 33]]) {
        const mats = Array.from({ length: B }, () => spd(r).toArray());
        const flat = new Float32Array(B * r * r);
        mats.forEach((m, b) => flat.set(m, b * r * r));
        const g = cuda.eighBatched(up(Tensor.from(flat, [B, r, r])));
        const w = down(g.values), V = down(g.vectors);
        allFinite(V, 'vectors');
        for (let b = 0; b < B; b++) {
          const wc = cpu().eigh(Tensor.from(mats[b], [r, r]).handle, null, null, {}).values.toFloat32Array();
          const wb = w.subarray(b * r, (b + 1) * r), Vb = V.subarray(b * r * r, (b + 1) * r * r);
          let norm = 0;
          for (const v of mats[b]) norm += v * v;
          // Jacobi to float32 accuracy: values within 8·max(r, 8)·u·‖A‖, as for syevd.
          close(wb, wc, 8 * Math.max(r, 8) * U * Math.sqrt(norm), `batch ${b} values r=${r}`);
          const q = eigenQuality(mats[b], Vb, wb, r);
          assert.ok(q.residual <= 1e-5 && q.orth <= 1e-5, `batch ${b} r=${r}: residual ${q.residual}, orth ${q.orth}`);
        }
      }
    },
  },
  {
    name: 'eighRefresh: warm from a nearby basis, cold fall-back from a stale one, values like the CPU',
    run() {
      const n = 65;
      const A = spd(n);
      const base = cpu().eigh(A.handle, null, null, {});
      const prev = Tensor.fromNative(base.vectors);
      const E = randn([n, n]).toArray(), a = A.toArray();
      // eps 1e-7: float32-noise drift, warm on both backends. eps 1e-4: the CPU's rotation budget
      // sends it to the cold solve, the GPU's Jacobi may finish it warm — either way the pair
      // must be accurate and the values equal the CPU's.
      for (const eps of [1e-7, 1e-4]) {
        const a2 = new Float32Array(n * n);
        for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) a2[i * n + j] = a[i * n + j] + eps * (E[i * n + j] + E[j * n + i]);
        const A2 = Tensor.from(a2, [n, n]);
        const g = cuda.eighRefresh(up(A2), up(prev), {});
        const c = cpu().eighRefresh(A2.handle, prev.handle, null, null, null, {});
        if (eps === 1e-7) assert.equal(g.fellBack, false, 'a basis that is still an eigenbasis refreshes warm');
        assert.equal(g.keptPrevious, false);
        assert.ok(g.residual <= 1e-4, `residual ${g.residual} (eps ${eps})`);
        const w = down(g.values), wc = c.values.toFloat32Array();
        let norm = 0;
        for (const v of a2) norm += v * v;
        // Both solvers are backward stable: values within 32·n·u·‖A‖ (8·n·u each, times 2 for the
        // warm path's extra GEMMs, times 2 for the two sides).
        close(w, wc, 32 * n * U * Math.sqrt(norm), `refreshed values (eps ${eps})`);
        const q = eigenQuality(a2, down(g.vectors), w, n);
        assert.ok(q.residual <= 1e-4 && q.orth <= 1e-4, `refreshed pair (eps ${eps}): residual ${q.residual}, orth ${q.orth}`);
      }
      // A stale basis (identity for a dense matrix: off-diagonal mass ≈ 0.5 > 0.25) falls back cold.
      const I = new Float32Array(n * n);
      for (let i = 0; i < n; i++) I[i * n + i] = 1;
      const s = cuda.eighRefresh(up(A), up(Tensor.from(I, [n, n])), {});
      assert.equal(s.fellBack, true, 'stale basis → cold solve');
      let norm = 0;
      for (const v of a) norm += v * v;
      close(down(s.values), base.values.toFloat32Array(), 32 * n * U * Math.sqrt(norm), 'cold values');
    },
  },
  {
    name: 'preconditionEigen and preconditionInverseFactors against the CPU (with and without bias)',
    run() {
      for (const [dout, din, bias] of [[1, 1, false], [7, 33, true], [33, 7, false], [65, 129, true]]) {
        const Da = din + (bias ? 1 : 0);
        const A = spd(Da), G = spd(dout);
        const ea = cpu().eigh(A.handle, null, null, { clampNonNegative: true });
        const eg = cpu().eigh(G.handle, null, null, { clampNonNegative: true });
        const grad = randn([dout, din]), gb = bias ? randn([dout]) : null;
        const lambda = 0.03;
        // CPU reference
        const PWc = Tensor.zeros([dout, din]), Pbc = bias ? Tensor.zeros([dout]) : null;
        cpu().preconditionEigen(grad.handle, gb?.handle ?? null, ea.vectors, ea.values, eg.vectors, eg.values, lambda, PWc.handle, Pbc?.handle ?? null);
        const PW = poisoned([dout, din]), Pb = bias ? poisoned([dout]) : null;
        const T = (h) => up(Tensor.fromNative(h));
        cuda.preconditionEigen(up(grad), { QA: T(ea.vectors), dA: T(ea.values), QG: T(eg.vectors), dG: T(eg.values) }, lambda, PW, bias ? { gradBias: up(gb), outBias: Pb } : null);
        // Same algorithm, float32 GEMMs in another order: the relative error is bounded by
        // (4 GEMMs)·(Da + dout)·u times the conditioning 1/λ of the damped division — 1e-4 covers it.
        relClose(down(PW), PWc.toArray(), 1e-4, `eigen P_W ${dout}x${din}`);
        if (bias) relClose(down(Pb), Pbc.toArray(), 1e-4, 'eigen P_b');
        const PWi = Tensor.zeros([dout, din]), Pbi = bias ? Tensor.zeros([dout]) : null;
        const rc = cpu().preconditionInverseFactors(grad.handle, gb?.handle ?? null, A.handle, G.handle, lambda, PWi.handle, Pbi?.handle ?? null);
        const PWg = poisoned([dout, din]), Pbg = bias ? poisoned([dout]) : null;
        const rg = cuda.preconditionInverseFactors(up(grad), up(A), up(G), lambda, PWg, bias ? { gradBias: up(gb), outBias: Pbg } : null);
        assert.ok(Math.abs(rg.pi - rc.pi) <= 1e-6 * rc.pi, `pi ${rg.pi} vs ${rc.pi}`);
        relClose(down(PWg), PWi.toArray(), 1e-4, `inverse P_W ${dout}x${din}`);
        if (bias) relClose(down(Pbg), Pbi.toArray(), 1e-4, 'inverse P_b');
      }
    },
  },
  {
    name: 'Newton-step clipping global / per-tensor / fisher: float64 norms, scaled values equal to the CPU',
    run() {
      const sizes = [1, 7, 33, 257, 20000, 0, 65537];
      for (const mode of ['global', 'per-tensor', 'fisher']) {
        const hs = sizes.map((n) => randn([n]));
        const gs = sizes.map((n) => randn([n]));
        const ds = hs.map((t) => up(t));
        const opts = mode === 'fisher' ? { mode, c: 1e-3, lr: 0.1 } : { mode, maxNorm: mode === 'global' ? 50 : 10 };
        const cpuCopies = hs.map((t) => t.clone());
        const rc = cpu().clipNewtonStep(cpuCopies.map((t) => t.handle), mode === 'fisher' ? { ...opts, grads: gs.map((t) => t.handle) } : opts);
        const rg = cuda.clipNewtonStep(ds, mode === 'fisher' ? { ...opts, grads: gs.map((t) => up(t)) } : opts);
        // Norms: float64 sums of the same float32 values in another order — agree to 1e-12 relative.
        for (let i = 0; i < sizes.length; i++) {
          let ss = 0;
          for (const v of hs[i].toArray()) ss += v * v;
          assert.ok(Math.abs(rg.norms[i] - Math.sqrt(ss)) <= 1e-12 * Math.sqrt(ss) + 1e-300, `${mode} norm ${i}`);
          assert.ok(Math.abs(rg.scales[i] - rc.scales[i]) <= 1e-12 * rc.scales[i], `${mode} scale ${i}: ${rg.scales[i]} vs ${rc.scales[i]}`);
          assert.equal(rg.clipped[i], rc.clipped[i], `${mode} clipped ${i}`);
        }
        assert.ok(rg.anyClipped, `${mode}: the options are chosen so that clipping fires`);
        assert.ok(Math.abs(rg.totalNorm - rc.totalNorm) <= 1e-12 * rc.totalNorm);
        if (mode === 'fisher') assert.ok(Math.abs(rg.vg - rc.vg) <= 1e-10 * Math.abs(rc.vg) + 1e-12);
        // Scaled values: one float32 multiply by float32(scale). The float64 scales agree to 1e-12, so
        // float32(scale) is the same float or one ulp apart: the values are equal or within 1 ulp.
        for (let i = 0; i < sizes.length; i++) {
          const same = Math.fround(rg.scales[i]) === Math.fround(rc.scales[i]);
          if (same) assert.deepEqual(down(ds[i]), cpuCopies[i].toArray(), `${mode} values ${i}`);
          else ulpClose(down(ds[i]), cpuCopies[i].toArray(), 1, `${mode} values ${i}`);
        }
      }
      // A NaN anywhere: NotFiniteError naming the tensor, nothing scaled.
      const a = randn([100]), b = Tensor.from(new Float32Array([1, NaN, 2]), [3]);
      const da = up(a), db = up(b);
      assert.throws(() => cuda.clipNewtonStep([da, db], { maxNorm: 1e-3 }), (e) => e instanceof NotFiniteError && /tensors\[1\]/.test(e.message));
      assert.deepEqual(down(da), a.toArray(), 'nothing scaled after a NaN');
    },
  },
  {
    name: 'AdamW and SGD updates equal to the CPU optimizers (amsgrad, maximize, nesterov, weight decay)',
    run() {
      const n = 1031;
      for (const [amsgrad, maximize, wd] of [[false, false, 0.01], [true, false, 0], [false, true, 0.1]]) {
        const p = randn([n]), m = randn([n], 0.1), v = Tensor.from(randn([n]).toArray().map((x) => x * x), [n]);
        const vmax = Tensor.from(v.toArray().map((x) => x * 1.5), [n]);
        const cp = [p, m, v, vmax].map((t) => t.clone()), dp = [p, m, v, vmax].map((t) => up(t));
        for (let step = 1; step <= 3; step++) {
          const g = randn([n]);
          const o = { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: wd, step, amsgrad, maximize };
          cpu().adamwStep(cp[0].handle, g.handle, cp[1].handle, cp[2].handle, amsgrad ? cp[3].handle : null, o);
          cuda.adamwStep(dp[0], up(g), { expAvg: dp[1], expAvgSq: dp[2], ...(amsgrad ? { maxExpAvgSq: dp[3] } : {}) }, o);
        }
        // Same float32 operations in the same order, no FMA contraction: equal to 1 ulp (4 for the three steps' rounding of sqrt/div).
        for (let k = 0; k < 3; k++) ulpClose(down(dp[k]), cp[k].toArray(), 4, `adamw ams=${amsgrad} max=${maximize} state ${k}`);
      }
      for (const [momentum, dampening, nesterov, wd] of [[0, 0, false, 0], [0.9, 0.1, false, 0.01], [0.9, 0, true, 0]]) {
        const p = randn([n]), buf = Tensor.zeros([n]);
        const cp = [p.clone(), buf.clone()], dp = [up(p), up(buf)];
        for (let step = 1; step <= 3; step++) {
          const g = randn([n]);
          const o = { lr: 0.05, momentum, dampening, weightDecay: wd, nesterov, maximize: false, firstStep: step === 1 };
          cpu().sgdStep(cp[0].handle, g.handle, momentum ? cp[1].handle : null, o);
          cuda.sgdStep(dp[0], up(g), momentum ? dp[1] : null, o);
        }
        ulpClose(down(dp[0]), cp[0].toArray(), 4, `sgd momentum=${momentum} nesterov=${nesterov}`);
      }
    },
  },
  {
    name: 'typed errors: mixed devices, cpu ops on cuda tensors, host access to device memory',
    run() {
      if (loopback) return; // needs real device tensors
      const a = randn([3, 3]);
      const d = up(a);
      assert.throws(() => cuda.matmul(d, a), (e) => e instanceof DeviceError && e.argument === 'b');
      assert.throws(() => cpu().matmul(d.handle, a.handle, null, {}), DeviceError);
      assert.throws(() => d.toArray(), DeviceError);
      assert.throws(() => cuda.toHost(a), DeviceError);
      assert.throws(() => cuda.eigh(up(Tensor.from(new Float32Array(9).fill(NaN), [3, 3]))), NotFiniteError);
    },
  },
];

function relClose(got, want, rel, what) {
  allFinite(got, what);
  let e2 = 0, w2 = 0;
  for (let i = 0; i < got.length; i++) {
    e2 += (got[i] - want[i]) ** 2;
    w2 += want[i] ** 2;
  }
  const r = Math.sqrt(e2) / Math.max(Math.sqrt(w2), 1e-30);
  assert.ok(r <= rel, `${what}: relative error ${r} > ${rel}`);
}

function ulpClose(got, want, ulps, what) {
  allFinite(got, what);
  for (let i = 0; i < got.length; i++) {
    const tol = ulps * Math.max(Math.abs(want[i]), 2 ** -126) * 2 ** -23;
    assert.ok(Math.abs(got[i] - want[i]) <= tol, `${what}[${i}]: got ${got[i]}, want ${want[i]}`);
  }
}
