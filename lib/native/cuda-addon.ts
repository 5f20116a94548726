/**
 * The typed shape of `addon.cuda`, present only in the CUDA build (kfac_peft_cuda.node).
 * Every op takes tensors on the CUDA device; upload/download are the only crossings.
 */
import type { NativeTensor } from './addon.js';

export interface NativeCudaInfo {
  built: true;
  /** The CUDA architectures compiled in, e.g. "80-real,90-real,90-virtual". */
  architectures: string;
  runtimeVersion: string;
  driverVersion: string | null;
  cublasVersion: string;
  cusolverVersion: string;
  deviceCount: number;
  /** Why no device answers (null when one does). */
  reason: string | null;
  devices: { name: string; computeCapability: string; memoryBytes: number; multiprocessors: number }[];
}

export type NativeStorage = 'float32' | 'bfloat16';

export interface NativeCuda {
  info(): NativeCudaInfo;
  upload(t: NativeTensor, options?: { dtype?: NativeStorage }): NativeTensor;
  download(t: NativeTensor): NativeTensor;
  empty(shape: readonly number[], options?: { dtype?: NativeStorage }): NativeTensor;
  zeros(shape: readonly number[], options?: { dtype?: NativeStorage }): NativeTensor;
  synchronize(): void;
  /** Device-to-device copy (same shape and dtype). */
  copy(src: NativeTensor, dst: NativeTensor): void;
  matmul(a: NativeTensor, b: NativeTensor, out: NativeTensor | null, options: { transA?: boolean; transB?: boolean; alpha?: number; beta?: number; tf32?: boolean }): NativeTensor;
  factorUpdate(x: NativeTensor, factor: NativeTensor, options: { beta?: number; scale?: number; bias?: boolean }): void;
  eigh(a: NativeTensor, values: NativeTensor | null, vectors: NativeTensor | null, options: { clampNonNegative?: boolean }): { values: NativeTensor; vectors: NativeTensor; retriedFloat64: boolean };
  eighBatched(a: NativeTensor, values: NativeTensor | null, vectors: NativeTensor | null, options: { clampNonNegative?: boolean }): { values: NativeTensor; vectors: NativeTensor; retried: number };
  eighRefresh(
    a: NativeTensor,
    previousVectors: NativeTensor,
    previousValues: NativeTensor | null,
    values: NativeTensor | null,
    vectors: NativeTensor | null,
    options: { clampNonNegative?: boolean; maxResidual?: number; maxOffDiagonal?: number },
  ): { values: NativeTensor; vectors: NativeTensor; residual: number; offDiagonal: number; fellBack: boolean; keptPrevious: boolean; retriedFloat64: boolean; sweeps: number };
  preconditionEigen(grad: NativeTensor, gradBias: NativeTensor | null, QA: NativeTensor, dA: NativeTensor, QG: NativeTensor, dG: NativeTensor, damping: number, out: NativeTensor, outBias: NativeTensor | null): void;
  preconditionInverse(grad: NativeTensor, gradBias: NativeTensor | null, Ainv: NativeTensor, Ginv: NativeTensor, out: NativeTensor, outBias: NativeTensor | null): void;
  dampedInverse(a: NativeTensor, damping: number, out: NativeTensor): { out: NativeTensor; usedFloat64: boolean };
  preconditionInverseFactors(grad: NativeTensor, gradBias: NativeTensor | null, A: NativeTensor, G: NativeTensor, damping: number, out: NativeTensor, outBias: NativeTensor | null): { pi: number; dampA: number; dampG: number; usedFloat64: boolean };
  clipNewtonStep(
    tensors: NativeTensor[],
    options: { mode: 'global' | 'per-tensor' | 'fisher'; maxNorm?: number; c?: number; lr?: number; grads?: NativeTensor[] },
  ): { norms: number[]; totalNorm: number; scales: number[]; clipped: boolean[]; anyClipped: boolean; vg: number };
  adamwStep(
    param: NativeTensor,
    grad: NativeTensor,
    expAvg: NativeTensor,
    expAvgSq: NativeTensor,
    maxExpAvgSq: NativeTensor | null,
    options: { lr: number; beta1: number; beta2: number; eps: number; weightDecay: number; step: number; amsgrad: boolean; maximize: boolean },
  ): void;
  sgdStep(
    param: NativeTensor,
    grad: NativeTensor,
    momentumBuffer: NativeTensor | null,
    options: { lr: number; momentum: number; dampening: number; weightDecay: number; nesterov: boolean; maximize: boolean; firstStep: boolean },
  ): void;
}
