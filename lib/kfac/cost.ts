/**
 * The work of a K-FAC step, counted from the layers' shapes (docs/KFAC.md#cost): how many
 * floating-point operations the factor updates, EKFAC's second moments, the preconditioning and
 * the refresh of the large factors issue, per step and per refresh, so that a run can be sized
 * before it starts (`kfac-peft bench train-step --flops`). Counts, not timings: an eigensolver's
 * work is given as Σ n³ of the matrices it decomposes, apart from the GEMMs, because its speed per
 * FLOP differs from a GEMM's by a large and device-dependent factor.
 *
 * Conventions (one multiply-add = 2 FLOPs): a factor update of n×n from R rows is n²·R (syrk
 * computes one triangle); a GEMM m×k by k×n is 2·m·n·k.
 */
import { at, type ResolvedKfacOptions } from './options.js';
import type { KfacLayer } from './layer.js';

/** The key of a layer's A factor: layers with one `inputKey` (and bias or not) share it (KfacPreconditioner). */
export function aFactorKey(l: Pick<KfacLayer, 'name' | 'inputKey' | 'bias'>): string {
  return `A:${l.inputKey ?? l.name}${l.bias ? '+1' : ''}`;
}

/** The options of the preconditioner that decide its work (as resolveKfacOptions gives them). */
export type KfacCostOptions = Pick<ResolvedKfacOptions, 'method' | 'smallFactorDim' | 'warmRefresh' | 'factorEvery' | 'inverseEvery'>;

export interface KfacFlops {
  /** Distinct factors: large (refreshed every `inverseEvery` steps) and small (decomposed every step). */
  factors: { large: number; small: number; largestDim: number };
  /** Per capture (a step whose factors are due): the factor updates. */
  factorUpdates: number;
  /** Per capture: EKFAC's projected second moments (0 for the other methods). */
  moments: number;
  /** Per step: the preconditioning's basis changes (or inverse products). */
  precondition: number;
  /** Per refresh of the large factors: the GEMMs of the warm refresh (0 for a cold refresh or the inverse method). */
  refreshGemm: number;
  /** Per refresh: Σ n³ over the large factors decomposed (or inverted). */
  refreshN3: number;
  /** Per step: Σ n³ over the small factors decomposed. */
  smallN3: number;
  /** The GEMM FLOPs a step pays on average: (factorUpdates + moments)/factorEvery + precondition + refreshGemm/inverseEvery. */
  perStep: number;
  /** The intervals that `perStep` assumes (their values at step 1000, for schedules). */
  factorEvery: number;
  inverseEvery: number;
}

/**
 * Counts a K-FAC step's work over `layers` (as KfacPreconditioner builds its blocks: shared A
 * factors counted once for their update and decomposition, but projected by every block in
 * EKFAC's moments). `rowsOf(name)` is the number of rows a layer's capture reads (batch ×
 * sequence for a token-wise layer, the batch for a pooled classifier head).
 */
export function kfacFlops(layers: readonly KfacLayer[], o: KfacCostOptions, rowsOf: (name: string) => number): KfacFlops {
  const small = (n: number) => o.method !== 'inverse' && o.smallFactorDim > 0 && n <= o.smallFactorDim;
  const factorRows = new Map<string, { n: number; rows: number }>();
  let moments = 0;
  let precondition = 0;
  for (const l of layers) {
    const [dout, din] = l.weight.tensor.shape as [number, number];
    const Da = din + (l.bias ? 1 : 0);
    const R = rowsOf(l.name);
    const key = aFactorKey(l);
    if (!factorRows.has(key)) factorRows.set(key, { n: Da, rows: R });
    factorRows.set(`G:${l.name}`, { n: dout, rows: R });
    // eigen / ekfac: Q_Gᵀ ∇ Q_A and back, four GEMMs; inverse: G⁻¹ ∇ A⁻¹, two
    precondition += (o.method === 'inverse' ? 2 : 4) * dout * Da * (dout + Da);
    // EKFAC: x Q_A, g Q_G, then (gQ_G)²ᵀ (x̃Q_A)²
    if (o.method === 'ekfac') moments += 2 * R * din * Da + 2 * R * dout * dout + 2 * R * dout * Da;
  }
  let factorUpdates = 0;
  let refreshGemm = 0;
  let refreshN3 = 0;
  let smallN3 = 0;
  let large = 0;
  let nSmall = 0;
  let largestDim = 0;
  for (const { n, rows } of factorRows.values()) {
    factorUpdates += n * n * rows;
    largestDim = Math.max(largestDim, n);
    if (small(n)) {
      nSmall += 1;
      smallN3 += n ** 3;
    } else {
      large += 1;
      refreshN3 += n ** 3;
      // warm refresh: A·Q, Qᵀ(AQ), Q·V (native/cpu/eigh_refresh.cpp, native/cuda/eigh.cu)
      if (o.method !== 'inverse' && o.warmRefresh) refreshGemm += 3 * 2 * n ** 3;
    }
  }
  const fe = Math.max(1, Math.round(at(o.factorEvery, 1000, 'factorEvery')));
  const ie = Math.max(1, Math.round(at(o.inverseEvery, 1000, 'inverseEvery')));
  return {
    factors: { large, small: nSmall, largestDim },
    factorUpdates,
    moments,
    precondition,
    refreshGemm,
    refreshN3,
    smallN3,
    perStep: (factorUpdates + moments) / fe + precondition + refreshGemm / ie,
    factorEvery: fe,
    inverseEvery: ie,
  };
}
