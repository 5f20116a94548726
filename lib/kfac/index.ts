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
