/**
 * K-FAC for prefix tuning (docs/KFAC.md#prompt-and-prefix-tuning). The prefix table E [n, width]
 * is a lookup used once per sequence, as a prompt table is: one block with the one-hot factor
 * (exactly I/n) and the factor E[g gᵀ] of the per-(sequence, position) gradients of E's rows.
 * Without the projection E holds the keys and values themselves (width L·2·Hkv·D: that factor
 * grows with depth; for large models prefer the projection or another method); with PEFT's
 * reparameterisation MLP, E is the [n, Hkv·D] embedding and `transform.0` / `transform.2` are
 * ordinary linear blocks over the B·n rows the MLP ran on.
 */
import { invalidArgument } from '../errors.js';
import type { KfacLayer } from '../kfac/layer.js';
import { linearLayer } from '../kfac/linear-layer.js';
import { type Module, parameterView } from '../nn/module.js';
import type { Tensor } from '../tensor/tensor.js';
import { requirePrefix } from './prefix.js';

const need = (t: Tensor | null, what: string): Tensor => t ?? invalidArgument(what, 'a forward and backward pass before the K-FAC step', 'none yet');

/** The prefix's KfacLayers: its table (embedding-like), and the MLP's two Linear layers when it has them. */
export function kfacLayersForPrefix(model: Module): KfacLayer[] {
  const s = requirePrefix(model);
  const name = 'prompt_encoder.embedding';
  const layers: KfacLayer[] = [
    {
      name,
      weight: parameterView(`${name}.weight`, s.encoder.embedding.weight),
      input: () => need(s.rowGrads, `${name} input`),
      outputGrad: () => need(s.onehots, `${name} output gradient`),
    },
  ];
  const t = s.encoder.transform;
  if (t) layers.push(linearLayer('prompt_encoder.transform.0', t.l0), linearLayer('prompt_encoder.transform.2', t.l2));
  return layers;
}
