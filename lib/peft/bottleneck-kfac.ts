/**
 * K-FAC for bottleneck adapters (docs/KFAC.md#bottleneck-adapters): down and up are ordinary
 * Linear layers with a bias, so each gets the usual block, A = E[[a;1][a;1]ᵀ] over its input rows
 * (down: the projection's output h; up: f(down h)) and G = E[g gᵀ] over its output gradients
 * (up: s·g of the adapted output; down: f′ ⊙ upᵀ s g).
 */
import type { KfacLayer } from '../kfac/layer.js';
import { linearLayer } from '../kfac/linear-layer.js';
import type { Module } from '../nn/module.js';
import { requireBottleneck } from './bottleneck.js';

/** Two KfacLayers (adapter_down, adapter_up) per adapter, in model order. */
export function kfacLayersForBottleneck(model: Module): KfacLayer[] {
  const s = requireBottleneck(model);
  return s.branches.flatMap((b) => [linearLayer(`${b.path}.adapter_down`, b.down), linearLayer(`${b.path}.adapter_up`, b.up)]);
}
