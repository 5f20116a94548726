// The nn ops' parity cases (part of test/cuda/parity.mjs's `cases`): each runs the public
// nn.functional API on one device and checks against a float64 reference computed here — never
// against another kernel. Outputs start as NaN; sizes are odd. On a GPU these run the CUDA
// kernels (native/cuda/nn_*_body.h); without one, the CPU loopback's CPU kernels, and under the
// CUDA emulation (test/cuda/cuda-emulation.test.ts) the CUDA kernels' bodies on the host.
// Tolerances are relative L2 errors over the whole output (float32 arithmetic with double
// reductions: ~1e-7; we allow 1e-5, far below any formula error), exact where the op only moves
// or masks values.
import assert from 'node:assert/strict';

import { nn, Tensor } from '../../dist/index.js';

const F = nn.functional;
let seed = 7000;
/** n uniform values in [−s, s) as float32 (mulberry32-like LCG, independent of the library). */
function uniform(n, s = 1) {
  let x = seed++ * 2654435761 % 2 ** 32;
  return Float32Array.from({ length: n }, () => {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    return (x / 2 ** 32 * 2 - 1) * s;
  });
}
const numel = (s) => s.reduce((a, b) => a * b, 1);
const T = (a, shape, dev, dtype) => Tensor.from(a, shape).to(dev, dtype ? { dtype } : {});
const nan = (shape, dev) => T(new Float32Array(numel(shape)).fill(NaN), shape, dev);
const read = (t) => (t.device === 'cpu' ? t.toArray() : t.to('cpu').toArray());
const bf16 = (a) => Float32Array.from(a, (v) => {
  const u = new Uint32Array(new Float32Array([v]).buffer)[0];
  return new Float32Array(new Uint32Array([((u + 0x7fff + ((u >>> 16) & 1)) & 0xffff0000) >>> 0]).buffer)[0];
});

function rel(got, want, tol, what) {
  assert.equal(got.length, want.length, `${what}: length`);
  let e2 = 0, w2 = 0;
  for (let i = 0; i < got.length; i++) {
    assert.ok(Number.isFinite(got[i]), `${what}[${i}] = ${got[i]} (unwritten or not finite)`);
    e2 += (got[i] - want[i]) ** 2;
    w2 += want[i] ** 2;
  }
  const r = Math.sqrt(e2) / Math.max(Math.sqrt(w2), 1e-30);
  assert.ok(r <= tol, `${what}: relative error ${r} > ${tol}`);
}
const exact = (got, want, what) => assert.deepEqual(Array.from(got), Array.from(want), what);

/** y[N, OUT] = x·Wᵀ (+ b) with W [OUT, IN], float64. */
function lin(x, W, b, N, IN, OUT) {
  const y = new Float64Array(N * OUT);
  for (let n = 0; n < N; n++)
    for (let o = 0; o < OUT; o++) {
      let s = b ? b[o] : 0;
      for (let i = 0; i < IN; i++) s += x[n * IN + i] * W[o * IN + i];
      y[n * OUT + o] = s;
    }
  return y;
}
/** dx = dy·W, dW = dyᵀ·x, db = Σ dy (float64). */
function linBack(x, W, dy, N, IN, OUT) {
  const dx = new Float64Array(N * IN), dW = new Float64Array(OUT * IN), db = new Float64Array(OUT);
  for (let n = 0; n < N; n++)
    for (let o = 0; o < OUT; o++) {
      const g = dy[n * OUT + o];
      db[o] += g;
      for (let i = 0; i < IN; i++) {
        dx[n * IN + i] += g * W[o * IN + i];
        dW[o * IN + i] += g * x[n * IN + i];
      }
    }
  return { dx, dW, db };
}
/** Layer/RMS norm forward and backward by definition (float64). */
function norm64(x, w, b, g, N, C, eps, rms) {
  const y = new Float64Array(N * C), dx = new Float64Array(N * C), dw = new Float64Array(C), db = new Float64Array(C);
  for (let n = 0; n < N; n++) {
    let m = 0, v = 0;
    if (!rms) for (let c = 0; c < C; c++) m += x[n * C + c] / C;
    for (let c = 0; c < C; c++) v += (x[n * C + c] - m) ** 2 / C;
    const r = 1 / Math.sqrt(v + eps);
    let a = 0, bb = 0;
    for (let c = 0; c < C; c++) {
      const xh = (x[n * C + c] - m) * r, dh = g[n * C + c] * w[c];
      y[n * C + c] = xh * w[c] + (b ? b[c] : 0);
      a += dh / C;
      bb += (dh * xh) / C;
      dw[c] += g[n * C + c] * xh;
      db[c] += g[n * C + c];
    }
    for (let c = 0; c < C; c++) dx[n * C + c] = r * (g[n * C + c] * w[c] - (rms ? 0 : a) - (x[n * C + c] - m) * r * bb);
  }
  return { y, dx, dw, db };
}
/** erf by its Maclaurin series (|x| ≤ 3.5). */
function erf(x) {
  let term = x, sum = x;
  for (let n = 1; n < 200; n++) {
    term *= (-x * x) / n;
    sum += term / (2 * n + 1);
  }
  return (2 / Math.sqrt(Math.PI)) * sum;
}
const sig = (v) => 1 / (1 + Math.exp(-v));
const d1 = (f, v) => (f(v + 1e-6) - f(v - 1e-6)) / 2e-6; // float64 central difference, error ~1e-10
/** splitmix64 in BigInt: the dropout stream by its definition (native/cpu/nn_dropout.h). */
function keepMask(n, p, seed) {
  const M = (1n << 64n) - 1n;
  const mix = (x) => {
    x = (x + 0x9E3779B97F4A7C15n) & M;
    x = ((x ^ (x >> 30n)) * 0xBF58476D1CE4E5B9n) & M;
    x = ((x ^ (x >> 27n)) * 0x94D049BB133111EBn) & M;
    return x ^ (x >> 31n);
  };
  const key = mix(BigInt(seed) ^ 0x3C6EF372FE94F82Bn), thr = BigInt(Math.floor(Math.fround(p) * 16777216 + 0.5));
  return Array.from({ length: n }, (_, i) => (mix((key + BigInt(i)) & M) >> 40n) >= thr);
}

export const nnCases = [
  {
    name: 'linear: float32 weight (Linear and Conv1D layouts), bias; dx (= and +=), dW +=, db +=',
    ops: ['linear_forward', 'linear_backward'],
    run(dev) {
      const N = 7, IN = 33, OUT = 129;
      const x = uniform(N * IN), W = uniform(OUT * IN), b = uniform(OUT), dy = uniform(N * OUT), dx0 = uniform(N * IN), dW0 = uniform(OUT * IN);
      rel(read(F.linearForward(T(x, [N, IN], dev), T(W, [OUT, IN], dev), T(b, [OUT], dev), nan([N, OUT], dev))), lin(x, W, b, N, IN, OUT), 1e-5, 'y');
      const want = linBack(x, W, dy, N, IN, OUT);
      const dx = T(dx0, [N, IN], dev), dW = T(dW0, [OUT, IN], dev), db = T(new Float32Array(OUT), [OUT], dev);
      F.linearBackward(T(x, [N, IN], dev), T(W, [OUT, IN], dev), T(dy, [N, OUT], dev), { dx, dW, db, accumulateDx: true });
      rel(read(dx), want.dx.map((v, i) => v + dx0[i]), 1e-5, 'dx +=');
      rel(read(dW), want.dW.map((v, i) => v + dW0[i]), 1e-5, 'dW +=');
      rel(read(db), want.db, 1e-5, 'db');
      // Conv1D: W stored [IN, OUT]
      const Wt = new Float32Array(IN * OUT);
      for (let o = 0; o < OUT; o++) for (let i = 0; i < IN; i++) Wt[i * OUT + o] = W[o * IN + i];
      rel(read(F.linearForward(T(x, [N, IN], dev), T(Wt, [IN, OUT], dev), null, nan([N, OUT], dev), 'conv1d')), lin(x, W, null, N, IN, OUT), 1e-5, 'y conv1d');
      const dxc = nan([N, IN], dev), dWc = T(new Float32Array(IN * OUT), [IN, OUT], dev);
      F.linearBackward(T(x, [N, IN], dev), T(Wt, [IN, OUT], dev), T(dy, [N, OUT], dev), { dx: dxc, dW: dWc, db: null }, 'conv1d');
      rel(read(dxc), want.dx, 1e-5, 'dx conv1d');
      const dWt = new Float64Array(IN * OUT);
      for (let o = 0; o < OUT; o++) for (let i = 0; i < IN; i++) dWt[i * OUT + o] = want.dW[o * IN + i];
      rel(read(dWc), dWt, 1e-5, 'dW conv1d');
    },
  },
  {
    name: 'linear with a bfloat16 weight: x and dy rounded to bf16, float32 accumulation; db from the float32 dy',
    ops: ['linear_forward', 'linear_backward', 'cast'],
    run(dev) {
      const N = 33, IN = 65, OUT = 17;
      const x = uniform(N * IN), W = uniform(OUT * IN), b = uniform(OUT), dy = uniform(N * OUT);
      const Wb = T(W, [OUT, IN], dev, 'bfloat16');
      rel(read(F.linearForward(T(x, [N, IN], dev), Wb, T(b, [OUT], dev), nan([N, OUT], dev))), lin(bf16(x), bf16(W), b, N, IN, OUT), 1e-5, 'y bf16');
      const dx = nan([N, IN], dev), db = T(new Float32Array(OUT), [OUT], dev);
      F.linearBackward(T(x, [N, IN], dev), Wb, T(dy, [N, OUT], dev), { dx, dW: null, db });
      rel(read(dx), linBack(x, bf16(W), bf16(dy), N, IN, OUT).dx, 1e-5, 'dx bf16');
      rel(read(db), linBack(x, W, dy, N, IN, OUT).db, 1e-5, 'db bf16');
    },
  },
  {
    name: 'embedding: gather, and the scatter-add of repeated ids (+=)',
    ops: ['embedding_forward', 'embedding_backward'],
    run(dev) {
      const V = 5, C = 129, ids = Int32Array.from([3, 0, 3, 4, 1, 3, 0]), N = ids.length;
      const W = uniform(V * C), dout = uniform(N * C), dW0 = uniform(V * C);
      const want = new Float32Array(N * C);
      for (let n = 0; n < N; n++) want.set(W.subarray(ids[n] * C, ids[n] * C + C), n * C);
      exact(read(F.embeddingForward(ids, T(W, [V, C], dev), nan([N, C], dev))), want, 'gather');
      const dW = T(dW0, [V, C], dev);
      F.embeddingBackward(ids, T(dout, [N, C], dev), dW);
      const ref = Float64Array.from(dW0);
      for (let n = 0; n < N; n++) for (let c = 0; c < C; c++) ref[ids[n] * C + c] += dout[n * C + c];
      rel(read(dW), ref, 1e-6, 'scatter-add');
    },
  },
  {
    name: 'layernorm and rmsnorm: out, mean/rstd; dx, dw +=, db += (rows of 1000 and of 3)',
    ops: ['layernorm_forward', 'layernorm_backward', 'rmsnorm_forward', 'rmsnorm_backward'],
    run(dev) {
      for (const [N, C] of [[7, 1000], [33, 3]]) {
        const x = uniform(N * C, 2), w = uniform(C), b = uniform(C), g = uniform(N * C), eps = 1e-5;
        const ln = norm64(x, w, b, g, N, C, eps, false), rms = norm64(x, w, null, g, N, C, eps, true);
        const xt = T(x, [N, C], dev), wt = T(w, [C], dev), mean = nan([N], dev), rstd = nan([N], dev);
        rel(read(F.layerNormForward(xt, wt, T(b, [C], dev), eps, nan([N, C], dev), mean, rstd)), ln.y, 1e-5, `layernorm y ${C}`);
        const dx = nan([N, C], dev), dw = T(new Float32Array(C), [C], dev), db = T(new Float32Array(C), [C], dev);
        F.layerNormBackward(xt, wt, mean, rstd, T(g, [N, C], dev), { dx, dw, db });
        rel(read(dx), ln.dx, 1e-5, `layernorm dx ${C}`);
        rel(read(dw), ln.dw, 1e-5, `layernorm dw ${C}`);
        rel(read(db), ln.db, 1e-5, `layernorm db ${C}`);
        const rr = nan([N], dev);
        rel(read(F.rmsNormForward(xt, wt, eps, nan([N, C], dev), rr)), rms.y, 1e-5, `rmsnorm y ${C}`);
        const rdx = nan([N, C], dev), rdw = T(new Float32Array(C), [C], dev);
        F.rmsNormBackward(xt, wt, rr, T(g, [N, C], dev), { dx: rdx, dw: rdw });
        rel(read(rdx), rms.dx, 1e-5, `rmsnorm dx ${C}`);
        rel(read(rdw), rms.dw, 1e-5, `rmsnorm dw ${C}`);
      }
    },
  },
  {
    name: 'layernorm and rmsnorm with the residual add fused (add: { residual, sum }): the sum exact, the norm of x + r against float64',
    ops: ['layernorm_forward', 'rmsnorm_forward'],
    run(dev) {
      for (const [N, C] of [[7, 1000], [33, 3]]) {
        const x = uniform(N * C, 2), r = uniform(N * C, 2), w = uniform(C), b = uniform(C), eps = 1e-5;
        const s32 = Float32Array.from(x, (v, i) => v + r[i]); // the float32 sum the add op stores
        const ln = norm64(s32, w, b, new Float32Array(N * C), N, C, eps, false), rms = norm64(s32, w, null, new Float32Array(N * C), N, C, eps, true);
        const xt = T(x, [N, C], dev), rt = T(r, [N, C], dev), wt = T(w, [C], dev);
        const sum = nan([N, C], dev);
        rel(read(F.layerNormForward(xt, wt, T(b, [C], dev), eps, nan([N, C], dev), nan([N], dev), nan([N], dev), { residual: rt, sum })), ln.y, 1e-5, `layernorm of x + r, ${C}`);
        exact(read(sum), s32, `layernorm's sum ${C}`);
        const sum2 = nan([N, C], dev);
        rel(read(F.rmsNormForward(xt, wt, eps, nan([N, C], dev), nan([N], dev), { residual: rt, sum: sum2 })), rms.y, 1e-5, `rmsnorm of x + r, ${C}`);
        exact(read(sum2), s32, `rmsnorm's sum ${C}`);
      }
    },
  },
  {
    name: 'gelu (erf, tanh), silu, swiglu: forward and backward, in place',
    ops: ['gelu_forward', 'gelu_backward', 'silu_forward', 'silu_backward', 'swiglu_forward', 'swiglu_backward'],
    run(dev) {
      const n = 7 * 129, s = [7, 129], x = uniform(n, 3), u = uniform(n), d = uniform(n);
      const fs = {
        erf: (v) => 0.5 * v * (1 + erf(v / Math.SQRT2)),
        tanh: (v) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3))),
      };
      for (const kind of ['erf', 'tanh']) {
        const f = fs[kind];
        rel(read(F.geluForward(T(x, s, dev), nan(s, dev), kind)), Float64Array.from(x, f), 1e-5, `gelu ${kind}`);
        const di = T(d, s, dev);
        rel(read(F.geluBackward(T(x, s, dev), di, di, kind)), Float64Array.from(x, (v, i) => d[i] * d1(f, v)), 1e-5, `gelu' ${kind} in place`);
      }
      const silu = (v) => v * sig(v);
      const xi = T(x, s, dev);
      rel(read(F.siluForward(xi, xi)), Float64Array.from(x, silu), 1e-5, 'silu in place');
      rel(read(F.siluBackward(T(x, s, dev), T(d, s, dev), nan(s, dev))), Float64Array.from(x, (v, i) => d[i] * d1(silu, v)), 1e-5, "silu'");
      rel(read(F.swigluForward(T(x, s, dev), T(u, s, dev), nan(s, dev))), Float64Array.from(x, (v, i) => silu(v) * u[i]), 1e-5, 'swiglu');
      const dg = nan(s, dev), du = nan(s, dev);
      F.swigluBackward(T(x, s, dev), T(u, s, dev), T(d, s, dev), dg, du);
      rel(read(dg), Float64Array.from(x, (v, i) => d[i] * u[i] * d1(silu, v)), 1e-5, 'swiglu dgate');
      rel(read(du), Float64Array.from(x, (v, i) => d[i] * silu(v)), 1e-5, 'swiglu dup');
    },
  },
  {
    name: 'relu, gated units act(gate)·up (gelu erf / tanh, relu, silu): forward and backward, in place',
    ops: ['relu_forward', 'relu_backward', 'gated_forward', 'gated_backward'],
    run(dev) {
      const n = 5 * 131, s = [5, 131], x = uniform(n, 3), u = uniform(n), d = uniform(n);
      const relu = (v) => Math.max(v, 0);
      const xi = T(x, s, dev);
      exact(read(F.reluForward(xi, xi)), Float32Array.from(x, relu), 'relu in place');
      exact(read(F.reluBackward(T(x, s, dev), T(d, s, dev), nan(s, dev))), Float32Array.from(x, (v, i) => (v > 0 ? d[i] : 0)), "relu'");
      const acts = {
        gelu: (v) => 0.5 * v * (1 + erf(v / Math.SQRT2)),
        gelu_tanh: (v) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3))),
        relu,
        silu: (v) => v * sig(v),
      };
      for (const [act, f] of Object.entries(acts)) {
        const df = act === 'relu' ? (v) => (v > 0 ? 1 : 0) : (v) => d1(f, v);
        rel(read(F.gatedForward(T(x, s, dev), T(u, s, dev), nan(s, dev), act)), Float64Array.from(x, (v, i) => f(v) * u[i]), 1e-5, `gated ${act}`);
        // in place: dgate aliases dout, dup aliases up
        const ut = T(u, s, dev), dt = T(d, s, dev);
        F.gatedBackward(T(x, s, dev), ut, dt, dt, ut, act);
        rel(read(dt), Float64Array.from(x, (v, i) => d[i] * u[i] * df(v)), 1e-5, `gated ${act} dgate in place`);
        rel(read(ut), Float64Array.from(x, (v, i) => d[i] * f(v)), 1e-5, `gated ${act} dup in place`);
      }
    },
  },
  {
    name: 'cross-entropy with ignored rows: mean loss (double), count, dlogits = dscale·(softmax − onehot)/count, in place; the loss left on the device (lossTo) is the same double',
    ops: ['cross_entropy'],
    run(dev) {
      const N = 33, V = 1000, z = uniform(N * V, 5), ignore = -100, dscale = 0.5;
      const t = Int32Array.from({ length: N }, (_, n) => (n % 4 === 2 ? ignore : (n * 337) % V));
      const count = t.filter((v) => v !== ignore).length;
      let loss = 0;
      const dz = new Float64Array(N * V);
      for (let n = 0; n < N; n++) {
        if (t[n] === ignore) continue;
        let mx = -Infinity, se = 0;
        for (let v = 0; v < V; v++) mx = Math.max(mx, z[n * V + v]);
        for (let v = 0; v < V; v++) se += Math.exp(z[n * V + v] - mx);
        loss += (mx + Math.log(se) - z[n * V + t[n]]) / count;
        for (let v = 0; v < V; v++) dz[n * V + v] = (dscale / count) * (Math.exp(z[n * V + v] - mx) / se - (v === t[n] ? 1 : 0));
      }
      const zt = T(z, [N, V], dev);
      const r = F.crossEntropy(zt, t, zt, { ignoreIndex: ignore, dscale });
      assert.equal(r.count, count);
      assert.ok(Math.abs(r.loss - loss) <= 1e-6 * loss, `loss ${r.loss} vs ${loss}`);
      rel(read(zt), dz, 1e-5, 'dlogits in place');
      // lossTo: the rows summed on the device in the host's order, so the same double bit for bit,
      // and the same dlogits
      const zt2 = T(z, [N, V], dev), to = T(new Float32Array(2).fill(NaN), [2], dev);
      const r2 = F.crossEntropy(zt2, t, zt2, { ignoreIndex: ignore, dscale, lossTo: to });
      assert.equal(r2.count, count);
      if (dev === 'cpu') assert.equal(r2.loss, r.loss);
      const pair = read(to);
      assert.equal(new Float64Array(pair.buffer, pair.byteOffset, 1)[0], r.loss, 'lossTo');
      assert.deepEqual(read(zt2), read(zt), 'dlogits with lossTo');
    },
  },
  {
    name: 'rope (rotate-half and interleaved) at an offset: forward, and backward = the transposed rotation',
    ops: ['rope_forward', 'rope_backward'],
    run(dev) {
      const [B, Tn, H, D] = [2, 7, 3, 34], s = [B, Tn, H, D], x = uniform(numel(s)), off = 9, base = 10000;
      for (const convention of ['half', 'interleaved']) {
        const fwd = new Float64Array(x.length), bwd = new Float64Array(x.length);
        for (let r = 0; r < B * Tn * H; r++)
          for (let i = 0; i < D / 2; i++) {
            const a = (off + (Math.floor(r / H) % Tn)) * base ** ((-2 * i) / D), c = Math.cos(a), sn = Math.sin(a);
            const [p, q] = convention === 'half' ? [r * D + i, r * D + i + D / 2] : [r * D + 2 * i, r * D + 2 * i + 1];
            fwd[p] = x[p] * c - x[q] * sn;
            fwd[q] = x[p] * sn + x[q] * c;
            bwd[p] = x[p] * c + x[q] * sn;
            bwd[q] = -x[p] * sn + x[q] * c;
          }
        const opts = { offset: off, base, convention };
        rel(read(F.ropeForward(T(x, s, dev), nan(s, dev), opts)), fwd, 1e-5, `rope ${convention}`);
        const xi = T(x, s, dev);
        rel(read(F.ropeBackward(xi, xi, opts)), bwd, 1e-5, `rope backward ${convention} in place`);
      }
    },
  },
  {
    name: 'dropout: the splitmix64 counter stream by definition (BigInt), bit for bit, forward and backward; p = 0 and 1',
    ops: ['dropout_forward', 'dropout_backward'],
    run(dev) {
      const n = 7 * 129, x = uniform(n), seed = 4242;
      for (const p of [0, 0.25, 1]) {
        const keep = keepMask(n, p, seed), scale = Math.fround(1 / (1 - Math.fround(p)));
        const want = Float32Array.from(x, (v, i) => (p === 1 ? 0 : p === 0 ? v : keep[i] ? Math.fround(v * scale) : 0));
        exact(read(F.dropoutForward(T(x, [n], dev), nan([n], dev), p, seed)), want, `dropout p=${p}`);
        const xi = T(x, [n], dev);
        exact(read(F.dropoutBackward(xi, xi, p, seed)), want, `dropout backward p=${p} in place`);
      }
    },
  },
  {
    name: 'kv_cache_write: time steps offset … offset + T − 1 written, the rest kept',
    ops: ['kv_cache_write'],
    run(dev) {
      const [B, Tn, Tcap, Hkv, D, off] = [2, 3, 9, 3, 5, 4], src = uniform(B * Tn * Hkv * D), cache0 = uniform(B * Tcap * Hkv * D);
      const want = Float32Array.from(cache0);
      for (let b = 0; b < B; b++) want.set(src.subarray(b * Tn * Hkv * D, (b + 1) * Tn * Hkv * D), (b * Tcap + off) * Hkv * D);
      exact(read(F.kvCacheWrite(T(src, [B, Tn, Hkv, D], dev), T(cache0, [B, Tcap, Hkv, D], dev), off)), want, 'cache');
    },
  },
  {
    name: 'time_slice: time steps offset … offset + T − 1 read out, every element of dst written',
    ops: ['time_slice'],
    run(dev) {
      const [B, Tn, Ts, H, D, off] = [3, 4, 11, 3, 5, 6], src = uniform(B * Ts * H * D);
      const want = new Float32Array(B * Tn * H * D);
      for (let b = 0; b < B; b++) want.set(src.subarray((b * Ts + off) * H * D, (b * Ts + off + Tn) * H * D), b * Tn * H * D);
      exact(read(F.timeSlice(T(src, [B, Ts, H, D], dev), nan([B, Tn, H, D], dev), off)), want, 'slice');
    },
  },
  {
    name: 'colScale (IA3): x ⊙ (l + shift), = and +=, in place; colScaleBackward: a ⊙ b and Σ rows into dl',
    ops: ['col_scale', 'col_scale_backward'],
    run(dev) {
      const R = 7, n = 129, s = [R, n], x = uniform(R * n, 2), l = uniform(n, 1.5), b = uniform(R * n), d0 = uniform(n);
      const sc = (shift) => Float64Array.from(x, (v, k) => v * (l[k % n] + shift));
      rel(read(F.colScale(T(x, s, dev), T(l, [n], dev), nan(s, dev), { shift: -1 })), sc(-1), 1e-7, 'colScale shift −1');
      rel(read(F.colScale(T(x, s, dev), T(l, [n], dev), T(b, s, dev), { accumulate: true })), Float64Array.from(sc(0), (v, k) => v + b[k]), 1e-7, 'colScale +=');
      const xi = T(x, s, dev);
      rel(read(F.colScale(xi, T(l, [n], dev), xi)), sc(0), 1e-7, 'colScale in place');
      const u = nan(s, dev), dl = T(d0, [n], dev);
      F.colScaleBackward(T(x, s, dev), T(b, s, dev), u, dl);
      const prod = Float64Array.from(x, (v, k) => v * b[k]);
      rel(read(u), prod, 1e-7, 'colScaleBackward u');
      rel(read(dl), Float64Array.from(d0, (v, j) => { let t = v; for (let r = 0; r < R; r++) t += prod[r * n + j]; return t; }), 1e-6, 'colScaleBackward dl');
    },
  },
  {
    name: 'tanh, relu (derivative from the output): forward and backward, in place',
    ops: ['act_out_forward', 'act_out_backward'],
    run(dev) {
      const n = 7 * 129, s = [7, 129], x = uniform(n, 3), d = uniform(n);
      for (const [kind, f, g] of [['tanh', Math.tanh, (y) => 1 - y * y], ['relu', (v) => Math.max(0, v), (y) => (y > 0 ? 1 : 0)]]) {
        const y = read(F.activationForward(T(x, s, dev), nan(s, dev), kind));
        rel(y, Float64Array.from(x, f), 1e-7, kind);
        const xi = T(x, s, dev);
        exact(read(F.activationForward(xi, xi, kind)), y, `${kind} in place`);
        const di = T(d, s, dev);
        rel(read(F.activationBackward(T(y, s, dev), di, di, kind)), Float64Array.from(y, (v, i) => d[i] * g(v)), 1e-7, `${kind}' in place`);
      }
    },
  },
];
