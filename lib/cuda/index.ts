/**
 * The CUDA backend's typed ops. Tensors live on one device: `toDevice` uploads a cpu tensor,
 * `toHost` downloads a cuda one, and every op here takes cuda tensors only — a cpu tensor, or
 * a mix of devices, is a DeviceError naming the argument. The ops mirror the CPU ones in
 * linalg, kfac and optim (same arguments, same overwrite rules, same typed errors).
 *
 * Available when the CUDA backend is in use (backend 'cuda', or 'auto' with a device): see
 * setBackend() and `kfac-peft doctor`.
 */
import { DeviceError, describe, invalidArgument } from '../errors.js';
import type { NativeTensor } from '../native/addon.js';
import { backendChoice, cudaStatus } from '../native/backend.js';
import type { NativeCuda, NativeCudaInfo, NativeStorage } from '../native/cuda-addon.js';
import { native } from '../native/loader.js';
import { handleOf, Tensor } from '../tensor/tensor.js';
import { checkFinite, checkOptions, checkShape } from '../util/validate.js';

export type Storage = NativeStorage;

/** The CUDA ops of the loaded addon; a DeviceError saying why when the CUDA backend is not in use. */
function ops(): NativeCuda {
  const addon = native() as unknown as { cuda?: NativeCuda };
  if (!addon.cuda) {
    const why = backendChoice()?.reason ?? cudaStatus().reason ?? 'unknown';
    throw new DeviceError(`the cuda backend is not in use: ${why}`, {
      argument: 'backend',
      expected: 'the cuda backend',
      got: backendChoice()?.selected ?? 'cpu',
      hint: "set KFAC_BACKEND=cuda (or call setBackend('cuda') before the first op); `npx kfac-peft doctor` shows what is missing",
    });
  }
  return addon.cuda;
}

/** True when the CUDA backend is in use in this process (loading the addon if needed). */
export function available(): boolean {
  try {
    return (native() as unknown as { cuda?: NativeCuda }).cuda !== undefined;
  } catch {
    return false;
  }
}

/** What the CUDA runtime reports (null when the CUDA binary is not loaded). */
export function deviceInfo(): NativeCudaInfo | null {
  return cudaStatus().info;
}

/** Handles of cuda tensors; a DeviceError naming the first that is not on the device. */
function onDevice(args: Record<string, Tensor | null | undefined>): Record<string, NativeTensor | null> {
  const out: Record<string, NativeTensor | null> = {};
  let cpuArg: string | undefined;
  for (const [name, t] of Object.entries(args)) {
    if (t === null || t === undefined) {
      out[name] = null;
      continue;
    }
    const h = handleOf(t, name);
    if (h.device !== 'cuda' && cpuArg === undefined) cpuArg = name;
    out[name] = h;
  }
  if (cpuArg !== undefined) {
    const names = Object.keys(args).filter((k) => args[k]);
    const mixed = names.some((k) => args[k]!.device === 'cuda');
    throw new DeviceError(
      `${cpuArg}: expected a cuda tensor, got a cpu tensor${mixed ? ' (the arguments are on mixed devices)' : ''}`,
      { argument: cpuArg, expected: 'a cuda tensor', got: 'a cpu tensor', hint: 'move it with cuda.toDevice(t); bring results back with cuda.toHost(t)' },
    );
  }
  return out;
}

const req = (h: Record<string, NativeTensor | null>, k: string): NativeTensor => h[k]!;

function storage(o: Record<string, unknown>): { dtype: Storage } {
  const d = o['dtype'] ?? 'float32';
  if (d !== 'float32' && d !== 'bfloat16') invalidArgument('dtype', "'float32' or 'bfloat16'", describe(d));
  return { dtype: d as Storage };
}

/** A copy of a cpu tensor on the device (bfloat16 storage rounds to nearest even). */
export function toDevice(t: Tensor, options: { dtype?: Storage } = {}): Tensor {
  const h = handleOf(t, 'tensor');
  if (h.device !== 'cpu') throw new DeviceError('tensor: expected a cpu tensor, got a cuda tensor', { argument: 'tensor', expected: 'a cpu tensor', got: 'a cuda tensor' });
  return Tensor.fromNative(ops().upload(h, storage(checkOptions(options))));
}

/** A float32 cpu copy of a cuda tensor. */
export function toHost(t: Tensor): Tensor {
  const h = handleOf(t, 'tensor');
  if (h.device !== 'cuda') throw new DeviceError('tensor: expected a cuda tensor, got a cpu tensor', { argument: 'tensor', expected: 'a cuda tensor', got: 'a cpu tensor' });
  return Tensor.fromNative(ops().download(h));
}

export function zeros(shape: readonly number[], options: { dtype?: Storage } = {}): Tensor {
  return Tensor.fromNative(ops().zeros(checkShape(shape), storage(checkOptions(options))));
}

export function empty(shape: readonly number[], options: { dtype?: Storage } = {}): Tensor {
  return Tensor.fromNative(ops().empty(checkShape(shape), storage(checkOptions(options))));
}

/** dst = src, device to device. */
export function copy(src: Tensor, dst: Tensor): void {
  const h = onDevice({ src, dst });
  ops().copy(req(h, 'src'), req(h, 'dst'));
}

/** Waits for all queued device work (every op here already returns after its work is done). */
export function synchronize(): void {
  ops().synchronize();
}

export interface CudaMatmulOptions {
  transA?: boolean;
  transB?: boolean;
  alpha?: number;
  beta?: number;
  /** TF32 tensor cores for float32 inputs (about 10 bits of mantissa in the products). */
  tf32?: boolean;
  out?: Tensor;
}

/** out = alpha·op(a)·op(b) + beta·out, 2-D; a and b both float32, or both bfloat16 (float32 accumulation and output). */
export function matmul(a: Tensor, b: Tensor, options: CudaMatmulOptions = {}): Tensor {
  const o = checkOptions(options);
  const h = onDevice({ a, b, out: (o['out'] as Tensor | undefined) ?? null });
  const r = ops().matmul(req(h, 'a'), req(h, 'b'), h['out'] ?? null, {
    transA: o['transA'] === true,
    transB: o['transB'] === true,
    alpha: o['alpha'] === undefined ? 1 : checkFinite(o['alpha'], 'alpha'),
    beta: o['beta'] === undefined ? 0 : checkFinite(o['beta'], 'beta'),
    tf32: o['tf32'] === true,
  });
  return h['out'] ? (o['out'] as Tensor) : Tensor.fromNative(r);
}

/** F ← βF + (1−β)·scale/R·X̃ᵀX̃ (X̃ = [X | 1] with bias); as kfac's factor update. */
export function factorUpdate(x: Tensor, factor: Tensor, options: { beta?: number; scale?: number; bias?: boolean } = {}): void {
  const o = checkOptions(options);
  const h = onDevice({ x, factor });
  ops().factorUpdate(req(h, 'x'), req(h, 'factor'), {
    beta: o['beta'] === undefined ? 0 : checkFinite(o['beta'], 'beta'),
    scale: o['scale'] === undefined ? 1 : checkFinite(o['scale'], 'scale'),
    bias: o['bias'] === true,
  });
}

export interface CudaEighResult {
  values: Tensor;
  vectors: Tensor;
  retriedFloat64: boolean;
}

/** Symmetric eigendecomposition (cuSOLVER syevd): ascending values, vectors in columns. */
export function eigh(a: Tensor, options: { clampNonNegative?: boolean } = {}): CudaEighResult {
  const o = checkOptions(options);
  const h = onDevice({ a });
  const r = ops().eigh(req(h, 'a'), null, null, { clampNonNegative: o['clampNonNegative'] === true });
  return { values: Tensor.fromNative(r.values), vectors: Tensor.fromNative(r.vectors), retriedFloat64: r.retriedFloat64 };
}

/** A stack [B, r, r] of small symmetric matrices (syevjBatched for r ≤ 32). */
export function eighBatched(a: Tensor, options: { clampNonNegative?: boolean } = {}): { values: Tensor; vectors: Tensor; retried: number } {
  const o = checkOptions(options);
  const h = onDevice({ a });
  const r = ops().eighBatched(req(h, 'a'), null, null, { clampNonNegative: o['clampNonNegative'] === true });
  return { values: Tensor.fromNative(r.values), vectors: Tensor.fromNative(r.vectors), retried: r.retried };
}

export interface CudaRefreshOptions {
  previousValues?: Tensor;
  clampNonNegative?: boolean;
  maxResidual?: number;
  maxOffDiagonal?: number;
}

/** Warm eigenbasis refresh from previousVectors (see linalg.eighRefresh). */
export function eighRefresh(a: Tensor, previousVectors: Tensor, options: CudaRefreshOptions = {}) {
  const o = checkOptions(options);
  const h = onDevice({ a, previousVectors, previousValues: (o['previousValues'] as Tensor | undefined) ?? null });
  const opt: { clampNonNegative: boolean; maxResidual?: number; maxOffDiagonal?: number } = { clampNonNegative: o['clampNonNegative'] === true };
  if (o['maxResidual'] !== undefined) opt.maxResidual = checkFinite(o['maxResidual'], 'maxResidual');
  if (o['maxOffDiagonal'] !== undefined) opt.maxOffDiagonal = checkFinite(o['maxOffDiagonal'], 'maxOffDiagonal');
  const r = ops().eighRefresh(req(h, 'a'), req(h, 'previousVectors'), h['previousValues'] ?? null, null, null, opt);
  return { ...r, values: Tensor.fromNative(r.values), vectors: Tensor.fromNative(r.vectors) };
}

export interface CudaEigenFactors {
  QA: Tensor;
  dA: Tensor;
  QG: Tensor;
  dG: Tensor;
}

/** Eigen-method preconditioning into out (and outBias exactly when gradBias is given). */
export function preconditionEigen(
  grad: Tensor,
  f: CudaEigenFactors,
  damping: number,
  out: Tensor,
  bias: { gradBias: Tensor; outBias: Tensor } | null = null,
): void {
  const h = onDevice({ grad, QA: f.QA, dA: f.dA, QG: f.QG, dG: f.dG, out, gradBias: bias?.gradBias, outBias: bias?.outBias });
  ops().preconditionEigen(req(h, 'grad'), h['gradBias'] ?? null, req(h, 'QA'), req(h, 'dA'), req(h, 'QG'), req(h, 'dG'), checkFinite(damping, 'damping'), req(h, 'out'), h['outBias'] ?? null);
}

/** Inverse-method preconditioning with π damping from the factors A, G. */
export function preconditionInverseFactors(
  grad: Tensor,
  A: Tensor,
  G: Tensor,
  damping: number,
  out: Tensor,
  bias: { gradBias: Tensor; outBias: Tensor } | null = null,
): { pi: number; dampA: number; dampG: number; usedFloat64: boolean } {
  const h = onDevice({ grad, A, G, out, gradBias: bias?.gradBias, outBias: bias?.outBias });
  return ops().preconditionInverseFactors(req(h, 'grad'), h['gradBias'] ?? null, req(h, 'A'), req(h, 'G'), checkFinite(damping, 'damping'), req(h, 'out'), h['outBias'] ?? null);
}

/** out = (a + damping·I)⁻¹ by Cholesky (float64 retry). */
export function dampedInverse(a: Tensor, damping: number, out: Tensor): { usedFloat64: boolean } {
  const h = onDevice({ a, out });
  return { usedFloat64: ops().dampedInverse(req(h, 'a'), checkFinite(damping, 'damping'), req(h, 'out')).usedFloat64 };
}

/** Inverse-method preconditioning with precomputed inverses. */
export function preconditionInverse(grad: Tensor, Ainv: Tensor, Ginv: Tensor, out: Tensor, bias: { gradBias: Tensor; outBias: Tensor } | null = null): void {
  const h = onDevice({ grad, Ainv, Ginv, out, gradBias: bias?.gradBias, outBias: bias?.outBias });
  ops().preconditionInverse(req(h, 'grad'), h['gradBias'] ?? null, req(h, 'Ainv'), req(h, 'Ginv'), req(h, 'out'), h['outBias'] ?? null);
}

export type CudaClipOptions = { mode?: 'global' | 'per-tensor'; maxNorm: number } | { mode: 'fisher'; c: number; lr: number; grads: readonly Tensor[] };

/** Newton-step clipping in place (one reduce launch, one scale launch); returns the pre-clip norms. */
export function clipNewtonStep(tensors: readonly Tensor[], options: CudaClipOptions) {
  if (!Array.isArray(tensors)) invalidArgument('tensors', 'an array of Tensors', describe(tensors));
  const o = checkOptions(options);
  const named: Record<string, Tensor> = {};
  tensors.forEach((t, i) => (named[`tensors[${i}]`] = t));
  const mode = (o['mode'] ?? 'global') as 'global' | 'per-tensor' | 'fisher';
  const grads = mode === 'fisher' ? (o['grads'] as readonly Tensor[] | undefined) : undefined;
  if (mode === 'fisher' && !Array.isArray(grads)) invalidArgument('grads', 'an array of Tensors', describe(grads));
  grads?.forEach((t, i) => (named[`grads[${i}]`] = t));
  const h = onDevice(named);
  const hs = tensors.map((_, i) => req(h, `tensors[${i}]`));
  if (mode === 'fisher')
    return ops().clipNewtonStep(hs, { mode, c: checkFinite(o['c'], 'c'), lr: checkFinite(o['lr'], 'lr'), grads: grads!.map((_, i) => req(h, `grads[${i}]`)) });
  if (mode !== 'global' && mode !== 'per-tensor') invalidArgument('mode', "'global', 'per-tensor' or 'fisher'", describe(mode));
  return ops().clipNewtonStep(hs, { mode, maxNorm: checkFinite(o['maxNorm'], 'maxNorm') });
}

export interface CudaAdamWOptions {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** 1-based step being taken. */
  step: number;
  amsgrad?: boolean;
  maximize?: boolean;
}

/** One AdamW update in place (torch.optim.AdamW semantics, as optim.AdamW on the CPU). */
export function adamwStep(param: Tensor, grad: Tensor, state: { expAvg: Tensor; expAvgSq: Tensor; maxExpAvgSq?: Tensor }, o: CudaAdamWOptions): void {
  const h = onDevice({ param, grad, expAvg: state.expAvg, expAvgSq: state.expAvgSq, maxExpAvgSq: state.maxExpAvgSq });
  ops().adamwStep(req(h, 'param'), req(h, 'grad'), req(h, 'expAvg'), req(h, 'expAvgSq'), h['maxExpAvgSq'] ?? null, {
    lr: o.lr, beta1: o.beta1, beta2: o.beta2, eps: o.eps, weightDecay: o.weightDecay, step: o.step, amsgrad: o.amsgrad === true, maximize: o.maximize === true,
  });
}

export interface CudaSgdOptions {
  lr: number;
  momentum?: number;
  dampening?: number;
  weightDecay?: number;
  nesterov?: boolean;
  maximize?: boolean;
  /** The momentum buffer starts from this step's gradient. */
  firstStep?: boolean;
}

/** One SGD update in place (torch.optim.SGD semantics). */
export function sgdStep(param: Tensor, grad: Tensor, momentumBuffer: Tensor | null, o: CudaSgdOptions): void {
  const h = onDevice({ param, grad, momentumBuffer });
  ops().sgdStep(req(h, 'param'), req(h, 'grad'), h['momentumBuffer'] ?? null, {
    lr: o.lr, momentum: o.momentum ?? 0, dampening: o.dampening ?? 0, weightDecay: o.weightDecay ?? 0,
    nesterov: o.nesterov === true, maximize: o.maximize === true, firstStep: o.firstStep !== false,
  });
}
