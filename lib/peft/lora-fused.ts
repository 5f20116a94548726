/**
 * The LoRA branch's lora_B fused into the base layer's output (switch: nn.setFusions({ lora })).
 * Unfused, the forward writes u = h·Bᵀ and then adds s·u into y (two more passes over the
 * [rows, out] output), and the backward forms s·g before lora_B's backward (one more). Fused,
 * the GEMMs scale and accumulate themselves: y += s·h·Bᵀ (α = s, β = 1); dh = s·g·B (α = s);
 * dB += s·gᵀ·h (α = s, β = 1). lora_B records its input and its output gradient s·g as its own
 * forward/backward would (the latter formed only when read, by K-FAC), so K-FAC is unchanged.
 * Only for a float32 lora_B without bias or adapter (always the case for LoRA); the caller
 * falls back to the reference otherwise.
 */
import { matmul } from '../linalg/matmul.js';
import type { Linear } from '../nn/layers.js';
import { saved } from '../nn/module.js';
import type { Tensor } from '../tensor/tensor.js';

/** Whether the fused path applies to this lora_B. */
export function fusable(loraB: Linear): boolean {
  return loraB.bias === null && loraB.adapter === null && loraB.weight.tensor.dtype === 'float32';
}

const rowsOf = (t: Tensor): number => t.shape.slice(0, -1).reduce((a, b) => a * b, 1);

/** 2-D [rows, last] view of a tensor (itself when already 2-D). */
function flat(t: Tensor, views: Map<Tensor, Tensor>): Tensor {
  if (t.rank === 2) return t;
  const v = views.get(t);
  if (v && !v.disposed) return v;
  const n = t.reshape([rowsOf(t), t.shape[t.rank - 1]!]);
  views.set(t, n);
  return n;
}

/** Cached 2-D views of the workspaces a branch sees (the same tensors every step). */
export class FlatViews {
  #views = new Map<Tensor, Tensor>();
  of(t: Tensor): Tensor {
    if (this.#views.size > 16) this.clear(); // shapes changed: old workspaces are gone
    return flat(t, this.#views);
  }
  clear(): void {
    for (const v of this.#views.values()) v.dispose();
    this.#views.clear();
  }
}

/** y += s·h·op(B): lora_B's product added into the base output by the GEMM itself. */
export function fusedForward(loraB: Linear, h: Tensor, y: Tensor, s: number, views: FlatViews): void {
  loraB.recordInput(h);
  const conv1d = loraB.layout === 'conv1d';
  matmul(views.of(h), loraB.weight.tensor, { transB: !conv1d, alpha: s, beta: 1, out: views.of(y) });
}

/** dh = s·g·B (returned, in `dh`), dB += s·gᵀ·h; records lora_B's output gradient as s·g. */
export function fusedBackward(loraB: Linear, g: Tensor, s: number, dh: Tensor, views: FlatViews): Tensor {
  const h = saved(loraB.input, 'lora_B');
  loraB.recordOutputGrad(g, s);
  const conv1d = loraB.layout === 'conv1d';
  const g2 = views.of(g), h2 = views.of(h);
  matmul(g2, loraB.weight.tensor, { transB: conv1d, alpha: s, out: views.of(dh) });
  const dB = loraB.weight.gradTarget();
  if (dB) {
    if (conv1d) matmul(h2, g2, { transA: true, alpha: s, beta: 1, out: dB });
    else matmul(g2, h2, { transA: true, alpha: s, beta: 1, out: dB });
  }
  return dh;
}
