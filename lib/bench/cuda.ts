/**
 * Bench cases of the CUDA backend (`kfac-peft bench <case> --backend cuda`). Each row carries
 * its achieved GB/s or GFLOP/s and the fraction of a ceiling measured in the same run: the
 * device-to-device copy bandwidth, or a large cuBLAS SGEMM. eigh is timed against
 * torch.linalg.eigh on the same GPU when PyTorch with CUDA imports (bench/peer_torch.py).
 * Ops on cuda tensors return once their work is queued (docs/CUDA.md#stream-order), so every
 * timed run ends with a wait for the stream (`timeDev`): host wall time is device time plus
 * launch overhead. The cases call the same functions as the CPU cases.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

import { clipNewtonStep } from '../kfac/clip.js';
import { updateFactor } from '../kfac/factor.js';
import { preconditionEigen, preconditionInverseFactors } from '../kfac/precondition.js';
import { StepRecord } from '../kfac/step-record.js';
import { TRUST_FLOOR_RMS } from '../kfac/step-clip.js';
import { eigh, eighBatched } from '../linalg/eigh.js';
import { matmul } from '../linalg/matmul.js';
import { copy } from '../ops/index.js';
import { packageRoot } from '../native/loader.js';
import { Tensor } from '../tensor/tensor.js';
import { synchronize } from '../cuda/index.js';
import { timeMs } from './timing.js';
import { runRefresh } from './eigh.js';
import type { BenchCase, BenchOptions, BenchRow } from './types.js';

/** timeMs with a wait for the device's stream after the warm-up and inside every timed run. */
export const timeDev = (fn: () => void, repeats: number, warmup = 2): number => timeMs(fn, repeats, warmup, synchronize);

const dev = (shape: number[], seed: number, std = 1): Tensor => {
  const h = Tensor.randn(shape, { seed, std });
  const d = h.to('cuda');
  h.dispose();
  return d;
};

/** A symmetric positive semi-definite n×n matrix on the device (XᵀX/R from a factor update). */
function spd(n: number, seed: number): Tensor {
  const x = dev([Math.max(2 * n, 64), n], seed);
  const F = Tensor.zeros([n, n], { device: 'cuda' });
  updateFactor(F, x, { beta: 0 });
  x.dispose();
  return F;
}

export interface Ceilings {
  copyGBps: number;
  sgemmGflops: number;
  copyShape: string;
  sgemmShape: string;
}

let ceilings: Ceilings | undefined;

/** Device-to-device copy bandwidth (read + write bytes) and a large SGEMM, measured once per run. */
export function measureCeilings(repeats: number): Ceilings {
  if (ceilings) return ceilings;
  const n = 64 << 20; // 256 MiB of float32
  const a = Tensor.zeros([n], { device: 'cuda' });
  const b = Tensor.zeros([n], { device: 'cuda' });
  const copyMs = timeDev(() => copy(a, b), repeats, 3);
  a.dispose();
  b.dispose();
  const m = 8192;
  const x = dev([m, m], 1);
  const y = dev([m, m], 2);
  const out = Tensor.zeros([m, m], { device: 'cuda' });
  const gemmMs = timeDev(() => matmul(x, y, { out }), Math.max(3, Math.min(repeats, 5)), 2);
  x.dispose();
  y.dispose();
  out.dispose();
  ceilings = {
    copyGBps: (2 * 4 * n) / (copyMs * 1e6),
    sgemmGflops: (2 * m ** 3) / (gemmMs * 1e6),
    copyShape: `${n * 4 / 2 ** 20} MiB`,
    sgemmShape: `${m}x${m}x${m}`,
  };
  return ceilings;
}

function row(c: string, shape: string, ms: number, extra: Partial<BenchRow>): BenchRow {
  return { case: c, shape, threads: 0, ms, backend: 'cuda', ...extra };
}

const ceilingsBench: BenchCase = {
  name: 'ceilings',
  description: 'device-to-device copy bandwidth and cuBLAS SGEMM (the ceilings of the other cases)',
  async run(o: BenchOptions) {
    const c = measureCeilings(o.repeats);
    return [
      row('copy', c.copyShape, (2 * 4 * (64 << 20)) / (c.copyGBps * 1e6), { gbps: c.copyGBps, ofCeiling: 1 }),
      row('sgemm', c.sgemmShape, (2 * 8192 ** 3) / (c.sgemmGflops * 1e6), { gflops: c.sgemmGflops, ofCeiling: 1 }),
    ];
  },
};

const factorBench: BenchCase = {
  name: 'factor',
  description: 'factor EMA F ← βF + (1−β)/R·XᵀX (syrk + mirror) and the step\'s guarded commit, GB/s against the copy ceiling',
  async run(o: BenchOptions) {
    const c = measureCeilings(o.repeats);
    const rows: BenchRow[] = [];
    for (const d of o.sizes ?? [1024, 4096, 8192]) {
      for (const R of [32, 2048]) {
        o.progress(`cuda factor d=${d} R=${R}`);
        const x = dev([R, d], 3);
        const F = Tensor.zeros([d + 1, d + 1], { device: 'cuda' });
        const ms = timeDev(() => updateFactor(F, x, { beta: 0.95, bias: true }), o.repeats);
        const bytes = 4 * (R * d + 2 * (d + 1) ** 2);
        const gbps = bytes / (ms * 1e6);
        const gflops = (R * d * (d + 1)) / (ms * 1e6);
        rows.push(row('factor', `d=${d} R=${R} bias`, ms, { gbps, gflops, ofCeiling: R <= 64 ? gbps / c.copyGBps : gflops / c.sgemmGflops, note: R <= 64 ? 'bandwidth-bound: of copy GB/s' : 'compute-bound: of SGEMM GFLOP/s' }));
        x.dispose();
        F.dispose();
      }
      // the step's commit F ← βF + (1−β)F_batch, guarded by the statistics' flag (ema_commit):
      // reads F and F_batch, writes F
      const F = dev([d + 1, d + 1], 5);
      const X = dev([d + 1, d + 1], 6);
      const rec = new StepRecord();
      rec.begin(F, 2);
      const { flag } = rec.sums([X], true);
      const ms = timeDev(() => rec.emaCommit(F, X, 0.95, flag), o.repeats);
      const gbps = (12 * (d + 1) ** 2) / (ms * 1e6);
      rows.push(row('factor', `d=${d} commit (guarded EMA)`, ms, { gbps, ofCeiling: gbps / c.copyGBps, note: 'bandwidth-bound: of copy GB/s' }));
      for (const t of [F, X]) t.dispose();
      rec.dispose();
    }
    return rows;
  },
};

const clipBench: BenchCase = {
  name: 'clip',
  description: 'Newton-step clipping over 64 tensors (one reduce + one scale launch): by a norm and by the trust ratio (the default), GB/s against the copy ceiling',
  async run(o: BenchOptions) {
    const c = measureCeilings(o.repeats);
    const rows: BenchRow[] = [];
    for (const total of o.sizes ?? [1 << 20, 16 << 20, 128 << 20]) {
      o.progress(`cuda clip ${total} elements`);
      const per = Math.ceil(total / 64);
      const ts = Array.from({ length: 64 }, () => Tensor.zeros([per], { device: 'cuda' }));
      const seedT = dev([per], 4);
      for (const t of ts) copy(seedT, t);
      seedT.dispose();
      // Reduce only: maxNorm above the norm, so the scale launch skips every chunk.
      const msNoClip = timeDev(() => clipNewtonStep(ts, { mode: 'global', maxNorm: 1e30 }), o.repeats);
      // Clipping every call: maxNorm halves each call (values shrink by 2 per call, far from underflow).
      const n0 = clipNewtonStep(ts, { mode: 'global', maxNorm: 1e30 }).norm;
      let k = 0;
      const ms = timeDev(() => clipNewtonStep(ts, { mode: 'global', maxNorm: n0 * 0.5 ** ++k }), o.repeats);
      const n = per * 64;
      const gbps = (12 * n) / (ms * 1e6); // reduce reads 4n, scale reads and writes 8n
      rows.push(row('clip', `64 tensors, ${n} elements, clipping`, ms, { gbps, ofCeiling: gbps / c.copyGBps }));
      const gbpsRead = (4 * n) / (msNoClip * 1e6);
      rows.push(row('clip', `64 tensors, ${n} elements, reduce only`, msNoClip, { gbps: gbpsRead, ofCeiling: gbpsRead / c.copyGBps, note: 'scale 1: the scale launch skips every chunk' }));
      // The default clip, the trust ratio (trust_clip into the step record): one reduction over
      // the weights and the steps, the scales on the device, one scaling launch.
      const ws = Array.from({ length: 64 }, (_, i) => dev([per], 40 + i));
      const rec = new StepRecord();
      const trust = (k: number) => {
        rec.begin(ws[0]!, 8); // a step's record (allocated once)
        rec.trustClip(ts, ws, k, TRUST_FLOOR_RMS, true);
      };
      const msTrustRead = timeDev(() => trust(1e30), o.repeats);
      // clipping every call: k halves each call (the steps shrink with it, far from underflow)
      let j = 0;
      const msTrust = timeDev(() => trust(1e-3 * 0.5 ** ++j), o.repeats);
      const gbpsTrust = (16 * n) / (msTrust * 1e6); // reads θ and P (8n), scales P (8n)
      rows.push(row('clip', `trust ratio (default), 64 tensors, ${n} elements, clipping`, msTrust, { gbps: gbpsTrust, ofCeiling: gbpsTrust / c.copyGBps }));
      const gbpsTrustRead = (8 * n) / (msTrustRead * 1e6);
      rows.push(row('clip', `trust ratio (default), 64 tensors, ${n} elements, reduce only`, msTrustRead, { gbps: gbpsTrustRead, ofCeiling: gbpsTrustRead / c.copyGBps, note: 'no step clipped: the scaling launch skips every chunk' }));
      for (const t of [...ts, ...ws]) t.dispose();
      rec.dispose();
    }
    return rows;
  },
};

const preconditionBench: BenchCase = {
  name: 'precondition',
  description: 'eigen and inverse preconditioning of an n×n gradient, GFLOP/s against SGEMM',
  async run(o: BenchOptions) {
    const c = measureCeilings(o.repeats);
    const rows: BenchRow[] = [];
    for (const n of o.sizes ?? [1024, 4096]) {
      o.progress(`cuda precondition n=${n}`);
      const A = spd(n, 5);
      const G = spd(n, 6);
      const ea = eigh(A, { clampNonNegative: true });
      const eg = eigh(G, { clampNonNegative: true });
      const grad = dev([n, n], 7);
      const out = Tensor.zeros([n, n], { device: 'cuda' });
      const ms = timeDev(() => preconditionEigen({ grad, A: { Q: ea.vectors, d: ea.values }, G: { Q: eg.vectors, d: eg.values }, damping: 1e-3, out }), o.repeats);
      const gflops = (8 * n ** 3) / (ms * 1e6);
      rows.push(row('precondition', `eigen ${n}x${n}`, ms, { gflops, ofCeiling: gflops / c.sgemmGflops, note: '4 GEMMs + the damping kernel' }));
      const msInv = timeDev(() => preconditionInverseFactors({ grad, A, G, damping: 1e-3, out }), Math.max(3, Math.min(o.repeats, 5)));
      rows.push(row('precondition', `inverse (π, incl. 2 Cholesky inverses) ${n}x${n}`, msInv, { gflops: (4 * n ** 3) / (msInv * 1e6) }));
      for (const t of [A, G, ea.values, ea.vectors, eg.values, eg.vectors, grad, out]) t.dispose();
    }
    return rows;
  },
};

interface TorchPeer {
  torch: string;
  device: string;
  eigh: Record<string, number>;
}

/** bench/peer_torch.py's report of `op` at `sizes` (KFAC_PEER_PYTHON), or undefined without PyTorch + CUDA. */
export function torchPeer<R>(op: 'eigh' | 'attention', sizes: number[], repeats: number): R | undefined {
  const script = join(packageRoot(), 'bench', 'peer_torch.py');
  if (!existsSync(script)) return undefined;
  const py = process.env['KFAC_PEER_PYTHON'] ?? 'python3';
  const r = spawnSync(py, [script, op, sizes.join(','), String(repeats)], { encoding: 'utf8', timeout: 300_000 });
  if (r.status !== 0) return undefined;
  try {
    return JSON.parse(r.stdout) as R;
  } catch {
    return undefined;
  }
}

const eighBench: BenchCase = {
  name: 'eigh',
  description: 'cuSOLVER syevd against torch.linalg.eigh on the same GPU',
  async run(o: BenchOptions) {
    const sizes = o.sizes ?? [256, 512, 1024, 2048, 4096];
    const peer = o.peer ? torchPeer<TorchPeer>('eigh', sizes, Math.max(3, Math.min(o.repeats, 10))) : undefined;
    const rows: BenchRow[] = [];
    for (const n of sizes) {
      o.progress(`cuda eigh n=${n}`);
      const A = spd(n, 8);
      const ms = timeDev(() => {
        const r = eigh(A);
        r.values.dispose();
        r.vectors.dispose();
      }, Math.max(3, Math.min(o.repeats, 10)));
      const peerMs = peer?.eigh[String(n)];
      rows.push(row('eigh', `${n}x${n}`, ms, peerMs === undefined ? {} : { peer: `torch ${peer!.torch} ${peer!.device}`, peerMs, ratio: peerMs / ms }));
      A.dispose();
    }
    return rows;
  },
};

const batchedEighBench: BenchCase = {
  name: 'batched-eigh',
  description: 'syevjBatched over many small factors against a loop of single eigh calls',
  async run(o: BenchOptions) {
    const rows: BenchRow[] = [];
    for (const r of o.sizes ?? [8, 16, 32]) {
      const B = 4096;
      o.progress(`cuda batched-eigh ${B}x${r}x${r}`);
      const x = Tensor.randn([B, 2 * r, r], { seed: 9 });
      // B SPD matrices XᵀX: built on the host from per-batch products.
      const xs = x.toArray();
      const a = new Float32Array(B * r * r);
      for (let b = 0; b < B; b++)
        for (let i = 0; i < r; i++)
          for (let j = 0; j < r; j++) {
            let s = 0;
            for (let k = 0; k < 2 * r; k++) s += xs[b * 2 * r * r + k * r + i]! * xs[b * 2 * r * r + k * r + j]!;
            a[(b * r + i) * r + j] = s;
          }
      x.dispose();
      const host = Tensor.from(a, [B, r, r]);
      const A = host.to('cuda');
      const ms = timeDev(() => {
        const res = eighBatched(A);
        res.values.dispose();
        res.vectors.dispose();
      }, Math.max(3, Math.min(o.repeats, 10)));
      // The loop: L single solves (a slice of the batch), scaled to B.
      const L = 64;
      const singles = Array.from({ length: L }, (_, i) => Tensor.from(a.subarray(i * r * r, (i + 1) * r * r), [r, r]).to('cuda'));
      const loopMs = (timeDev(() => {
        for (const s of singles) {
          const res = eigh(s);
          res.values.dispose();
          res.vectors.dispose();
        }
      }, 3, 1) * B) / L;
      rows.push(row('batched-eigh', `${B}x${r}x${r}`, ms, { peer: 'loop of single syevd calls (scaled from 64)', peerMs: loopMs, ratio: loopMs / ms }));
      for (const s of singles) s.dispose();
      A.dispose();
      host.dispose();
    }
    return rows;
  },
};

export const cudaBenchCases: Record<string, () => Promise<BenchCase>> = {
  ceilings: async () => ceilingsBench,
  factor: async () => factorBench,
  eigh: async () => eighBench,
  'batched-eigh': async () => batchedEighBench,
  refresh: async () => ({
    name: 'refresh',
    description: 'warm eighRefresh (syevj on the rotated factor) vs the cold cuSOLVER syevd, at the 3B all-linear LoRA factor sizes (--sizes n,…)',
    run: (o: BenchOptions) => runRefresh(o, 'cuda', synchronize),
  }),
  precondition: async () => preconditionBench,
  clip: async () => clipBench,
  attention: async () => (await import('./cuda-attention.js')).cudaAttentionBench,
};
