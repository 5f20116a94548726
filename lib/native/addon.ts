/**
 * The typed shape of the raw native addon. Only lib/ talks to it; users get Tensor,
 * linalg and kfac. Every function validates its arguments natively as well and throws
 * the library's typed errors.
 */

export interface NativeTensor {
  readonly shape: number[];
  readonly dtype: 'float32' | 'float16' | 'bfloat16';
  readonly device: 'cpu' | 'cuda';
  readonly nbytes: number;
  readonly disposed: boolean;
  dispose(): void;
  toFloat32Array(): Float32Array;
  copyFromFloat32Array(data: Float32Array): void;
  reshape(shape: readonly number[]): NativeTensor;
  clone(): NativeTensor;
}

export interface NativeTensorStatic {
  fromFloat32Array(data: Float32Array, shape: readonly number[]): NativeTensor;
  empty(shape: readonly number[]): NativeTensor;
  zeros(shape: readonly number[]): NativeTensor;
  randn(shape: readonly number[], seed: number, mean?: number, std?: number): NativeTensor;
  randUniform(shape: readonly number[], seed: number, lo?: number, hi?: number): NativeTensor;
}

export interface NativeInfo {
  version: string;
  napiVersion: number;
  backends: string[];
  cpu: {
    brand: string;
    avx2: boolean;
    fma: boolean;
    avx512f: boolean;
    /** AVX512-BF16 (vdpbf16ps) and AMX-BF16 tiles enabled by the OS. */
    avx512bf16: boolean;
    amxBf16: boolean;
    /** The bf16 GEMM kernel in use: 'amx', 'avx512bf16' or 'portable' (widens to float32). */
    bf16Kernel: string;
    kernel: string;
    threads: number;
    defaultThreads: number;
  };
  /** The caching allocator of host tensor storage (bytes count size classes). */
  memory: {
    allocatedBytes: number;
    cachedBytes: number;
    peakAllocatedBytes: number;
    cacheLimitBytes: number;
    allocations: number;
    cacheHits: number;
    systemAllocations: number;
    releases: number;
  };
}

export interface NativeMatmulOptions {
  transA?: boolean;
  transB?: boolean;
  alpha?: number;
  beta?: number;
}

export interface NativeEighResult {
  values: NativeTensor;
  vectors: NativeTensor;
  retriedFloat64: boolean;
}

export interface NativeAddon {
  NativeTensor: NativeTensorStatic;
  info(): NativeInfo;
  setNumThreads(n: number): number;
  cast(x: NativeTensor, dtype: string): NativeTensor;
  gemmBf16(a: NativeTensor, b: NativeTensor, transB: boolean): NativeTensor;
  setBf16Kernel(kernel: string): string;
  bf16Kernels(): { kernel: string; supported: Record<string, boolean> };
  setCpuKernel(kernel: string): string;
  releaseCachedMemory(): number;
  setHostCacheLimit(bytes: number): void;
  setErrorFactory(f: (code: string, message: string, argument: string, expected: string, got: string) => Error): void;

  matmul(a: NativeTensor, b: NativeTensor, out: NativeTensor | null, options: NativeMatmulOptions): NativeTensor;
  fill(x: NativeTensor, value: number): void;
  copy(src: NativeTensor, dst: NativeTensor): void;
  add(a: NativeTensor, b: NativeTensor, out: NativeTensor): void;
  scale(x: NativeTensor, alpha: number, out: NativeTensor): void;
  axpy(alpha: number, x: NativeTensor, y: NativeTensor): void;
  transpose(x: NativeTensor, out: NativeTensor | null): NativeTensor;
  sum(x: NativeTensor): number;
  sumSquares(x: NativeTensor): number;
  norm(x: NativeTensor): number;
  dot(x: NativeTensor, y: NativeTensor): number;

  eigh(a: NativeTensor, values: NativeTensor | null, vectors: NativeTensor | null, options: { clampNonNegative?: boolean }): NativeEighResult;
  eighRefresh(
    a: NativeTensor,
    previousVectors: NativeTensor,
    previousValues: NativeTensor | null,
    values: NativeTensor | null,
    vectors: NativeTensor | null,
    options: { clampNonNegative?: boolean; maxResidual?: number; maxOffDiagonal?: number },
  ): NativeEighResult & { residual: number; offDiagonal: number; fellBack: boolean; keptPrevious: boolean; sweeps: number };
  eighBatched(a: NativeTensor, values: NativeTensor | null, vectors: NativeTensor | null, options: { clampNonNegative?: boolean }): { values: NativeTensor; vectors: NativeTensor; retried: number };
  /** Test hook: 1 makes float32 eigensolves fail, 2 makes the float64 retry fail too, 0 restores. */
  _eighFaultInjection(mode: number): void;

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

  // Further op families register themselves on the same object.
  [name: string]: unknown;
}
