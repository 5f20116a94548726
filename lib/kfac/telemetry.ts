/** What one K-FAC step reports (the Trainer logs it per step). */
export interface KfacTelemetry {
  step: number;
  /** False during warm-up: gradients were left as they were. */
  preconditioned: boolean;
  factorsUpdated: boolean;
  decomposed: boolean;
  damping: number;
  /** Global gradient norm before any clipping. */
  gradNorm: number;
  /** ‖P‖ over all layers before Newton-step clipping (NaN when not preconditioned). */
  preClipNorm: number;
  /** Scale the Newton clip applied (1: none). */
  clipScale: number;
  clipped: boolean;
  /** Fraction of preconditioned steps so far whose step was clipped. */
  clipRate: number;
  /** The Newton clip's threshold this step: τ (global / per-tensor, also from a trust ratio) or c (fisher); NaN without a clip. */
  clipThreshold: number;
  /** Scale of the gradient clip before preconditioning (1: none). */
  gradClipScale: number;
  /** Micro-batches whose statistics went into this step's factor update (0: no update). */
  microBatches: number;
  decompositions: { cold: number; warm: number; fallback: number; kept: number };
  /** Largest warm-refresh residual ‖AQ − QΛ‖/‖A‖ this step (NaN when none). */
  refreshResidual: number;
  timings: { factorsMs: number; decompositionsMs: number; preconditionMs: number; clipMs: number };
  /** The learning rate the step was applied with (NaN: the preconditioner alone). */
  lr: number;
  /** Adaptive damping: the quadratic model's predicted loss change M(δ) and the reduction ratio ρ (NaN when not evaluated this step). */
  quadraticModel: number;
  rho: number;
  /**
   * Adaptive step length: the multiplier of κ this step used (1 when off) and the agreement
   * h = cos(∇W_t, P_{t−1}) of this step's gradient with the previous step that set it (NaN when not measured).
   */
  trustScale: number;
  stepAgreement: number;
  /** The step was undone (adaptive damping's rejection, or a non-finite quadratic model). */
  rejected: boolean;
  /** Untracked parameters whose AdamW update the trust-ratio clip bounded this step. */
  untrackedClipped: number;
  /** Unusual events: decompositions that failed and kept the previous basis, etc. */
  events: string[];
}

/** A step's telemetry before anything happened: nothing updated, decomposed or clipped yet. */
export function startTelemetry(step: number, damping: number, lr: number, trustScale: number, sink: { decompositions: KfacTelemetry['decompositions']; events: string[] }): KfacTelemetry {
  return {
    step,
    preconditioned: false,
    factorsUpdated: false,
    decomposed: false,
    damping,
    gradNorm: NaN,
    preClipNorm: NaN,
    clipScale: 1,
    clipped: false,
    clipRate: 0,
    clipThreshold: NaN,
    gradClipScale: 1,
    microBatches: 0,
    lr,
    quadraticModel: NaN,
    rho: NaN,
    trustScale,
    stepAgreement: NaN,
    rejected: false,
    untrackedClipped: 0,
    decompositions: sink.decompositions,
    refreshResidual: NaN,
    timings: { factorsMs: 0, decompositionsMs: 0, preconditionMs: 0, clipMs: 0 },
    events: sink.events,
  };
}
