/**
 * `kfac-peft bench factor|precondition|clip`: the K-FAC curvature kernels against numpy/scipy
 * (OpenBLAS ssyrk, LAPACK spotrf+spotri, numpy matmul chains) timed in the same run.
 */
import { dampedInverse } from '../linalg/cholesky.js';
import { clipNewtonStep } from '../kfac/clip.js';
import { updateFactor } from '../kfac/factor.js';
import { preconditionEigen, preconditionInverse } from '../kfac/precondition.js';
import { setNumThreads } from '../runtime.js';
import { Tensor } from '../tensor/tensor.js';
import { PeerPool } from './peer.js';
import { measure } from './measure.js';
import type { BenchCase, BenchOptions, BenchRow } from './types.js';

/** Enough repeats for a stable median on small problems, bounded on large ones. */
const repeatsFor = (o: BenchOptions, flops: number) => Math.max(o.repeats, Math.min(200, Math.ceil(2e9 / Math.max(flops, 1))));

async function withPeers(o: BenchOptions, body: (peers: PeerPool, rows: BenchRow[]) => Promise<void>): Promise<BenchRow[]> {
  const peers = new PeerPool(o.peer, o.peerKeepEnv);
  const rows: BenchRow[] = [];
  try {
    await body(peers, rows);
  } finally {
    setNumThreads(0);
    await peers.close();
  }
  return rows;
}

// factor: F ← βF + (1−β)/R·XᵀX for X [R, d]; --sizes are d (R = 512, 2048, 8192).
async function runFactor(o: BenchOptions): Promise<BenchRow[]> {
  return withPeers(o, async (peers, rows) => {
    for (const d of o.sizes ?? [64, 256, 1024])
      for (const R of [512, 2048, 8192]) {
        using x = Tensor.randn([R, d], { seed: 1 });
        using F = Tensor.zeros([d, d]);
        const flops = d * d * R; // the symmetric half of 2·d²·R
        const repeats = repeatsFor(o, flops);
        for (const t of o.threads ?? [1, 2]) {
          o.progress(`factor d=${d} R=${R}, ${t} thread${t > 1 ? 's' : ''}`);
          setNumThreads(t);
          const c = { case: 'factor', shape: `d=${d} R=${R}`, threads: t, repeats, warmup: 3, flops, note: 'peer: ssyrk' };
          rows.push(await measure(c, () => updateFactor(F, x, { beta: 0.95 }), { pool: peers, req: { op: 'syrk', d, R, beta: 0.95 } }));
        }
      }
  });
}

// precondition: eigen method, inverse method with precomputed inverses, and the damped
// inverse itself; --sizes are n for dout = din = n.
async function runPrecondition(o: BenchOptions): Promise<BenchRow[]> {
  return withPeers(o, async (peers, rows) => {
    for (const n of o.sizes ?? [64, 256, 768]) {
      using grad = Tensor.randn([n, n], { seed: 2 });
      using out = Tensor.zeros([n, n]);
      using QA = Tensor.randn([n, n], { seed: 3 });
      using QG = Tensor.randn([n, n], { seed: 4 });
      using dA = Tensor.rand([n], { seed: 5 });
      using dG = Tensor.rand([n], { seed: 6 });
      using spd = Tensor.randn([n, n], { seed: 7 });
      using A = Tensor.zeros([n, n]);
      updateFactor(A, spd); // XᵀX/n: symmetric positive semi-definite
      using Ainv = Tensor.zeros([n, n]);
      const repeats = repeatsFor(o, 8 * n * n * n);
      for (const t of o.threads ?? [1, 2]) {
        setNumThreads(t);
        o.progress(`precondition eigen n=${n}, ${t} thread(s)`);
        const eigenFlops = 8 * n * n * n;
        const eigenCase = { case: 'precondition', shape: `eigen ${n}x${n}`, threads: t, repeats, warmup: 3, flops: eigenFlops };
        rows.push(await measure(eigenCase, () => preconditionEigen({ grad, A: { Q: QA, d: dA }, G: { Q: QG, d: dG }, damping: 1e-3, out }), { pool: peers, req: { op: 'precondition_eigen', dout: n, din: n } }));
        o.progress(`precondition inverse n=${n}, ${t} thread(s)`);
        const invFlops = 4 * n * n * n;
        const invCase = { case: 'precondition', shape: `inverse ${n}x${n}`, threads: t, repeats, warmup: 3, flops: invFlops };
        rows.push(await measure(invCase, () => preconditionInverse({ grad, Ainv: QA, Ginv: QG, out }), { pool: peers, req: { op: 'precondition_inverse', dout: n, din: n } }));
        o.progress(`damped inverse n=${n}, ${t} thread(s)`);
        const cholFlops = n * n * n; // potrf n³/3 + trtri n³/3 + lauum n³/3
        const cholCase = { case: 'precondition', shape: `dampedInverse ${n}`, threads: t, repeats: Math.max(o.repeats, Math.min(100, Math.ceil(1e9 / cholFlops))), flops: cholFlops, note: 'peer: spotrf+spotri' };
        rows.push(await measure(cholCase, () => dampedInverse(A, { damping: 1e-2, out: Ainv }), { pool: peers, req: { op: 'damped_inverse', n } }));
      }
    }
  });
}

// clip: global Newton-step clip over `count` tensors; --sizes are the elements per tensor
// (count = 96, e.g. LoRA A/B of 48 modules). Every call clips by 0.9, on both sides.
async function runClip(o: BenchOptions): Promise<BenchRow[]> {
  return withPeers(o, async (peers, rows) => {
    const count = 96;
    for (const size of o.sizes ?? [6144, 65_536, 1_048_576]) {
      for (const t of o.threads ?? [1, 2]) {
        const ts = Array.from({ length: count }, (_, i) => Tensor.randn([size], { seed: 10 + i }));
        try {
          setNumThreads(t);
          o.progress(`clip ${count}×${size}, ${t} thread(s)`);
          let tau = 0.9 * clipNewtonStep(ts, { maxNorm: Number.MAX_VALUE }).norm;
          const bytes = 2 * 2 * 4 * count * size; // read for the norm, read+write to scale
          const repeats = Math.max(o.repeats, Math.min(200, Math.ceil(2e9 / bytes)));
          const clipCase = { case: 'clip', shape: `${count}x${size}`, threads: t, repeats, warmup: 3, note: 'peer: numpy dot + in-place scale' };
          const row = await measure(
            clipCase,
            () => {
              clipNewtonStep(ts, { maxNorm: tau });
              tau *= 0.9;
            },
            { pool: peers, req: { op: 'clip', count, size } },
          );
          row.gbps = bytes / row.ms / 1e6;
          rows.push(row);
        } finally {
          for (const x of ts) x.dispose();
        }
      }
    }
  });
}

export const factorBench: BenchCase = {
  name: 'factor',
  description: 'K-FAC factor update F ← βF + (1−β)/R·XᵀX (--sizes d,…; R = 512, 2048, 8192), ours vs OpenBLAS ssyrk',
  run: runFactor,
};

export const preconditionBench: BenchCase = {
  name: 'precondition',
  description: 'eigen and inverse preconditioning and the damped Cholesky inverse (--sizes n,…), ours vs numpy/LAPACK',
  run: runPrecondition,
};

export const clipBench: BenchCase = {
  name: 'clip',
  description: 'global Newton-step clipping over 96 tensors (--sizes elements per tensor), ours vs numpy',
  run: runClip,
};
