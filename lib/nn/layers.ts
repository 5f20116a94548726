/**
 * Transformer building blocks over the native kernels, each with explicit forward/backward.
 * Parameter names follow Hugging Face (weight, bias; q_proj, k_proj, v_proj, o_proj;
 * gate_proj, up_proj, down_proj) so checkpoints map onto them by name.
 */
import { describe, invalidArgument, ShapeError } from '../errors.js';
import { scale } from '../ops/index.js';
import { Tensor } from '../tensor/tensor.js';
import { checkBoolean, checkFinite, checkInteger } from '../util/validate.js';
import * as F from './functional.js';
import { expectShape, Module, ParamSlot, saved, storageOf } from './module.js';

const MAX_DIM = 2 ** 31 - 1;

function lastDim(x: Tensor, want: number, name: string): void {
  if (!(x instanceof Tensor)) invalidArgument(name, 'a Tensor', describe(x));
  if (x.rank < 1 || x.shape[x.rank - 1] !== want)
    throw new ShapeError(`${name}: expected [..., ${want}], got [${x.shape.join(', ')}]`, { argument: name, expected: `[..., ${want}]`, got: `[${x.shape.join(', ')}]` });
}

const withLast = (s: readonly number[], last: number): number[] => [...s.slice(0, -1), last];

// ---------------------------------------------------------------- Linear

/**
 * A branch added to a Linear's output (LoRA, lib/peft): forward adds its output into y, backward
 * adds its input gradient into dx (when dx is not null; the base has already written it) and
 * accumulates its own parameters' gradients.
 */
export interface LinearAdapter {
  forward(x: Tensor, y: Tensor): void;
  backward(dy: Tensor, dx: Tensor | null): void;
  dispose(): void;
}

export interface LinearOptions {
  /** Learn a bias (default true). */
  bias?: boolean;
  /** 'linear': W [out, in] (torch.nn.Linear); 'conv1d': W [in, out] (GPT-2 Conv1D). */
  layout?: F.LinearLayout;
  /** Initial weight (taken over, not copied); default uniform ±1/sqrt(in) from `seed`. */
  weight?: Tensor;
  /** Initial bias [out]; default uniform ±1/sqrt(in). */
  biasInit?: Tensor;
  seed?: number;
}

/** y = x·Wᵀ + b over the last dimension: x [..., in] → y [..., out]. */
export class Linear extends Module {
  readonly inFeatures: number;
  readonly outFeatures: number;
  readonly layout: F.LinearLayout;
  readonly weight: ParamSlot;
  readonly bias: ParamSlot | null;
  /** Compute the input gradient in backward (set false for a first layer whose input needs none). */
  computeInputGrad = true;
  #x: Tensor | null = null;
  #dy: Tensor | null = null;
  #dyScale = 1;
  #gReady = false;
  #adapter: LinearAdapter | null = null;
  #adapterNames: string[] = [];

  /** The input of the last forward (K-FAC's `a`); valid until the producer's next forward. */
  get input(): Tensor | null {
    return this.#x;
  }
  /** The output gradient of the last backward (K-FAC's `g`); valid until the caller reuses it. */
  get outputGrad(): Tensor | null {
    if (this.#dy === null || this.#dyScale === 1) return this.#dy;
    // Recorded by a fused caller as scale·dy: formed on first read only (K-FAC reads it, AdamW never).
    const g = this.workspace('g', this.#dy.shape);
    if (!this.#gReady) scale(this.#dy, this.#dyScale, g);
    this.#gReady = true;
    return g;
  }

  /**
   * For a caller that computed this layer's product itself (a fused LoRA branch, lib/peft):
   * records the input x and, after its backward, the output gradient as scale·dy, so that
   * `input`, `outputGrad` and K-FAC see what forward/backward would have recorded.
   */
  recordInput(x: Tensor): void {
    this.#x = x;
  }
  recordOutputGrad(dy: Tensor, scale: number): void {
    this.#dy = dy;
    this.#dyScale = scale;
    this.#gReady = false;
  }

  constructor(inFeatures: number, outFeatures: number, options: LinearOptions = {}) {
    super();
    this.inFeatures = checkInteger(inFeatures, 'inFeatures', 1, MAX_DIM);
    this.outFeatures = checkInteger(outFeatures, 'outFeatures', 1, MAX_DIM);
    const layout = options.layout ?? 'linear';
    if (layout !== 'linear' && layout !== 'conv1d') invalidArgument('layout', "'linear' or 'conv1d'", describe(layout));
    this.layout = layout;
    const seed = options.seed === undefined ? 0 : checkInteger(options.seed, 'seed', 0, Number.MAX_SAFE_INTEGER);
    const bound = 1 / Math.sqrt(inFeatures);
    const wShape = layout === 'conv1d' ? [inFeatures, outFeatures] : [outFeatures, inFeatures];
    const w = options.weight ? expectShape(options.weight, wShape, 'weight') : Tensor.rand(wShape, { seed, low: -bound, high: bound });
    this.weight = this.registerParameter('weight', w);
    const bias = options.bias === undefined ? true : checkBoolean(options.bias, 'bias');
    this.bias = bias
      ? this.registerParameter('bias', options.biasInit ? expectShape(options.biasInit, [outFeatures], 'biasInit') : Tensor.rand([outFeatures], { seed: seed + 1, low: -bound, high: bound }))
      : null;
  }

  forward(x: Tensor): Tensor {
    lastDim(x, this.inFeatures, 'x');
    const y = this.workspace('y', withLast(x.shape, this.outFeatures), storageOf(x));
    F.linearForward(x, this.weight.tensor, this.bias?.tensor ?? null, y, this.layout);
    this.#x = x;
    this.#adapter?.forward(x, y);
    return y;
  }

  /** The attached adapter branch, or null. */
  get adapter(): LinearAdapter | null {
    return this.#adapter;
  }

  /** Attaches an adapter branch; its modules become children of this layer (so `lora_A.weight` is listed under it). */
  attachAdapter(adapter: LinearAdapter, modules: Readonly<Record<string, Module>>): void {
    if (this.#adapter) invalidArgument('adapter', 'a Linear without an adapter', 'a Linear that already has one');
    for (const [n, m] of Object.entries(modules)) this.registerModule(n, m);
    this.#adapter = adapter;
    this.#adapterNames = Object.keys(modules);
  }

  /** Detaches the adapter branch (its modules are unregistered, not disposed) and returns it. */
  detachAdapter(): LinearAdapter | null {
    const a = this.#adapter;
    for (const n of this.#adapterNames) this.removeModule(n);
    this.#adapter = null;
    this.#adapterNames = [];
    return a;
  }

  override dispose(): void {
    this.#adapter?.dispose();
    super.dispose();
  }

  /**
   * dy [..., out] → dx [..., in] (overwritten; null when computeInputGrad is false); adds
   * into the gradients of trainable weight and bias. `into` writes (or, with accumulate,
   * adds) dx into a caller's tensor instead of this module's workspace.
   */
  backward(dy: Tensor, into?: { dx: Tensor; accumulate: boolean }): Tensor | null {
    const x = saved(this.#x, 'Linear');
    lastDim(dy, this.outFeatures, 'dy');
    const dx = into ? into.dx : this.computeInputGrad ? this.workspace('dx', x.shape, storageOf(x)) : null;
    this.recordOutputGrad(dy, 1);
    F.linearBackward(x, this.weight.tensor, dy, { dx, dW: this.weight.gradTarget(), db: this.bias?.gradTarget() ?? null, accumulateDx: into?.accumulate ?? false }, this.layout);
    this.#adapter?.backward(dy, dx);
    return dx;
  }
}

// ---------------------------------------------------------------- Embedding

export interface EmbeddingOptions {
  /** Initial table [V, C] (taken over); default Normal(0, std). */
  weight?: Tensor;
  std?: number;
  seed?: number;
}

/**
 * A hook on an Embedding's output (prompt tuning, lib/peft): forward may rewrite rows of the
 * looked-up [..., C] output in place; backward reads the output gradient first and returns the
 * gradient the table's scatter should use (dOut itself, or a copy with rewritten rows zeroed).
 */
export interface EmbeddingHook {
  forward(out: Tensor): void;
  backward(dOut: Tensor, tableTrainable: boolean): Tensor;
}

/** Token ids → rows of a [V, C] table. Backward scatter-adds into the table's gradient. */
export class Embedding extends Module {
  readonly numEmbeddings: number;
  readonly dim: number;
  readonly weight: ParamSlot;
  /**
   * Storage of the looked-up rows (default float32). 'bfloat16' (cuda only) makes the model's
   * activations bf16: every later activation takes its input's dtype.
   */
  activations: 'float32' | 'bfloat16' = 'float32';
  #ids = new Int32Array(0);
  #n = -1;
  #hook: EmbeddingHook | null = null;
  #hookNames: string[] = [];

  /** The attached output hook, or null. */
  get hook(): EmbeddingHook | null {
    return this.#hook;
  }

  /** Attaches an output hook; its modules become children of this embedding. */
  attachHook(hook: EmbeddingHook, modules: Readonly<Record<string, Module>>): void {
    if (this.#hook) invalidArgument('hook', 'an Embedding without a hook', 'one that already has one');
    for (const [n, m] of Object.entries(modules)) this.registerModule(n, m);
    this.#hook = hook;
    this.#hookNames = Object.keys(modules);
  }

  /** Detaches the hook (its modules are unregistered, not disposed). */
  detachHook(): void {
    for (const n of this.#hookNames) this.removeModule(n);
    this.#hook = null;
    this.#hookNames = [];
  }

  constructor(numEmbeddings: number, dim: number, options: EmbeddingOptions = {}) {
    super();
    this.numEmbeddings = checkInteger(numEmbeddings, 'numEmbeddings', 1, MAX_DIM);
    this.dim = checkInteger(dim, 'dim', 1, MAX_DIM);
    const std = options.std === undefined ? 0.02 : checkFinite(options.std, 'std');
    const seed = options.seed === undefined ? 0 : checkInteger(options.seed, 'seed', 0, Number.MAX_SAFE_INTEGER);
    this.weight = this.registerParameter('weight', options.weight ? expectShape(options.weight, [numEmbeddings, dim], 'weight') : Tensor.randn([numEmbeddings, dim], { seed, std }));
  }

  /** ids (e.g. B·T tokens) → [...shape, C]; shape defaults to [ids.length]. */
  forward(ids: Int32Array, shape: readonly number[] = [ids.length]): Tensor {
    if (!(ids instanceof Int32Array)) invalidArgument('ids', 'an Int32Array', describe(ids));
    const out = this.workspace('out', [...shape, this.dim], this.activations);
    if (this.#hook && this.activations === 'bfloat16') {
      // A hook (prompt tuning) writes float32 rows: it works on the float32 lookup, which is then
      // rounded to bf16 once, as the rows looked up directly would be.
      const o32 = this.workspace('out32', out.shape);
      F.embeddingForward(ids, this.weight.tensor, o32);
      this.#hook.forward(o32);
      scale(o32, 1, out);
    } else {
      F.embeddingForward(ids, this.weight.tensor, out);
      this.#hook?.forward(out);
    }
    if (this.#ids.length < ids.length) this.#ids = new Int32Array(ids.length);
    this.#ids.set(ids);
    this.#n = ids.length;
    return out;
  }

  /** Adds the scatter of dOut into the table's gradient (when trainable). Token ids have no gradient: returns null. */
  backward(dOut: Tensor): null {
    if (this.#n < 0) saved(null, 'Embedding');
    const dW = this.weight.gradTarget();
    // a hook reads float32 gradients: a bf16 dOut is widened (exactly) first
    const dh = this.#hook && dOut.dtype === 'bfloat16' ? scale(dOut, 1, this.workspace('dOut32', dOut.shape)) : dOut;
    const d = this.#hook ? this.#hook.backward(dh, dW !== null) : dOut;
    if (dW) F.embeddingBackward(this.#ids.subarray(0, this.#n), d, dW);
    return null;
  }
}

// ---------------------------------------------------------------- norms

export interface LayerNormOptions {
  eps?: number;
  /** Learn a bias (default true). */
  bias?: boolean;
}

/** LayerNorm over the last dimension (weight 1, bias 0 at start); saves mean and rstd per row. */
export class LayerNorm extends Module {
  readonly dim: number;
  readonly eps: number;
  readonly weight: ParamSlot;
  readonly bias: ParamSlot | null;
  #x: Tensor | null = null;

  constructor(dim: number, options: LayerNormOptions = {}) {
    super();
    this.dim = checkInteger(dim, 'dim', 1, MAX_DIM);
    this.eps = options.eps === undefined ? 1e-5 : checkFinite(options.eps, 'eps');
    if (!(this.eps > 0)) invalidArgument('eps', 'a positive number', describe(this.eps));
    this.weight = this.registerParameter('weight', Tensor.full([dim], 1));
    this.bias = (options.bias ?? true) ? this.registerParameter('bias', Tensor.zeros([dim])) : null;
  }

  forward(x: Tensor): Tensor {
    lastDim(x, this.dim, 'x');
    const rows = x.shape.slice(0, -1);
    const out = this.workspace('out', x.shape, storageOf(x));
    F.layerNormForward(x, this.weight.tensor, this.bias?.tensor ?? null, this.eps, out, this.workspace('mean', rows), this.workspace('rstd', rows));
    this.#x = x;
    return out;
  }

  backward(dOut: Tensor): Tensor {
    const x = saved(this.#x, 'LayerNorm');
    const rows = x.shape.slice(0, -1);
    const dx = this.workspace('dx', x.shape, storageOf(x));
    F.layerNormBackward(x, this.weight.tensor, this.workspace('mean', rows), this.workspace('rstd', rows), dOut, { dx, dw: this.weight.gradTarget(), db: this.bias?.gradTarget() ?? null });
    return dx;
  }
}

/** RMSNorm over the last dimension (weight 1 at start), as in Llama. */
export class RMSNorm extends Module {
  readonly dim: number;
  readonly eps: number;
  readonly weight: ParamSlot;
  #x: Tensor | null = null;

  constructor(dim: number, options: { eps?: number } = {}) {
    super();
    this.dim = checkInteger(dim, 'dim', 1, MAX_DIM);
    this.eps = options.eps === undefined ? 1e-6 : checkFinite(options.eps, 'eps');
    if (!(this.eps > 0)) invalidArgument('eps', 'a positive number', describe(this.eps));
    this.weight = this.registerParameter('weight', Tensor.full([dim], 1));
  }

  forward(x: Tensor): Tensor {
    lastDim(x, this.dim, 'x');
    const out = this.workspace('out', x.shape, storageOf(x));
    F.rmsNormForward(x, this.weight.tensor, this.eps, out, this.workspace('rstd', x.shape.slice(0, -1)));
    this.#x = x;
    return out;
  }

  backward(dOut: Tensor): Tensor {
    const x = saved(this.#x, 'RMSNorm');
    const dx = this.workspace('dx', x.shape, storageOf(x));
    F.rmsNormBackward(x, this.weight.tensor, this.workspace('rstd', x.shape.slice(0, -1)), dOut, { dx, dw: this.weight.gradTarget() });
    return dx;
  }
}

// ---------------------------------------------------------------- activations

/** GELU, exact (erf, BERT/GPT-2 "gelu") or the tanh approximation ("gelu_new", "gelu_pytorch_tanh"). */
export class GELU extends Module {
  readonly approximate: F.GeluApproximate;
  #x: Tensor | null = null;

  constructor(options: { approximate?: F.GeluApproximate } = {}) {
    super();
    const a = options.approximate ?? 'erf';
    if (a !== 'erf' && a !== 'tanh') invalidArgument('approximate', "'erf' or 'tanh'", describe(a));
    this.approximate = a;
  }

  forward(x: Tensor): Tensor {
    const out = this.workspace('out', x.shape);
    F.geluForward(x, out, this.approximate);
    this.#x = x;
    return out;
  }

  backward(dOut: Tensor): Tensor {
    const x = saved(this.#x, 'GELU');
    return F.geluBackward(x, dOut, this.workspace('dx', x.shape), this.approximate);
  }
}

/** SiLU (swish): x·σ(x). */
export class SiLU extends Module {
  #x: Tensor | null = null;

  forward(x: Tensor): Tensor {
    const out = this.workspace('out', x.shape);
    F.siluForward(x, out);
    this.#x = x;
    return out;
  }

  backward(dOut: Tensor): Tensor {
    const x = saved(this.#x, 'SiLU');
    return F.siluBackward(x, dOut, this.workspace('dx', x.shape));
  }
}

export interface SwiGLUMLPOptions {
  /** Biases on the three projections (default false, as in Llama). */
  bias?: boolean;
  seed?: number;
}

/** Llama's MLP: down_proj(silu(gate_proj(x)) · up_proj(x)). x [..., dim] → [..., dim]. */
export class SwiGLUMLP extends Module {
  readonly gate_proj: Linear;
  readonly up_proj: Linear;
  readonly down_proj: Linear;
  #g: Tensor | null = null;
  #u: Tensor | null = null;

  constructor(dim: number, hidden: number, options: SwiGLUMLPOptions = {}) {
    super();
    const bias = options.bias ?? false;
    const seed = options.seed ?? 0;
    this.gate_proj = this.registerModule('gate_proj', new Linear(dim, hidden, { bias, seed }));
    this.up_proj = this.registerModule('up_proj', new Linear(dim, hidden, { bias, seed: seed + 2 }));
    this.down_proj = this.registerModule('down_proj', new Linear(hidden, dim, { bias, seed: seed + 4 }));
  }

  forward(x: Tensor): Tensor {
    const g = this.gate_proj.forward(x);
    const u = this.up_proj.forward(x);
    const h = this.workspace('h', g.shape);
    F.swigluForward(g, u, h);
    this.#g = g;
    this.#u = u;
    return this.down_proj.forward(h);
  }

  backward(dOut: Tensor): Tensor {
    const g = saved(this.#g, 'SwiGLUMLP');
    const u = saved(this.#u, 'SwiGLUMLP');
    const dh = this.down_proj.backward(dOut)!;
    const dg = this.workspace('dg', g.shape);
    const du = this.workspace('du', u.shape);
    F.swigluBackward(g, u, dh, dg, du);
    const dx = this.workspace('dx', withLast(g.shape, this.gate_proj.inFeatures));
    this.gate_proj.backward(dg, { dx, accumulate: false });
    this.up_proj.backward(du, { dx, accumulate: true });
    return dx;
  }
}

// ---------------------------------------------------------------- Dropout

/**
 * Inverted dropout. Each training forward draws its mask from (seed + call number, element
 * index) with a counter-based generator, so a run is reproducible from `seed`; the backward
 * rebuilds the same mask. Identity in eval mode and when p = 0 (input returned as is).
 */
export class Dropout extends Module {
  readonly p: number;
  seed: number;
  /** Training forwards so far (the next one uses seed + calls). */
  calls = 0;
  #last: { seed: number; shape: readonly number[] } | null = null;
  #identity = false;

  constructor(p: number, options: { seed?: number } = {}) {
    super();
    this.p = checkFinite(p, 'p');
    if (p < 0 || p > 1) invalidArgument('p', 'a probability in [0, 1]', describe(p));
    this.seed = options.seed === undefined ? 0 : checkInteger(options.seed, 'seed', 0, Number.MAX_SAFE_INTEGER);
  }

  forward(x: Tensor): Tensor {
    if (!this.training || this.p === 0) {
      this.#identity = true;
      this.#last = { seed: 0, shape: x.shape };
      return x;
    }
    const seed = (this.seed + this.calls++) % Number.MAX_SAFE_INTEGER;
    this.#identity = false;
    this.#last = { seed, shape: x.shape };
    return F.dropoutForward(x, this.workspace('out', x.shape, storageOf(x)), this.p, seed);
  }

  backward(dOut: Tensor): Tensor {
    const last = saved(this.#last, 'Dropout');
    if (this.#identity) return dOut;
    return F.dropoutBackward(dOut, this.workspace('dx', last.shape, storageOf(dOut)), this.p, last.seed);
  }
}

// ---------------------------------------------------------------- RoPE

export interface RoPEOptions {
  base?: number;
  convention?: F.RopeConvention;
}

/** Rotary position embedding on [B, T, H, D]; forward(x, offset) with offset the KV-cache length. */
export class RoPE extends Module {
  readonly base: number;
  readonly convention: F.RopeConvention;
  #offset = -1;

  constructor(options: RoPEOptions = {}) {
    super();
    this.base = options.base === undefined ? 10000 : checkFinite(options.base, 'base');
    if (!(this.base > 1)) invalidArgument('base', 'a number above 1', describe(this.base));
    const c = options.convention ?? 'half';
    if (c !== 'half' && c !== 'interleaved') invalidArgument('convention', "'half' or 'interleaved'", describe(c));
    this.convention = c;
  }

  forward(x: Tensor, offset = 0): Tensor {
    const out = this.workspace('out', x.shape);
    F.ropeForward(x, out, { offset, base: this.base, convention: this.convention });
    this.#offset = offset;
    return out;
  }

  backward(dOut: Tensor): Tensor {
    if (this.#offset < 0) saved(null, 'RoPE');
    return F.ropeBackward(dOut, this.workspace('dx', dOut.shape), { offset: this.#offset, base: this.base, convention: this.convention });
  }
}

// ---------------------------------------------------------------- Attention

export interface AttentionModuleOptions {
  /** Query heads H. */
  heads: number;
  /** Key/value heads (default H; fewer for grouped-query attention; must divide H). */
  kvHeads?: number;
  /** Head dimension D (default dim / H). */
  headDim?: number;
  /** Biases on q/k/v and on the output projection (default true for both; Llama uses false). */
  bias?: boolean | { qkv: boolean; out: boolean };
  /** Causal (decoder) attention (default true). */
  causal?: boolean;
  /** Rotary embedding of q and k; null or absent for none (GPT-2, BERT use learned positions). */
  rope?: RoPEOptions | null;
  /** Score scale (default 1/sqrt(D)). */
  scale?: number;
  /** Dropout on the attention probabilities in training mode (GPT-2's attn_pdrop; default 0). */
  dropout?: number;
  /** Seed of the weight initialisation and of the dropout masks (call n uses seed + n). */
  seed?: number;
}

/** Keys and values of earlier steps for incremental decoding (see Attention.createCache). */
export interface KVCache {
  /** [B, capacity, Hkv, D] */
  readonly k: Tensor;
  /** [B, capacity, Hkv, D] */
  readonly v: Tensor;
  /** Time steps filled so far. */
  length: number;
}

/**
 * Multi-head / grouped-query self-attention: x [B, T, dim] → o_proj(attn(q, k, v)) [B, T, dim]
 * with q_proj [H·D ← dim], k_proj and v_proj [Hkv·D ← dim], o_proj [dim ← H·D].
 */
export class Attention extends Module {
  readonly dim: number;
  readonly heads: number;
  readonly kvHeads: number;
  readonly headDim: number;
  readonly causal: boolean;
  readonly scale: number;
  readonly rope: { base: number; convention: F.RopeConvention } | null;
  readonly dropout: number;
  /** Dropout seed; training forwards so far are counted in dropoutCalls. */
  dropoutSeed: number;
  dropoutCalls = 0;
  readonly q_proj: Linear;
  readonly k_proj: Linear;
  readonly v_proj: Linear;
  readonly o_proj: Linear;
  #state: { q: Tensor; k: Tensor; v: Tensor; mask: Tensor | null; offset: number; B: number; T: number; drop: { dropout: number; seed: number } | null } | null = null;

  constructor(dim: number, options: AttentionModuleOptions) {
    super();
    this.dim = checkInteger(dim, 'dim', 1, MAX_DIM);
    this.heads = checkInteger(options.heads, 'heads', 1, MAX_DIM);
    this.kvHeads = options.kvHeads === undefined ? this.heads : checkInteger(options.kvHeads, 'kvHeads', 1, MAX_DIM);
    if (this.heads % this.kvHeads !== 0) invalidArgument('kvHeads', `a divisor of heads (${this.heads})`, describe(this.kvHeads));
    if (options.headDim === undefined && dim % this.heads !== 0) invalidArgument('heads', `a divisor of dim (${dim}) or an explicit headDim`, describe(this.heads));
    this.headDim = options.headDim === undefined ? dim / this.heads : checkInteger(options.headDim, 'headDim', 1, MAX_DIM);
    this.causal = options.causal === undefined ? true : checkBoolean(options.causal, 'causal');
    this.scale = options.scale === undefined ? 1 / Math.sqrt(this.headDim) : checkFinite(options.scale, 'scale');
    if (options.rope) {
      const r = new RoPE(options.rope);
      if (this.headDim % 2 !== 0) invalidArgument('headDim', 'an even head dimension for RoPE', describe(this.headDim));
      this.rope = { base: r.base, convention: r.convention };
    } else this.rope = null;
    this.dropout = options.dropout === undefined ? 0 : checkFinite(options.dropout, 'dropout');
    if (this.dropout < 0 || this.dropout >= 1) invalidArgument('dropout', 'a probability in [0, 1)', describe(this.dropout));
    this.dropoutSeed = options.seed ?? 0;
    const b = options.bias ?? true;
    const qkvBias = typeof b === 'boolean' ? b : b.qkv;
    const outBias = typeof b === 'boolean' ? b : b.out;
    const seed = options.seed ?? 0;
    const H = this.heads * this.headDim;
    const Hkv = this.kvHeads * this.headDim;
    this.q_proj = this.registerModule('q_proj', new Linear(dim, H, { bias: qkvBias, seed }));
    this.k_proj = this.registerModule('k_proj', new Linear(dim, Hkv, { bias: qkvBias, seed: seed + 2 }));
    this.v_proj = this.registerModule('v_proj', new Linear(dim, Hkv, { bias: qkvBias, seed: seed + 4 }));
    this.o_proj = this.registerModule('o_proj', new Linear(H, dim, { bias: outBias, seed: seed + 6 }));
  }

  /** A KV cache for `batch` sequences of up to `capacity` tokens (dispose it when done). */
  createCache(batch: number, capacity: number): KVCache {
    const shape = [checkInteger(batch, 'batch', 1, MAX_DIM), checkInteger(capacity, 'capacity', 1, MAX_DIM), this.kvHeads, this.headDim];
    return { k: Tensor.zeros(shape, { device: this.device }), v: Tensor.zeros(shape, { device: this.device }), length: 0 };
  }

  /**
   * x [B, T, dim]; mask [B, T] (1 real token, 0 padding; [B, capacity] with a cache); offset:
   * first position for RoPE. With `cache` (inference only): positions continue from
   * cache.length, the new keys/values are appended, attention runs over everything cached, and
   * cache.length grows by T; backward is not available after such a call.
   */
  forward(x: Tensor, options: { mask?: Tensor | null; offset?: number; cache?: KVCache } = {}): Tensor {
    if (!(x instanceof Tensor)) invalidArgument('x', 'a Tensor', describe(x));
    if (x.rank !== 3 || x.shape[2] !== this.dim)
      throw new ShapeError(`x: expected [B, T, ${this.dim}], got [${x.shape.join(', ')}]`, { argument: 'x', expected: `[B, T, ${this.dim}]`, got: `[${x.shape.join(', ')}]` });
    const [B, T] = x.shape as [number, number, number];
    const { heads: H, kvHeads: Hkv, headDim: D } = this;
    const cache = options.cache;
    if (cache && (cache.k.shape[0] !== B || cache.length + T > cache.k.shape[1]!))
      invalidArgument('cache', `room for ${T} more steps of batch ${B}`, `a cache [${cache.k.shape.join(', ')}] holding ${cache.length}`);
    const offset = cache ? cache.length : (options.offset ?? 0);
    let q = this.view('q4', this.q_proj.forward(x), [B, T, H, D]);
    let k = this.view('k4', this.k_proj.forward(x), [B, T, Hkv, D]);
    const v = this.view('v4', this.v_proj.forward(x), [B, T, Hkv, D]);
    if (this.rope) {
      q = F.ropeForward(q, this.workspace('qr', q.shape), { ...this.rope, offset });
      k = F.ropeForward(k, this.workspace('kr', k.shape), { ...this.rope, offset });
    }
    const mask = options.mask ?? null;
    const o = this.workspace('o', [B, T, H, D]);
    const lse = this.workspace('lse', [B, H, T]);
    if (cache) {
      F.kvCacheWrite(k, cache.k, cache.length);
      F.kvCacheWrite(v, cache.v, cache.length);
      cache.length += T;
      F.attentionForward(q, cache.k, cache.v, o, lse, { causal: this.causal, scale: this.scale, mask, kvLength: cache.length });
      this.#state = null;
    } else {
      const drop = this.training && this.dropout > 0 ? { dropout: this.dropout, seed: (this.dropoutSeed + this.dropoutCalls++) % Number.MAX_SAFE_INTEGER } : null;
      F.attentionForward(q, k, v, o, lse, { causal: this.causal, scale: this.scale, mask, ...drop });
      this.#state = { q, k, v, mask, offset, B, T, drop };
    }
    return this.o_proj.forward(this.view('o3', o, [B, T, H * D]));
  }

  backward(dOut: Tensor): Tensor {
    const s = saved(this.#state, 'Attention');
    const { heads: H, kvHeads: Hkv, headDim: D } = this;
    const dO = this.view('dO4', this.o_proj.backward(dOut)!, [s.B, s.T, H, D]);
    const dq = this.workspace('dq', [s.B, s.T, H, D]);
    const dk = this.workspace('dk', [s.B, s.T, Hkv, D]);
    const dv = this.workspace('dv', [s.B, s.T, Hkv, D]);
    const out = this.workspace('o', [s.B, s.T, H, D]);
    F.attentionBackward(s.q, s.k, s.v, this.workspace('lse', [s.B, H, s.T]), dO, dq, dk, dv, { causal: this.causal, scale: this.scale, mask: s.mask, out, ...s.drop });
    if (this.rope) {
      F.ropeBackward(dq, dq, { ...this.rope, offset: s.offset });
      F.ropeBackward(dk, dk, { ...this.rope, offset: s.offset });
    }
    const dx = this.workspace('dx', [s.B, s.T, this.dim]);
    this.q_proj.backward(this.view('dq3', dq, [s.B, s.T, H * D]), { dx, accumulate: false });
    this.k_proj.backward(this.view('dk3', dk, [s.B, s.T, Hkv * D]), { dx, accumulate: true });
    this.v_proj.backward(this.view('dv3', dv, [s.B, s.T, Hkv * D]), { dx, accumulate: true });
    return dx;
  }
}

// ---------------------------------------------------------------- CrossEntropyLoss

/**
 * Mean softmax cross-entropy over rows whose target is not `ignoreIndex` (−100). In training
 * mode the forward also computes ∂loss/∂logits (one fused pass), which backward returns
 * (scaled by dLoss).
 */
export class CrossEntropyLoss extends Module {
  readonly ignoreIndex: number;
  /** Non-ignored rows in the last forward. */
  count = 0;
  #logits: Tensor | null = null;
  #targets = new Int32Array(0);
  #n = 0;
  #haveGrad = false;

  constructor(options: { ignoreIndex?: number } = {}) {
    super();
    this.ignoreIndex = options.ignoreIndex === undefined ? -100 : checkInteger(options.ignoreIndex, 'ignoreIndex', -(2 ** 31), 2 ** 31 - 1);
  }

  /** logits [..., V], targets Int32Array with one id per row → mean loss. */
  forward(logits: Tensor, targets: Int32Array): number {
    if (!(targets instanceof Int32Array)) invalidArgument('targets', 'an Int32Array', describe(targets));
    const d = this.training ? this.workspace('dlogits', logits.shape, storageOf(logits)) : null;
    const r = F.crossEntropy(logits, targets, d, { ignoreIndex: this.ignoreIndex });
    if (this.#targets.length < targets.length) this.#targets = new Int32Array(targets.length);
    this.#targets.set(targets);
    this.#n = targets.length;
    this.#logits = logits;
    this.#haveGrad = d !== null;
    this.count = r.count;
    return r.loss;
  }

  /** ∂(dLoss·loss)/∂logits (overwritten). */
  backward(dLoss = 1): Tensor {
    const logits = saved(this.#logits, 'CrossEntropyLoss');
    checkFinite(dLoss, 'dLoss');
    const d = this.workspace('dlogits', logits.shape, storageOf(logits));
    if (!this.#haveGrad || dLoss !== 1) {
      F.crossEntropy(logits, this.#targets.subarray(0, this.#n), d, { ignoreIndex: this.ignoreIndex, dscale: dLoss });
      this.#haveGrad = dLoss === 1;
    }
    return d;
  }
}
