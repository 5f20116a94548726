/**
 * `kfac-peft bench eigh | refresh | batched-eigh`: the symmetric eigensolvers against LAPACK
 * (scipy.linalg.eigh driver='evd', i.e. ssyevd; numpy.linalg.eigh for stacks), same run,
 * same thread count. `refresh` times a warm refresh against our own cold solve after one EMA
 * step (β = 0.95) of a fresh batch factor.
 */
import { eigh, eighBatched, eighRefresh } from '../linalg/eigh.js';
import { matmul } from '../linalg/matmul.js';
import { axpy, scale, transpose } from '../ops/index.js';
import { setNumThreads } from '../runtime.js';
import { Tensor } from '../tensor/tensor.js';
import { PeerPool } from './peer.js';
import { measure } from './measure.js';
import { timeMs } from './timing.js';
import type { BenchCase, BenchOptions, BenchRow } from './types.js';

const repeatsFor = (n: number, min: number) => Math.max(min, n <= 128 ? 30 : n <= 256 ? 15 : n <= 512 ? 7 : 3);

async function runEigh(o: BenchOptions): Promise<BenchRow[]> {
  const sizes = o.sizes ?? [128, 256, 512, 1024];
  const threads = o.threads ?? [1, 2];
  const peers = new PeerPool(o.peer, o.peerKeepEnv);
  const rows: BenchRow[] = [];
  try {
    for (const n of sizes) {
      // a = (x + xᵀ)/2 for Gaussian x
      using x = Tensor.randn([n, n], { seed: 1 });
      using a = Tensor.zeros([n, n]);
      transpose(x, a);
      axpy(1, x, a);
      scale(a, 0.5, a);
      using values = Tensor.zeros([n]);
      using vectors = Tensor.zeros([n, n]);
      const repeats = repeatsFor(n, o.repeats);
      for (const t of threads) {
        o.progress(`eigh ${n}×${n}, ${t} thread${t > 1 ? 's' : ''}`);
        setNumThreads(t);
        const c = { case: 'eigh', shape: `${n}x${n}`, threads: t, repeats, warmup: 1, flops: (4 / 3 + 2) * n ** 3, peerLabel: (blas: string) => `scipy ssyevd, ${blas}` };
        rows.push(await measure(c, () => eigh(a, { out: { values, vectors } }), { pool: peers, req: { op: 'eigh', n } }));
      }
    }
  } finally {
    setNumThreads(0);
    await peers.close();
  }
  return rows;
}

/** XᵀX/R for a fresh Gaussian X [R, n] (a batch curvature factor) into out (on out's device). */
function batchFactor(n: number, R: number, seed: number, out: Tensor): void {
  using h = Tensor.randn([R, n], { seed });
  using moved = out.device === 'cpu' ? null : h.to(out.device);
  const x = moved ?? h;
  matmul(x, x, { transA: true, alpha: 1 / R, out });
}

/**
 * The warm refresh against the cold solve of the same factor, where it lives: on the CPU per
 * thread count; on cuda (`sync`: the wait for the stream, so a run's time is device time) once,
 * at the sizes of the large factors of a 3B all-linear LoRA by default.
 */
export async function runRefresh(o: BenchOptions, device: 'cpu' | 'cuda' = 'cpu', sync?: () => void): Promise<BenchRow[]> {
  const onCpu = device === 'cpu';
  const sizes = o.sizes ?? (onCpu ? [256, 512, 1024] : [1024, 2560, 3200, 8640]);
  const threads = onCpu ? (o.threads ?? [2]) : [1];
  const rows: BenchRow[] = [];
  try {
    for (const n of sizes) {
      // An EMA factor (β = 0.95) after a few batches, its eigenbasis, then one more step.
      using A = Tensor.zeros([n, n], { device });
      using B = Tensor.zeros([n, n], { device });
      batchFactor(n, n, 1, A);
      for (let s = 0; s < 5; s++) {
        batchFactor(n, n, 10 + s, B);
        scale(A, 0.95, A);
        axpy(0.05, B, A);
      }
      const prev = eigh(A);
      batchFactor(n, n, 99, B);
      scale(A, 0.95, A);
      axpy(0.05, B, A);
      using values = Tensor.zeros([n], { device });
      using vectors = Tensor.zeros([n, n], { device });
      const repeats = repeatsFor(n, o.repeats);
      for (const t of threads) {
        o.progress(onCpu ? `refresh ${n}×${n}, ${t} thread${t > 1 ? 's' : ''}` : `cuda refresh ${n}×${n}`);
        if (onCpu) setNumThreads(t);
        let last = eighRefresh(A, prev.vectors, { previousValues: prev.values, out: { values, vectors } });
        // Interleave cold and warm so that machine noise hits both alike.
        const cold: number[] = [];
        const warm: number[] = [];
        for (let r = 0; r < repeats; r++) {
          cold.push(timeMs(() => eigh(A, { out: { values, vectors } }), 1, 0, sync));
          warm.push(timeMs(() => (last = eighRefresh(A, prev.vectors, { previousValues: prev.values, out: { values, vectors } })), 1, 0, sync));
        }
        const med = (xs: number[]) => [...xs].sort((p, q) => p - q)[xs.length >> 1] as number;
        const ms = med(warm);
        const coldMs = med(cold);
        rows.push({
          case: 'refresh',
          shape: `${n}x${n} EMA β=0.95`,
          threads: t,
          ms,
          peer: onCpu ? 'our cold eigh' : 'our cold eigh (cuSOLVER syevd)',
          peerMs: coldMs,
          ratio: coldMs / ms,
          note: `fellBack=${last.fellBack} offDiagonal=${last.offDiagonal.toExponential(2)} residual=${last.residual.toExponential(2)}`,
        });
      }
      prev.values.dispose();
      prev.vectors.dispose();
    }
  } finally {
    setNumThreads(0);
  }
  return rows;
}

async function runBatched(o: BenchOptions): Promise<BenchRow[]> {
  const sizes = o.sizes ?? [8, 16, 32, 64];
  const threads = o.threads ?? [1, 2];
  const batch = 256;
  const peers = new PeerPool(o.peer, o.peerKeepEnv);
  const rows: BenchRow[] = [];
  try {
    for (const r of sizes) {
      using x = Tensor.randn([batch, r, r], { seed: 3 });
      const data = x.toArray();
      for (let b = 0; b < batch; b++)
        for (let i = 0; i < r; i++)
          for (let j = 0; j < i; j++) data[b * r * r + j * r + i] = data[b * r * r + i * r + j]!;
      using a = Tensor.from(data, [batch, r, r]);
      const singles = Array.from({ length: batch }, (_, b) => Tensor.from(data.subarray(b * r * r, (b + 1) * r * r), [r, r]));
      using values = Tensor.zeros([batch, r]);
      using vectors = Tensor.zeros([batch, r, r]);
      using v1 = Tensor.zeros([r]);
      using q1 = Tensor.zeros([r, r]);
      const repeats = Math.max(o.repeats, 15);
      for (const t of threads) {
        o.progress(`batched eigh ${batch}×${r}×${r}, ${t} thread${t > 1 ? 's' : ''}`);
        setNumThreads(t);
        const loopMs = timeMs(() => {
          for (const s of singles) eigh(s, { out: { values: v1, vectors: q1 } });
        }, repeats, 1);
        const c = { case: 'batched-eigh', shape: `${batch}x${r}x${r}`, threads: t, repeats, peerLabel: (blas: string) => `numpy.linalg.eigh, ${blas}` };
        const row = await measure(c, () => eighBatched(a, { out: { values, vectors } }), { pool: peers, req: { op: 'batched-eigh', batch, r } });
        row.note = `loop of single eigh ${loopMs.toFixed(3)} ms (×${(loopMs / row.ms).toFixed(1)})`;
        rows.push(row);
      }
      for (const s of singles) s.dispose();
    }
  } finally {
    setNumThreads(0);
    await peers.close();
  }
  return rows;
}

export const eighBench: BenchCase = {
  name: 'eigh',
  description: 'symmetric eigendecomposition of float32 [n, n] (--sizes n,…), ours vs scipy ssyevd',
  run: runEigh,
};

export const refreshBench: BenchCase = {
  name: 'refresh',
  description: 'warm eighRefresh vs our cold eigh after one EMA step (β = 0.95) of a fresh batch factor (--sizes n,…)',
  run: (o) => runRefresh(o),
};

export const batchedEighBench: BenchCase = {
  name: 'batched-eigh',
  description: 'eighBatched of 256 matrices r×r (--sizes r,…) vs a loop of eigh and numpy.linalg.eigh',
  run: runBatched,
};
