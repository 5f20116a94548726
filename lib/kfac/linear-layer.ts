/** K-FAC layers for nn.Linear modules: the weight/bias gradients and the captured a and g. */
import { describe, invalidArgument } from '../errors.js';
import type { Linear } from '../nn/layers.js';
import { parameterView } from '../nn/module.js';
import type { KfacLayer } from './layer.js';

/**
 * A KfacLayer over an nn.Linear (torch layout, W [out, in]). Its input and output gradient are
 * the ones the Linear captured in its last forward and backward. Layers reading the same tensor
 * can pass the same `inputKey` to share one A factor.
 */
export function linearLayer(name: string, linear: Linear, options: { inputKey?: string } = {}): KfacLayer {
  if (!linear || typeof linear !== 'object' || !('layout' in linear)) invalidArgument('linear', 'an nn.Linear', describe(linear));
  if (linear.layout !== 'linear')
    invalidArgument('linear.layout', "'linear' (W stored [out, in]); Conv1D-layout weights are preconditioned through their LoRA layers", `'${linear.layout}'`);
  const layer: KfacLayer = {
    name,
    weight: parameterView(`${name}.weight`, linear.weight),
    bias: linear.bias ? parameterView(`${name}.bias`, linear.bias) : null,
    input: () => linear.input ?? invalidArgument(`${name}.input`, 'a forward pass before the K-FAC step', 'none'),
    outputGrad: () => linear.outputGrad ?? invalidArgument(`${name}.outputGrad`, 'a backward pass before the K-FAC step', 'none'),
  };
  if (options.inputKey !== undefined) layer.inputKey = options.inputKey;
  return layer;
}
