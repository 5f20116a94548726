// Backend parity as a suite: one table of cases that together cover every op of the op list
// (native/core/dispatch.h). Each case runs the public API on tensors of one device and checks
// the result against an independent float64 reference computed here in JS — never against
// another kernel of the library. Outputs are poisoned with NaN before each call (unwritten
// elements show), sizes are odd, β = 0 must never read the output.
//
// The suite runs each case on every available backend: 'cpu' always, 'cuda' on a GPU, and,
// where no GPU exists, on the CPU loopback (the CPU kernels and host memory registered under
// the cuda id), so that dispatch, transfers, typed errors, references and tolerances are all
// exercised here. test/cuda/cuda-parity.test.ts runs it under vitest, test/cuda/node-test.mjs under
// `node --test` on GPU machines. Tolerances are stated at each check (u = 2^-24).
import assert from 'node:assert/strict';

import { DeviceError, DisposedError, kfac, linalg, NotFiniteError, ops, nn, Tensor } from '../../dist/index.js';
import { attentionCases } from './parity-attention.mjs';
import { cudaStatus, native } from '../../dist/native/loader.js';
import { nnCases } from './parity-nn.mjs';
import { ltCases } from './parity-lt.mjs';

const U = 2 ** -24;

/** { ok, reason }: a real CUDA device answers through the loaded addon. */
export function gpuStatus() {
  const s = cudaStatus();
  if (s.usable && native().cuda) return { ok: true, reason: '' };
  return { ok: false, reason: s.reason ?? 'the cuda backend is not in use' };
}

/** Registers the CPU loopback under the cuda id (only where no CUDA backend exists). */
export function enableLoopback() {
  native()._cpuLoopback();
}

// ---- utilities -------------------------------------------------------------------------

let seed = 1000;
const numel = (s) => s.reduce((a, b) => a * b, 1);
const host = (shape, std = 1) => Tensor.randn(shape, { seed: seed++, std });
const on = (t, dev, dtype) => t.to(dev, dtype ? { dtype } : {});
const read = (t) => (t.device === 'cpu' && t.dtype === 'float32' ? t.toArray() : t.to('cpu', { dtype: 'float32' }).toArray());
const poisoned = (shape, dev) => Tensor.from(new Float32Array(numel(shape)).fill(NaN), shape).to(dev);

/** A symmetric positive definite n×n matrix (float32 values) with a spread spectrum. */
function spdValues(n, shift = 0.1) {
  const x = host([2 * n + 3, n]).toArray();
  const R = 2 * n + 3;
  const a = new Float32Array(n * n);
  for (let i = 0; i < n; i++)
    for (let j = 0; j <= i; j++) {
      let s = 0;
      for (let r = 0; r < R; r++) s += x[r * n + i] * x[r * n + j];
      a[i * n + j] = a[j * n + i] = s / R + (i === j ? shift : 0);
    }
  return a;
}

/** Row-major C = op(A)·op(B) in float64, and |op(A)|·|op(B)| for the error bound. */
function gemm64(a, b, M, N, K, tA = false, tB = false) {
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

/** (A + δI)⁻¹ of a symmetric positive definite n×n matrix, Gauss–Jordan in float64. */
function inverse64(a, n, delta) {
  const m = Float64Array.from(a, (v, k) => v + (k % (n + 1) === 0 ? delta : 0));
  const inv = new Float64Array(n * n);
  for (let i = 0; i < n; i++) inv[i * n + i] = 1;
  for (let c = 0; c < n; c++) {
    const p = m[c * n + c];
    for (let j = 0; j < n; j++) {
      m[c * n + j] /= p;
      inv[c * n + j] /= p;
    }
    for (let r = 0; r < n; r++) {
      if (r === c) continue;
      const f = m[r * n + c];
      for (let j = 0; j < n; j++) {
        m[r * n + j] -= f * m[c * n + j];
        inv[r * n + j] -= f * inv[c * n + j];
      }
    }
  }
  return inv;
}

/** ‖A V − V Λ‖_F / ‖A‖_F and max|VᵀV − I| in float64. */
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

function relClose(got, want, rel, what) {
  let e2 = 0, w2 = 0;
  for (let i = 0; i < got.length; i++) {
    assert.ok(Number.isFinite(got[i]), `${what}[${i}] = ${got[i]} (unwritten or not finite)`);
    e2 += (got[i] - want[i]) ** 2;
    w2 += want[i] ** 2;
  }
  const r = Math.sqrt(e2) / Math.max(Math.sqrt(w2), 1e-30);
  assert.ok(r <= rel, `${what}: relative error ${r} > ${rel}`);
}

/** Eigen-method preconditioning in float64: Q_G[(Q_Gᵀ X Q_A) ⊘ (d_G d_Aᵀ + λ)]Q_Aᵀ, X = [∇W|∇b]. */
function precondEigen64(X, dout, Da, QA, dA, QG, dG, lambda) {
  const t1 = gemm64(X, QA, dout, Da, Da).c;
  const t2 = gemm64(QG, t1, dout, Da, dout, true).c;
  for (let i = 0; i < dout; i++) for (let j = 0; j < Da; j++) t2[i * Da + j] /= dG[i] * dA[j] + lambda;
  const t3 = gemm64(QG, t2, dout, Da, dout).c;
  return gemm64(t3, QA, dout, Da, Da, false, true).c;
}

/** [∇W | ∇b] as one dout × Da row-major array. */
function joined(gW, gb, dout, din) {
  const Da = din + (gb ? 1 : 0);
  const X = new Float64Array(dout * Da);
  for (let i = 0; i < dout; i++) {
    for (let j = 0; j < din; j++) X[i * Da + j] = gW[i * din + j];
    if (gb) X[i * Da + din] = gb[i];
  }
  return X;
}
const weightPart = (P, dout, din, Da) => Float64Array.from({ length: dout * din }, (_, k) => P[Math.floor(k / din) * Da + (k % din)]);
const biasPart = (P, dout, din, Da) => Float64Array.from({ length: dout }, (_, i) => P[i * Da + din]);

// ---- the cases ---------------------------------------------------------------------------
// Each case names the ops of the op list it covers and runs on one device `dev`.

export const cases = [
  {
    name: 'matmul: float32, all transposes, batched, odd sizes; β = 0 never reads out',
    ops: ['matmul'],
    run(dev) {
      for (const [M, N, K] of [[1, 1, 1], [7, 33, 5], [33, 7, 129]])
        for (const tA of [false, true])
          for (const tB of [false, true]) {
            const a = host(tA ? [K, M] : [M, K]), b = host(tB ? [N, K] : [K, N]);
            const out = poisoned([M, N], dev);
            linalg.matmul(on(a, dev), on(b, dev), { transA: tA, transB: tB, out });
            const { c, absc } = gemm64(a.toArray(), b.toArray(), M, N, K, tA, tB);
            // Float32 accumulation of K products: |error| ≤ K·u·(|A||B|)_ij (γ_K), doubled for blocked orders.
            close(read(out), c, (i) => 2 * K * U * absc[i] + 1e-30, `C ${M}x${N}x${K} ${tA}${tB}`);
          }
      // alpha/beta accumulate; a new result lives on the operands' device
      const a = host([9, 13]), b = host([13, 11]), c0 = host([9, 11]);
      const out = on(c0, dev);
      linalg.matmul(on(a, dev), on(b, dev), { alpha: 0.5, beta: -2, out });
      const { c, absc } = gemm64(a.toArray(), b.toArray(), 9, 11, 13);
      const c0a = c0.toArray();
      close(read(out), c.map((v, i) => 0.5 * v - 2 * c0a[i]), (i) => 4 * 13 * U * (absc[i] + Math.abs(c0a[i])), 'alpha·AB + beta·C');
      // batched [B, M, K]·[K, N] (the 2-D operand broadcast)
      const A3 = host([3, 5, 7]), B2 = host([7, 4]);
      const r = linalg.matmul(on(A3, dev), on(B2, dev));
      assert.equal(r.device, dev);
      const a3 = A3.toArray();
      const want = new Float64Array(3 * 5 * 4);
      for (let k = 0; k < 3; k++) want.set(gemm64(a3.subarray(k * 35, (k + 1) * 35), B2.toArray(), 5, 4, 7).c, k * 20);
      close(read(r), want, 1e-5, 'batched');
      // TF32 is opt-in: within TF32 rounding of the inputs (10 mantissa bits) on cuda, exact float32 on the CPU
      const x = host([17, 65]), y = host([65, 9]);
      const t = linalg.matmul(on(x, dev), on(y, dev), { tf32: true });
      const g = gemm64(x.toArray(), y.toArray(), 17, 9, 65);
      close(read(t), g.c, (i) => (2 * 2 ** -11 + 2 * 65 * U) * g.absc[i] + 1e-30, 'tf32');
    },
  },
  {
    name: 'matmul with bfloat16 operands, float32 accumulation (the bf16 kernels, and the widening path for αβ and transposes)',
    ops: ['matmul', 'cast'],
    run(dev) {
      const a = on(host([31, 65]), dev, 'bfloat16'), b = on(host([65, 17]), dev, 'bfloat16');
      assert.equal(a.dtype, 'bfloat16');
      const ah = read(a), bh = read(b); // exactly the stored bf16 values
      const out = poisoned([31, 17], dev);
      linalg.matmul(a, b, { out });
      const { c, absc } = gemm64(ah, bh, 31, 17, 65);
      close(read(out), c, (i) => 2 * 65 * U * absc[i] + 1e-30, 'C bf16');
      // b stored [N, K] (a Linear weight): op(b) = bᵀ
      const bt = on(host([17, 65]), dev, 'bfloat16');
      const r = gemm64(ah, read(bt), 31, 17, 65, false, true);
      close(read(linalg.matmul(a, bt, { transB: true })), r.c, (i) => 2 * 65 * U * r.absc[i] + 1e-30, 'C bf16 transB');
      // α = 0.5, β = 1 onto a known C: C ← 0.5·a·b + C
      const c0 = host([31, 17]);
      const acc = on(c0, dev);
      linalg.matmul(a, b, { out: acc, alpha: 0.5, beta: 1 });
      const c0h = c0.toArray();
      close(read(acc), c.map((v, i) => 0.5 * v + c0h[i]), (i) => 65 * U * absc[i] + 2 * U * Math.abs(c0h[i]) + 1e-30, 'C bf16 αβ');
      // op(a) = aᵀ (a stored [K, M]) goes through the widening path
      const at = on(host([65, 31]), dev, 'bfloat16');
      const q = gemm64(read(at), bh, 31, 17, 65, true, false);
      close(read(linalg.matmul(at, b, { transA: true })), q.c, (i) => 2 * 65 * U * q.absc[i] + 1e-30, 'C bf16 transA');
    },
  },
  {
    name: 'to()/cast: float32 ↔ bfloat16 rounds to nearest even; device round trips are exact',
    ops: ['cast', 'copy'],
    run(dev) {
      const src = new Float32Array([1, -2.5, 3.14159, 1e-3, 65504, 0, -0, 1.00390625, 1.01171875]);
      const t = Tensor.from(src, [src.length]);
      const back = read(on(t, dev, 'bfloat16'));
      const u = new Uint32Array(src.buffer.slice(0));
      const want = Float32Array.from(u, (x) => new Float32Array(new Uint32Array([((x + 0x7fff + ((x >>> 16) & 1)) & 0xffff0000) >>> 0]).buffer)[0]);
      assert.deepEqual(Array.from(back), Array.from(want), 'bf16 rounding');
      assert.deepEqual(Array.from(read(on(t, dev))), Array.from(src), 'float32 round trip');
      const d = on(t, dev), e = poisoned([src.length], dev);
      ops.copy(d, e);
      assert.deepEqual(Array.from(read(e)), Array.from(src), 'copy');
      assert.deepEqual(Array.from(read(d.clone())), Array.from(src), 'clone');
    },
  },
  {
    name: 'fill, add, scale, axpy, transpose: exact float32 results',
    ops: ['fill', 'add', 'scale', 'axpy', 'transpose'],
    run(dev) {
      const n = 1031;
      const a = host([n]), b = host([n]);
      const av = a.toArray(), bv = b.toArray();
      const f = poisoned([n], dev);
      ops.fill(f, 2.5);
      assert.ok(read(f).every((v) => v === 2.5), 'fill');
      assert.deepEqual(Array.from(read(ops.add(on(a, dev), on(b, dev)))), Array.from(av, (x, i) => Math.fround(x + bv[i])), 'add');
      assert.deepEqual(Array.from(read(ops.scale(on(a, dev), 0.3))), Array.from(av, (x) => Math.fround(Math.fround(0.3) * x)), 'scale');
      const y = on(b, dev);
      ops.axpy(-1.5, on(a, dev), y);
      assert.deepEqual(Array.from(read(y)), Array.from(av, (x, i) => Math.fround(bv[i] + Math.fround(-1.5 * x))), 'axpy');
      const x = host([3, 7, 5]), xv = x.toArray();
      const tr = read(ops.transpose(on(x, dev)));
      for (let k = 0; k < 3; k++) for (let i = 0; i < 7; i++) for (let j = 0; j < 5; j++) assert.equal(tr[k * 35 + j * 7 + i], xv[k * 35 + i * 5 + j], 'transpose');
    },
  },
  {
    name: 'copyRange: stacks and unstacks exactly (float32 and bfloat16), touches nothing outside the range',
    ops: ['copy_range'],
    run(dev) {
      for (const dtype of ['float32', 'bfloat16']) {
        const a = host([3, 5]), b = host([2, 5]);
        const stack = on(Tensor.from(new Float32Array(40).fill(7), [40]), dev, dtype);
        ops.copyRange(on(a, dev, dtype), 0, stack, 3, 15);
        ops.copyRange(on(b, dev, dtype), 0, stack, 20, 10);
        const r = read(stack);
        const av = read(on(a, 'cpu', dtype)), bv = read(on(b, 'cpu', dtype));
        for (let i = 0; i < 40; i++) {
          const want = i >= 3 && i < 18 ? av[i - 3] : i >= 20 && i < 30 ? bv[i - 20] : 7;
          assert.equal(r[i], want, `${dtype} stack[${i}]`);
        }
        const back = poisoned([2, 5], dev);
        if (dtype === 'float32') {
          ops.copyRange(stack, 20, back, 0, 10);
          assert.deepEqual(Array.from(read(back)), Array.from(bv), 'unstacked');
        }
      }
      assert.throws(() => ops.copyRange(on(host([4]), dev), 0, on(host([4]), dev), 1, 4), /dstOffset/);
    },
  },
  {
    name: 'sum, sumSquares, norm, dot: float64 accumulation (relative 1e-12)',
    ops: ['sum', 'sum_squares', 'dot'],
    run(dev) {
      for (const n of [0, 1, 7, 65537]) {
        const a = host([n]), b = host([n]);
        const av = a.toArray(), bv = b.toArray();
        let s = 0, ss = 0, d = 0;
        for (let i = 0; i < n; i++) (s += av[i]), (ss += av[i] * av[i]), (d += av[i] * bv[i]);
        const da = on(a, dev), db = on(b, dev);
        const tol = (w) => 1e-12 * (Math.abs(w) + n) + 1e-300;
        assert.ok(Math.abs(ops.sum(da) - s) <= tol(s), `sum n=${n}`);
        assert.ok(Math.abs(ops.sumSquares(da) - ss) <= tol(ss), `sumSquares n=${n}`);
        assert.ok(Math.abs(ops.norm(da) - Math.sqrt(ss)) <= tol(Math.sqrt(ss)), `norm n=${n}`);
        assert.ok(Math.abs(ops.dot(da, db) - d) <= tol(d), `dot n=${n}`);
      }
    },
  },
  {
    name: 'sumSquaresMany: every tensor of a list, float64 accumulation (relative 1e-12), equal to sumSquares',
    ops: ['sum_squares_many'],
    run(dev) {
      // empty tensors among others, one spanning several device chunks (2^14 + odd), many small ones
      const sizes = [0, 1, 7, 16384 * 3 + 5, 0, 33, ...Array.from({ length: 40 }, (_, i) => 2 * i + 1)];
      const xs = sizes.map((n) => host([n]));
      const sums = ops.sumSquaresMany(xs.map((x) => on(x, dev)));
      assert.equal(sums.length, sizes.length);
      xs.forEach((x, i) => {
        const v = x.toArray();
        let ss = 0;
        for (let k = 0; k < v.length; k++) ss += v[k] * v[k];
        assert.ok(Math.abs(sums[i] - ss) <= 1e-12 * (ss + v.length) + 1e-300, `sumSquaresMany[${i}] n=${v.length}`);
      });
      assert.deepEqual(ops.sumSquaresMany([]), []);
    },
  },
  {
    name: 'dotMany: every pair of two lists, float64 accumulation (relative 1e-12), equal to dot',
    ops: ['dot_many'],
    run(dev) {
      const sizes = [0, 1, 7, 16384 * 3 + 5, 0, 33, ...Array.from({ length: 40 }, (_, i) => 2 * i + 1)];
      const xs = sizes.map((n) => host([n])), ys = sizes.map((n) => host([n]));
      const dots = ops.dotMany(xs.map((x) => on(x, dev)), ys.map((y) => on(y, dev)));
      assert.equal(dots.length, sizes.length);
      xs.forEach((x, i) => {
        const a = x.toArray(), b = ys[i].toArray();
        let d = 0, m = 0;
        for (let k = 0; k < a.length; k++) (d += a[k] * b[k]), (m += Math.abs(a[k] * b[k]));
        assert.ok(Math.abs(dots[i] - d) <= 1e-12 * (m + a.length) + 1e-300, `dotMany[${i}] n=${a.length}`);
      });
      assert.deepEqual(ops.dotMany([], []), []);
      assert.throws(() => ops.dotMany([on(host([3]), dev)], []), /ys/);
      assert.throws(() => ops.dotMany([on(host([3]), dev)], [on(host([4]), dev)]), /ys\[0\]/);
    },
  },
  {
    name: 'factor update: EMA, bias column, scale, folded leading dims; exactly symmetric; β = 0 never reads F',
    ops: ['factor_update'],
    run(dev) {
      for (const [R, d, bias, beta] of [[1, 1, false, 0], [7, 33, true, 0], [129, 31, true, 0.9], [33, 65, false, 0.5]]) {
        const x = host([R, d]);
        const D = d + (bias ? 1 : 0);
        const f0 = spdValues(D);
        const F = beta === 0 ? poisoned([D, D], dev) : on(Tensor.from(f0, [D, D]), dev);
        kfac.updateFactor(F, on(x, dev), { beta, scale: 3, bias });
        const xs = x.toArray(), got = read(F);
        const alpha = ((1 - beta) * 3) / R;
        for (let i = 0; i < D; i++)
          for (let j = 0; j < D; j++) {
            let s = 0, t = 0;
            for (let r = 0; r < R; r++) {
              const u = i < d ? xs[r * d + i] : 1, v = j < d ? xs[r * d + j] : 1;
              s += u * v;
              t += Math.abs(u * v);
            }
            const want = beta * f0[i * D + j] + alpha * s;
            // float32 syrk over R rows: ≤ 2·R·u·α·Σ|x_i x_j|, plus the rounding of the EMA terms.
            const tol = 2 * R * U * alpha * t + 4 * U * (Math.abs(beta * f0[i * D + j]) + Math.abs(want)) + 1e-30;
            assert.ok(Math.abs(got[i * D + j] - want) <= tol, `F[${i}][${j}] R=${R} d=${d}: got ${got[i * D + j]}, want ${want}`);
            assert.equal(got[i * D + j], got[j * D + i], `F not exactly symmetric at ${i},${j}`);
          }
      }
      const x = host([2, 3, 5]);
      const F = poisoned([5, 5], dev), G = poisoned([5, 5], dev);
      kfac.updateFactor(F, on(x, dev));
      kfac.updateFactor(G, on(x.reshape([6, 5]), dev));
      assert.deepEqual(read(F), read(G), 'leading dimensions are rows');
      const bad = on(Tensor.from(new Float32Array([1, NaN, 3, 4]), [2, 2]), dev);
      const F0 = Tensor.zeros([2, 2], { device: dev });
      assert.throws(() => kfac.updateFactor(F0, bad), NotFiniteError);
      assert.deepEqual(Array.from(read(F0)), [0, 0, 0, 0], 'a refused update leaves the factor as it was');
      // checkFinite: false (K-FAC's capture) does not scan: the NaN's products reach the factor
      kfac.updateFactor(F0, bad, { checkFinite: false });
      const f = read(F0);
      assert.ok(Number.isNaN(f[1]) && Number.isNaN(f[3]) && f[0] === (1 + 9) / 2, `unscanned update: ${f}`);
    },
  },
  {
    name: 'eigh and eighBatched: float64 residual and orthogonality, ascending values, clamp',
    ops: ['eigh', 'eigh_batched'],
    run(dev) {
      for (const n of [1, 7, 33, 129]) {
        const a = spdValues(n, 0);
        const r = linalg.eigh(on(Tensor.from(a, [n, n]), dev));
        assert.equal(r.vectors.device, dev);
        const w = read(r.values), V = read(r.vectors);
        for (let i = 1; i < n; i++) assert.ok(w[i - 1] <= w[i], 'values ascend');
        const q = eigenQuality(a, V, w, n);
        // Backward-stable float32 solvers: residual and orthogonality within 80·max(n, 8)·u.
        assert.ok(q.residual <= 80 * Math.max(n, 8) * U && q.orth <= 80 * Math.max(n, 8) * U, `n=${n}: residual ${q.residual}, orth ${q.orth}`);
      }
      const B = on(Tensor.from([[1, 2], [2, 1]]), dev); // eigenvalues -1, 3
      assert.deepEqual(Array.from(read(linalg.eigh(B, { clampNonNegative: true }).values)).map((v) => Math.round(v * 1e5) / 1e5), [0, 3]);
      for (const [nb, r] of [[5, 1], [37, 8], [3, 33]]) {
        const mats = Array.from({ length: nb }, () => spdValues(r));
        const flat = new Float32Array(nb * r * r);
        mats.forEach((m, b) => flat.set(m, b * r * r));
        const g = linalg.eighBatched(on(Tensor.from(flat, [nb, r, r]), dev));
        const w = read(g.values), V = read(g.vectors);
        for (let b = 0; b < nb; b++) {
          const q = eigenQuality(mats[b], V.subarray(b * r * r, (b + 1) * r * r), w.subarray(b * r, (b + 1) * r), r);
          assert.ok(q.residual <= 1e-5 && q.orth <= 1e-5, `batch ${b} r=${r}: residual ${q.residual}, orth ${q.orth}`);
        }
      }
    },
  },
  {
    name: 'eighRefresh: warm from a nearby basis, cold from a stale one, accurate pairs',
    ops: ['eigh_refresh'],
    run(dev) {
      const n = 65;
      const a = spdValues(n);
      const base = linalg.eigh(on(Tensor.from(a, [n, n]), dev));
      const E = host([n, n]).toArray();
      const a2 = new Float32Array(n * n);
      for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) a2[i * n + j] = a[i * n + j] + 1e-7 * (E[i * n + j] + E[j * n + i]);
      const g = linalg.eighRefresh(on(Tensor.from(a2, [n, n]), dev), base.vectors);
      assert.equal(g.fellBack, false, 'a basis that is still an eigenbasis refreshes warm');
      const q = eigenQuality(a2, read(g.vectors), read(g.values), n);
      assert.ok(q.residual <= 1e-4 && q.orth <= 1e-4, `warm pair: residual ${q.residual}, orth ${q.orth}`);
      const I = new Float32Array(n * n);
      for (let i = 0; i < n; i++) I[i * n + i] = 1;
      const s = linalg.eighRefresh(on(Tensor.from(a, [n, n]), dev), on(Tensor.from(I, [n, n]), dev));
      assert.equal(s.fellBack, true, 'stale basis → cold solve');
      const qs = eigenQuality(a, read(s.vectors), read(s.values), n);
      assert.ok(qs.residual <= 1e-4 && qs.orth <= 1e-4, `cold pair: residual ${qs.residual}, orth ${qs.orth}`);
    },
  },
  {
    name: 'preconditionEigen and preconditionInverse against float64 formulas (with and without bias)',
    ops: ['precondition_eigen', 'precondition_inverse'],
    run(dev) {
      for (const [dout, din, bias] of [[1, 1, false], [7, 33, true], [33, 7, false]]) {
        const Da = din + (bias ? 1 : 0);
        // Any Q and d > 0 define the operation (they need not come from an eigensolver).
        const QA = host([Da, Da]), QG = host([dout, dout]);
        const dA = Tensor.from(Float32Array.from({ length: Da }, (_, i) => 0.5 + (i % 5)), [Da]);
        const dG = Tensor.from(Float32Array.from({ length: dout }, (_, i) => 0.25 + (i % 3)), [dout]);
        const grad = host([dout, din]), gb = bias ? host([dout]) : undefined;
        const lambda = 0.03;
        const P = precondEigen64(joined(grad.toArray(), gb?.toArray(), dout, din), dout, Da, QA.toArray(), dA.toArray(), QG.toArray(), dG.toArray(), lambda);
        const out = poisoned([dout, din], dev), outBias = bias ? poisoned([dout], dev) : undefined;
        const r = kfac.preconditionEigen({ grad: on(grad, dev), gradBias: gb && on(gb, dev), A: { Q: on(QA, dev), d: on(dA, dev) }, G: { Q: on(QG, dev), d: on(dG, dev) }, damping: lambda, out, outBias });
        // 4 float32 GEMMs over ≤ 65 terms and a division by ≥ λ: relative 1e-4 of the result's norm.
        relClose(read(r.weight), weightPart(P, dout, din, Da), 1e-4, `eigen P_W ${dout}x${din}`);
        if (bias) relClose(read(r.bias), biasPart(P, dout, din, Da), 1e-4, 'eigen P_b');
        const Ainv = host([Da, Da]), Ginv = host([dout, dout]);
        const X = joined(grad.toArray(), gb?.toArray(), dout, din);
        const Pi = gemm64(gemm64(Ginv.toArray(), X, dout, Da, dout).c, Ainv.toArray(), dout, Da, Da).c;
        const r2 = kfac.preconditionInverse({ grad: on(grad, dev), gradBias: gb && on(gb, dev), Ainv: on(Ainv, dev), Ginv: on(Ginv, dev), out: poisoned([dout, din], dev), outBias: bias ? poisoned([dout], dev) : undefined });
        relClose(read(r2.weight), weightPart(Pi, dout, din, Da), 1e-4, `inverse P_W ${dout}x${din}`);
        if (bias) relClose(read(r2.bias), biasPart(Pi, dout, din, Da), 1e-4, 'inverse P_b');
      }
    },
  },
  {
    name: 'ekfacMoments and preconditionEkfac against float64 formulas (with and without bias; β = 0 never reads acc)',
    ops: ['ekfac_moments', 'precondition_ekfac'],
    run(dev) {
      for (const [R, dout, din, bias] of [[1, 1, 1, false], [37, 7, 33, true], [130, 33, 7, false]]) {
        const Da = din + (bias ? 1 : 0);
        const QA = host([Da, Da]), QG = host([dout, dout]);
        const x = host([R, din]), g = host([R, dout]);
        // (g Q_G)²ᵀ (x̃ Q_A)² in float64
        const xt = new Float64Array(R * Da);
        for (let r = 0; r < R; r++) {
          for (let j = 0; j < din; j++) xt[r * Da + j] = x.toArray()[r * din + j];
          if (bias) xt[r * Da + din] = 1;
        }
        const xa = gemm64(xt, QA.toArray(), R, Da, Da).c.map((v) => v * v);
        const gq = gemm64(g.toArray(), QG.toArray(), R, dout, dout).c.map((v) => v * v);
        const M = gemm64(gq, xa, dout, Da, R, true).c;
        const alpha = 1 / R;
        const acc = poisoned([dout, Da], dev);
        kfac.ekfacMoments(acc, on(x, dev), on(g, dev), { QA: on(QA, dev), QG: on(QG, dev), alpha, beta: 0, bias });
        // two float32 GEMMs, squares, one GEMM of R non-negative terms: relative 1e-4 of the norm
        relClose(read(acc), M.map((v) => alpha * v), 1e-4, `moments ${R}x${dout}x${Da}, β = 0`);
        kfac.ekfacMoments(acc, on(x, dev), on(g, dev), { QA: on(QA, dev), QG: on(QG, dev), alpha: 0.5, beta: 0.25, bias });
        relClose(read(acc), M.map((v) => 0.25 * alpha * v + 0.5 * v), 1e-4, `moments ${R}x${dout}x${Da}, β = 0.25`);
        if (dev !== 'cpu' && gpuStatus().ok) {
          // bf16 rows (bf16 activations on the GPU): a bf16 GEMM with Q_A[:din] and Q_G rounded to
          // bf16 (the bias row stays float32), float32 accumulation: against float64 with those
          // roundings, the float32 tolerance above
          const xb = on(x, dev, 'bfloat16'), gb16 = on(g, dev, 'bfloat16');
          const r16 = (a) => Array.from(Tensor.from(Float32Array.from(a), [a.length]).to('cpu', { dtype: 'bfloat16' }).to('cpu', { dtype: 'float32' }).toArray());
          const QAr = QA.toArray().map((v, k) => (k < din * Da ? r16([v])[0] : v));
          const xr = r16(x.toArray()), gr = r16(g.toArray());
          const xt16 = new Float64Array(R * Da);
          for (let r = 0; r < R; r++) {
            for (let j = 0; j < din; j++) xt16[r * Da + j] = xr[r * din + j];
            if (bias) xt16[r * Da + din] = 1;
          }
          const M16 = gemm64(gemm64(gr, r16(QG.toArray()), R, dout, dout).c.map((v) => v * v), gemm64(xt16, QAr, R, Da, Da).c.map((v) => v * v), dout, Da, R, true).c;
          kfac.ekfacMoments(acc, xb, gb16, { QA: on(QA, dev), QG: on(QG, dev), alpha, beta: 0, bias });
          relClose(read(acc), M16.map((v) => alpha * v), 1e-4, `moments, bf16 rows ${R}x${dout}x${Da}`);
        }
        const S = Tensor.from(Float32Array.from({ length: dout * Da }, (_, k) => 0.5 + (k % 7)), [dout, Da]);
        const grad = host([dout, din]), gb = bias ? host([dout]) : undefined;
        const c = 1.5, lambda = 0.03;
        const X = joined(grad.toArray(), gb?.toArray(), dout, din);
        const t2 = gemm64(QG.toArray(), gemm64(X, QA.toArray(), dout, Da, Da).c, dout, Da, dout, true).c;
        for (let k = 0; k < t2.length; k++) t2[k] /= c * S.toArray()[k] + lambda;
        const P = gemm64(gemm64(QG.toArray(), t2, dout, Da, dout).c, QA.toArray(), dout, Da, Da, false, true).c;
        const r = kfac.preconditionEkfac({ grad: on(grad, dev), gradBias: gb && on(gb, dev), QA: on(QA, dev), QG: on(QG, dev), S: on(S, dev), scale: c, damping: lambda, out: poisoned([dout, din], dev), outBias: bias ? poisoned([dout], dev) : undefined });
        relClose(read(r.weight), weightPart(P, dout, din, Da), 1e-4, `ekfac P_W ${dout}x${din}`);
        if (bias) relClose(read(r.bias), biasPart(P, dout, din, Da), 1e-4, 'ekfac P_b');
      }
    },
  },
  {
    name: 'kroneckerQuadratic ⟨D, G D A⟩ against float64 (with and without bias), one term and many in one call',
    ops: ['kron_quadratic_many'],
    run(dev) {
      const many = [];
      for (const [dout, din, bias] of [[1, 1, false], [7, 33, true], [33, 7, false]]) {
        const Da = din + (bias ? 1 : 0);
        const A = host([Da, Da]), G = host([dout, dout]);
        const dW = host([dout, din]), db = bias ? host([dout]) : undefined;
        const D = joined(dW.toArray(), db?.toArray(), dout, din);
        const T = gemm64(G.toArray(), gemm64(D, A.toArray(), dout, Da, Da).c, dout, Da, dout).c;
        let q = 0, scale = 0;
        for (let k = 0; k < D.length; k++) {
          q += D[k] * T[k];
          scale += Math.abs(D[k] * T[k]);
        }
        const term = { dW: on(dW, dev), db: db ? on(db, dev) : null, A: on(A, dev), G: on(G, dev) };
        const got = kfac.kroneckerQuadratic(term.dW, term.db, term.A, term.G);
        // two float32 GEMMs (≤ 34 terms each) and a float64 sum: 1e-5 of Σ|D∘T|
        assert.ok(Math.abs(got - q) <= 1e-5 * scale + 1e-30, `quadratic ${dout}x${din}: ${got} vs ${q}`);
        many.push({ term, got });
      }
      // the terms in one call: each the single call's value, bit for bit (the same GEMMs and row sums)
      const all = kfac.kroneckerQuadraticMany(many.map((m) => m.term));
      assert.deepEqual(all, many.map((m) => m.got));
      assert.deepEqual(kfac.kroneckerQuadraticMany([]), []);
    },
  },
  {
    name: 'dampedInverse, piDamping, preconditionInverseFactors against float64 Gauss–Jordan',
    ops: ['damped_inverse', 'pi_damping', 'precondition_inverse_factors'],
    run(dev) {
      for (const n of [1, 7, 33]) {
        const a = spdValues(n);
        const inv = linalg.dampedInverse(on(Tensor.from(a, [n, n]), dev), { damping: 0.05 });
        assert.equal(inv.device, dev);
        // Cholesky inverse of a matrix with condition ≤ ~1e3: relative 1e-4.
        relClose(read(inv), inverse64(a, n, 0.05), 1e-4, `(A + δI)⁻¹ n=${n}`);
      }
      for (const [dout, din, bias] of [[1, 1, false], [7, 33, true], [33, 7, false]]) {
        const Da = din + (bias ? 1 : 0);
        const A = spdValues(Da), G = spdValues(dout);
        const lambda = 0.03;
        let ta = 0, tg = 0;
        for (let i = 0; i < Da; i++) ta += A[i * Da + i];
        for (let i = 0; i < dout; i++) tg += G[i * dout + i];
        const pi = Math.sqrt(ta / Da / (tg / dout));
        const p = kfac.piDamping(on(Tensor.from(A, [Da, Da]), dev), on(Tensor.from(G, [dout, dout]), dev), lambda);
        // damping travels as float32: √λ of fround(λ)
        assert.ok(Math.abs(p.pi - pi) <= 1e-9 * pi && Math.abs(p.dampA - pi * Math.sqrt(Math.fround(lambda))) <= 1e-9 * p.dampA, `pi ${p.pi} vs ${pi}, dampA ${p.dampA}`);
        const grad = host([dout, din]), gb = bias ? host([dout]) : undefined;
        const X = joined(grad.toArray(), gb?.toArray(), dout, din);
        const sl = Math.sqrt(Math.fround(lambda));
        const want = gemm64(gemm64(inverse64(G, dout, Math.fround(sl / pi)), X, dout, Da, dout).c, inverse64(A, Da, Math.fround(pi * sl)), dout, Da, Da).c;
        const r = kfac.preconditionInverseFactors({ grad: on(grad, dev), gradBias: gb && on(gb, dev), A: on(Tensor.from(A, [Da, Da]), dev), G: on(Tensor.from(G, [dout, dout]), dev), damping: lambda, out: poisoned([dout, din], dev), outBias: bias ? poisoned([dout], dev) : undefined });
        assert.ok(Math.abs(r.pi - pi) <= 1e-9 * pi);
        relClose(read(r.weight), weightPart(want, dout, din, Da), 1e-4, `inverse-factors P_W ${dout}x${din}`);
        if (bias) relClose(read(r.bias), biasPart(want, dout, din, Da), 1e-4, 'inverse-factors P_b');
      }
    },
  },
  {
    name: 'Newton-step clipping global / per-tensor / fisher: float64 norms and scales, values × float32(scale)',
    ops: ['clip_newton_step'],
    run(dev) {
      const sizes = [1, 7, 33, 257, 20000, 0, 65537];
      for (const mode of ['global', 'per-tensor', 'fisher']) {
        const hs = sizes.map((n) => host([n])), gs = sizes.map((n) => host([n]));
        const hv = hs.map((t) => t.toArray()), gv = gs.map((t) => t.toArray());
        const ds = hs.map((t) => on(t, dev));
        const ss = hv.map((x) => x.reduce((s, v) => s + v * v, 0));
        const vg = hv.reduce((s, x, i) => s + x.reduce((a, v, k) => a + v * gv[i][k], 0), 0);
        const total = Math.sqrt(ss.reduce((a, b) => a + b, 0));
        const opts = mode === 'fisher' ? { mode, c: 1e-3, lr: 0.1, grads: gs.map((t) => on(t, dev)) } : { mode, maxNorm: mode === 'global' ? 50 : 10 };
        const r = kfac.clipNewtonStep(ds, opts);
        const want = sizes.map((_, i) => mode === 'fisher' ? Math.min(1, Math.sqrt(1e-3 / (0.01 * Math.abs(vg)))) : mode === 'global' ? Math.min(1, 50 / total) : Math.min(1, 10 / Math.sqrt(ss[i])) || 1);
        assert.ok(Math.abs(r.norm - total) <= 1e-12 * total, `${mode} total norm`);
        for (let i = 0; i < sizes.length; i++) {
          assert.ok(Math.abs(r.norms[i] - Math.sqrt(ss[i])) <= 1e-12 * Math.sqrt(ss[i]) + 1e-300, `${mode} norm ${i}`);
          assert.ok(Math.abs(r.scales[i] - want[i]) <= 1e-12 * want[i], `${mode} scale ${i}: ${r.scales[i]} vs ${want[i]}`);
          // One float32 multiply by float32(scale); the scales agree to 1e-12, so within 1 ulp.
          const f = Math.fround(r.scales[i]);
          close(read(ds[i]), hv[i].map((v) => Math.fround(v * f)), (k) => Math.abs(hv[i][k] * f) * 2 ** -23, `${mode} values ${i}`);
        }
        assert.ok(r.clipped && r.clippedTensors.some(Boolean), `${mode}: the options are chosen so that clipping fires`);
      }
      const a = host([100]), da = on(a, dev);
      assert.throws(() => kfac.clipNewtonStep([da, on(Tensor.from(new Float32Array([1, NaN, 2]), [3]), dev)], { maxNorm: 1e-3 }), (e) => e instanceof NotFiniteError && /tensors\[1\]/.test(e.message));
      assert.deepEqual(read(da), a.toArray(), 'nothing scaled after a NaN');
    },
  },
  {
    name: 'the step record: sumSquaresTo (and its flag), dotManyTo, kronQuadraticManyTo, trustClip, emaCommit, copyRangeIf, eighBatchedTo against float64',
    ops: ['sum_squares_to', 'dot_many_to', 'kron_quadratic_many_to', 'trust_clip', 'ema_commit', 'copy_range_if', 'eigh_batched_to'],
    run(dev) {
      const n = native();
      const rec = on(Tensor.zeros([64]), dev);
      // a value slot is a float64's bytes in two floats (native/core/record_math.h)
      const values = () => {
        const raw = read(rec);
        return Array.from(new Float64Array(raw.buffer, raw.byteOffset, raw.length / 2));
      };
      const sq = (a) => a.reduce((s, v) => s + v * v, 0);
      // sums into slots 0..3 and their flag into 4; a NaN list's flag into 6
      const sizes = [0, 7, 16384 * 2 + 3, 33];
      const xs = sizes.map((k) => host([k]));
      n.sumSquaresTo(xs.map((x) => on(x, dev).handle), rec.handle, 0, 4);
      n.sumSquaresTo([on(Tensor.from(new Float32Array([1, NaN]), [2]), dev).handle], rec.handle, 5, 6);
      // the trust-ratio clip (per-tensor) into slots 7..11
      const ps = [host([9]), host([40001]), host([5])], ss = [host([9], 10), host([40001], 0.01), host([5], 3)];
      const pv = ps.map((t) => t.toArray()), sv = ss.map((t) => t.toArray());
      const dsteps = ss.map((t) => on(t, dev));
      const k = 0.2;
      n.trustClip(dsteps.map((t) => t.handle), ps.map((t) => on(t, dev).handle), { k, floor: 1e-3, perTensor: true }, rec.handle, 7);
      // the guarded EMA and copy: slot 4 is 1, slot 6 is 0
      const F = host([37]), X = host([37]);
      const dF1 = on(F, dev), dF0 = on(F, dev), dX = on(X, dev);
      n.emaCommit(dF1.handle, dX.handle, 0.9, rec.handle, 4);
      n.emaCommit(dF0.handle, dX.handle, 0.9, rec.handle, 6);
      const src = host([50]), dst1 = on(host([20]), dev), dst0 = on(host([20]), dev);
      const d0 = read(dst0), d1 = read(dst1), dsrc = on(src, dev);
      n.copyRangeIf(dsrc.handle, 11, dst1.handle, 3, 13, rec.handle, 4);
      n.copyRangeIf(dsrc.handle, 11, dst0.handle, 3, 13, rec.handle, 6);
      // the batched solve's flag into slot 12 (three SPD 5×5 and two 40×40 matrices)
      const stacks = [[3, 5], [2, 40]].map(([b, m]) => {
        const data = new Float32Array(b * m * m);
        for (let j = 0; j < b; j++) data.set(spdValues(m), j * m * m);
        const A = Tensor.from(data, [b, m, m]);
        return { b, m, A, dA: on(A, dev), dv: on(Tensor.zeros([b, m]), dev), dq: on(Tensor.zeros([b, m, m]), dev) };
      });
      stacks.forEach((st, i) => n.eighBatchedTo(st.dA.handle, st.dv.handle, st.dq.handle, { clampNonNegative: true }, rec.handle, 12 + i));
      // ⟨x, y⟩ of three pairs into slots 14..16; ⟨D, G D A⟩ of two terms (one with a bias) into 17..18
      const px = [host([0]), host([7]), host([16384 + 9])], py = [host([0]), host([7]), host([16384 + 9])];
      n.dotManyTo(px.map((t) => on(t, dev).handle), py.map((t) => on(t, dev).handle), rec.handle, 14);
      const kt = [[5, 3, true], [4, 6, false]].map(([dout, din, bias]) => {
        const Da = din + (bias ? 1 : 0);
        const A = Tensor.from(spdValues(Da), [Da, Da]), G = Tensor.from(spdValues(dout), [dout, dout]);
        return { dW: host([dout, din]), db: bias ? host([dout]) : null, A, G, dout, din, Da };
      });
      n.kronQuadraticManyTo(kt.map((t) => on(t.dW, dev).handle), kt.map((t) => (t.db ? on(t.db, dev).handle : null)), kt.map((t) => on(t.A, dev).handle), kt.map((t) => on(t.G, dev).handle), rec.handle, 17);
      const v = values();
      px.forEach((x, i) => {
        const a = x.toArray(), b = py[i].toArray();
        let d = 0, m = 0;
        for (let k = 0; k < a.length; k++) (d += a[k] * b[k]), (m += Math.abs(a[k] * b[k]));
        assert.ok(Math.abs(v[14 + i] - d) <= 1e-12 * (m + 1), `dotManyTo[${i}]`);
      });
      kt.forEach((t, i) => {
        const D = joined(t.dW.toArray(), t.db ? t.db.toArray() : null, t.dout, t.din);
        const DA = gemm64(D, t.A.toArray(), t.dout, t.Da, t.Da).c, GDA = gemm64(t.G.toArray(), DA, t.dout, t.Da, t.dout).c;
        let q = 0, m = 0;
        for (let k = 0; k < D.length; k++) (q += D[k] * GDA[k]), (m += Math.abs(D[k] * GDA[k]));
        assert.ok(Math.abs(v[17 + i] - q) <= 1e-5 * (m + 1e-30), `kronQuadraticManyTo[${i}]: ${v[17 + i]} vs ${q}`);
      });
      sizes.forEach((_, i) => {
        const want = sq(xs[i].toArray());
        assert.ok(Math.abs(v[i] - want) <= 1e-12 * (want + 1), `sumSquaresTo[${i}]`);
      });
      assert.equal(v[4], 1, 'all-finite flag');
      assert.equal(v[6], 0, 'NaN flag');
      // trust clip against float64
      const size = pv.reduce((a, p) => a + p.length, 0);
      const rms = Math.max(Math.sqrt(pv.reduce((a, p) => a + sq(p), 0) / size), 1e-3);
      const taus = pv.map((p) => k * Math.sqrt(p.length) * Math.max(Math.sqrt(sq(p) / p.length), rms));
      const scales = sv.map((x, i) => Math.min(1, taus[i] / Math.sqrt(sq(x))));
      assert.ok(Math.abs(v[7] - Math.sqrt(sv.reduce((a, x) => a + sq(x), 0))) <= 1e-12 * v[7], 'trustClip norm');
      assert.ok(Math.abs(v[8] - Math.min(...scales)) <= 1e-12 * v[8], 'trustClip scale');
      assert.ok(Math.abs(v[9] - Math.min(...taus)) <= 1e-12 * v[9], 'trustClip threshold');
      assert.equal(v[10], 1, 'the options are chosen so that clipping fires');
      assert.equal(v[11], 0, 'no bad step');
      assert.ok(scales.some((x) => x === 1) && scales.some((x) => x < 1), 'some steps clip, some do not');
      sv.forEach((x, i) => {
        const f = Math.fround(scales[i]);
        close(read(dsteps[i]), x.map((e) => Math.fround(e * f)), (j) => Math.abs(x[j] * f) * 2 ** -23 + 1e-30, `trustClip step ${i}`);
      });
      // guarded EMA: β·F then + (1 − β)·X (two float32 roundings; a device may fuse them: 2u)
      const fv = F.toArray(), xv = X.toArray();
      close(read(dF1), fv.map((f, i) => 0.9 * f + 0.1 * xv[i]), (i) => (Math.abs(0.9 * fv[i]) + Math.abs(0.1 * xv[i])) * 2 * U + 1e-30, 'emaCommit (flag 1)');
      assert.deepEqual(read(dF0), fv, 'emaCommit (flag 0) leaves F');
      const s1 = read(dst1);
      for (let i = 0; i < 20; i++) assert.equal(s1[i], i >= 3 && i < 16 ? src.toArray()[i + 8] : d1[i], `copyRangeIf (flag 1) [${i}]`);
      assert.deepEqual(read(dst0), d0, 'copyRangeIf (flag 0) leaves dst');
      stacks.forEach((st, i) => {
        assert.equal(v[12 + i], 1, `eighBatchedTo flag ${st.m}`);
        const A = st.A.toArray(), w = read(st.dv), Q = read(st.dq);
        for (let b = 0; b < st.b; b++) {
          const m = st.m;
          const q = eigenQuality(A.subarray(b * m * m, (b + 1) * m * m), Q.subarray(b * m * m, (b + 1) * m * m), w.subarray(b * m, (b + 1) * m), m);
          assert.ok(q.residual < 1e-5 && q.orth < 1e-5, `eighBatchedTo ${m}×${m} [${b}]: ${JSON.stringify(q)}`);
        }
      });
      assert.throws(() => n.trustClip([dsteps[0].handle], [dsteps[0].handle], { k, floor: 1e-3, perTensor: true }, rec.handle, 7), /params\[0\]/);
      assert.throws(() => n.sumSquaresTo([dsteps[0].handle], rec.handle, 40, -1), /offset/);
    },
  },
  {
    name: 'AdamW and SGD updates against float64 torch-algorithm references (relative 1e-6)',
    ops: ['adamw_step', 'sgd_step'],
    run(dev) {
      const n = 1031;
      for (const [amsgrad, maximize, wd] of [[false, false, 0.01], [true, false, 0], [false, true, 0.1]]) {
        const p = host([n]).toArray(), m = new Float64Array(n), v = new Float64Array(n), vmax = new Float64Array(n);
        const P = [Tensor.from(p, [n]), Tensor.zeros([n]), Tensor.zeros([n]), Tensor.zeros([n])].map((t) => on(t, dev));
        const ref = Float64Array.from(p);
        for (let step = 1; step <= 3; step++) {
          const g = host([n]), gv = g.toArray();
          const o = { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: wd, step, amsgrad, maximize };
          native().adamwStep(P[0].handle, on(g, dev).handle, P[1].handle, P[2].handle, amsgrad ? P[3].handle : null, o);
          const bc1 = 1 - 0.9 ** step, bc2 = 1 - 0.999 ** step;
          for (let i = 0; i < n; i++) {
            const gi = maximize ? -gv[i] : gv[i];
            ref[i] *= 1 - 1e-2 * wd;
            m[i] = 0.9 * m[i] + 0.1 * gi;
            v[i] = 0.999 * v[i] + 0.001 * gi * gi;
            vmax[i] = Math.max(vmax[i], v[i]);
            ref[i] -= (1e-2 / bc1) * m[i] / (Math.sqrt(amsgrad ? vmax[i] : v[i]) / Math.sqrt(bc2) + 1e-8);
          }
        }
        // float32 state vs float64 reference over 3 steps: relative 1e-6 of the parameter norm.
        relClose(read(P[0]), ref, 1e-6, `adamw ams=${amsgrad} max=${maximize}`);
        relClose(read(P[1]), m, 1e-6, 'adamw expAvg');
      }
      for (const [momentum, dampening, nesterov, wd] of [[0, 0, false, 0], [0.9, 0.1, false, 0.01], [0.9, 0, true, 0]]) {
        const p = host([n]).toArray(), buf = new Float64Array(n), ref = Float64Array.from(p);
        const P = on(Tensor.from(p, [n]), dev), B = Tensor.zeros([n], { device: dev });
        for (let step = 1; step <= 3; step++) {
          const g = host([n]), gv = g.toArray();
          const o = { lr: 0.05, momentum, dampening, weightDecay: wd, nesterov, maximize: false, firstStep: step === 1 };
          native().sgdStep(P.handle, on(g, dev).handle, momentum ? B.handle : null, o);
          for (let i = 0; i < n; i++) {
            let d = gv[i] + wd * ref[i];
            if (momentum) {
              buf[i] = step === 1 ? d : momentum * buf[i] + (1 - dampening) * d;
              d = nesterov ? d + momentum * buf[i] : buf[i];
            }
            ref[i] -= 0.05 * d;
          }
        }
        relClose(read(P), ref, 1e-6, `sgd momentum=${momentum} nesterov=${nesterov}`);
      }
    },
  },
  ...attentionCases,
];

// The nn ops' cases live in parity-nn.mjs (attention's in parity-attention.mjs, above).
cases.push(...nnCases);

/**
 * Ops whose parity lives elsewhere: none now — every op of the list has a case here (attention's
 * are in parity-attention.mjs). An op added without a case fails checkCoverage.
 */
export const cpuOnly = [];

/** Device cases: they need a second device (real or loopback) and run once. */
export const deviceCases = [
  {
    name: 'typed errors: mixed devices (named argument), device data read from JS, disposed tensors, missing kernels',
    run() {
      const a = host([3, 3]), d = a.to('cuda');
      assert.throws(() => linalg.matmul(d, a), (e) => e instanceof DeviceError && e.argument === 'b' && /like a/.test(e.message));
      assert.throws(() => kfac.updateFactor(Tensor.zeros([3, 3]), d), (e) => e instanceof DeviceError && e.argument === 'factor');
      assert.throws(() => d.toArray(), (e) => e instanceof DeviceError && /t\.to\('cpu'\)/.test(e.message));
      const gone = a.to('cuda');
      gone.dispose();
      assert.throws(() => ops.sum(gone), DisposedError);
      if (native().cuda) {
        // an op the CUDA build has no kernel for is the typed error after its checks, never a host round trip
        if (!native().opList().find((o) => o.name === 'attention_forward').cuda) {
          const q = Tensor.zeros([1, 2, 1, 4], { device: 'cuda' }), lse = Tensor.zeros([1, 1, 2], { device: 'cuda' });
          assert.throws(() => nn.functional.attentionForward(q, q, q, Tensor.zeros([1, 2, 1, 4], { device: 'cuda' }), lse),
            (e) => e instanceof DeviceError && /op attention_forward has no cuda kernel/.test(e.message));
        }
      } else {
        // the loopback has the CPU nn kernels: same values as on the CPU, outputs on cuda
        const y = poisoned([3, 3], 'cuda'), yh = poisoned([3, 3], 'cpu');
        nn.functional.geluForward(d, y);
        nn.functional.geluForward(a, yh);
        assert.deepEqual(read(y), read(yh));
        const w = host([2, 3]);
        const out = poisoned([3, 2], 'cuda');
        nn.functional.linearForward(d, w.to('cuda'), null, out);
        relClose(read(out), gemm64(read(a), read(w), 3, 2, 3, false, true).c, 1e-6, 'linear_forward on the loopback');
        assert.ok(native().opList().every((o) => o.cuda), 'the loopback lists every op under cuda');
      }
      // an nn op with arguments on two devices names the odd one
      assert.throws(() => nn.functional.geluForward(d, Tensor.zeros([3, 3])), (e) => e instanceof DeviceError && e.argument === 'out');
      assert.equal(read(d).length, 9, 'the device keeps working after the errors');
    },
  },
  ...ltCases,
];

/** Throws unless every op of the op list is covered: a parity case, or listed as CPU-only. */
export function checkCoverage() {
  const covered = new Set(cases.flatMap((c) => c.ops));
  for (const op of native().opList()) {
    if (covered.has(op.name)) continue;
    assert.ok(cpuOnly.includes(op.name), `op ${op.name} is in the op list without a parity case (add one to test/cuda/parity.mjs)`);
    assert.ok(!op.cuda || native().cuda === undefined, `op ${op.name} has a cuda kernel but only a CPU-only entry: add a parity case`);
  }
  for (const name of covered) assert.ok(native().opList().some((o) => o.name === name), `parity case for unknown op ${name}`);
}
