/**
 * The typed shape of the raw native addon, both builds: one binding per op, and each op's
 * tensors may live on either device (results come back on that device). Only lib/ talks
 * to it; users get Tensor, linalg, ops, kfac and optim. Every function validates its
 * arguments natively and throws the library's typed errors.
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
  /** A copy on `device` in `dtype` (default: this tensor's dtype). */
  to(device: NativeDevice, options: { dtype?: NativeStorage | undefined }): NativeTensor;
}

export type NativeDevice = 'cpu' | 'cuda';
export type NativeStorage = 'float32' | 'bfloat16';

export interface NativePlacement {
  device?: NativeDevice;
  dtype?: NativeStorage;
}

export interface NativeTensorStatic {
  fromFloat32Array(data: Float32Array, shape: readonly number[]): NativeTensor;
  empty(shape: readonly number[], options?: NativePlacement): NativeTensor;
  zeros(shape: readonly number[], options?: NativePlacement): NativeTensor;
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
    /** KFAC_BF16_KERNEL as given ('' when unset). */
    bf16KernelRequest: string;
    /** Present when that request could not be honoured: what was asked and what runs instead. */
    bf16KernelWarning?: string;
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
    /** Packed bf16 GEMM panels of frozen weights, cached with them (KFAC_WEIGHT_PANEL_CACHE=0 turns it off). */
    weightPanels: { enabled: boolean; entries: number; bytes: number; hits: number; misses: number };
  };
}

export interface NativeMatmulOptions {
  transA?: boolean;
  transB?: boolean;
  alpha?: number;
  beta?: number;
  /** cuda: TF32 tensor cores for float32 inputs. */
  tf32?: boolean;
}

export interface NativeEighResult {
  values: NativeTensor;
  vectors: NativeTensor;
  retriedFloat64: boolean;
}

export interface NativePiDamping {
  pi: number;
  dampA: number;
  dampG: number;
  usedFloat64: boolean;
}

export interface NativeClipResult {
  norms: number[];
  totalNorm: number;
  scales: number[];
  clipped: boolean[];
  anyClipped: boolean;
  vg: number;
}

/** The K-FAC kernels (native/napi/ops_kfac.cpp). */
export interface NativeKfacOps {
  factorUpdate(x: NativeTensor, factor: NativeTensor, options: { beta: number; scale: number; bias: boolean; checkFinite: boolean }): void;
  dampedInverse(a: NativeTensor, damping: number, out: NativeTensor | null): { out: NativeTensor; usedFloat64: boolean };
  preconditionEigen(
    grad: NativeTensor,
    gradBias: NativeTensor | null,
    QA: NativeTensor,
    dA: NativeTensor,
    QG: NativeTensor,
    dG: NativeTensor,
    damping: number,
    out: NativeTensor,
    outBias: NativeTensor | null,
  ): void;
  preconditionEkfac(
    grad: NativeTensor,
    gradBias: NativeTensor | null,
    QA: NativeTensor,
    QG: NativeTensor,
    S: NativeTensor,
    scale: number,
    damping: number,
    out: NativeTensor,
    outBias: NativeTensor | null,
  ): void;
  kronQuadraticMany(dWs: NativeTensor[], dbs: (NativeTensor | null)[], As: NativeTensor[], Gs: NativeTensor[]): Float64Array;
  /** Σx² of each tensor into the record's value slots from `offset`, the all-finite flag into slot `flag` (−1: none); nothing downloaded. */
  sumSquaresTo(tensors: NativeTensor[], record: NativeTensor, offset: number, flag: number, checkAt?: number, checkCount?: number): void;
  /** The trust-ratio Newton-step clip in place on `steps`, its outcome into 5 record slots from `offset`; nothing downloaded. */
  trustClip(steps: NativeTensor[], params: NativeTensor[], options: { k: number; floor: number; perTensor: boolean; fixed?: boolean; eps?: number }, record: NativeTensor, offset: number): void;
  /** F ← βF + (1 − β)X when the record's slot `slot` is not 0. */
  emaCommit(F: NativeTensor, X: NativeTensor, beta: number, record: NativeTensor, slot: number): void;
  /** Σxy of each pair into the record's value slots from `offset`; nothing downloaded. */
  dotManyTo(xs: NativeTensor[], ys: NativeTensor[], record: NativeTensor, offset: number): void;
  /** The numbers of kronQuadraticMany into the record's value slots from `offset`; nothing downloaded. */
  kronQuadraticManyTo(dWs: NativeTensor[], dbs: (NativeTensor | null)[], As: NativeTensor[], Gs: NativeTensor[], record: NativeTensor, offset: number): void;
  /** dst[dstOffset..+count) ← src[srcOffset..+count) when the record's slot `slot` is not 0. */
  copyRangeIf(src: NativeTensor, srcOffset: number, dst: NativeTensor, dstOffset: number, count: number, record: NativeTensor, slot: number): void;
  /** eighBatched into `values`, `vectors` without a wait: the record's slot `slot` gets 1 when every matrix was solved with finite results, else 0. */
  eighBatchedTo(a: NativeTensor, values: NativeTensor, vectors: NativeTensor, options: { clampNonNegative?: boolean }, record: NativeTensor, slot: number): void;
  ekfacMoments(x: NativeTensor, g: NativeTensor, QA: NativeTensor, QG: NativeTensor, acc: NativeTensor, options: { alpha: number; beta: number; bias: boolean }): void;
  preconditionInverse(grad: NativeTensor, gradBias: NativeTensor | null, Ainv: NativeTensor, Ginv: NativeTensor, out: NativeTensor, outBias: NativeTensor | null): void;
  preconditionInverseFactors(
    grad: NativeTensor,
    gradBias: NativeTensor | null,
    A: NativeTensor,
    G: NativeTensor,
    damping: number,
    out: NativeTensor,
    outBias: NativeTensor | null,
  ): NativePiDamping;
  piDamping(A: NativeTensor, G: NativeTensor, damping: number): NativePiDamping;
  clipNewtonStep(
    tensors: NativeTensor[],
    options: { mode: 'global' | 'per-tensor'; maxNorm: number } | { mode: 'fisher'; c: number; lr: number; grads: NativeTensor[] },
  ): NativeClipResult;
}

/** One entry of the op list (native/core/dispatch.h) and the devices with a kernel for it. */
export interface NativeOpEntry {
  name: string;
  cpu: boolean;
  cuda: boolean;
}

/** What the CUDA runtime says (`addon.cuda.info()`, CUDA build only). */
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

/** The caching device allocator's statistics (bytes, and counts of calls). */
export interface NativeDeviceCacheStats {
  /** False when KFAC_CUDA_CACHING=0: one raw allocation per tensor. */
  caching: boolean;
  /** Bytes of live blocks (sizes rounded to 512 B) and their peak. */
  allocated: number;
  peak: number;
  /** Bytes held from the device (segments), their peak, and the part of them free for reuse. */
  reserved: number;
  peakReserved: number;
  cached: number;
  /** Bytes the live blocks asked for, before rounding. */
  requested: number;
  allocations: number;
  cacheHits: number;
  rawAllocations: number;
  rawFrees: number;
  /** Raw allocations that failed, emptied the cache and were retried; OutOfMemory errors thrown. */
  retries: number;
  ooms: number;
  segments: number;
  liveBlocks: number;
}

/** Device memory in bytes: the caching allocator's statistics and free/total of the device. */
export interface NativeCudaMemory extends NativeDeviceCacheStats {
  free: number;
  total: number;
}

/** `addon.cuda`: device information only — every op is the same binding for both devices. */
export interface NativeCuda {
  info(): NativeCudaInfo;
  memory(): NativeCudaMemory;
  /** Whether bf16 GEMMs use cuBLASLt (`KFAC_CUBLASLT=0` turns it off); a boolean sets it first. Parity checks only. */
  cublasLt(on?: boolean): boolean;
  /** bf16 GEMMs cuBLASLt ran (`calls`) and declined to the cublasGemmEx / syrk path (`fallbacks`) since the process started. Parity checks only. */
  cublasLtCounts(): { calls: number; fallbacks: number };
  emptyCache(): number;
  /** Host waits on the stream since the process started: one per download and per explicit synchronize (the ops only queue work). */
  synchronizations(): number;
}

export interface NativeAddon extends NativeKfacOps {
  NativeTensor: NativeTensorStatic;
  /** Only in the CUDA build. */
  cuda?: NativeCuda;
  opList(): NativeOpEntry[];
  synchronize(device?: NativeDevice): void;
  deviceAvailable(device: NativeDevice): boolean;
  /** The device's caching allocator (null when it has none in this process); free/total null when the device does not say. */
  deviceMemory(device?: NativeDevice): (NativeDeviceCacheStats & { free: number | null; total: number | null }) | null;
  /** Gives the device's cached, entirely free segments back; the bytes given back. */
  emptyCache(device?: NativeDevice): number;
  /** Test hook: caching on/off at run time (KFAC_CUDA_CACHING); returns the previous setting. */
  _setDeviceCaching(on: boolean): boolean;
  /** Test hook: a fresh caching allocator shared by threads that write, check and free their own blocks. */
  _deviceCacheThreads(threads: number, iterations: number): { overwritten: number; allocated: number; reserved: number; released: number; allocations: number };
  /** Test hook: a fresh caching allocator over host memory; whether a block freed on one stream is reused on another / on its own. */
  _deviceCacheStreams(bytes: number): { sameStreamReused: boolean; otherStreamReused: boolean; rawAllocations: number };
  /** Test hook: the raw host memory under the loopback's/emulation's cache; a number sets its limit in bytes (0: none). */
  _emulatedMemory(limit?: number): { allocations: number; frees: number; liveBytes: number; limit: number; refused: number };
  /** Test hook: registers the CPU kernels and host memory under the cuda id (CPU build only). */
  _cpuLoopback(): boolean;
  /** Test hook: the CUDA emulation — host memory under the cuda id, nn ops run by the CUDA kernel bodies on the host (CPU build only). */
  _cudaEmulation(): boolean;
  /** Test hook: whether bf16 attention on cuda runs on tensor cores (KFAC_ATTN_TENSOR_CORES=0 turns it off); a boolean sets it first. */
  _attentionTensorCores(on?: boolean): boolean;
  /** Test hook: the CUDA probe's words for a driver too old and for a GPU the build's architectures cannot run ('' when they can). */
  _cudaProbeReasons(driverVersion: number, runtimeVersion: number, major: number, minor: number, architectures: string, name: string): { driver: string; arch: string };
  /** Host↔device copies made through the CPU loopback since it was enabled (tests only). */
  _loopbackTransfers(): { uploads: number; downloads: number; uploadBytes: number; downloadBytes: number };
  info(): NativeInfo;
  setNumThreads(n: number): number;
  cast(x: NativeTensor, dtype: string): NativeTensor;
  setBf16Kernel(kernel: string): string;
  bf16Kernels(): { kernel: string; supported: Record<string, boolean> };
  setCpuKernel(kernel: string): string;
  releaseCachedMemory(): number;
  setHostCacheLimit(bytes: number): void;
  setErrorFactory(f: (code: string, message: string, argument: string, expected: string, got: string) => Error): void;

  matmul(a: NativeTensor, b: NativeTensor, out: NativeTensor | null, options: NativeMatmulOptions): NativeTensor;
  fill(x: NativeTensor, value: number): void;
  copy(src: NativeTensor, dst: NativeTensor): void;
  copyRange(src: NativeTensor, srcOffset: number, dst: NativeTensor, dstOffset: number, count: number): void;
  add(a: NativeTensor, b: NativeTensor, out: NativeTensor): void;
  scale(x: NativeTensor, alpha: number, out: NativeTensor): void;
  axpy(alpha: number, x: NativeTensor, y: NativeTensor): void;
  transpose(x: NativeTensor, out: NativeTensor | null): NativeTensor;
  sum(x: NativeTensor): number;
  sumSquares(x: NativeTensor): number;
  sumSquaresMany(tensors: NativeTensor[]): Float64Array;
  dotMany(xs: NativeTensor[], ys: NativeTensor[]): Float64Array;
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
  /** Test hook: 1 makes float32 eigensolves fail, 2 makes the float64 retry fail too, 3 makes batched solves fail, 0 restores. */
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
}
