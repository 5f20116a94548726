/**
 * The small factors (dimension ≤ smallFactorDim: LoRA's r×r side, docs/KFAC.md#small-factors)
 * decomposed together. The factors of one dimension are stacked into [k, n, n] with
 * `ops.copyRange`, solved by one `linalg.eighBatched` call and unstacked into each factor's own
 * eigenbasis — where the factors live, one host read per dimension instead of one per factor.
 * A factor joins once it has a decomposition of its own (its first, a cold solve of the refresh);
 * if the batched solve fails, every factor of the group is decomposed alone as before.
 */
import { KfacError } from '../errors.js';
import { eighBatched } from '../linalg/eigh.js';
import * as ops from '../ops/index.js';
import { Tensor } from '../tensor/tensor.js';
import { refreshFactor, type RefreshSink } from './blocks.js';
import type { KFactor } from './kfactor.js';

interface Stack {
  k: number;
  A: Tensor;
  values: Tensor;
  vectors: Tensor;
}

export class SmallFactorSolver {
  readonly #stacks = new Map<number, Stack>();

  constructor(readonly maxDim: number) {}

  /** The factors this solver takes: small, and decomposed at least once. */
  takes(f: KFactor): boolean {
    return this.maxDim > 0 && f.dim <= this.maxDim && f.decomp !== undefined;
  }

  /** Decomposes every factor it takes among `factors` for refresh `round` (they are then skipped by refreshFactor). */
  refresh(factors: Iterable<KFactor>, warm: boolean, round: number, sink: RefreshSink): void {
    const groups = new Map<number, KFactor[]>();
    for (const f of factors) {
      if (!this.takes(f) || f.refreshedIn === round) continue;
      const g = groups.get(f.dim) ?? [];
      g.push(f);
      groups.set(f.dim, g);
    }
    for (const [n, fs] of groups) {
      const st = this.#stack(n, fs.length, fs[0]!.ema);
      const nn = n * n;
      fs.forEach((f, i) => ops.copyRange(f.ema, 0, st.A, i * nn, nn));
      try {
        eighBatched(st.A, { clampNonNegative: true, out: { values: st.values, vectors: st.vectors } });
      } catch (e) {
        if (!(e instanceof KfacError)) throw e;
        sink.events.push(`the batched decomposition of ${fs.length} factors of dimension ${n} failed (${e.message}); each was decomposed alone`);
        for (const f of fs) refreshFactor(f, warm, round, sink);
        continue;
      }
      fs.forEach((f, i) => {
        f.refreshedIn = round;
        f.setDecomposition(st.vectors, i * nn, st.values, i * n);
      });
      sink.decompositions.cold += fs.length;
    }
  }

  #stack(n: number, k: number, like: Tensor): Stack {
    const have = this.#stacks.get(n);
    if (have && have.k === k) return have;
    if (have) for (const t of [have.A, have.values, have.vectors]) t.dispose();
    const st = {
      k,
      A: Tensor.zeros([k, n, n], { device: like.device }),
      values: Tensor.zeros([k, n], { device: like.device }),
      vectors: Tensor.zeros([k, n, n], { device: like.device }),
    };
    this.#stacks.set(n, st);
    return st;
  }

  dispose(): void {
    for (const st of this.#stacks.values()) for (const t of [st.A, st.values, st.vectors]) t.dispose();
    this.#stacks.clear();
  }
}
