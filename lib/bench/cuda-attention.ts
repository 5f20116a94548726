/**
 * `kfac-peft bench attention --backend cuda`: the attention kernels alone on the device, bf16
 * activations, causal, forward and backward (given the forward's output), on tensor cores
 * (native/cuda/nn_attention_tc_body.h) and on CUDA cores (nn_attention_body.h, the switch
 * `_attentionTensorCores(false)`), in the same run. TFLOP/s count the products as FlashAttention-2
 * does — forward 4·B·H·T²·D, backward 2.5× that, halved when causal — so the rows compare with
 * its figures; `ofCeiling` divides by the bf16 GEMM peak measured in the same run (a square
 * cuBLAS bf16 matmul). When PyTorch with CUDA imports (bench/peer_torch.py, KFAC_PEER_PYTHON),
 * torch's scaled_dot_product_attention on the same shape is the peer, as eigh's is.
 * --sizes B,T,C[,H[,Hkv]] (default 4,2048,2048,16,16: D = 128).
 */
import * as F from '../nn/functional.js';
import { native } from '../native/loader.js';
import { Tensor } from '../tensor/tensor.js';
import { timeDev, torchPeer } from './cuda.js';
import { measurePeak } from './train-step.js';
import type { BenchCase, BenchOptions, BenchRow } from './types.js';

interface TorchAttention {
  torch: string;
  device: string;
  attention: { fwd: number; bwd: number };
}

const bf16 = (shape: number[], seed: number): Tensor => {
  const h = Tensor.randn(shape, { seed });
  const d = h.to('cuda', { dtype: 'bfloat16' });
  h.dispose();
  return d;
};

async function run(o: BenchOptions): Promise<BenchRow[]> {
  const [B = 4, T = 2048, C = 2048, H = 16, Hkv = H] = o.sizes ?? [];
  const D = C / H;
  const repeats = Math.max(3, Math.min(o.repeats, 10));
  o.progress('timing the bf16 GEMM peak');
  const peak = measurePeak('cuda', 8192);
  // torch's scaled_dot_product_attention (causal, bf16) on the same shape
  const peer = o.peer ? torchPeer<TorchAttention>('attention', [B, T, H, Hkv, D], repeats) : undefined;
  const fwdFlops = (4 * B * H * T * T * D) / 2; // causal: half the score matrix
  const tensors = [bf16([B, T, H, D], 1), bf16([B, T, Hkv, D], 2), bf16([B, T, Hkv, D], 3), bf16([B, T, H, D], 4)];
  const [q, k, v, dO] = tensors as [Tensor, Tensor, Tensor, Tensor];
  const out = Tensor.empty([B, T, H, D], { device: 'cuda', dtype: 'bfloat16' });
  const lse = Tensor.empty([B, H, T], { device: 'cuda' });
  const grads = [Tensor.empty([B, T, H, D], { device: 'cuda', dtype: 'bfloat16' }), Tensor.empty([B, T, Hkv, D], { device: 'cuda', dtype: 'bfloat16' }), Tensor.empty([B, T, Hkv, D], { device: 'cuda', dtype: 'bfloat16' })];
  const [dq, dk, dv] = grads as [Tensor, Tensor, Tensor];
  const shape = `B=${B} T=${T} H=${H} Hkv=${Hkv} D=${D} causal bf16`;
  const rows: BenchRow[] = [];
  const previous = native()._attentionTensorCores();
  try {
    for (const tc of [true, false]) {
      native()._attentionTensorCores(tc);
      const kind = tc ? 'tensor cores' : 'CUDA cores';
      o.progress(`cuda attention ${shape}, ${kind}`);
      const fwd = timeDev(() => F.attentionForward(q, k, v, out, lse, { causal: true }), repeats);
      const bwd = timeDev(() => F.attentionBackward(q, k, v, lse, dO, dq, dk, dv, { causal: true, out }), repeats);
      for (const [what, ms, flops, peerMs] of [
        ['fwd', fwd, fwdFlops, peer?.attention.fwd],
        ['bwd', bwd, 2.5 * fwdFlops, peer?.attention.bwd],
        ['fwd+bwd', fwd + bwd, 3.5 * fwdFlops, peer ? peer.attention.fwd + peer.attention.bwd : undefined],
      ] as const) {
        const gflops = flops / (ms * 1e6);
        rows.push({
          case: 'attention',
          shape: `${what} ${shape}, ${kind}`,
          threads: 0,
          ms,
          backend: 'cuda',
          gflops,
          ...(peak.tflops ? { ofCeiling: gflops / (peak.tflops * 1e3) } : {}),
          ...(peerMs !== undefined ? { peer: `torch ${peer!.torch} scaled_dot_product_attention, ${peer!.device}`, peerMs, ratio: peerMs / ms } : {}),
          note: `ceiling: ${peak.tflops ? `${peak.tflops.toFixed(1)} TFLOP/s, ` : ''}${peak.note}`,
        });
      }
    }
  } finally {
    native()._attentionTensorCores(previous);
    for (const t of [...tensors, out, lse, ...grads]) t.dispose();
  }
  return rows;
}

export const cudaAttentionBench: BenchCase = {
  name: 'attention',
  description: 'attention kernels on the device, bf16, causal: tensor cores against CUDA cores and the bf16 GEMM peak (--sizes B,T,C,H,Hkv; default 4,2048,2048,16,16)',
  run,
};
