/**
 * The momentum of the gradients, preconditioned (docs/KFAC.md#momentum): with `momentumOf:
 * 'gradient'` the KFAC optimizer takes the Newton step of the gradients' running average instead of
 * averaging Newton steps. Per parameter, before the preconditioner:
 *
 *   m ← μ·m + ∇,   d = ∇ + μ·m (Nesterov) or d = m,   ∇ ← d,
 *
 * then the preconditioner writes clip(P(d)) and SGD without momentum applies it. (With `momentumOf:
 * 'step'`, kfac-pytorch's order, SGD's momentum averages the clipped steps clip(P(∇)) instead.) For
 * a parameter the preconditioner leaves alone this is SGD's own momentum: torch's buffer starts
 * as the first gradient, and so does m (m₀ = 0).
 *
 * The step may still be refused (non-finite statistics or step) or undone (the adaptive damping's
 * probe): `apply` keeps the raw gradients, `revert` puts them back and leaves m as it was,
 * `commit` advances m, `undo` takes a committed step's m back. Two buffers per parameter: m and
 * the raw gradient (which becomes the previous m at a commit, for `undo`).
 */
import { invalidArgument } from '../errors.js';
import * as ops from '../ops/index.js';
import type { Hyper, Param } from '../optim/types.js';
import type { Tensor } from '../tensor/tensor.js';
import { copyInto, stateLike } from './state.js';

export type MomentumOf = 'step' | 'gradient';

export class GradientMomentum {
  readonly params: readonly Param[];
  readonly momentum: Hyper;
  readonly nesterov: boolean;
  /** m per parameter (null until its first gradient). */
  #m: (Tensor | null)[];
  /** The raw gradient of the pending step; after a commit, the previous m. */
  #other: (Tensor | null)[];
  /** Parameters whose gradient `apply` rewrote (pending a commit or a revert). */
  #pending: number[] | null = null;
  /** Parameters the last commit advanced (for `undo`). */
  #committed: number[] = [];
  #mu = 0;
  #steps = 0;

  constructor(params: readonly Param[], momentum: Hyper, nesterov: boolean) {
    this.params = params;
    this.momentum = momentum;
    this.nesterov = nesterov;
    this.#m = params.map(() => null);
    this.#other = params.map(() => null);
  }

  /** Steps committed so far. */
  get stepCount(): number {
    return this.#steps;
  }

  /**
   * Rewrites each gradient with d (above), keeping the raw gradient; m is unchanged until
   * `commit`. μ is `momentum` at `step` (a number, or a function of the step, checked by `muAt`).
   */
  apply(muAt: (h: Hyper, step: number) => number): void {
    // a step that neither committed nor reverted left nothing to restore: these gradients are new
    this.#pending = null;
    const mu = (this.#mu = muAt(this.momentum, this.#steps));
    const pending: number[] = [];
    this.params.forEach((p, i) => {
      const g = p.grad;
      if (!g) return;
      const raw = (this.#other[i] ??= stateLike(p.tensor, p.tensor.shape));
      ops.copy(g, raw);
      const m = this.#m[i];
      if (m) {
        // Nesterov: d = ∇ + μ(μm + ∇) = (1 + μ)∇ + μ²m; heavy ball: d = μm + ∇
        if (this.nesterov) {
          ops.scale(g, 1 + mu, g);
          ops.axpy(mu * mu, m, g);
        } else ops.axpy(mu, m, g);
      } else if (this.nesterov) ops.scale(g, 1 + mu, g); // m₀ = 0: m₁ = ∇, d = (1 + μ)∇
      pending.push(i);
    });
    this.#pending = pending;
  }

  /** The raw gradients back into the parameters; m as before `apply`. */
  revert(): void {
    for (const i of this.#pending ?? []) ops.copy(this.#other[i]!, this.params[i]!.grad!);
    this.#pending = null;
  }

  /** m ← μm + ∇ for every parameter `apply` rewrote; the previous m is kept for `undo`. */
  commit(): void {
    const pending = this.#pending ?? [];
    for (const i of pending) {
      const raw = this.#other[i]!;
      const m = this.#m[i];
      if (m) ops.axpy(this.#mu, m, raw); // raw ← μm + ∇: the new m
      this.#m[i] = raw;
      this.#other[i] = m ?? null; // the previous m (null before the first step: undo drops m)
    }
    this.#committed = pending;
    this.#pending = null;
    this.#steps += 1;
  }

  /** Takes back the last commit: m as before it. */
  undo(): void {
    for (const i of this.#committed) {
      const now = this.#m[i]!;
      this.#m[i] = this.#other[i] ?? null;
      this.#other[i] = now;
    }
    if (this.#committed.length > 0) this.#steps -= 1;
    this.#committed = [];
  }

  /** m per parameter index, for a checkpoint (the tensors are this object's: clone to keep). */
  buffers(): { index: number; m: Tensor }[] {
    return this.#m.flatMap((m, index) => (m ? [{ index, m }] : []));
  }

  /** m from a checkpoint (`index` → tensor); sizes must match, else an InvalidArgumentError. */
  load(buffers: ReadonlyMap<number, Tensor>, steps: number): void {
    this.#pending = null;
    this.#committed = [];
    this.params.forEach((p, i) => {
      const t = buffers.get(i);
      this.#m[i]?.dispose();
      this.#m[i] = null;
      if (!t) return;
      if (t.size !== p.tensor.size) invalidArgument(`state.tensors['momentum/${i}']`, `${p.tensor.size} values (${p.name})`, `${t.size}`);
      const q = stateLike(p.tensor, p.tensor.shape);
      copyInto(t, q);
      this.#m[i] = q;
    });
    this.#steps = steps;
  }

  dispose(): void {
    for (const t of [...this.#m, ...this.#other]) t?.dispose();
    this.#m = this.params.map(() => null);
    this.#other = this.params.map(() => null);
  }
}
