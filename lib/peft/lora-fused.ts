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

/**
 * Runs fn on 2-D [rows, last] views of the tensors (a tensor already 2-D is passed as is); the
 * views are made for this call and disposed after it (they own no memory; a few microseconds
 * next to the GEMMs).
 */
function flat2d<T>(ts: readonly Tensor[], fn: (...v: Tensor[]) => T): T {
  const made: Tensor[] = [];
  try {
    const vs = ts.map((t) => {
      if (t.rank === 2) return t;
      const v = t.reshape([t.shape.slice(0, -1).reduce((a, b) => a * b, 1), t.shape[t.rank - 1]!]);
      made.push(v);
      return v;
    });
    return fn(...vs);
  } finally {
    for (const v of made) v.dispose();
  }
}

/** y += s·h·op(B): lora_B's product added into the base output by the GEMM itself. */
export function fusedForward(loraB: Linear, h: Tensor, y: Tensor, s: number): void {
  loraB.recordInput(h);
  const conv1d = loraB.layout === 'conv1d';
  flat2d([h, y], (h2, y2) => matmul(h2!, loraB.weight.tensor, { transB: !conv1d, alpha: s, beta: 1, out: y2! }));
}

/** dh = s·g·B (written into `dh`, returned), dB += s·gᵀ·h; records lora_B's output gradient as s·g. */
export function fusedBackward(loraB: Linear, g: Tensor, s: number, dh: Tensor): Tensor {
  const h = saved(loraB.input, 'lora_B');
  loraB.recordOutputGrad(g, s);
  const conv1d = loraB.layout === 'conv1d';
  flat2d([g, h, dh], (g2, h2, dh2) => {
    matmul(g2!, loraB.weight.tensor, { transB: conv1d, alpha: s, out: dh2! });
    const dB = loraB.weight.gradTarget();
    if (!dB) return;
    if (conv1d) matmul(h2!, g2!, { transA: true, alpha: s, beta: 1, out: dB });
    else matmul(g2!, h2!, { transA: true, alpha: s, beta: 1, out: dB });
  });
  return dh;
}
