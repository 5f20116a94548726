/**
 * LoRA (low-rank adaptation) applied by configuration to any model built from lib/nn modules.
 *
 * Each targeted Linear y = base(x) gains a branch: y = base(x) + s · B(A(dropout(x))) with
 * A = lora_A [r, in], B = lora_B [out, r] (torch.nn.Linear layout, also for GPT-2's Conv1D, as
 * PEFT stores them) and s = alpha / r (or alpha / √r with rsLoRA). A starts Kaiming-uniform with
 * a = √5 (U(±1/√in), PEFT's default) or Gaussian with std 1/r (PEFT's "gaussian"), B starts at zero,
 * so the adapted model starts equal to the base. Every other parameter is frozen, except the
 * modules listed in `modulesToSave` (a classification head), which stay trainable.
 *
 * The branch's modules are children of the adapted layer, so parameter names are the PEFT ones:
 * `transformer.h.0.attn.c_attn.lora_A.weight`. Backward gives dx (base + branch) and adds into dA
 * and dB only; lora_A keeps its input a and output gradient s·Bᵀg, lora_B its input A·a and output
 * gradient s·g — what K-FAC needs (see kfacLayersForLora).
 */
import { ConfigError, describe, invalidArgument } from '../errors.js';
import { matmul } from '../linalg/matmul.js';
import { Dropout, Linear, type LinearAdapter } from '../nn/layers.js';
import type { Module, Parameter } from '../nn/module.js';
import { fusions } from '../nn/fusion.js';
import { axpy, scale as scaleOp } from '../ops/index.js';
import { Tensor } from '../tensor/tensor.js';
import { fusable, fusedBackward, fusedForward } from './lora-fused.js';
import { checkBoolean, checkFinite, checkInteger, checkOptions } from '../util/validate.js';

/** Which modules to adapt: a name (matched as the last path components, as PEFT does for a list), a list of names, or a pattern matched against the whole dotted path. */
export type TargetModules = string | RegExp | readonly string[];

export interface LoraConfig {
  /** Modules to adapt, e.g. ['q_proj', 'v_proj'], 'c_attn', /.*\.(query|value)$/, or 'all-linear' (every Linear but the output layer and the modules to save). */
  targetModules: TargetModules;
  /** Rank r (default 8). */
  r?: number;
  /** lora_alpha (default 8); the branch is scaled by alpha / r. */
  alpha?: number;
  /** Dropout on the branch's input (default 0). */
  dropout?: number;
  /** rsLoRA: scale by alpha / √r (default false). */
  useRslora?: boolean;
  /** Initialisation of lora_A: 'kaiming' (default, PEFT's `true`) or 'gaussian'; lora_B starts at zero. */
  init?: 'kaiming' | 'gaussian';
  /**
   * GPT-2 Conv1D layers keep W as [in, out]. LoRA follows each layer's own layout, so this only
   * records the PEFT field; giving true for a torch-layout layer (or false for Conv1D) is refused.
   * Default: true when any target uses the Conv1D layout.
   */
  fanInFanOut?: boolean;
  /**
   * Modules kept trainable and saved with the adapter (matched as PEFT does: the module path ends
   * with the name). Classification models add 'classifier' and 'score', as PEFT's SEQ_CLS task does.
   */
  modulesToSave?: readonly string[] | null;
  /** Seed of the initialisation and of the dropout masks (default 0). */
  seed?: number;
  /** Recorded in adapter_config.json (default null). */
  baseModelNameOrPath?: string | null;
}

/** The settings a LoRA model was built with (resolved defaults). */
export interface ResolvedLoraConfig {
  readonly targetModules: TargetModules;
  readonly r: number;
  readonly alpha: number;
  readonly dropout: number;
  readonly useRslora: boolean;
  readonly init: 'kaiming' | 'gaussian';
  readonly fanInFanOut: boolean;
  readonly modulesToSave: readonly string[];
  readonly seed: number;
  readonly baseModelNameOrPath: string | null;
  /** alpha / r, or alpha / √r with rsLoRA. */
  readonly scale: number;
}

/** `t` when it has `shape` (and lives), else a new tensor of that shape on `like`'s device (t disposed). */
function sized(t: Tensor | null, shape: readonly number[], like: Tensor): Tensor {
  if (t && !t.disposed && t.shape.length === shape.length && t.shape.every((d, i) => d === shape[i])) return t;
  t?.dispose();
  return Tensor.empty(shape, { device: like.device });
}

const withLast = (s: readonly number[], last: number): number[] => [...s.slice(0, -1), last];

/** One adapted layer: the base Linear and its lora_A, lora_B and dropout. */
export class LoraBranch implements LinearAdapter {
  /** Dotted path of the adapted layer. */
  readonly path: string;
  readonly base: Linear;
  readonly r: number;
  readonly scale: number;
  /** [r, in] */
  readonly loraA: Linear;
  /** [out, r] */
  readonly loraB: Linear;
  readonly dropout: Dropout;
  #merged = false;
  #identity = true;
  #gs: Tensor | null = null;
  #dh: Tensor | null = null;
  #xf: Tensor | null = null; // the branch's float32 copy of a bf16 input
  #widenedFrom: Tensor | null = null;
  #fused = false;

  constructor(path: string, base: Linear, r: number, scale: number, init: 'kaiming' | 'gaussian', dropout: number, seed: number) {
    this.path = path;
    this.base = base;
    this.r = r;
    this.scale = scale;
    const din = base.inFeatures;
    const dout = base.outFeatures;
    // Kaiming-uniform with a = √5: gain √(2/(1+5)), bound = gain·√(3/fan_in) = 1/√fan_in.
    // Drawn on the host (the same values on every device), then placed with the base layer.
    const a = init === 'gaussian' ? Tensor.randn([r, din], { seed, std: 1 / r }) : Tensor.rand([r, din], { seed, low: -1 / Math.sqrt(din), high: 1 / Math.sqrt(din) });
    this.loraA = new Linear(din, r, { bias: false, weight: a });
    this.loraB = new Linear(r, dout, { bias: false, weight: Tensor.zeros([dout, r]) });
    this.dropout = new Dropout(dropout, { seed: seed + 1 });
    this.dropout.train(base.training);
    const device = base.weight.tensor.device;
    if (device !== 'cpu') for (const m of [this.loraA, this.loraB, this.dropout]) m.to(device);
  }

  /**
   * The bf16 input the last forward widened into the branch's float32 copy (bf16 activations),
   * else null: branches that widened the same tensor in one forward hold equal copies, so they
   * can share one K-FAC input factor (lib/peft/kfac.ts).
   */
  get widenedFrom(): Tensor | null {
    return this.#widenedFrom;
  }

  /** Whether the branch is folded into the base weight. */
  get merged(): boolean {
    return this.#merged;
  }

  forward(x: Tensor, y: Tensor): void {
    if (this.#merged) return;
    // bf16 activations (cuda): the branch casts its input to float32 and adds its float32 output
    // into the bf16 y, so lora_A/lora_B, their K-FAC inputs and gradients stay float32.
    let xb = x;
    this.#widenedFrom = x.dtype === 'bfloat16' ? x : null;
    if (x.dtype === 'bfloat16') xb = scaleOp(x, 1, (this.#xf = sized(this.#xf, x.shape, x)));
    const xd = this.dropout.forward(xb);
    this.#identity = xd === xb;
    const h = this.loraA.forward(xd);
    this.#fused = fusions().lora && fusable(this.loraB) && y.dtype === 'float32';
    if (this.#fused) return fusedForward(this.loraB, h, y, this.scale);
    axpy(this.scale, this.loraB.forward(h), y);
  }

  backward(dy: Tensor, dx: Tensor | null): void {
    if (this.#merged)
      invalidArgument(`backward of ${this.path}`, 'an unmerged LoRA layer', 'a merged one');
    let dh: Tensor; // s·Bᵀg, lora_A's output gradient
    if (this.#fused) {
      this.#dh = sized(this.#dh, withLast(dy.shape, this.r), dy);
      dh = fusedBackward(this.loraB, dy, this.scale, this.#dh);
    } else {
      this.#gs = sized(this.#gs, dy.shape, dy);
      const gs = scaleOp(dy, this.scale, this.#gs); // lora_B's output gradient s·g
      this.loraB.computeInputGrad = true;
      dh = this.loraB.backward(gs) as Tensor;
    }
    if (this.#identity) {
      if (dx) this.loraA.backward(dh, { dx, accumulate: true });
      else {
        this.loraA.computeInputGrad = false;
        this.loraA.backward(dh);
      }
    } else {
      this.loraA.computeInputGrad = dx !== null;
      const dxd = this.loraA.backward(dh);
      if (dx && dxd) axpy(1, this.dropout.backward(dxd), dx);
    }
  }

  /** ΔW = s·B·A folded into (sign 1) or out of (sign −1) the base weight, in the base's layout. */
  fold(sign: 1 | -1): void {
    const W = this.base.weight.tensor;
    const alpha = sign * this.scale;
    if (this.base.layout === 'conv1d') matmul(this.loraA.weight.tensor, this.loraB.weight.tensor, { transA: true, transB: true, alpha, beta: 1, out: W });
    else matmul(this.loraB.weight.tensor, this.loraA.weight.tensor, { alpha, beta: 1, out: W });
    this.#merged = sign === 1;
  }

  /** The modules that become children of the base layer. */
  modules(): Record<string, Module> {
    return { lora_dropout: this.dropout, lora_A: this.loraA, lora_B: this.loraB };
  }

  dispose(): void {
    this.#gs?.dispose();
    this.#xf?.dispose();
    this.#gs = null;
    this.#dh?.dispose();
    this.#dh = null;
    this.loraA.dispose();
    this.loraB.dispose();
    this.dropout.dispose();
  }
}

/** What applyLora returns and what the adapter functions read back. */
export interface LoraState {
  readonly config: ResolvedLoraConfig;
  /** Adapted layers in module order. */
  readonly branches: readonly LoraBranch[];
  /** Paths of the modules kept trainable and saved with the adapter. */
  readonly modulesToSave: string[];
  /** adapter_config.json as loaded (kept verbatim for saving), or null for a fresh adapter. */
  rawConfig: Record<string, unknown> | null;
  readonly counts: ParameterCounts;
  /** PEFT's one-line summary: "trainable params: … || all params: … || trainable%: …". */
  readonly summary: string;
}

export interface ParameterCounts {
  trainable: number;
  total: number;
  /** 100 · trainable / total. */
  percent: number;
}

const states = new WeakMap<Module, LoraState>();

/** The LoRA state of a model, or undefined when none was applied. */
export function loraState(model: Module): LoraState | undefined {
  return states.get(model);
}

/** @internal */
export function requireLora(model: Module, what: string): LoraState {
  const s = states.get(model);
  if (!s) invalidArgument(what, 'a model with LoRA applied (applyLora or loadAdapter)', 'a model without LoRA');
  return s;
}

/** Trainable and total parameter counts (elements). */
export function countParameters(model: Module): ParameterCounts {
  let trainable = 0;
  let total = 0;
  for (const p of model.parameters()) {
    total += p.tensor.size;
    if (p.trainable) trainable += p.tensor.size;
  }
  return { trainable, total, percent: total ? (100 * trainable) / total : 0 };
}

/** PEFT's print_trainable_parameters line. */
export function formatParameterCounts(c: ParameterCounts): string {
  return `trainable params: ${c.trainable.toLocaleString('en-US')} || all params: ${c.total.toLocaleString('en-US')} || trainable%: ${c.percent.toFixed(4)}`;
}

/** Prints PEFT's one-line parameter summary of a model to stdout and returns it. */
export function printTrainableParameters(model: Module): string {
  const line = formatParameterCounts(countParameters(model));
  process.stdout.write(`${line}\n`);
  return line;
}

const NAME_RE = /^[A-Za-z0-9_.-]+$/;
/** PEFT's shorthand for every Linear layer but the output layer. */
export const ALL_LINEAR = 'all-linear';

/** A predicate over module paths for `targetModules` (PEFT's rules: a list matches by suffix of whole components, a pattern must match the whole path). */
export function targetMatcher(t: TargetModules): (path: string) => boolean {
  if (t instanceof RegExp) {
    const re = new RegExp(`^(?:${t.source})$`, t.flags.replace(/[gy]/g, ''));
    return (p) => re.test(p);
  }
  if (typeof t === 'string') {
    if (t === '') invalidArgument('targetModules', 'a module name, a list of names or a pattern', '""');
    if (t === ALL_LINEAR) invalidArgument('targetModules', 'names or a pattern (all-linear is resolved by applyLora)', JSON.stringify(t));
    if (NAME_RE.test(t)) return targetMatcher([t]);
    let re: RegExp;
    try {
      re = new RegExp(`^(?:${t})$`);
    } catch (e) {
      return invalidArgument('targetModules', 'a valid regular expression', `${JSON.stringify(t)} (${e instanceof Error ? e.message : String(e)})`);
    }
    return (p) => re.test(p);
  }
  if (!Array.isArray(t) || t.length === 0 || !t.every((x) => typeof x === 'string' && x !== ''))
    invalidArgument('targetModules', 'a module name, a non-empty list of names or a pattern', describe(t));
  const names = [...t];
  return (p) => names.some((n) => p === n || p.endsWith(`.${n}`));
}

const CLASSIFIER_HEADS = ['classifier', 'score'];

function isClassifier(model: Module): boolean {
  const task = (model as { task?: unknown }).task;
  return task === 'sequence-classification' || task === 'regression';
}

/** Validates a LoraConfig and fills in the defaults. */
export function resolveLoraConfig(config: LoraConfig, model?: Module): ResolvedLoraConfig {
  const o = checkOptions(config, 'config');
  const known = ['targetModules', 'r', 'alpha', 'dropout', 'useRslora', 'init', 'fanInFanOut', 'modulesToSave', 'seed', 'baseModelNameOrPath'];
  for (const k of Object.keys(o)) if (!known.includes(k)) invalidArgument(`config.${k}`, `one of ${known.join(', ')}`, JSON.stringify(k));
  const targetModules = o['targetModules'] as TargetModules;
  if (targetModules !== ALL_LINEAR) targetMatcher(targetModules); // validates
  const r = o['r'] === undefined ? 8 : checkInteger(o['r'], 'r', 1, 1 << 20);
  const alpha = o['alpha'] === undefined ? 8 : checkFinite(o['alpha'], 'alpha');
  const dropout = o['dropout'] === undefined ? 0 : checkFinite(o['dropout'], 'dropout');
  if (dropout < 0 || dropout >= 1) invalidArgument('dropout', 'a probability in [0, 1)', describe(dropout));
  const useRslora = o['useRslora'] === undefined ? false : checkBoolean(o['useRslora'], 'useRslora');
  const init = o['init'] ?? 'kaiming';
  if (init !== 'kaiming' && init !== 'gaussian') invalidArgument('init', "'kaiming' or 'gaussian'", describe(init));
  const seed = o['seed'] === undefined ? 0 : checkInteger(o['seed'], 'seed', 0, 2 ** 40);
  const mts = o['modulesToSave'];
  if (mts !== undefined && mts !== null && (!Array.isArray(mts) || !mts.every((x) => typeof x === 'string' && x !== '')))
    invalidArgument('modulesToSave', 'a list of module names', describe(mts));
  const modulesToSave = [...((mts as string[] | null | undefined) ?? [])];
  if (model && isClassifier(model)) for (const h of CLASSIFIER_HEADS) if (!modulesToSave.includes(h)) modulesToSave.push(h);
  const fif = o['fanInFanOut'];
  if (fif !== undefined) checkBoolean(fif, 'fanInFanOut');
  const base = o['baseModelNameOrPath'];
  if (base !== undefined && base !== null && typeof base !== 'string') invalidArgument('baseModelNameOrPath', 'a string or null', describe(base));
  return {
    targetModules,
    r,
    alpha,
    dropout,
    useRslora,
    init,
    fanInFanOut: (fif as boolean | undefined) ?? false,
    modulesToSave,
    seed,
    baseModelNameOrPath: (base as string | null | undefined) ?? null,
    scale: useRslora ? alpha / Math.sqrt(r) : alpha / r,
  };
}

/** Module paths whose end matches one of `names` (PEFT's modules_to_save rule), outermost only. */
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
 * The steps every PEFT method shares when it is applied: freeze the whole model, make the
 * method's trainable parts (`attach`), unfreeze the modules to save, then count.
 */
export function installMethod<T>(model: Module, modulesToSave: readonly string[], attach: () => T): { built: T; counts: ParameterCounts; summary: string } {
  model.freeze();
  const built = attach();
  const byPath = new Map(model.namedModules());
  for (const p of modulesToSave) byPath.get(p)?.unfreeze();
  const counts = countParameters(model);
  return { built, counts, summary: formatParameterCounts(counts) };
}

/**
 * Adds LoRA branches to the targeted Linear layers of `model`, freezes everything else (the
 * modules to save stay trainable) and returns the state (counts, summary). A model takes one
 * adapter; remove it with removeLora first to apply another.
 */
export function applyLora(model: Module, config: LoraConfig): LoraState {
  if (!model || typeof (model as Module).namedModules !== 'function') invalidArgument('model', 'a Module', describe(model));
  if (states.has(model)) invalidArgument('model', 'a model without LoRA (call removeLora first)', 'a model with LoRA already applied');
  const c = resolveLoraConfig(config, model);
  const allLinear = c.targetModules === ALL_LINEAR;
  const heads = allLinear ? matchModulesToSave(model, c.modulesToSave) : [];
  // 'all-linear' (PEFT): every Linear except the output layer and the modules to save.
  const match = allLinear
    ? (path: string) => !path.endsWith('lm_head') && !heads.some((h) => path === h || path.startsWith(`${h}.`))
    : targetMatcher(c.targetModules);
  const targets: [string, Linear][] = [];
  for (const [path, m] of model.namedModules()) {
    if (path === '' || !match(path)) continue;
    if (allLinear && !(m instanceof Linear)) continue;
    if (!(m instanceof Linear))
      throw new ConfigError(`target module ${JSON.stringify(path)} is a ${m.constructor.name}; LoRA adapts Linear layers only`, { hint: 'name the Linear layers (e.g. q_proj, v_proj) in targetModules' });
    if (m.adapter) invalidArgument(`module ${path}`, 'a Linear without an adapter', 'one that already has an adapter');
    targets.push([path, m]);
  }
  if (targets.length === 0) {
    const sample = model
      .namedModules()
      .filter(([, m]) => m instanceof Linear)
      .slice(0, 6)
      .map(([p]) => p);
    throw new ConfigError(`no module matches targetModules ${describe(c.targetModules instanceof RegExp ? String(c.targetModules) : c.targetModules)}`, {
      hint: `Linear layers of this model include ${sample.join(', ') || '(none)'}`,
    });
  }
  const conv = targets.some(([, m]) => m.layout === 'conv1d');
  const fif = (config as { fanInFanOut?: boolean }).fanInFanOut;
  if (fif !== undefined) {
    const bad = targets.find(([, m]) => (m.layout === 'conv1d') !== fif);
    if (bad) throw new ConfigError(`fanInFanOut ${fif} does not fit ${bad[0]}, whose weight is stored as ${bad[1].layout === 'conv1d' ? '[in, out] (Conv1D)' : '[out, in]'}`, { hint: 'leave fanInFanOut out: it follows the layers' });
  }
  const resolved: ResolvedLoraConfig = { ...c, fanInFanOut: conv };
  const saveNames = matchModulesToSave(model, resolved.modulesToSave);
  const { built: branches, counts, summary } = installMethod(model, saveNames, () =>
    targets.map(([path, m], i) => {
      const b = new LoraBranch(path, m, resolved.r, resolved.scale, resolved.init, resolved.dropout, resolved.seed + 2 * i);
      m.attachAdapter(b, b.modules());
      return b;
    }),
  );
  const state: LoraState = { config: resolved, branches, modulesToSave: saveNames, rawConfig: null, counts, summary };
  states.set(model, state);
  return state;
}

/** Parameters saved with the adapter besides lora_A/lora_B: those of the modules to save. */
export function savedHeadParameters(model: Module, state: LoraState): Parameter[] {
  const all = model.parameters();
  return all.filter((p) => state.modulesToSave.some((m) => p.name.startsWith(`${m}.`)) && !/\.lora_[AB]\.weight$/.test(p.name));
}

/** Folds every branch into its base weight (W += s·B·A); the forward then skips the branches. */
export function mergeLora(model: Module): void {
  const s = requireLora(model, 'model');
  for (const b of s.branches) if (!b.merged) b.fold(1);
}

/** Takes the branches back out of the base weights (W −= s·B·A). */
export function unmergeLora(model: Module): void {
  const s = requireLora(model, 'model');
  for (const b of s.branches) if (b.merged) b.fold(-1);
}

/** Detaches and disposes every branch (merging them first when `merge`); the base stays frozen. */
export function removeLora(model: Module, options: { merge?: boolean } = {}): void {
  const s = requireLora(model, 'model');
  for (const b of s.branches) {
    if (options.merge && !b.merged) b.fold(1);
    if (!options.merge && b.merged) b.fold(-1);
    b.base.detachAdapter();
    b.dispose();
  }
  states.delete(model);
}

/** @internal Records the state of a model built by loadAdapter. */
export function setRawConfig(model: Module, raw: Record<string, unknown>): void {
  requireLora(model, 'model').rawConfig = raw;
}
