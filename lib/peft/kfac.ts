/**
 * K-FAC views of LoRA layers (docs/KFAC.md#lora). For y = base(x) + s·B(A(x)) with g = ∂L/∂y:
 * - lora_A (r×din) sees input a = x (after the branch's dropout) and output gradient s·Bᵀg:
 *   factors din×din and r×r;
 * - lora_B (dout×r) sees input A·a and output gradient s·g: factors r×r and dout×dout.
 * lora_A layers that read the same input (q, k and v of one attention block; gate and up of a
 * SwiGLU MLP) get one `inputKey`, so their A factor is computed and decomposed once. The shared
 * input is checked on every factor update: the group's first layer refuses to build the factor
 * when a member saw another tensor. With branch dropout the inputs differ, so no key is shared.
 *
 * B starts at zero, so lora_A's gradient and G factor start at zero: the eigen method's damping
 * keeps the first step finite (it is zero for lora_A), while lora_B gets a real step.
 */
import { describe, InvalidArgumentError, invalidArgument } from '../errors.js';
import type { KfacLayer } from '../kfac/layer.js';
import { Linear } from '../nn/layers.js';
import type { Module, Parameter } from '../nn/module.js';
import type { Param } from '../optim/types.js';
import type { Tensor } from '../tensor/tensor.js';
import { type LoraBranch, requireLora, savedHeadParameters } from './lora.js';

/** Sibling projections that read the same input in the supported architectures. */
const SHARED_INPUT_GROUPS: readonly (readonly string[])[] = [
  ['q_proj', 'k_proj', 'v_proj'],
  ['query', 'key', 'value'],
  ['q_lin', 'k_lin', 'v_lin'],
  ['gate_proj', 'up_proj'],
];

export interface KfacLoraOptions {
  /** Share one A factor between lora_A layers reading the same input (default true). */
  shareInputs?: boolean;
  /** Also track the modules to save that are plain Linear layers (e.g. a classifier; default false). */
  heads?: boolean;
}

function weightParam(m: Linear, prefix: string): Parameter {
  return m.parameters(prefix).find((p) => p.name === `${prefix}weight`)!;
}

function need(t: Tensor | null, what: string): Tensor {
  if (t === null) invalidArgument(what, 'a forward and backward pass before the K-FAC step', 'none yet');
  return t;
}

function groupKey(path: string): string | null {
  const dot = path.lastIndexOf('.');
  const leaf = path.slice(dot + 1);
  const parent = dot < 0 ? '' : path.slice(0, dot);
  // T5: a self-attention's q, k, v read one input; a cross-attention's k and v read the encoder
  // output and its q the decoder's; gated feed-forwards' wi_0 and wi_1 read one input.
  if (parent.endsWith('.EncDecAttention')) return leaf === 'k' || leaf === 'v' ? `${parent}:k|v` : null;
  if (parent.endsWith('.SelfAttention') && (leaf === 'q' || leaf === 'k' || leaf === 'v')) return `${parent}:q|k|v`;
  if (parent.endsWith('.DenseReluDense') && (leaf === 'wi_0' || leaf === 'wi_1')) return `${parent}:wi_0|wi_1`;
  const gi = SHARED_INPUT_GROUPS.findIndex((g) => g.includes(leaf));
  return gi < 0 ? null : `${parent}:${SHARED_INPUT_GROUPS[gi]!.join('|')}`;
}

/** KfacLayer views of every lora_A and lora_B of a LoRA model (and optionally of its Linear heads). */
export function kfacLayersForLora(model: Module, options: KfacLoraOptions = {}): KfacLayer[] {
  const s = requireLora(model, 'model');
  if (options === null || typeof options !== 'object') invalidArgument('options', 'an options object', describe(options));
  const share = options.shareInputs ?? true;
  const groups = new Map<string, LoraBranch[]>();
  if (share)
    for (const b of s.branches) {
      if (b.dropout.p > 0) continue;
      const k = groupKey(b.path);
      if (k === null) continue;
      groups.set(k, [...(groups.get(k) ?? []), b]);
    }
  const layers: KfacLayer[] = [];
  for (const b of s.branches) {
    const k = share && b.dropout.p === 0 ? groupKey(b.path) : null;
    const members = k === null ? [] : (groups.get(k) ?? []);
    const shared = members.length > 1;
    const leader = shared && members[0] === b;
    const aName = `${b.path}.lora_A`;
    layers.push({
      name: aName,
      weight: weightParam(b.loraA, `${aName}.`),
      input: () => {
        const x = need(b.loraA.input, `${aName} input`);
        // bf16 activations: each branch reads its own float32 copy of the one bf16 input
        const same = (m: LoraBranch): boolean => m.loraA.input === x || (b.widenedFrom !== null && m.widenedFrom === b.widenedFrom);
        if (leader)
          for (const m of members)
            if (!same(m))
              throw new InvalidArgumentError(`${m.path}.lora_A read another input than ${aName}, with which it shares a K-FAC factor`, {
                argument: 'inputKey',
                hint: 'pass { shareInputs: false } to kfacLayersForLora',
              });
        return x;
      },
      outputGrad: () => need(b.loraA.outputGrad, `${aName} output gradient`),
      ...(shared ? { inputKey: `lora_A:${k}` } : {}),
    });
    const bName = `${b.path}.lora_B`;
    layers.push({
      name: bName,
      weight: weightParam(b.loraB, `${bName}.`),
      input: () => need(b.loraB.input, `${bName} input`),
      outputGrad: () => need(b.loraB.outputGrad, `${bName} output gradient`),
    });
  }
  if (options.heads) {
    const mods = new Map(model.namedModules());
    for (const path of s.modulesToSave) {
      const m = mods.get(path);
      if (!(m instanceof Linear) || m.layout !== 'linear') continue;
      const bias = m.bias ? m.parameters(`${path}.`).find((p) => p.name === `${path}.bias`)! : null;
      layers.push({
        name: path,
        weight: weightParam(m, `${path}.`),
        bias,
        input: () => need(m.input, `${path} input`),
        outputGrad: () => need(m.outputGrad, `${path} output gradient`),
      });
    }
  }
  return layers;
}

/** The trainable parameters of a LoRA model that `layers` do not track (pass them to KFAC as extraParams). */
export function untrackedParameters(model: Module, layers: readonly KfacLayer[]): Param[] {
  const s = requireLora(model, 'model');
  const tracked = new Set(layers.flatMap((l) => [l.weight.name, ...(l.bias ? [l.bias.name] : [])]));
  const lora = s.branches.flatMap((b) => [weightParam(b.loraA, `${b.path}.lora_A.`), weightParam(b.loraB, `${b.path}.lora_B.`)]);
  return [...lora, ...savedHeadParameters(model, s)].filter((p) => p.trainable && !tracked.has(p.name));
}
