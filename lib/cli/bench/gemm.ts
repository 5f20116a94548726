/** `kfac-peft bench gemm`: square and LoRA-shaped GEMMs against OpenBLAS sgemm. */
import { matmul } from '../../linalg/matmul.js';
import { setNumThreads } from '../../runtime.js';
import { Tensor } from '../../tensor/tensor.js';
import { PeerPool } from './peer.js';
import { timeMs } from './timing.js';
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
        const ms = timeMs(() => matmul(a, b, { out: c }), repeats, 3);
        const peer = await peers.get(t);
        const peerMs = peer ? await peer.ms({ op: 'gemm', m: n, n, k: n, repeats }) : undefined;
        const row: BenchRow = { case: 'gemm', shape: `${n}x${n}x${n}`, threads: t, ms, gflops: flops / ms / 1e6 };
        if (peer && peerMs !== undefined) {
          row.peer = peer.name;
          row.peerMs = peerMs;
          row.peerGflops = flops / peerMs / 1e6;
          row.ratio = peerMs / ms;
        }
        rows.push(row);
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
