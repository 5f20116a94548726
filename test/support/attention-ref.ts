/**
 * Float64 reference of attention's backward, from the definition (no blocking, no online
 * softmax): per query row P = softmax(scale·q Kᵀ over the visible keys), Pd = P ∘ M (dropout
 * multipliers), O = Pd V; dV += Pdᵀ dO, dP = (dO Vᵀ) ∘ M, dS = P ∘ (dP − Σ P·dP),
 * dQ = scale·dS K, dK += scale·dSᵀ q. Layouts as the kernels: q [B, Tq, H, D], k/v [B, Tk, Hkv, D].
 * With a score bias [H, Tq, Tk] (added to scale·q Kᵀ), dbias [B, H, Tq, Tk] is dS per batch row.
 */
import { nn, Tensor } from '../../lib/index.js';
import type { AttnDims } from './nn-helpers.js';
import { input, rng } from './nn-helpers.js';

const F = nn.functional;

export interface AttnGrads {
  dq: Float64Array;
  dk: Float64Array;
  dv: Float64Array;
  /** [B, H, Tq, Tk] when a bias was given. */
  dbias?: Float64Array;
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
  bias?: ArrayLike<number>,
): AttnGrads {
  const { B, Tq, Tk, H, Hkv, D } = d;
  const R = H / Hkv;
  const dq = new Float64Array(B * Tq * H * D);
  const dk = new Float64Array(B * Tk * Hkv * D);
  const dv = new Float64Array(B * Tk * Hkv * D);
  const dbias = bias ? new Float64Array(B * H * Tq * Tk) : undefined;
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
          p[j] = s * scale + (bias ? bias[(h * Tq + i) * Tk + j]! : 0);
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
          if (dbias) dbias[((b * H + h) * Tq + i) * Tk + j] = ds / scale;
          if (ds === 0) continue;
          for (let c = 0; c < D; c++) {
            dq[qr + c]! += ds * k[kr(j) + c]!;
            dk[kr(j) + c]! += ds * q[qr + c]!;
          }
        }
      }
    }
  return dbias ? { dq, dk, dv, dbias } : { dq, dk, dv };
}

/** An attention case: sizes, masks and dropout. */
export interface BlockCase extends AttnDims {
  causal: boolean;
  masked: boolean;
  dropout: number;
}

/**
 * Odd sizes around the kernels' tiles: one query block and several (CPU: 32 or 128 rows; CUDA: 32),
 * one key block and several (CPU: 256; CUDA: 32), every head grouping, padding, Tq < Tk, dropout.
 */
export const BLOCK_CASES: BlockCase[] = [
  { B: 2, Tq: 1, Tk: 1, H: 4, Hkv: 1, D: 8, causal: false, masked: false, dropout: 0 },
  { B: 2, Tq: 5, Tk: 5, H: 4, Hkv: 2, D: 24, causal: true, masked: true, dropout: 0 },
  { B: 1, Tq: 67, Tk: 67, H: 4, Hkv: 4, D: 8, causal: true, masked: false, dropout: 0.2 },
  // 3·32 + 1 rows: the last query tile is one row that sees exactly the first key of its own tile.
  { B: 1, Tq: 97, Tk: 97, H: 4, Hkv: 2, D: 24, causal: true, masked: false, dropout: 0 },
  { B: 1, Tq: 130, Tk: 130, H: 4, Hkv: 2, D: 24, causal: false, masked: true, dropout: 0 },
  { B: 1, Tq: 67, Tk: 130, H: 4, Hkv: 1, D: 8, causal: true, masked: true, dropout: 0.3 },
  { B: 1, Tq: 300, Tk: 300, H: 4, Hkv: 2, D: 8, causal: true, masked: true, dropout: 0 },
  { B: 1, Tq: 40, Tk: 300, H: 4, Hkv: 4, D: 24, causal: false, masked: false, dropout: 0.1 },
];

/** Some keys of every row padded (never the last, so causal rows always see one). */
export function padMask(B: number, Tk: number, seed: number): Float32Array {
  const r = rng(seed);
  const m = new Float32Array(B * Tk).fill(1);
  for (let b = 0; b < B; b++) for (let j = 0; j < Tk - 1; j++) if (r() < 0.3) m[b * Tk + j] = 0;
  return m;
}

/** Inputs of a case: q, k, v, dO, mask, and the dropout multipliers as dropoutForward draws them. */
export function caseInputs(c: BlockCase, seed: number) {
  const { B, Tq, Tk, H, Hkv, D } = c;
  const q = input(B * Tq * H * D, seed, 1.5);
  const k = input(B * Tk * Hkv * D, seed + 1, 1.5);
  const v = input(B * Tk * Hkv * D, seed + 2);
  const dO = input(B * Tq * H * D, seed + 3);
  const m = c.masked ? padMask(B, Tk, seed + 4) : null;
  const dropSeed = 77 + seed;
  const n = B * H * Tq * Tk;
  const drop = c.dropout > 0 ? F.dropoutForward(Tensor.full([n], 1), Tensor.empty([n]), c.dropout, dropSeed).toArray() : undefined;
  const opts = { causal: c.causal, mask: m ? Tensor.from(m, [B, Tk]) : null, ...(c.dropout > 0 ? { dropout: c.dropout, seed: dropSeed } : {}) };
  return { q, k, v, dO, m, drop, opts, scale: 1 / Math.sqrt(D) };
}
