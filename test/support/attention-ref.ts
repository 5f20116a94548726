/**
 * Float64 reference of attention's backward, from the definition (no blocking, no online
 * softmax): per query row P = softmax(scale·q Kᵀ over the visible keys), Pd = P ∘ M (dropout
 * multipliers), O = Pd V; dV += Pdᵀ dO, dP = (dO Vᵀ) ∘ M, dS = P ∘ (dP − Σ P·dP),
 * dQ = scale·dS K, dK += scale·dSᵀ q. Layouts as the kernels: q [B, Tq, H, D], k/v [B, Tk, Hkv, D].
 */
import type { AttnDims } from './nn-helpers.js';

export interface AttnGrads {
  dq: Float64Array;
  dk: Float64Array;
  dv: Float64Array;
}

export function refAttentionBackward(
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  v: ArrayLike<number>,
  mask: ArrayLike<number> | null,
  dout: ArrayLike<number>,
  d: AttnDims,
  causal: boolean,
  scale: number,
  drop?: ArrayLike<number>,
): AttnGrads {
  const { B, Tq, Tk, H, Hkv, D } = d;
  const R = H / Hkv;
  const dq = new Float64Array(B * Tq * H * D);
  const dk = new Float64Array(B * Tk * Hkv * D);
  const dv = new Float64Array(B * Tk * Hkv * D);
  const p = new Float64Array(Tk);
  const dp = new Float64Array(Tk);
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++) {
      const g = Math.floor(h / R);
      const kr = (j: number) => ((b * Tk + j) * Hkv + g) * D;
      for (let i = 0; i < Tq; i++) {
        const qr = ((b * Tq + i) * H + h) * D;
        let mx = -Infinity;
        for (let j = 0; j < Tk; j++) {
          p[j] = -Infinity;
          if ((causal && j > i + (Tk - Tq)) || (mask && mask[b * Tk + j] === 0)) continue;
          let s = 0;
          for (let c = 0; c < D; c++) s += q[qr + c]! * k[kr(j) + c]!;
          p[j] = s * scale;
          mx = Math.max(mx, p[j]!);
        }
        if (mx === -Infinity) continue; // no visible key: output 0, no gradient
        let z = 0;
        for (let j = 0; j < Tk; j++) z += p[j] === -Infinity ? 0 : Math.exp(p[j]! - mx);
        let sum = 0;
        for (let j = 0; j < Tk; j++) {
          p[j] = p[j] === -Infinity ? 0 : Math.exp(p[j]! - mx) / z;
          const m = drop ? drop[((b * H + h) * Tq + i) * Tk + j]! : 1;
          let g2 = 0;
          for (let c = 0; c < D; c++) {
            g2 += dout[qr + c]! * v[kr(j) + c]!;
            dv[kr(j) + c]! += p[j]! * m * dout[qr + c]!;
          }
          dp[j] = g2 * m;
          sum += p[j]! * dp[j]!;
        }
        for (let j = 0; j < Tk; j++) {
          const ds = p[j]! * (dp[j]! - sum) * scale;
          if (ds === 0) continue;
          for (let c = 0; c < D; c++) {
            dq[qr + c]! += ds * k[kr(j) + c]!;
            dk[kr(j) + c]! += ds * q[qr + c]!;
          }
        }
      }
    }
  return { dq, dk, dv };
}
