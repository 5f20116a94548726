// Attention's parity cases for test/cuda/parity.mjs: forward and backward (with and without the
// forward's output) on one device against a float64 reference from the definition, on sizes that
// cross the kernels' tiles (CUDA: 32 × 32; CPU: 32/128 × 256), GQA, padding, causal with Tq < Tk,
// dropout (the mask drawn by dropoutForward on the CPU with the same seed), and head dimensions
// 8 … 128 (from 64 up the CUDA backward opts in to more than 48 KiB of shared memory), and T5's
// additive score bias [H, Tq, Tk] with its per-row gradient dbias [B, H, Tq, Tk].
import assert from 'node:assert/strict';

import { nn, Tensor } from '../../dist/index.js';
import { native } from '../../dist/native/loader.js';

const F = nn.functional;
const numel = (s) => s.reduce((a, b) => a * b, 1);
const read = (t) => (t.device === 'cpu' ? t.toArray() : t.to('cpu').toArray());
const poisoned = (shape, dev) => Tensor.from(new Float32Array(numel(shape)).fill(NaN), shape).to(dev);

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

/** Float64 forward and backward by the definition; m: multipliers [B, H, Tq, Tk] or null; bias [H, Tq, Tk] or null. */
function attention64(q, k, v, mask, dO, c, m, bias) {
  const { B, Tq, Tk, H, Hkv, D, causal } = c;
  const R = H / Hkv, scale = 1 / Math.sqrt(D);
  const out = new Float64Array(B * Tq * H * D), dq = new Float64Array(out.length);
  const dk = new Float64Array(B * Tk * Hkv * D), dv = new Float64Array(dk.length);
  const p = new Float64Array(Tk), dp = new Float64Array(Tk), dbias = new Float64Array(B * H * Tq * Tk);
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++)
      for (let i = 0; i < Tq; i++) {
        const g = Math.floor(h / R), qr = ((b * Tq + i) * H + h) * D, kr = (j) => ((b * Tk + j) * Hkv + g) * D;
        let mx = -Infinity;
        for (let j = 0; j < Tk; j++) {
          p[j] = -Infinity;
          if ((causal && j > i + Tk - Tq) || (mask && mask[b * Tk + j] === 0)) continue;
          let s = 0;
          for (let d = 0; d < D; d++) s += q[qr + d] * k[kr(j) + d];
          p[j] = s * scale + (bias ? bias[(h * Tq + i) * Tk + j] : 0);
          mx = Math.max(mx, p[j]);
        }
        let z = 0;
        for (let j = 0; j < Tk; j++) z += p[j] === -Infinity ? 0 : Math.exp(p[j] - mx);
        let sum = 0;
        for (let j = 0; j < Tk; j++) {
          p[j] = p[j] === -Infinity ? 0 : Math.exp(p[j] - mx) / z;
          const mk = m ? m[((b * H + h) * Tq + i) * Tk + j] : 1;
          let g2 = 0;
          for (let d = 0; d < D; d++) {
            out[qr + d] += p[j] * mk * v[kr(j) + d];
            dv[kr(j) + d] += p[j] * mk * dO[qr + d];
            g2 += dO[qr + d] * v[kr(j) + d];
          }
          dp[j] = g2 * mk;
          sum += p[j] * dp[j];
        }
        for (let j = 0; j < Tk; j++) {
          const ds = p[j] * (dp[j] - sum) * scale;
          dbias[((b * H + h) * Tq + i) * Tk + j] = ds / scale;
          for (let d = 0; d < D; d++) {
            dq[qr + d] += ds * k[kr(j) + d];
            dk[kr(j) + d] += ds * q[qr + d];
          }
        }
      }
  return { out, dq, dk, dv, dbias };
}

const SIZES = [
  { B: 2, Tq: 5, Tk: 5, H: 4, Hkv: 2, D: 24, causal: true, masked: true, dropout: 0 },
  { B: 1, Tq: 67, Tk: 130, H: 4, Hkv: 1, D: 8, causal: true, masked: true, dropout: 0.2, bias: true },
  { B: 1, Tq: 97, Tk: 97, H: 4, Hkv: 2, D: 64, causal: true, masked: false, dropout: 0 },
  { B: 1, Tq: 40, Tk: 150, H: 2, Hkv: 2, D: 64, causal: false, masked: true, dropout: 0.1, bias: true },
  { B: 2, Tq: 7, Tk: 9, H: 3, Hkv: 3, D: 16, causal: false, masked: true, dropout: 0, bias: true },
  { B: 1, Tq: 33, Tk: 33, H: 2, Hkv: 1, D: 128, causal: false, masked: false, dropout: 0 },
];

// bf16 activations (head dimensions multiples of 16, so tensor cores apply): GQA, padding, dropout,
// Tq < Tk, a score bias, a tile-crossing length.
const TC_SIZES = [
  { B: 2, Tq: 77, Tk: 77, H: 4, Hkv: 2, D: 64, causal: true, masked: true, dropout: 0 },
  { B: 1, Tq: 40, Tk: 150, H: 2, Hkv: 2, D: 128, causal: true, masked: false, dropout: 0.1, bias: true },
  { B: 1, Tq: 130, Tk: 130, H: 4, Hkv: 1, D: 32, causal: false, masked: true, dropout: 0 },
];

/**
 * bf16 attention with the tensor-core bodies and with the CUDA-core bodies (the switch) on `dev`,
 * each against float64 from the same bf16-rounded inputs; returns the worst relative errors.
 * Tolerance: each stored bf16 result is rounded once (u = 2⁻⁸ relative) and the tensor-core
 * bodies round P·M and dS to bf16 before their tile products (u per term, of either sign, so
 * the norm of their sum grows like √(terms) · u · the terms, not like their sum); 1e-2 of the
 * norm is 2.6u. Under the emulation these sizes measure at most 2.8e-3 (CUDA cores) and 3.4e-3
 * (tensor cores).
 */
export function tensorCoreAttention(dev) {
  const bf = (t) => t.to('cpu', { dtype: 'bfloat16' }).to('cpu', { dtype: 'float32' });
  const worst = { tc: 0, simt: 0 };
  const previous = native()._attentionTensorCores();
  let seed = 1900;
  try {
    for (const c of TC_SIZES) {
      const { B, Tq, Tk, H, Hkv, D } = c;
      const q = bf(Tensor.randn([B, Tq, H, D], { seed: seed++, std: 1.5 })), k = bf(Tensor.randn([B, Tk, Hkv, D], { seed: seed++, std: 1.5 }));
      const v = bf(Tensor.randn([B, Tk, Hkv, D], { seed: seed++ })), dO = bf(Tensor.randn([B, Tq, H, D], { seed: seed++ }));
      const mask = c.masked ? Float32Array.from({ length: B * Tk }, (_, i) => (i % Tk === 0 || (i * 7919) % 10 >= 3 ? 1 : 0)) : null;
      const n = B * H * Tq * Tk, dseed = seed++;
      const m = c.dropout > 0 ? F.dropoutForward(Tensor.full([n], 1), Tensor.empty([n]), c.dropout, dseed).toArray() : null;
      const bias = c.bias ? Tensor.randn([H, Tq, Tk], { seed: seed++, std: 2 }) : null;
      const want = attention64(q.toArray(), k.toArray(), v.toArray(), mask, dO.toArray(), c, m, bias ? bias.toArray() : null);
      const opts = { causal: c.causal, mask: mask ? Tensor.from(mask, [B, Tk]).to(dev) : null, bias: bias ? bias.to(dev) : null, ...(m ? { dropout: c.dropout, seed: dseed } : {}) };
      const [qd, kd, vd, dOd] = [q, k, v, dO].map((t) => t.to(dev, { dtype: 'bfloat16' }));
      const got = {};
      for (const tc of [true, false]) {
        native()._attentionTensorCores(tc);
        const out = poisoned([B, Tq, H, D], dev).to(dev, { dtype: 'bfloat16' }), lse = poisoned([B, H, Tq], dev);
        F.attentionForward(qd, kd, vd, out, lse, opts);
        const [dq, dk, dv] = [q.shape, k.shape, v.shape].map((s) => poisoned(s, dev).to(dev, { dtype: 'bfloat16' }));
        const dbias = bias ? poisoned([B, H, Tq, Tk], dev) : null;
        F.attentionBackward(qd, kd, vd, lse, dOd, dq, dk, dv, { ...opts, out, dbias });
        const r = (t) => t.to('cpu', { dtype: 'float32' }).toArray();
        got[tc ? 'tc' : 'simt'] = { out: r(out), dq: r(dq), dk: r(dk), dv: r(dv), dbias: dbias ? r(dbias) : null };
      }
      for (const path of ['tc', 'simt'])
        for (const key of ['out', 'dq', 'dk', 'dv', 'dbias']) {
          const g = got[path][key];
          if (!g) continue;
          let e2 = 0, w2 = 0;
          for (let i = 0; i < g.length; i++) {
            assert.ok(Number.isFinite(g[i]), `${key}[${i}] (${path}) = ${g[i]}`);
            e2 += (g[i] - want[key][i]) ** 2;
            w2 += want[key][i] ** 2;
          }
          worst[path] = Math.max(worst[path], Math.sqrt(e2 / Math.max(w2, 1e-60)));
          relClose(g, want[key], 1e-2, `${key} (${path === 'tc' ? 'tensor cores' : 'CUDA cores'}) ${JSON.stringify(c)} on ${dev}`);
        }
      assert.ok(got.tc.out.some((x, i) => x !== got.simt.out[i]), 'the tensor-core body ran (its rounding differs from the CUDA-core body)');
    }
  } finally {
    native()._attentionTensorCores(previous);
  }
  return worst;
}

export const attentionCases = [
  {
    name: 'attention forward and backward (with and without the forward output): float64 reference, tiles crossed, GQA, padding, Tq < Tk, dropout, D 8–128, score bias and dbias',
    ops: ['attention_forward', 'attention_backward'],
    run(dev) {
      let seed = 900;
      for (const c of SIZES) {
        const { B, Tq, Tk, H, Hkv, D } = c;
        const q = Tensor.randn([B, Tq, H, D], { seed: seed++, std: 1.5 }), k = Tensor.randn([B, Tk, Hkv, D], { seed: seed++, std: 1.5 });
        const v = Tensor.randn([B, Tk, Hkv, D], { seed: seed++ }), dO = Tensor.randn([B, Tq, H, D], { seed: seed++ });
        // Padding never hides key 0, so every row (causal included) sees a key.
        const mask = c.masked ? Float32Array.from({ length: B * Tk }, (_, i) => (i % Tk === 0 || (i * 7919) % 10 >= 3 ? 1 : 0)) : null;
        const n = B * H * Tq * Tk, dseed = seed++;
        const m = c.dropout > 0 ? F.dropoutForward(Tensor.full([n], 1), Tensor.empty([n]), c.dropout, dseed).toArray() : null;
        const bias = c.bias ? Tensor.randn([H, Tq, Tk], { seed: seed++, std: 2 }) : null;
        const want = attention64(q.toArray(), k.toArray(), v.toArray(), mask, dO.toArray(), c, m, bias ? bias.toArray() : null);
        const opts = {
          causal: c.causal,
          mask: mask ? Tensor.from(mask, [B, Tk]).to(dev) : null,
          bias: bias ? bias.to(dev) : null,
          ...(m ? { dropout: c.dropout, seed: dseed } : {}),
        };
        const [qd, kd, vd, dOd] = [q, k, v, dO].map((t) => t.to(dev));
        const out = poisoned([B, Tq, H, D], dev), lse = poisoned([B, H, Tq], dev);
        F.attentionForward(qd, kd, vd, out, lse, opts);
        const what = `${JSON.stringify(c)} on ${dev}`;
        relClose(read(out), want.out, 1e-5, `out ${what}`);
        for (const withOut of [true, false]) {
          const [dq, dk, dv] = [poisoned(q.shape, dev), poisoned(k.shape, dev), poisoned(v.shape, dev)];
          const dbias = bias ? poisoned([B, H, Tq, Tk], dev) : null;
          F.attentionBackward(qd, kd, vd, lse, dOd, dq, dk, dv, { ...opts, out: withOut ? out : null, dbias });
          const w = `${withOut ? 'with' : 'without'} out, ${what}`;
          relClose(read(dq), want.dq, 1e-5, `dq ${w}`);
          relClose(read(dk), want.dk, 1e-5, `dk ${w}`);
          relClose(read(dv), want.dv, 1e-5, `dv ${w}`);
          if (dbias) relClose(read(dbias), want.dbias, 1e-5, `dbias ${w}`);
        }
      }
    },
  },
  {
    name: 'bf16 attention on tensor cores against the CUDA-core bodies and float64 (on a GPU; bf16 activations exist only there)',
    ops: ['attention_forward', 'attention_backward'],
    run(dev) {
      if (dev === 'cpu' || !native().cuda) return;
      tensorCoreAttention(dev);
    },
  },
];
