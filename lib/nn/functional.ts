/**
 * Paired forward/backward functions over the native NN kernels (native/core/nn.h).
 *
 * Conventions (llm.c style): every output and every input gradient is overwritten (=);
 * every parameter gradient accumulates (+=), so zero it between steps. An optional
 * gradient passed as null is skipped (a frozen weight costs nothing). Outputs are given by
 * the caller, so buffers can be reused step after step. Arguments are validated here
 * before native code runs, and again natively (shapes, aliasing, index ranges).
 */
import { describe, invalidArgument, ShapeError } from '../errors.js';
import type { NativeTensor } from '../native/addon.js';
import { native } from '../native/loader.js';
import { handleOf, Tensor } from '../tensor/tensor.js';
import { checkBoolean, checkFinite, checkInteger } from '../util/validate.js';

/** The native functions of the NN family (registered by native/napi/ops_nn.cpp). */
interface NativeNn {
  linearForward(x: NativeTensor, W: NativeTensor, b: NativeTensor | null, y: NativeTensor, o: { conv1d: boolean }): void;
  linearBackward(
    x: NativeTensor,
    W: NativeTensor,
    dy: NativeTensor,
    dx: NativeTensor | null,
    dW: NativeTensor | null,
    db: NativeTensor | null,
    o: { conv1d: boolean; accumulateDx: boolean },
  ): void;
  embeddingForward(ids: Int32Array, W: NativeTensor, out: NativeTensor): void;
  embeddingBackward(ids: Int32Array, dout: NativeTensor, dW: NativeTensor): void;
  layerNormForward(x: NativeTensor, w: NativeTensor, b: NativeTensor | null, eps: number, out: NativeTensor, mean: NativeTensor, rstd: NativeTensor, residual?: NativeTensor | null, sum?: NativeTensor | null): void;
  layerNormBackward(x: NativeTensor, w: NativeTensor, mean: NativeTensor, rstd: NativeTensor, dout: NativeTensor, dx: NativeTensor | null, dw: NativeTensor | null, db: NativeTensor | null): void;
  rmsNormForward(x: NativeTensor, w: NativeTensor, eps: number, out: NativeTensor, rstd: NativeTensor, residual?: NativeTensor | null, sum?: NativeTensor | null): void;
  rmsNormBackward(x: NativeTensor, w: NativeTensor, rstd: NativeTensor, dout: NativeTensor, dx: NativeTensor | null, dw: NativeTensor | null): void;
  geluForward(x: NativeTensor, out: NativeTensor, approximate: string): void;
  geluBackward(x: NativeTensor, dout: NativeTensor, dx: NativeTensor, approximate: string): void;
  actOutForward(x: NativeTensor, out: NativeTensor, kind: string): void;
  colScale(x: NativeTensor, l: NativeTensor, shift: number, out: NativeTensor, accumulate: boolean): void;
  colScaleBackward(a: NativeTensor, b: NativeTensor, u: NativeTensor, dl: NativeTensor | null): void;
  actOutBackward(y: NativeTensor, dout: NativeTensor, dx: NativeTensor, kind: string): void;
  siluForward(x: NativeTensor, out: NativeTensor): void;
  siluBackward(x: NativeTensor, dout: NativeTensor, dx: NativeTensor): void;
  swigluForward(gate: NativeTensor, up: NativeTensor, out: NativeTensor): void;
  swigluBackward(gate: NativeTensor, up: NativeTensor, dout: NativeTensor, dgate: NativeTensor, dup: NativeTensor): void;
  reluForward(x: NativeTensor, out: NativeTensor): void;
  reluBackward(x: NativeTensor, dout: NativeTensor, dx: NativeTensor): void;
  gatedForward(gate: NativeTensor, up: NativeTensor, out: NativeTensor, act: GateActivation): void;
  gatedBackward(gate: NativeTensor, up: NativeTensor, dout: NativeTensor, dgate: NativeTensor, dup: NativeTensor, act: GateActivation): void;
  crossEntropy(logits: NativeTensor, targets: Int32Array, dlogits: NativeTensor | null, o: { ignoreIndex: number; dscale: number }, lossTo: NativeTensor | null): { loss: number; count: number };
  attentionForward(q: NativeTensor, k: NativeTensor, v: NativeTensor, mask: NativeTensor | null, out: NativeTensor, lse: NativeTensor, o: AttentionNativeOptions, bias: NativeTensor | null): void;
  kvCacheWrite(src: NativeTensor, cache: NativeTensor, offset: number): void;
  timeSlice(src: NativeTensor, dst: NativeTensor, offset: number): void;
  attentionBackward(
    q: NativeTensor,
    k: NativeTensor,
    v: NativeTensor,
    mask: NativeTensor | null,
    lse: NativeTensor,
    dout: NativeTensor,
    dq: NativeTensor,
    dk: NativeTensor,
    dv: NativeTensor,
    o: AttentionNativeOptions,
    out: NativeTensor | null,
    bias: NativeTensor | null,
    dbias: NativeTensor | null,
  ): void;
  ropeForward(x: NativeTensor, out: NativeTensor, o: { offset: number; base: number; convention: RopeConvention }): void;
  ropeBackward(dout: NativeTensor, dx: NativeTensor, o: { offset: number; base: number; convention: RopeConvention }): void;
  dropoutForward(x: NativeTensor, out: NativeTensor, p: number, seed: number): void;
  dropoutBackward(dout: NativeTensor, dx: NativeTensor, p: number, seed: number): void;
}

interface AttentionNativeOptions {
  causal: boolean;
  scale: number;
  kvLength?: number;
  dropout?: number;
  seed?: number;
}

const nn = (): NativeNn => native() as unknown as NativeNn;

const opt = (t: Tensor | null | undefined, name: string): NativeTensor | null => (t === null || t === undefined ? null : handleOf(t, name));

function shapeError(argument: string, expected: string, got: readonly number[]): never {
  throw new ShapeError(`${argument}: expected ${expected}, got [${got.join(', ')}]`, { argument, expected, got: `[${got.join(', ')}]` });
}

function checkIds(ids: unknown, name: string): Int32Array {
  if (!(ids instanceof Int32Array)) invalidArgument(name, 'an Int32Array', describe(ids));
  return ids;
}

function checkRank(t: Tensor, name: string, lo: number, hi = lo): void {
  if (t.rank < lo || t.rank > hi) shapeError(name, lo === hi ? `${lo} dimensions` : `${lo} to ${hi} dimensions`, t.shape);
}

// ---------------------------------------------------------------- linear

export type LinearLayout = 'linear' | 'conv1d';

function checkLayout(layout: unknown): boolean {
  if (layout !== 'linear' && layout !== 'conv1d') invalidArgument('layout', "'linear' or 'conv1d'", describe(layout));
  return layout === 'conv1d';
}

/**
 * y = x·Wᵀ + b. x [..., in]; W [out, in] ('linear', torch) or [in, out] ('conv1d', GPT-2);
 * b [out] or null; y [..., out] (=).
 */
export function linearForward(x: Tensor, W: Tensor, b: Tensor | null, y: Tensor, layout: LinearLayout = 'linear'): Tensor {
  const conv1d = checkLayout(layout);
  nn().linearForward(handleOf(x, 'x'), handleOf(W, 'W'), opt(b, 'b'), handleOf(y, 'y'), { conv1d });
  return y;
}

export interface LinearGrads {
  /** Shape `[..., in]`: overwritten with dy·W (or added to when accumulateDx); null skips it. */
  dx: Tensor | null;
  /** Same shape as W: dyᵀ·x is added (+=); null skips it (frozen weight). */
  dW: Tensor | null;
  /** Shape `[out]`: Σ dy over rows is added (+=); null skips it. */
  db: Tensor | null;
  /** Add into dx instead of overwriting it (for a sum of several branches). */
  accumulateDx?: boolean;
}

export function linearBackward(x: Tensor, W: Tensor, dy: Tensor, grads: LinearGrads, layout: LinearLayout = 'linear'): void {
  const conv1d = checkLayout(layout);
  const accumulateDx = grads.accumulateDx === undefined ? false : checkBoolean(grads.accumulateDx, 'accumulateDx');
  nn().linearBackward(handleOf(x, 'x'), handleOf(W, 'W'), handleOf(dy, 'dy'), opt(grads.dx, 'dx'), opt(grads.dW, 'dW'), opt(grads.db, 'db'), { conv1d, accumulateDx });
}

// ---------------------------------------------------------------- embedding

/** out [..., C] (=) ← rows ids of W [V, C]; ids must lie in [0, V). */
export function embeddingForward(ids: Int32Array, W: Tensor, out: Tensor): Tensor {
  nn().embeddingForward(checkIds(ids, 'ids'), handleOf(W, 'W'), handleOf(out, 'out'));
  return out;
}

/** dW [V, C] += scatter of dout [..., C] by ids (deterministic for any thread count). */
export function embeddingBackward(ids: Int32Array, dout: Tensor, dW: Tensor): void {
  nn().embeddingBackward(checkIds(ids, 'ids'), handleOf(dout, 'dout'), handleOf(dW, 'dW'));
}

// ---------------------------------------------------------------- norms

/**
 * The residual add fused into a norm's forward: the row normalised is x + residual, stored first
 * into `sum` (x's shape and dtype; it aliases no other argument), the same values as
 * `add(x, residual, sum)` followed by the norm of `sum` — which is what the backward then reads.
 */
export interface NormResidual {
  residual: Tensor;
  sum: Tensor;
}

/** LayerNorm over the last dimension. out (=) may be x; mean and rstd [N] (=) are saved for the backward. */
export function layerNormForward(x: Tensor, w: Tensor, b: Tensor | null, eps: number, out: Tensor, mean: Tensor, rstd: Tensor, add?: NormResidual): Tensor {
  nn().layerNormForward(handleOf(x, 'x'), handleOf(w, 'w'), opt(b, 'b'), checkFinite(eps, 'eps'), handleOf(out, 'out'), handleOf(mean, 'mean'), handleOf(rstd, 'rstd'), ...residualArgs(add));
  return out;
}

function residualArgs(add: NormResidual | undefined): [NativeTensor | null, NativeTensor | null] {
  if (add === undefined) return [null, null];
  if (add === null || typeof add !== 'object') invalidArgument('add', '{ residual, sum }', describe(add));
  return [handleOf(add.residual, 'residual'), handleOf(add.sum, 'sum')];
}

/** dx (=), dw (+=), db (+=); null skips one. */
export function layerNormBackward(x: Tensor, w: Tensor, mean: Tensor, rstd: Tensor, dout: Tensor, grads: { dx: Tensor | null; dw: Tensor | null; db: Tensor | null }): void {
  nn().layerNormBackward(handleOf(x, 'x'), handleOf(w, 'w'), handleOf(mean, 'mean'), handleOf(rstd, 'rstd'), handleOf(dout, 'dout'), opt(grads.dx, 'dx'), opt(grads.dw, 'dw'), opt(grads.db, 'db'));
}

/** RMSNorm over the last dimension: out = x·rstd·w (=), rstd [N] (=); `add` as layerNormForward's. */
export function rmsNormForward(x: Tensor, w: Tensor, eps: number, out: Tensor, rstd: Tensor, add?: NormResidual): Tensor {
  nn().rmsNormForward(handleOf(x, 'x'), handleOf(w, 'w'), checkFinite(eps, 'eps'), handleOf(out, 'out'), handleOf(rstd, 'rstd'), ...residualArgs(add));
  return out;
}

/** dx (=), dw (+=); null skips one. */
export function rmsNormBackward(x: Tensor, w: Tensor, rstd: Tensor, dout: Tensor, grads: { dx: Tensor | null; dw: Tensor | null }): void {
  nn().rmsNormBackward(handleOf(x, 'x'), handleOf(w, 'w'), handleOf(rstd, 'rstd'), handleOf(dout, 'dout'), opt(grads.dx, 'dx'), opt(grads.dw, 'dw'));
}

// ---------------------------------------------------------------- activations

export type GeluApproximate = 'erf' | 'tanh';

function checkGelu(a: unknown): GeluApproximate {
  if (a !== 'erf' && a !== 'tanh') invalidArgument('approximate', "'erf' or 'tanh'", describe(a));
  return a;
}

/** out (=, may be x) = gelu(x), exact (erf) or the tanh approximation. */
export function geluForward(x: Tensor, out: Tensor, approximate: GeluApproximate = 'erf'): Tensor {
  nn().geluForward(handleOf(x, 'x'), handleOf(out, 'out'), checkGelu(approximate));
  return out;
}
/** dx (=, may be dout) = dout·gelu'(x). */
export function geluBackward(x: Tensor, dout: Tensor, dx: Tensor, approximate: GeluApproximate = 'erf'): Tensor {
  nn().geluBackward(handleOf(x, 'x'), handleOf(dout, 'dout'), handleOf(dx, 'dx'), checkGelu(approximate));
  return dx;
}
/**
 * out (= or, with `accumulate`, +=; may be x) = x ⊙ (l + shift), l [n] along the last axis of x
 * [..., n] (IA3's learned scales; shift −1 gives the scaled part minus x). Each element is the
 * float64 product rounded once.
 */
export function colScale(x: Tensor, l: Tensor, out: Tensor, o: { shift?: number; accumulate?: boolean } = {}): Tensor {
  nn().colScale(handleOf(x, 'x'), handleOf(l, 'l'), o.shift ?? 0, handleOf(out, 'out'), o.accumulate ?? false);
  return out;
}
/** u (=, may be a or b) = a ⊙ b; dl [n] (+=, when given) = Σ over the rows of u (float32, rows in order). */
export function colScaleBackward(a: Tensor, b: Tensor, u: Tensor, dl: Tensor | null): Tensor {
  nn().colScaleBackward(handleOf(a, 'a'), handleOf(b, 'b'), handleOf(u, 'u'), dl ? handleOf(dl, 'dl') : null);
  return u;
}
/** An activation whose derivative is read from its output: tanh or relu. */
export type OutputActivation = 'tanh' | 'relu';
/** out (=, may be x) = tanh(x) or relu(x). */
export function activationForward(x: Tensor, out: Tensor, kind: OutputActivation): Tensor {
  nn().actOutForward(handleOf(x, 'x'), handleOf(out, 'out'), kind);
  return out;
}
/** dx (=, may be dout) = dout·f'(x) from the output y = f(x): 1 − y² (tanh), [y > 0] (relu). */
export function activationBackward(y: Tensor, dout: Tensor, dx: Tensor, kind: OutputActivation): Tensor {
  nn().actOutBackward(handleOf(y, 'y'), handleOf(dout, 'dout'), handleOf(dx, 'dx'), kind);
  return dx;
}
/** out (=) = x·σ(x). */
export function siluForward(x: Tensor, out: Tensor): Tensor {
  nn().siluForward(handleOf(x, 'x'), handleOf(out, 'out'));
  return out;
}
/** dx (=) = dout·silu'(x). */
export function siluBackward(x: Tensor, dout: Tensor, dx: Tensor): Tensor {
  nn().siluBackward(handleOf(x, 'x'), handleOf(dout, 'dout'), handleOf(dx, 'dx'));
  return dx;
}
/** out (=) = silu(gate)·up. */
export function swigluForward(gate: Tensor, up: Tensor, out: Tensor): Tensor {
  nn().swigluForward(handleOf(gate, 'gate'), handleOf(up, 'up'), handleOf(out, 'out'));
  return out;
}
/** dgate (=) = dout·up·silu'(gate), dup (=) = dout·silu(gate). */
export function swigluBackward(gate: Tensor, up: Tensor, dout: Tensor, dgate: Tensor, dup: Tensor): void {
  nn().swigluBackward(handleOf(gate, 'gate'), handleOf(up, 'up'), handleOf(dout, 'dout'), handleOf(dgate, 'dgate'), handleOf(dup, 'dup'));
}

/** out = max(x, 0) (=). */
export function reluForward(x: Tensor, out: Tensor): Tensor {
  nn().reluForward(handleOf(x, 'x'), handleOf(out, 'out'));
  return out;
}

/** dx = dout where x > 0, else 0 (=). */
export function reluBackward(x: Tensor, dout: Tensor, dx: Tensor): Tensor {
  nn().reluBackward(handleOf(x, 'x'), handleOf(dout, 'dout'), handleOf(dx, 'dx'));
  return dx;
}

/** The activation of a gated unit: GELU (erf or tanh), ReLU or SiLU. */
export type GateActivation = 'gelu' | 'gelu_tanh' | 'relu' | 'silu';

function checkGateAct(act: unknown): GateActivation {
  if (act !== 'gelu' && act !== 'gelu_tanh' && act !== 'relu' && act !== 'silu') invalidArgument('act', "'gelu', 'gelu_tanh', 'relu' or 'silu'", describe(act));
  return act;
}

/** Gated unit (T5 v1.1's gated-GELU, ReGLU, SwiGLU): out = act(gate)·up (=). */
export function gatedForward(gate: Tensor, up: Tensor, out: Tensor, act: GateActivation): Tensor {
  nn().gatedForward(handleOf(gate, 'gate'), handleOf(up, 'up'), handleOf(out, 'out'), checkGateAct(act));
  return out;
}

/** dgate = dout·up·act'(gate) (=), dup = dout·act(gate) (=). */
export function gatedBackward(gate: Tensor, up: Tensor, dout: Tensor, dgate: Tensor, dup: Tensor, act: GateActivation): void {
  nn().gatedBackward(handleOf(gate, 'gate'), handleOf(up, 'up'), handleOf(dout, 'dout'), handleOf(dgate, 'dgate'), handleOf(dup, 'dup'), checkGateAct(act));
}

// ---------------------------------------------------------------- loss

export interface CrossEntropyOptions {
  /** Targets equal to this are skipped (default −100, as in PyTorch and Hugging Face). */
  ignoreIndex?: number;
  /** Scale of the gradient written to dlogits (the upstream ∂L/∂loss; default 1). */
  dscale?: number;
  /**
   * A float32 tensor of 2 elements on the logits' device: the loss is written there as a
   * float64 in two floats (read it with `readValue`, or copy it into a step record) instead of
   * being downloaded, so the call does not wait for the device. The returned `loss` is then NaN
   * off the CPU, and a non-finite loss is not an error here: whoever reads it checks.
   */
  lossTo?: Tensor | null;
}

/**
 * Mean softmax cross-entropy of logits [..., V] (N rows) against targets [N] (ints in [0, V)
 * or ignoreIndex), over the rows that are not ignored; 0 when all are. When dlogits is given it
 * is overwritten with dscale·∂loss/∂logits (ignored rows get 0); it may be logits itself.
 */
export function crossEntropy(logits: Tensor, targets: Int32Array, dlogits: Tensor | null = null, options: CrossEntropyOptions = {}): { loss: number; count: number } {
  const ignoreIndex = options.ignoreIndex === undefined ? -100 : checkInteger(options.ignoreIndex, 'ignoreIndex', -(2 ** 31), 2 ** 31 - 1);
  const dscale = options.dscale === undefined ? 1 : checkFinite(options.dscale, 'dscale');
  return nn().crossEntropy(handleOf(logits, 'logits'), checkIds(targets, 'targets'), opt(dlogits, 'dlogits'), { ignoreIndex, dscale }, opt(options.lossTo ?? null, 'lossTo'));
}

// ---------------------------------------------------------------- attention

export interface AttentionOptions {
  /** Query i sees keys j ≤ i + (Tk − Tq) (default false). */
  causal?: boolean;
  /** Score scale (default 1/sqrt(D)). */
  scale?: number;
  /** [B, Tk] (or [B, Tcap] with kvLength), 1 for real tokens and 0 for padding (padded keys are never attended). */
  mask?: Tensor | null;
  /**
   * KV cache: k and v are [B, Tcap, Hkv, D] buffers of which only the first kvLength time steps
   * are used (default: all).
   */
  kvLength?: number;
  /**
   * Dropout on the attention probabilities, p in [0, 1) (default 0). Element (b, h, i, j) is
   * kept exactly when dropoutForward with the same seed keeps element ((b·H + h)·Tq + i)·Tk + j
   * of a [B, H, Tq, Tk] tensor. The backward must be given the same dropout and seed.
   */
  dropout?: number;
  seed?: number;
  /**
   * [H, Tq, Tk] added to the scaled scores of every batch row before the mask and the softmax
   * (T5's relative position bias; Tk is kvLength with a KV cache). The backward must get it too.
   */
  bias?: Tensor | null;
  /** Backward only: [B, H, Tq, Tk] receives ∂/∂bias of each batch row (=); sum over B for the bias's gradient. */
  dbias?: Tensor | null;
}

function attentionArgs(q: Tensor, k: Tensor, options: AttentionOptions): AttentionNativeOptions {
  checkRank(q, 'q', 4);
  checkRank(k, 'k', 4);
  const causal = options.causal === undefined ? false : checkBoolean(options.causal, 'causal');
  const D = q.shape[3]!;
  const scale = options.scale === undefined ? (D > 0 ? 1 / Math.sqrt(D) : 1) : checkFinite(options.scale, 'scale');
  const H = q.shape[2]!;
  const Hkv = k.shape[2]!;
  if (Hkv < 1 || H % Hkv !== 0) shapeError('k', `a number of key/value heads dividing the ${H} query heads`, k.shape);
  const o: AttentionNativeOptions = { causal, scale };
  if (options.kvLength !== undefined) o.kvLength = checkInteger(options.kvLength, 'kvLength', 0, k.shape[1]!);
  if (options.dropout !== undefined) {
    const p = checkFinite(options.dropout, 'dropout');
    if (p < 0 || p >= 1) invalidArgument('dropout', 'a probability in [0, 1)', describe(p));
    o.dropout = p;
  }
  if (options.seed !== undefined) o.seed = checkInteger(options.seed, 'seed', 0, Number.MAX_SAFE_INTEGER);
  return o;
}

/** KV cache: time steps offset … offset + T − 1 of cache [B, Tcap, Hkv, D] ← src [B, T, Hkv, D]. */
export function kvCacheWrite(src: Tensor, cache: Tensor, offset: number): Tensor {
  nn().kvCacheWrite(handleOf(src, 'src'), handleOf(cache, 'cache'), checkInteger(offset, 'offset', 0, 2 ** 40));
  return cache;
}

/** kvCacheWrite's reverse: dst [B, T, H, D] (=) ← time steps offset … offset + T − 1 of src [B, Tsrc, H, D]. */
export function timeSlice(src: Tensor, dst: Tensor, offset: number): Tensor {
  nn().timeSlice(handleOf(src, 'src'), handleOf(dst, 'dst'), checkInteger(offset, 'offset', 0, 2 ** 40));
  return dst;
}

/**
 * Scaled dot-product attention. q [B, Tq, H, D], k and v [B, Tk, Hkv, D] (Hkv divides H:
 * grouped-query attention) → out [B, Tq, H, D] (=) and lse [B, H, Tq] (=), the row
 * log-sum-exp the backward needs.
 */
export function attentionForward(q: Tensor, k: Tensor, v: Tensor, out: Tensor, lse: Tensor, options: AttentionOptions = {}): Tensor {
  const o = attentionArgs(q, k, options);
  if (options.dbias !== undefined && options.dbias !== null) invalidArgument('dbias', 'no dbias in a forward call', 'a tensor');
  nn().attentionForward(handleOf(q, 'q'), handleOf(k, 'k'), handleOf(v, 'v'), opt(options.mask, 'mask'), handleOf(out, 'out'), handleOf(lse, 'lse'), o, opt(options.bias, 'bias'));
  return out;
}

export interface AttentionBackwardOptions extends AttentionOptions {
  /**
   * The forward's output [B, Tq, H, D]: the backward needs rowsum(dO ∘ O) per query. Without it
   * the kernel rebuilds that sum from the probabilities, one more pass over the keys.
   */
  out?: Tensor | null;
}

/** dq (=), dk (=), dv (=) from dout and the forward's lse (same options as the forward, and its output as `out`). */
export function attentionBackward(q: Tensor, k: Tensor, v: Tensor, lse: Tensor, dout: Tensor, dq: Tensor, dk: Tensor, dv: Tensor, options: AttentionBackwardOptions = {}): void {
  const o = attentionArgs(q, k, options);
  nn().attentionBackward(
    handleOf(q, 'q'),
    handleOf(k, 'k'),
    handleOf(v, 'v'),
    opt(options.mask, 'mask'),
    handleOf(lse, 'lse'),
    handleOf(dout, 'dout'),
    handleOf(dq, 'dq'),
    handleOf(dk, 'dk'),
    handleOf(dv, 'dv'),
    o,
    opt(options.out, 'out'),
    opt(options.bias, 'bias'),
    opt(options.dbias, 'dbias'),
  );
}

// ---------------------------------------------------------------- RoPE

/** 'half': Hugging Face rotate_half pairs (i, i + D/2); 'interleaved': llama2.c/Meta pairs (2i, 2i + 1). */
export type RopeConvention = 'half' | 'interleaved';

export interface RopeOptions {
  /** Position of the first token (a KV cache's length; default 0). */
  offset?: number;
  /** θ base (default 10000). */
  base?: number;
  convention?: RopeConvention;
}

function ropeArgs(x: Tensor, o: RopeOptions): { offset: number; base: number; convention: RopeConvention } {
  checkRank(x, 'x', 4);
  if ((x.shape[3]! & 1) !== 0) shapeError('x', 'an even head dimension D in [B, T, H, D]', x.shape);
  const offset = o.offset === undefined ? 0 : checkInteger(o.offset, 'offset', 0, 2 ** 40);
  const base = o.base === undefined ? 10000 : checkFinite(o.base, 'base');
  if (!(base > 1)) invalidArgument('base', 'a number above 1', describe(base));
  const convention = o.convention ?? 'half';
  if (convention !== 'half' && convention !== 'interleaved') invalidArgument('convention', "'half' or 'interleaved'", describe(convention));
  return { offset, base, convention };
}

/** Rotates x [B, T, H, D] by position offset + t: out (=, may be x). */
export function ropeForward(x: Tensor, out: Tensor, options: RopeOptions = {}): Tensor {
  nn().ropeForward(handleOf(x, 'x'), handleOf(out, 'out'), ropeArgs(x, options));
  return out;
}

/** The transpose rotation: dx (=, may be dout). */
export function ropeBackward(dout: Tensor, dx: Tensor, options: RopeOptions = {}): Tensor {
  nn().ropeBackward(handleOf(dout, 'dout'), handleOf(dx, 'dx'), ropeArgs(dout, options));
  return dx;
}

// ---------------------------------------------------------------- dropout

function checkP(p: unknown): number {
  const v = checkFinite(p, 'p');
  if (v < 0 || v > 1) invalidArgument('p', 'a probability in [0, 1]', describe(p));
  return v;
}

/** Inverted dropout with a counter-based mask fixed by (seed, element index): out (=, may be x). */
export function dropoutForward(x: Tensor, out: Tensor, p: number, seed: number): Tensor {
  nn().dropoutForward(handleOf(x, 'x'), handleOf(out, 'out'), checkP(p), checkInteger(seed, 'seed', 0, Number.MAX_SAFE_INTEGER));
  return out;
}

/** The same mask and scale as dropoutForward with this seed: dx (=, may be dout). */
export function dropoutBackward(dout: Tensor, dx: Tensor, p: number, seed: number): Tensor {
  nn().dropoutBackward(handleOf(dout, 'dout'), handleOf(dx, 'dx'), checkP(p), checkInteger(seed, 'seed', 0, Number.MAX_SAFE_INTEGER));
  return dx;
}
