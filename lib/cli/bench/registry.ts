/** Every bench case `kfac-peft bench <case>` knows, loaded on demand. */
import type { BenchCase } from './types.js';

export const benchCases: Record<string, () => Promise<BenchCase>> = {
  gemm: async () => (await import('./gemm.js')).gemmBench,
  eigh: async () => (await import('./eigh.js')).eighBench,
  refresh: async () => (await import('./eigh.js')).refreshBench,
  'batched-eigh': async () => (await import('./eigh.js')).batchedEighBench,
};
