/**
 * K-FAC for BitFit biases (docs/KFAC.md#bitfit). A bias b of a Linear adds to every row, s_r =
 * W a_r + b, so ∂L/∂b = Σ_r g_r: it is a layer with weight b [dout, 1], constant input 1 and the
 * Linear's own output gradient g. Its factors are A = 1 and G = E[g gᵀ] (the Linear's G), and the
 * step is (G + λI)⁻¹ ∇b. Biases of other modules (layer norms) have no captured output gradient:
 * they stay untracked and go to the per-parameter policy (AdamW by default).
 */
import type { KfacLayer } from '../kfac/layer.js';
import { Linear } from '../nn/layers.js';
import type { Module } from '../nn/module.js';
import type { Param } from '../optim/types.js';
import { Tensor } from '../tensor/tensor.js';
import { bitfitState } from './bitfit.js';
import { columnParam } from './ia3-kfac.js';
import { invalidArgument } from '../errors.js';

/** One KfacLayer per trained bias of a torch-layout or Conv1D Linear. */
export function kfacLayersForBitfit(model: Module): KfacLayer[] {
  const s = bitfitState(model) ?? invalidArgument('model', 'a model with BitFit applied', 'a model without BitFit');
  const trained = new Set(s.biases.map((p) => p.name));
  const layers: KfacLayer[] = [];
  for (const [path, m] of model.namedModules()) {
    if (!(m instanceof Linear) || !m.bias || !trained.has(`${path}.bias`)) continue;
    const name = `${path}.bias`;
    let ones: Tensor | null = null;
    const g = () => m.outputGrad ?? invalidArgument(`${name} output gradient`, 'a forward and backward pass before the K-FAC step', 'none yet');
    layers.push({
      name,
      weight: columnParam(name, m.bias),
      input: () => {
        const rows = g().size / m.outFeatures;
        if (!ones || ones.disposed || ones.shape[0] !== rows) {
          ones?.dispose();
          ones = Tensor.from(new Float32Array(rows).fill(1), [rows, 1]);
        }
        return ones;
      },
      outputGrad: g,
    });
  }
  return layers;
}

/** The trainable parameters of `model` that `layers` do not track (pass them to KFAC as extraParams). */
export function untrackedTrainable(model: Module, layers: readonly KfacLayer[]): Param[] {
  const tracked = new Set(layers.flatMap((l) => [l.weight.name, ...(l.bias ? [l.bias.name] : [])]));
  return model.parameters().filter((p) => p.trainable && !tracked.has(p.name));
}
