/** K-FAC curvature kernels: factor updates, preconditioning, Newton-step clipping. */
export { updateFactor } from './factor.js';
export type { UpdateFactorOptions } from './factor.js';
export { preconditionEigen, preconditionInverse, preconditionInverseFactors, piDamping } from './precondition.js';
export type {
  Eigenpairs,
  PreconditionResult,
  PreconditionEigenArgs,
  PreconditionInverseArgs,
  PreconditionFactorsArgs,
  PiDamping,
} from './precondition.js';
export { clipNewtonStep } from './clip.js';
export type { ClipNewtonStepOptions, ClipNewtonStepResult } from './clip.js';
export { KfacPreconditioner } from './preconditioner.js';
export type { KfacPreconditionerOptions, KfacTelemetry, NewtonClip, StepContext } from './preconditioner.js';
export { KFAC } from './kfac-optimizer.js';
export type { KfacOptions } from './kfac-optimizer.js';
export type { KfacLayer } from './layer.js';
export { linearLayer } from './linear-layer.js';
