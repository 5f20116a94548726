/**
 * K-FAC for prompt tuning (docs/KFAC.md#prompt-and-prefix-tuning). The virtual-token table
 * P [n, C] is a lookup: row (b, v) of the batch reads P[v] through a one-hot e_v, so
 * ∂L/∂P = Σ_{b,v} e_v g_{b,v}ᵀ with g_{b,v} = ∂L/∂(embedding of virtual token v in sequence b).
 * Stored as PEFT stores it ([n, C], one row per virtual token), P is a layer whose "output"
 * side has the one-hot rows and whose "input" side has the gradients: the one-hot factor
 * E[e eᵀ] = diag(count_v)/R is diagonal — each virtual token is used once per sequence, so it is
 * exactly I/n — and the other factor is E[g gᵀ] (C×C). The eigen step is then
 * ∇P (c·E[g gᵀ] + λ')⁻¹ row by row: one C×C solve shared by all virtual tokens. The view's
 * roles are swapped relative to a Linear (rows of P are outputs), which the Kronecker product
 * does not notice: (I/n) ⊗ E[g gᵀ] is the same matrix whichever factor carries the batch scaling.
 */
import { invalidArgument } from '../errors.js';
import type { KfacLayer } from '../kfac/layer.js';
import { parameterView } from '../nn/module.js';
import type { Module } from '../nn/module.js';
import type { Tensor } from '../tensor/tensor.js';
import { requirePrompt } from './prompt.js';

const need = (t: Tensor | null, what: string): Tensor => t ?? invalidArgument(what, 'a forward and backward pass before the K-FAC step', 'none yet');

/** One KfacLayer over the prompt table P [n, C]: input the rows g_{b,v} [B·n, C], output gradient the one-hots e_v [B·n, n]. */
export function kfacLayersForPrompt(model: Module): KfacLayer[] {
  const s = requirePrompt(model);
  const name = `${s.embeddingPath}.prompt_encoder`;
  return [
    {
      name,
      weight: parameterView(`${name}.weight`, s.hook.prompt.weight),
      input: () => need(s.hook.rowGrads, `${name} input`),
      outputGrad: () => need(s.hook.onehots, `${name} output gradient`),
    },
  ];
}
