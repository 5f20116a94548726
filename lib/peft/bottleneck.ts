/**
 * Bottleneck adapters (Houlsby et al. 2019; Pfeiffer et al. 2020) applied by configuration.
 *
 * An adapter sits on the output h of a sublayer's output projection, before the residual sum:
 *   y = h + s · up(f(down(h)))        (residual, the default)
 *   y = s · up(f(down(h)))            (residual: false)
 * with down = Linear(d → m) and up = Linear(m → d), m = max(1, ⌊d / reductionFactor⌋), f one of
 * relu / gelu / silu and s the scaling (default 1). Houlsby places one after the attention
 * output projection and one after the feed-forward output projection; Pfeiffer only after the
 * feed-forward one. down starts Kaiming-uniform (a = √5, bound 1/√d), up and both biases at
 * zero, so a residual adapter starts as the identity (the adapters library's "mam_adapter"
 * initialisation). Every other parameter is frozen except the modules to save.
 *
 * The adapter is a LinearAdapter of the projection: the base Linear has already computed h and
 * Wᵀg from the adapted output's gradient g; the branch rewrites y in place and, in backward,
 * adds the missing part Wᵀδ with δ = ∂L/∂h − g = downᵀ(f′ ⊙ upᵀ s g) (− g without residual).
 * down and up are plain Linear layers: their inputs and output gradients are what K-FAC needs
 * (kfacLayersForBottleneck, ordinary linear blocks with bias).
 */
import { ConfigError, describe, invalidArgument } from '../errors.js';
import { SmallActivation } from '../models/common.js';
import { linearBackward } from '../nn/functional.js';
import { GELU, Linear, type LinearAdapter, SiLU } from '../nn/layers.js';
import type { Module, Parameter } from '../nn/module.js';
import { axpy, copy, scale as scaleOp } from '../ops/index.js';
import { Tensor } from '../tensor/tensor.js';
import { checkBoolean, checkFinite, checkInteger, checkOptions } from '../util/validate.js';
import { bitfitState } from './bitfit.js';
import { ia3State } from './ia3.js';
import { installMethod, loraState, type ParameterCounts, type TargetModules, targetMatcher } from './lora.js';

export type BottleneckKind = 'houlsby' | 'pfeiffer';
export type BottleneckActivation = 'relu' | 'gelu' | 'silu';

export interface BottleneckConfig {
  /** 'pfeiffer' (default: after the feed-forward block) or 'houlsby' (after attention and feed-forward). */
  kind?: BottleneckKind;
  /** m = max(1, ⌊hidden / reductionFactor⌋) (default 16). */
  reductionFactor?: number;
  /** Non-linearity between down and up (default 'relu'). */
  nonLinearity?: BottleneckActivation;
  /** Add the adapter's input back (default true; without it the adapter replaces h). */
  residual?: boolean;
  /** Factor s on the adapter's output (default 1). */
  scaling?: number;
  /** Attention output projections (default: the known layouts' o_proj / c_proj / attention.output.dense / out_lin / SelfAttention.o). */
  attentionModules?: TargetModules | null;
  /** Feed-forward output projections (default: down_proj / mlp.c_proj / N.output.dense / lin2 / DenseReluDense.wo). */
  ffnModules?: TargetModules | null;
  modulesToSave?: readonly string[] | null;
  /** Seed of down's initialisation (default 0). */
  seed?: number;
  baseModelNameOrPath?: string | null;
}

export interface ResolvedBottleneckConfig {
  readonly kind: BottleneckKind;
  readonly reductionFactor: number;
  readonly nonLinearity: BottleneckActivation;
  readonly residual: boolean;
  readonly scaling: number;
  readonly modulesToSave: readonly string[];
  readonly seed: number;
  readonly baseModelNameOrPath: string | null;
}

/** Output projections of attention blocks in the supported layouts (LLaMA family, GPT-2, BERT/RoBERTa, DistilBERT, T5). */
export const ATTENTION_OUTPUTS = /(?:^|\.)(?:self_attn\.o_proj|attn\.c_proj|attention\.output\.dense|attention\.out_lin|SelfAttention\.o)$/;
/** Output projections of feed-forward blocks in the same layouts. */
export const FFN_OUTPUTS = /(?:^|\.)(?:mlp\.down_proj|mlp\.c_proj|\d+\.output\.dense|ffn\.lin2|DenseReluDense\.wo)$/;

/** One adapter on one output projection. */
export class BottleneckBranch implements LinearAdapter {
  readonly down: Linear;
  readonly up: Linear;
  readonly act: Module & { forward(x: Tensor): Tensor; backward(d: Tensor): Tensor };
  #h: Tensor | null = null;
  #gs: Tensor | null = null;

  constructor(
    readonly path: string,
    readonly base: Linear,
    readonly site: 'attention' | 'ffn',
    readonly size: number,
    readonly nonLinearity: BottleneckActivation,
    readonly residual: boolean,
    readonly scaling: number,
    seed: number,
  ) {
    const d = base.outFeatures;
    const bound = 1 / Math.sqrt(d);
    this.down = new Linear(d, size, { weight: Tensor.rand([size, d], { seed, low: -bound, high: bound }), biasInit: Tensor.zeros([size]) });
    this.up = new Linear(size, d, { weight: Tensor.zeros([d, size]), biasInit: Tensor.zeros([d]) });
    this.act = nonLinearity === 'gelu' ? new GELU() : nonLinearity === 'silu' ? new SiLU() : new SmallActivation('relu');
    const device = base.weight.tensor.device;
    if (device !== 'cpu') for (const m of [this.down, this.up, this.act]) m.to(device);
  }

  #buffer(slot: Tensor | null, like: Tensor): Tensor {
    if (slot && !slot.disposed && slot.shape.length === like.shape.length && slot.shape.every((v, i) => v === like.shape[i])) return slot;
    slot?.dispose();
    return Tensor.empty(like.shape, { device: like.device });
  }

  forward(_x: Tensor, y: Tensor): void {
    const h = (this.#h = copy(y, this.#buffer(this.#h, y))); // down keeps h as its input: y is rewritten below
    const u = this.up.forward(this.act.forward(this.down.forward(h)));
    if (this.residual) axpy(this.scaling, u, y);
    else scaleOp(u, this.scaling, y);
  }

  backward(dy: Tensor, dx: Tensor | null): void {
    const x = this.base.input;
    if (!x || !this.#h) invalidArgument(`backward of ${this.path}`, 'a forward pass first', 'none');
    const gs = (this.#gs = scaleOp(dy, this.scaling, this.#buffer(this.#gs, dy)));
    this.up.computeInputGrad = true;
    this.down.computeInputGrad = true;
    const delta = this.down.backward(this.act.backward(this.up.backward(gs) as Tensor)) as Tensor; // downᵀ(f′ ⊙ upᵀ s g)
    if (!this.residual) axpy(-1, dy, delta); // the base's Wᵀg used g; without residual ∂L/∂h is delta alone
    const dW = this.base.weight.gradTarget();
    const db = this.base.bias?.gradTarget() ?? null;
    if (dx || dW || db) linearBackward(x, this.base.weight.tensor, delta, { dx, dW, db, accumulateDx: true }, this.base.layout);
  }

  modules(): Record<string, Module> {
    return { adapter_down: this.down, adapter_act: this.act, adapter_up: this.up };
  }

  dispose(): void {
    this.#h?.dispose();
    this.#gs?.dispose();
    this.#h = this.#gs = null;
    for (const m of [this.down, this.up, this.act]) m.dispose();
  }
}

export interface BottleneckState {
  readonly config: ResolvedBottleneckConfig;
  readonly branches: readonly BottleneckBranch[];
  readonly modulesToSave: string[];
  readonly counts: ParameterCounts;
  readonly summary: string;
}

const states = new WeakMap<Module, BottleneckState>();

export function bottleneckState(model: Module): BottleneckState | undefined {
  return states.get(model);
}

/** @internal */
export function requireBottleneck(model: Module, what = 'model'): BottleneckState {
  const s = states.get(model);
  if (!s) invalidArgument(what, 'a model with bottleneck adapters (applyBottleneck or loadBottleneck)', 'a model without');
  return s;
}

const CLASSIFIER_HEADS = ['classifier', 'score'];
const KNOWN = ['kind', 'reductionFactor', 'nonLinearity', 'residual', 'scaling', 'attentionModules', 'ffnModules', 'modulesToSave', 'seed', 'baseModelNameOrPath'];

export function resolveBottleneckConfig(config: BottleneckConfig, model?: Module): ResolvedBottleneckConfig {
  const o = checkOptions(config, 'config');
  for (const k of Object.keys(o)) if (!KNOWN.includes(k)) invalidArgument(`config.${k}`, `one of ${KNOWN.join(', ')}`, JSON.stringify(k));
  const kind = o['kind'] ?? 'pfeiffer';
  if (kind !== 'houlsby' && kind !== 'pfeiffer') invalidArgument('kind', "'houlsby' or 'pfeiffer'", describe(kind));
  const act = o['nonLinearity'] ?? 'relu';
  if (act !== 'relu' && act !== 'gelu' && act !== 'silu') invalidArgument('nonLinearity', "'relu', 'gelu' or 'silu'", describe(act));
  for (const k of ['attentionModules', 'ffnModules']) if (o[k] !== undefined && o[k] !== null) targetMatcher(o[k] as TargetModules);
  const mts = o['modulesToSave'];
  if (mts !== undefined && mts !== null && (!Array.isArray(mts) || !mts.every((x) => typeof x === 'string' && x !== '')))
    invalidArgument('modulesToSave', 'a list of module names', describe(mts));
  const modulesToSave = [...((mts as string[] | null | undefined) ?? [])];
  const task = model ? (model as { task?: unknown }).task : undefined;
  if (task === 'sequence-classification' || task === 'regression') for (const h of CLASSIFIER_HEADS) if (!modulesToSave.includes(h)) modulesToSave.push(h);
  const base = o['baseModelNameOrPath'];
  if (base !== undefined && base !== null && typeof base !== 'string') invalidArgument('baseModelNameOrPath', 'a string or null', describe(base));
  return {
    kind,
    reductionFactor: o['reductionFactor'] === undefined ? 16 : checkInteger(o['reductionFactor'], 'reductionFactor', 1, 1 << 20),
    nonLinearity: act,
    residual: o['residual'] === undefined ? true : checkBoolean(o['residual'], 'residual'),
    scaling: o['scaling'] === undefined ? 1 : checkFinite(o['scaling'], 'scaling'),
    modulesToSave,
    seed: o['seed'] === undefined ? 0 : checkInteger(o['seed'], 'seed', 0, 2 ** 40),
    baseModelNameOrPath: (base as string | null | undefined) ?? null,
  };
}

function matchModulesToSave(model: Module, names: readonly string[]): string[] {
  const out: string[] = [];
  for (const [path, m] of model.namedModules()) {
    if (path === '' || m.parameters().length === 0 || !names.some((n) => path.endsWith(n)) || out.some((q) => path.startsWith(`${q}.`))) continue;
    out.push(path);
  }
  return out;
}

/**
 * Adds bottleneck adapters to the model's attention and/or feed-forward output projections and
 * freezes everything else. A model whose layout is not known (and no attentionModules /
 * ffnModules given), or a matched module that is not a Linear, is a ConfigError raised before the
 * model is touched.
 */
export function applyBottleneck(model: Module, config: BottleneckConfig = {}): BottleneckState {
  if (!model || typeof (model as Module).namedModules !== 'function') invalidArgument('model', 'a Module', describe(model));
  if (states.has(model) || loraState(model) || ia3State(model) || bitfitState(model)) invalidArgument('model', 'a model without a PEFT method', 'a model with one already applied');
  const c = resolveBottleneckConfig(config, model);
  const attn = config.attentionModules ? targetMatcher(config.attentionModules) : (p: string) => ATTENTION_OUTPUTS.test(p);
  const ffn = config.ffnModules ? targetMatcher(config.ffnModules) : (p: string) => FFN_OUTPUTS.test(p);
  const heads = matchModulesToSave(model, c.modulesToSave);
  const targets: [string, Linear, 'attention' | 'ffn'][] = [];
  for (const [path, m] of model.namedModules()) {
    if (path === '' || heads.some((h) => path === h || path.startsWith(`${h}.`))) continue;
    const site = ffn(path) ? 'ffn' : c.kind === 'houlsby' && attn(path) ? 'attention' : null;
    if (site === null) continue;
    if (!(m instanceof Linear))
      throw new ConfigError(`adapter site ${JSON.stringify(path)} is a ${m.constructor.name}; bottleneck adapters sit on Linear output projections`, { hint: 'name the output projections in attentionModules / ffnModules' });
    if (m.adapter) invalidArgument(`module ${path}`, 'a Linear without an adapter', 'one that already has an adapter');
    targets.push([path, m, site]);
  }
  if (!targets.some(([, , s]) => s === 'ffn')) {
    const sample = model.namedModules().filter(([, m]) => m instanceof Linear).slice(0, 6).map(([p]) => p);
    throw new ConfigError(`no feed-forward output projection found in this ${model.constructor.name}: its module layout is not one bottleneck adapters know`, {
      hint: `give ffnModules (and attentionModules for Houlsby) by name or pattern; its Linear layers include ${sample.join(', ') || '(none)'}`,
    });
  }
  if (c.kind === 'houlsby' && !targets.some(([, , s]) => s === 'attention'))
    throw new ConfigError(`no attention output projection found in this ${model.constructor.name} for Houlsby adapters`, { hint: 'give attentionModules by name or pattern, or use kind pfeiffer' });
  const { built: branches, counts, summary } = installMethod(model, heads, () =>
    targets.map(([path, m, site], i) => {
      const b = new BottleneckBranch(path, m, site, Math.max(1, Math.floor(m.outFeatures / c.reductionFactor)), c.nonLinearity, c.residual, c.scaling, c.seed + i);
      m.attachAdapter(b, b.modules());
      return b;
    }),
  );
  const state: BottleneckState = { config: c, branches, modulesToSave: heads, counts, summary };
  states.set(model, state);
  return state;
}

/** The adapters' parameters (down/up weight and bias), by model name, in branch order. */
export function bottleneckParameters(model: Module): Parameter[] {
  const s = requireBottleneck(model);
  const own = new Set(s.branches.flatMap((b) => ['adapter_down', 'adapter_up'].flatMap((m) => [`${b.path}.${m}.weight`, `${b.path}.${m}.bias`])));
  return model.parameters().filter((p) => own.has(p.name));
}

/** Parameters of the modules to save. */
export function bottleneckHeadParameters(model: Module): Parameter[] {
  const s = requireBottleneck(model);
  return model.parameters().filter((p) => s.modulesToSave.some((h) => p.name.startsWith(`${h}.`)));
}

/** Detaches and disposes every adapter; the base stays frozen. */
export function removeBottleneck(model: Module): void {
  const s = requireBottleneck(model);
  for (const b of s.branches) {
    b.base.detachAdapter();
    b.dispose();
  }
  states.delete(model);
}
