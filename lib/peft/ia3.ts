/**
 * IA3 (infused adapter by inhibiting and amplifying inner activations) applied by configuration,
 * as Hugging Face PEFT does it.
 *
 * Each targeted Linear gains a learned vector l (`ia3_l`), initialised to ones so that the adapted
 * model starts equal to the base:
 * - attention-like targets (keys, values): the output is scaled, y = l ⊙ (W x + b), l of size out;
 * - feed-forward targets (listed in `feedforwardModules`, e.g. down_proj): the input is scaled,
 *   y = W (l ⊙ x) + b, l of size in.
 * Every other parameter is frozen, except the modules to save. merge folds l into W (and, for an
 * output scaling, into b), as PEFT's merge does; unmerge divides it back out.
 *
 * The base Linear computes W x + b and Wᵀ g first; the branch corrects both in place:
 * output mode y ← l ⊙ y, dx += Wᵀ((l − 1) ⊙ g), ∂l = Σ_rows g ⊙ h (h the unscaled output);
 * input mode y += W((l − 1) ⊙ x), dx += (l − 1) ⊙ Wᵀg, ∂l = Σ_rows x ⊙ Wᵀg.
 * The per-row products u = g ⊙ h (or x ⊙ Wᵀg) are kept for K-FAC (docs/KFAC.md#ia3).
 * The elementwise parts run in TypeScript over float32 arrays (CPU tensors).
 */
import { ConfigError, describe, invalidArgument } from '../errors.js';
import { colScale, colScaleBackward, linearBackward, linearForward } from '../nn/functional.js';
import { add, copy } from '../ops/index.js';
import { Linear, type LinearAdapter } from '../nn/layers.js';
import { Module, type Parameter, type ParamSlot } from '../nn/module.js';
import { Tensor } from '../tensor/tensor.js';
import { checkOptions } from '../util/validate.js';
import { installMethod, loraState, type ParameterCounts, type TargetModules, targetMatcher } from './lora.js';

export interface Ia3Config {
  /** Modules to adapt (names, a list, or a pattern over the whole path), e.g. ['k_proj', 'v_proj', 'down_proj']. */
  targetModules: TargetModules;
  /** The targets whose input (not output) is scaled; must be a subset of the targets (default: none). */
  feedforwardModules?: TargetModules | null;
  /** Modules kept trainable and saved with the adapter (PEFT's suffix rule). */
  modulesToSave?: readonly string[] | null;
  /** Initialise l to ones (default true, PEFT's init_ia3_weights). */
  initIa3Weights?: boolean;
  /** Recorded in adapter_config.json (default null). */
  baseModelNameOrPath?: string | null;
}

export interface ResolvedIa3Config {
  readonly targetModules: TargetModules;
  readonly feedforwardModules: TargetModules | null;
  readonly modulesToSave: readonly string[];
  readonly initIa3Weights: boolean;
  readonly baseModelNameOrPath: string | null;
}

/** The module holding one IA3 vector; registered under the adapted Linear as `ia3_l` (parameter `<path>.ia3_l.weight`). */
export class Ia3Vector extends Module {
  readonly weight: ParamSlot;
  constructor(n: number, init: boolean, seed: number) {
    super();
    this.weight = this.registerParameter('weight', init ? Tensor.from(new Float32Array(n).fill(1), [n]) : Tensor.randn([n], { seed }));
  }
}

/** One adapted layer. */
export class Ia3Branch implements LinearAdapter {
  readonly vector: Ia3Vector;
  #merged = false;
  /** Output mode: y before the scaling, from the last forward (on the layer's device). */
  #h: Tensor | null = null;
  #u: Tensor | null = null;
  #ones: Tensor | null = null;

  constructor(
    readonly path: string,
    readonly base: Linear,
    readonly feedforward: boolean,
    init: boolean,
    seed: number,
  ) {
    this.vector = new Ia3Vector(feedforward ? base.inFeatures : base.outFeatures, init, seed);
    // Drawn on the host (the same values on every device), then placed with the base layer.
    const device = base.weight.tensor.device;
    if (device !== 'cpu') this.vector.to(device);
  }

  get merged(): boolean {
    return this.#merged;
  }

  /** l as a float32 array (one download when the vector is on a device). */
  get l(): Float32Array {
    const t = this.vector.weight.tensor;
    if (t.device === 'cpu') return t.toArray();
    const h = t.to('cpu');
    try {
      return h.toArray();
    } finally {
      h.dispose();
    }
  }

  /** A tensor of `shape` on `like`'s device, kept in `slot` while its shape holds. */
  #keep(slot: Tensor | null, shape: readonly number[], like: Tensor): Tensor {
    if (slot && !slot.disposed && slot.device === like.device && slot.shape.length === shape.length && slot.shape.every((d, i) => d === shape[i])) return slot;
    slot?.dispose();
    return Tensor.empty(shape, { device: like.device });
  }

  forward(x: Tensor, y: Tensor): void {
    if (this.#merged) return;
    const l = this.vector.weight.tensor;
    if (!this.feedforward) {
      this.#h = this.#keep(this.#h, y.shape, y);
      copy(y, this.#h);
      colScale(y, l, y); // y ← h ⊙ l
    } else {
      // y += W·(x ⊙ (l − 1)): the base layer's output with its input scaled by l
      using xs = colScale(x, l, Tensor.empty(x.shape, { device: x.device }), { shift: -1 });
      using t = Tensor.empty(y.shape, { device: y.device });
      linearForward(xs, this.base.weight.tensor, null, t, this.base.layout);
      add(y, t, y);
    }
  }

  backward(dy: Tensor, dx: Tensor | null): void {
    if (this.#merged) invalidArgument(`backward of ${this.path}`, 'an unmerged IA3 layer', 'a merged one');
    const l = this.vector.weight.tensor;
    const n = l.size;
    const rows = dy.size / (this.feedforward ? this.base.outFeatures : n);
    const x = this.base.input;
    if (!x) invalidArgument(`backward of ${this.path}`, 'a forward pass first', 'none');
    const u = (this.#u = this.#keep(this.#u, [rows, n], dy));
    const dl = this.vector.weight.gradTarget();
    if (!this.feedforward) {
      const h = this.#h ?? invalidArgument(`backward of ${this.path}`, 'a forward pass first', 'none');
      using g2 = dy.reshape([rows, n]), h2 = h.reshape([rows, n]);
      colScaleBackward(g2, h2, u, dl); // u = g ⊙ h, dl += Σ u
      if (dx) {
        using tt = colScale(dy, l, Tensor.empty(dy.shape, { device: dy.device }), { shift: -1 }); // g ⊙ (l − 1)
        linearBackward(x, this.base.weight.tensor, tt, { dx, dW: null, db: null, accumulateDx: true }, this.base.layout);
      }
    } else {
      using wt = Tensor.empty(x.shape, { device: x.device });
      linearBackward(x, this.base.weight.tensor, dy, { dx: wt, dW: null, db: null }, this.base.layout);
      using x2 = x.reshape([rows, n]), w2 = wt.reshape([rows, n]);
      colScaleBackward(x2, w2, u, dl); // u = x ⊙ Wᵀg, dl += Σ u
      if (dx) colScale(wt, l, dx, { shift: -1, accumulate: true }); // dx += (l − 1) ⊙ Wᵀg
    }
    if (!this.#ones || this.#ones.disposed || this.#ones.shape[0] !== rows || this.#ones.device !== dy.device) {
      this.#ones?.dispose();
      this.#ones = Tensor.from(new Float32Array(rows).fill(1), [rows, 1]).to(dy.device);
    }
  }

  /** Rows u = ∂L/∂(row's contribution to l): g ⊙ h (output mode) or x ⊙ Wᵀg (input mode), from the last backward. */
  get rowGrads(): Tensor | null {
    return this.#u;
  }
  /** A column of ones, one per row of the last backward (the K-FAC input of a scale-only layer). */
  get onesInput(): Tensor | null {
    return this.#ones;
  }

  /** W ← W·diag(l) or diag(l)·W (and b ← l ⊙ b in output mode); sign −1 divides back out. */
  fold(sign: 1 | -1): void {
    const l = this.l;
    if (sign === -1) {
      const z = l.findIndex((v) => v === 0 || !Number.isFinite(v));
      if (z >= 0) invalidArgument(`unmerge of ${this.path}`, 'an IA3 vector without zeros', `ia3_l[${z}] = ${l[z]}`);
    }
    const f = (v: number) => (sign === 1 ? v : 1 / v);
    const W = this.base.weight.tensor;
    const w = W.toArray();
    const [r0, c0] = W.shape as [number, number];
    // The scaled axis: out for output mode, in for input mode; W is [out, in] (linear) or [in, out] (conv1d).
    const onRows = (this.base.layout === 'linear') === !this.feedforward;
    for (let i = 0; i < r0; i++) for (let j = 0; j < c0; j++) w[i * c0 + j] = w[i * c0 + j]! * f(l[onRows ? i : j]!);
    W.set(w);
    const b = this.base.bias;
    if (b && !this.feedforward) {
      const ba = b.tensor.toArray();
      for (let i = 0; i < ba.length; i++) ba[i] = ba[i]! * f(l[i]!);
      b.tensor.set(ba);
    }
    this.#merged = sign === 1;
  }

  modules(): Record<string, Module> {
    return { ia3_l: this.vector };
  }

  dispose(): void {
    this.#u?.dispose();
    this.#ones?.dispose();
    this.#h?.dispose();
    this.#h = null;
    this.#u = null;
    this.#ones = null;
    this.vector.dispose();
  }
}

export interface Ia3State {
  readonly config: ResolvedIa3Config;
  readonly branches: readonly Ia3Branch[];
  readonly modulesToSave: string[];
  rawConfig: Record<string, unknown> | null;
  readonly counts: ParameterCounts;
  readonly summary: string;
}

const states = new WeakMap<Module, Ia3State>();

export function ia3State(model: Module): Ia3State | undefined {
  return states.get(model);
}

/** @internal */
export function requireIa3(model: Module, what: string): Ia3State {
  const s = states.get(model);
  if (!s) invalidArgument(what, 'a model with IA3 applied (applyIa3 or loadIa3Adapter)', 'a model without IA3');
  return s;
}

const CLASSIFIER_HEADS = ['classifier', 'score'];

function checkTargets(t: unknown, what: string): void {
  if (t === null || t === undefined) return;
  targetMatcher(t as TargetModules);
  void what;
}

export function resolveIa3Config(config: Ia3Config, model?: Module): ResolvedIa3Config {
  const o = checkOptions(config, 'config');
  const known = ['targetModules', 'feedforwardModules', 'modulesToSave', 'initIa3Weights', 'baseModelNameOrPath'];
  for (const k of Object.keys(o)) if (!known.includes(k)) invalidArgument(`config.${k}`, `one of ${known.join(', ')}`, JSON.stringify(k));
  if (o['targetModules'] === undefined) invalidArgument('targetModules', 'module names or a pattern', 'undefined');
  checkTargets(o['targetModules'], 'targetModules');
  checkTargets(o['feedforwardModules'], 'feedforwardModules');
  const mts = o['modulesToSave'];
  if (mts !== undefined && mts !== null && (!Array.isArray(mts) || !mts.every((x) => typeof x === 'string' && x !== '')))
    invalidArgument('modulesToSave', 'a list of module names', describe(mts));
  const modulesToSave = [...((mts as string[] | null | undefined) ?? [])];
  const task = model ? (model as { task?: unknown }).task : undefined;
  if (task === 'sequence-classification' || task === 'regression') for (const h of CLASSIFIER_HEADS) if (!modulesToSave.includes(h)) modulesToSave.push(h);
  const init = o['initIa3Weights'] ?? true;
  if (typeof init !== 'boolean') invalidArgument('initIa3Weights', 'a boolean', describe(init));
  const base = o['baseModelNameOrPath'];
  if (base !== undefined && base !== null && typeof base !== 'string') invalidArgument('baseModelNameOrPath', 'a string or null', describe(base));
  return {
    targetModules: o['targetModules'] as TargetModules,
    feedforwardModules: (o['feedforwardModules'] as TargetModules | null | undefined) ?? null,
    modulesToSave,
    initIa3Weights: init,
    baseModelNameOrPath: (base as string | null | undefined) ?? null,
  };
}

function matchModulesToSave(model: Module, names: readonly string[]): string[] {
  const out: string[] = [];
  for (const [path, m] of model.namedModules()) {
    if (path === '' || m.parameters().length === 0) continue;
    if (!names.some((n) => path.endsWith(n))) continue;
    if (out.some((q) => path.startsWith(`${q}.`))) continue;
    out.push(path);
  }
  return out;
}

/**
 * Adds IA3 vectors to the targeted Linear layers, freezes everything else (modules to save stay
 * trainable). Non-Linear targets and feed-forward modules outside the targets are ConfigErrors,
 * raised before the model is touched.
 */
export function applyIa3(model: Module, config: Ia3Config, seed = 0): Ia3State {
  if (!model || typeof (model as Module).namedModules !== 'function') invalidArgument('model', 'a Module', describe(model));
  if (states.has(model) || loraState(model)) invalidArgument('model', 'a model without an adapter', 'a model with one already applied');
  const c = resolveIa3Config(config, model);
  const match = targetMatcher(c.targetModules);
  const ff = c.feedforwardModules === null ? () => false : targetMatcher(c.feedforwardModules);
  const targets: [string, Linear][] = [];
  for (const [path, m] of model.namedModules()) {
    if (path === '' || !match(path)) continue;
    if (!(m instanceof Linear))
      throw new ConfigError(`IA3 target module ${JSON.stringify(path)} is a ${m.constructor.name}; IA3 scales Linear layers only`, { hint: 'name Linear layers (e.g. k_proj, v_proj, down_proj) in targetModules' });
    if (m.adapter) invalidArgument(`module ${path}`, 'a Linear without an adapter', 'one that already has an adapter');
    targets.push([path, m]);
  }
  if (targets.length === 0) {
    const sample = model.namedModules().filter(([, m]) => m instanceof Linear).slice(0, 6).map(([p]) => p);
    throw new ConfigError(`no module matches IA3 targetModules ${describe(c.targetModules instanceof RegExp ? String(c.targetModules) : c.targetModules)}`, {
      hint: `Linear layers of this model include ${sample.join(', ') || '(none)'}`,
    });
  }
  const stray = model.namedModules().find(([p]) => p !== '' && ff(p) && !match(p));
  if (stray) throw new ConfigError(`feedforward module ${JSON.stringify(stray[0])} is not among the IA3 targets`, { hint: 'feedforwardModules must be a subset of targetModules (as PEFT requires)' });
  const saveNames = matchModulesToSave(model, c.modulesToSave);
  const { built: branches, counts, summary } = installMethod(model, saveNames, () =>
    targets.map(([path, m], i) => {
      const b = new Ia3Branch(path, m, ff(path), c.initIa3Weights, seed + i);
      m.attachAdapter(b, b.modules());
      return b;
    }),
  );
  const state: Ia3State = { config: c, branches, modulesToSave: saveNames, rawConfig: null, counts, summary };
  states.set(model, state);
  return state;
}

/** Parameters of the modules to save (saved with the adapter besides the vectors). */
export function ia3HeadParameters(model: Module, state: Ia3State): Parameter[] {
  return model.parameters().filter((p) => state.modulesToSave.some((m) => p.name.startsWith(`${m}.`)) && !p.name.endsWith('.ia3_l.weight'));
}

export function mergeIa3(model: Module): void {
  for (const b of requireIa3(model, 'model').branches) if (!b.merged) b.fold(1);
}

export function unmergeIa3(model: Module): void {
  const s = requireIa3(model, 'model');
  const bad = s.branches.find((b) => b.merged && b.l.some((v) => v === 0 || !Number.isFinite(v)));
  if (bad) invalidArgument(`unmerge of ${bad.path}`, 'an IA3 vector without zeros', 'a zero or non-finite entry');
  for (const b of s.branches) if (b.merged) b.fold(-1);
}

/** Detaches every vector (merging first when `merge`); the base stays frozen. */
export function removeIa3(model: Module, options: { merge?: boolean } = {}): void {
  const s = requireIa3(model, 'model');
  if (!options.merge) unmergeIa3(model);
  for (const b of s.branches) {
    if (options.merge && !b.merged) b.fold(1);
    b.base.detachAdapter();
    b.dispose();
  }
  states.delete(model);
}

/** @internal */
export function setIa3RawConfig(model: Module, raw: Record<string, unknown>): void {
  requireIa3(model, 'model').rawConfig = raw;
}
