/** What the native runtime is and how it is configured. */
import { describe, invalidArgument } from './errors.js';
import type { NativeInfo } from './native/addon.js';
import { backendChoice, cudaStatus, type BackendChoice, type CudaStatus } from './native/loader.js';
import { native, nativePath } from './native/loader.js';
import { checkInteger } from './util/validate.js';

export interface RuntimeInfo extends NativeInfo {
  /** The addon file that was loaded. */
  binary: string;
  /** The backend in use and why ('auto' says why it did not pick CUDA). */
  backend: BackendChoice;
  /** What was found of the CUDA binary, driver and device. */
  cuda: Omit<CudaStatus, 'attempts'>;
}

export function info(): RuntimeInfo {
  const addon = native();
  const i = addon.info();
  const backends = addon['cuda'] && !i.backends.includes('cuda') ? [...i.backends, 'cuda'] : i.backends;
  const { attempts: _attempts, ...cuda } = cudaStatus();
  return { ...i, backends, cpu: { ...i.cpu, brand: i.cpu.brand.trim() }, binary: nativePath() ?? '', backend: backendChoice()!, cuda };
}

/** Threads the CPU kernels use (1–256); 0 restores the default (KFAC_NUM_THREADS or all CPUs). Returns the count now in use. */
export function setNumThreads(n: number): number {
  return native().setNumThreads(checkInteger(n, 'threads', 0, 256));
}

/**
 * Returns the host memory blocks the caching allocator keeps for reuse to the system (the
 * allocator also does this by itself under memory pressure). Returns the bytes released.
 */
export function releaseCachedMemory(): number {
  return native().releaseCachedMemory();
}

/** Bounds the host block cache in bytes (0 disables caching); default KFAC_HOST_CACHE_BYTES or ¼ of RAM, at most 2 GiB. */
export function setHostCacheLimit(bytes: number): void {
  native().setHostCacheLimit(checkInteger(bytes, 'bytes', 0, Number.MAX_SAFE_INTEGER));
}

export type Bf16Kernel = 'auto' | 'portable' | 'avx512bf16' | 'amx';

/** Forces a bf16 GEMM kernel (for testing each); 'auto' picks AMX, then AVX512-BF16, then the portable one. Throws for one this machine lacks. */
export function setBf16Kernel(kernel: Bf16Kernel): string {
  if (typeof kernel !== 'string') invalidArgument('kernel', "'auto', 'portable', 'avx512bf16' or 'amx'", describe(kernel));
  return native().setBf16Kernel(kernel);
}

/** The bf16 kernel in use and which ones this CPU, OS and build can run. */
export function bf16Kernels(): { kernel: string; supported: Record<string, boolean> } {
  return native().bf16Kernels();
}

export type CpuKernel = 'auto' | 'avx512' | 'avx2' | 'generic';

/** Forces a CPU micro-kernel family (for testing the fallbacks); 'auto' picks the best the CPU has. */
export function setCpuKernel(kernel: CpuKernel): string {
  if (typeof kernel !== 'string') invalidArgument('kernel', "'auto', 'avx512', 'avx2' or 'generic'", describe(kernel));
  return native().setCpuKernel(kernel);
}

export { setBackend, type Backend } from './native/loader.js';
