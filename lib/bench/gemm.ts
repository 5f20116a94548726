/** `kfac-peft bench gemm`: square and LoRA-shaped GEMMs against OpenBLAS sgemm. */
import { matmul } from '../linalg/matmul.js';
import { setNumThreads } from '../runtime.js';
import { Tensor } from '../tensor/tensor.js';
import { PeerPool } from './peer.js';
import { measure } from './measure.js';
import type { BenchCase, BenchOptions, BenchRow } from './types.js';

const DEFAULT_SIZES = [256, 512, 1024];

async function run(o: BenchOptions): Promise<BenchRow[]> {
  const sizes = o.sizes ?? DEFAULT_SIZES;
  const threads = o.threads ?? [1, 2];
  const peers = new PeerPool(o.peer, o.peerKeepEnv);
  const rows: BenchRow[] = [];
  try {
    for (const n of sizes) {
      using a = Tensor.randn([n, n], { seed: 1 });
      using b = Tensor.randn([n, n], { seed: 2 });
      using c = Tensor.zeros([n, n]);
      const flops = 2 * n * n * n;
      // Enough repeats for a stable median on small sizes, bounded on large ones.
      const repeats = Math.max(o.repeats, Math.min(200, Math.ceil(2e10 / flops)));
      for (const t of threads) {
        o.progress(`gemm ${n}×${n}×${n}, ${t} thread${t > 1 ? 's' : ''}`);
        setNumThreads(t);
        const shape = `${n}x${n}x${n}`;
        rows.push(await measure({ case: 'gemm', shape, threads: t, repeats, warmup: 3, rounds: o.rounds ?? 1, flops, note: 'with out' }, () => matmul(a, b, { out: c }), { pool: peers, req: { op: 'gemm', m: n, n, k: n } }));
        // A new output each call, as `linalg.matmul(a, b)` is used in a training step.
        rows.push(await measure({ case: 'gemm', shape: `${shape} new`, threads: t, repeats, warmup: 3, rounds: o.rounds ?? 1, flops, note: 'new output vs a @ b' }, () => matmul(a, b).dispose(), { pool: peers, req: { op: 'gemm', m: n, n, k: n, new: true } }));
      }
    }
  } finally {
    setNumThreads(0);
    await peers.close();
  }
  return rows;
}

export const gemmBench: BenchCase = {
  name: 'gemm',
  description: 'C = A·B for square float32 matrices (--sizes N,…), ours vs OpenBLAS sgemm',
  run,
};
