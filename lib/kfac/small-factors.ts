/**
 * The small factors (dimension ≤ smallFactorDim: LoRA's r×r side, docs/KFAC.md#small-factors)
 * decomposed together. The factors of one dimension are stacked into [k, n, n] with
 * `ops.copyRange`, solved by one `linalg.eighBatched` call and unstacked into each factor's own
 * eigenbasis — where the factors live. In a K-FAC step the solve waits for nothing: its flag goes
 * to the step record (read once per step), and the copies into the factors are guarded by it.
 * A factor joins once it has a decomposition of its own (its first, a cold solve of the refresh);
 * if a batched solve fails, the factors keep their eigenpairs that step, and at the next refresh
 * the group is solved with waits and, failing again, every factor alone as before.
 */
import { KfacError } from '../errors.js';
import { eighBatched } from '../linalg/eigh.js';
import * as ops from '../ops/index.js';
import { Tensor } from '../tensor/tensor.js';
import { refreshFactor, type RefreshSink } from './blocks.js';
import type { KFactor } from './kfactor.js';
import type { StepRecord } from './step-record.js';

interface Stack {
  k: number;
  A: Tensor;
  values: Tensor;
  vectors: Tensor;
}

export class SmallFactorSolver {
  readonly #stacks = new Map<number, Stack>();
  /** This step's solves whose flags are in the step record. */
  #queued: { n: number; k: number; slot: number }[] = [];
  /** Dimensions whose last solve failed: solved with waits next time. */
  readonly #retry = new Set<number>();

  constructor(readonly maxDim: number) {}

  /** The factors this solver takes: small, and decomposed at least once. */
  takes(f: KFactor): boolean {
    return this.maxDim > 0 && f.dim <= this.maxDim && f.decomp !== undefined;
  }

  /**
   * Decomposes every factor it takes among `factors` for refresh `round` (they are then skipped by
   * refreshFactor). With the step record, each dimension's solve waits for nothing: its flag goes
   * to the record and the factors take the eigenpairs only if it is 1 (`checkRecord` reports it
   * after the read); a dimension whose solve failed is solved with waits at its next refresh.
   */
  refresh(factors: Iterable<KFactor>, warm: boolean, round: number, sink: RefreshSink, record?: StepRecord): void {
    this.#queued = [];
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
      if (record && !this.#retry.has(n)) {
        const slot = record.eighBatched(st.A, st.values, st.vectors);
        fs.forEach((f, i) => {
          f.refreshedIn = round;
          f.setDecomposition(st.vectors, i * nn, st.values, i * n, { record, slot });
        });
        sink.decompositions.cold += fs.length;
        this.#queued.push({ n, k: fs.length, slot });
        continue;
      }
      this.#retry.delete(n);
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

  /**
   * After the step record's read: a dimension whose solve failed kept its factors' previous
   * eigenpairs this step (counted as kept, with an event), and is solved with waits — float64
   * retries, then factor by factor — at its next refresh.
   */
  checkRecord(v: Float64Array, sink: RefreshSink): void {
    for (const q of this.#queued) {
      if (v[q.slot] === 1) continue;
      sink.decompositions.cold -= q.k;
      sink.decompositions.kept += q.k;
      sink.events.push(`the batched decomposition of ${q.k} factors of dimension ${q.n} failed; each kept its previous eigenbasis, and the next refresh solves them with retries`);
      this.#retry.add(q.n);
    }
    this.#queued = [];
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
