/** Every bench case `kfac-peft bench <case>` knows, loaded on demand. */
import type { BenchCase } from './types.js';

export const benchCases: Record<string, () => Promise<BenchCase>> = {
  gemm: async () => (await import('./gemm.js')).gemmBench,
  factor: async () => (await import('./kfac.js')).factorBench,
  precondition: async () => (await import('./kfac.js')).preconditionBench,
  clip: async () => (await import('./kfac.js')).clipBench,
  attention: async () => (await import('./attention.js')).attentionBench,
  eigh: async () => (await import('./eigh.js')).eighBench,
  refresh: async () => (await import('./eigh.js')).refreshBench,
  'batched-eigh': async () => (await import('./eigh.js')).batchedEighBench,
};
