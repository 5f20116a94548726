/**
 * η̄, the learning rate a trust-ratio clip is relative to (docs/KFAC.md#default-threshold). The
 * radius on the preconditioned step P is κ·(…)/η̄, so the applied step η·P is bounded by
 * (η/η̄)·κ·(…): with a schedule, its warm-up and decay shrink the step instead of the clip
 * cancelling them. K-FAC and Shampoo/SOAP keep one each.
 */
import { describe, invalidArgument } from '../errors.js';

export class TrustReference {
  /** The reference given by the caller (`trustLr`), if any. */
  readonly fixed: number | undefined;
  /** The largest learning rate seen so far (kept in checkpoints). */
  peak = 0;

  /** `trustLr`: a positive learning rate, or undefined to follow the learning rate. */
  constructor(trustLr: unknown) {
    if (trustLr !== undefined && (typeof trustLr !== 'number' || !Number.isFinite(trustLr) || trustLr <= 0))
      invalidArgument('trustLr', 'a positive learning rate', describe(trustLr));
    this.fixed = trustLr as number | undefined;
  }

  /**
   * η̄ for a step at `lr`: `trustLr` when given; with a schedule (`scheduled`), the largest lr so
   * far; otherwise `lr` itself. Undefined while that is not positive (no positive lr yet).
   */
  at(lr: number, scheduled: boolean): number | undefined {
    if (Number.isFinite(lr) && lr > this.peak) this.peak = lr;
    const ref = this.fixed ?? (scheduled ? this.peak : lr);
    return ref > 0 ? ref : undefined;
  }

  /** Restores `peak` from a checkpoint value (ignored unless a finite number ≥ 0). */
  restore(peak: unknown): void {
    if (typeof peak === 'number' && Number.isFinite(peak) && peak >= 0) this.peak = peak;
  }
}
