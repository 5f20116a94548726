/**
 * K-FAC views of IA3 vectors (docs/KFAC.md#ia3). A vector l scales a layer's output (or input);
 * its gradient is a sum over rows of u = g ⊙ h (or x ⊙ Wᵀg). Seen as a linear layer with weight
 * l [n, 1] and constant input 1, it has factors A = E[1·1] = 1 (1×1) and G = E[u uᵀ] (n×n), so the
 * eigen block preconditions exactly as (G + λI)⁻¹ ∇l, with Newton-step clipping and the
 * per-parameter policy applied like any other block. The view's weight and gradient are [n, 1]
 * reshapes of the vector and its gradient (same memory).
 */
import { invalidArgument } from '../errors.js';
import type { KfacLayer } from '../kfac/layer.js';
import type { Module, ParamSlot } from '../nn/module.js';
import type { Param } from '../optim/types.js';
import type { Tensor } from '../tensor/tensor.js';
import { requireIa3 } from './ia3.js';

/** A Param over a vector slot [n] seen as [n, 1]; views follow the slot's tensor and gradient. */
export function columnParam(name: string, slot: ParamSlot): Param {
  let tBase: Tensor | null = null;
  let tView: Tensor | null = null;
  let gBase: Tensor | null = null;
  let gView: Tensor | null = null;
  const col = (t: Tensor) => t.reshape([t.shape[0]!, 1]);
  return {
    name,
    get tensor(): Tensor {
      if (slot.tensor !== tBase || !tView || tView.disposed) {
        tBase = slot.tensor;
        tView = col(slot.tensor);
      }
      return tView;
    },
    get grad(): Tensor | null {
      const g = slot.grad;
      if (!g || g.disposed) return null;
      if (g !== gBase || !gView || gView.disposed) {
        gBase = g;
        gView = col(g);
      }
      return gView;
    },
    set grad(v: Tensor | null) {
      if (v === null) slot.grad = null;
      else invalidArgument(`${name}.grad`, 'null (the gradient is a view of the vector’s)', 'a tensor');
    },
  };
}

const need = (t: Tensor | null, what: string): Tensor => t ?? invalidArgument(what, 'a forward and backward pass before the K-FAC step', 'none yet');

/** One KfacLayer per IA3 vector: weight l [n, 1], input a column of ones, output gradient the rows u. */
export function kfacLayersForIa3(model: Module): KfacLayer[] {
  const s = requireIa3(model, 'model');
  return s.branches.map((b) => {
    const name = `${b.path}.ia3_l`;
    return {
      name,
      weight: columnParam(`${name}.weight`, b.vector.weight),
      input: () => need(b.onesInput, `${name} input`),
      outputGrad: () => need(b.rowGrads, `${name} output gradient`),
    };
  });
}
