/** What the native runtime is and how it is configured. */
import { describe, invalidArgument } from './errors.js';
import type { NativeInfo } from './native/addon.js';
import { native, nativePath } from './native/loader.js';
import { checkInteger } from './util/validate.js';

export interface RuntimeInfo extends NativeInfo {
  /** The addon file that was loaded. */
  binary: string;
}

export function info(): RuntimeInfo {
  const i = native().info();
  return { ...i, cpu: { ...i.cpu, brand: i.cpu.brand.trim() }, binary: nativePath() ?? '' };
}

/** Threads the CPU kernels use (1–256); 0 restores the default (KFAC_NUM_THREADS or all CPUs). Returns the count now in use. */
export function setNumThreads(n: number): number {
  return native().setNumThreads(checkInteger(n, 'threads', 0, 256));
}

export type CpuKernel = 'auto' | 'avx512' | 'avx2' | 'generic';

/** Forces a CPU micro-kernel family (for testing the fallbacks); 'auto' picks the best the CPU has. */
export function setCpuKernel(kernel: CpuKernel): string {
  if (typeof kernel !== 'string') invalidArgument('kernel', "'auto', 'avx512', 'avx2' or 'generic'", describe(kernel));
  return native().setCpuKernel(kernel);
}
