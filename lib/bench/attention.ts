/**
 * `kfac-peft bench attention`: forward + backward of one self-attention block (q/k/v/o
 * projections and causal attention, nn.Attention) at B=8, T=128, C=256, H=4 (D=64) by default,
 * and the attention kernels alone. --sizes B,T,C[,H[,Hkv]] overrides the shape.
 */
import { Attention } from '../nn/layers.js';
import * as F from '../nn/functional.js';
import { setNumThreads } from '../runtime.js';
import { Tensor } from '../tensor/tensor.js';
import { timeMs } from './timing.js';
import type { BenchCase, BenchOptions, BenchRow } from './types.js';

async function run(o: BenchOptions): Promise<BenchRow[]> {
  const [B = 8, T = 128, C = 256, H = 4, Hkv = H] = o.sizes ?? [];
  const D = C / H;
  const threads = o.threads ?? [1, 2];
  const rows: BenchRow[] = [];
  const shape = `B=${B} T=${T} C=${C} H=${H} Hkv=${Hkv} D=${D}`;
  using x = Tensor.randn([B, T, C], { seed: 1 });
  using dy = Tensor.randn([B, T, C], { seed: 2 });
  using attn = new Attention(C, { heads: H, kvHeads: Hkv, causal: true, bias: true, seed: 3 });
  attn.zeroGrad();
  using q = Tensor.randn([B, T, H, D], { seed: 4 });
  using k = Tensor.randn([B, T, Hkv, D], { seed: 5 });
  using v = Tensor.randn([B, T, Hkv, D], { seed: 6 });
  using out = Tensor.empty([B, T, H, D]);
  using lse = Tensor.empty([B, H, T]);
  using dq = Tensor.empty([B, T, H, D]);
  using dk = Tensor.empty([B, T, Hkv, D]);
  using dv = Tensor.empty([B, T, Hkv, D]);
  const repeats = Math.max(o.repeats, 1);
  try {
    for (const t of threads) {
      setNumThreads(t);
      o.progress(`attention block ${shape}, ${t} thread(s)`);
      const block = timeMs(() => {
        attn.forward(x);
        attn.backward(dy);
      }, repeats);
      const fwd = timeMs(() => attn.forward(x), repeats);
      const kf = timeMs(() => F.attentionForward(q, k, v, out, lse, { causal: true }), repeats);
      const kb = timeMs(() => F.attentionBackward(q, k, v, lse, out, dq, dk, dv, { causal: true, out }), repeats);
      rows.push({ case: 'attention', shape: `block fwd+bwd ${shape}`, threads: t, ms: block });
      rows.push({ case: 'attention', shape: `block fwd ${shape}`, threads: t, ms: fwd });
      rows.push({ case: 'attention', shape: `kernel fwd ${shape}`, threads: t, ms: kf });
      rows.push({ case: 'attention', shape: `kernel bwd ${shape}`, threads: t, ms: kb });
    }
  } finally {
    setNumThreads(0);
  }
  return rows;
}

export const attentionBench: BenchCase = {
  name: 'attention',
  description: 'forward+backward of one causal self-attention block (--sizes B,T,C,H,Hkv; default 8,128,256,4,4)',
  run,
};
