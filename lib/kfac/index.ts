/** K-FAC curvature kernels: factor updates, preconditioning, Newton-step clipping. */
export { ekfacMoments, updateFactor } from './factor.js';
export type { EkfacMomentsOptions, UpdateFactorOptions } from './factor.js';
export { type KroneckerTerm, kroneckerQuadratic, kroneckerQuadraticMany, preconditionEigen, preconditionEkfac, preconditionInverse, preconditionInverseFactors, piDamping } from './precondition.js';
export type {
  Eigenpairs,
  PreconditionResult,
  PreconditionEigenArgs,
  PreconditionEkfacArgs,
  PreconditionInverseArgs,
  PreconditionFactorsArgs,
  PiDamping,
} from './precondition.js';
export { clipNewtonStep } from './clip.js';
export type { ClipNewtonStepOptions, ClipNewtonStepResult } from './clip.js';
export { KfacPreconditioner } from './preconditioner.js';
export type { CaptureContext, KfacPreconditionerOptions, KfacTelemetry, NewtonClip, StepContext } from './preconditioner.js';
export { DEFAULT_NEWTON_CLIP, DEFAULT_TRUST_RATIO, resolveKfacOptions } from './options.js';
export type { AdaptiveTrustOptions, KfacMethod, ResolvedAdaptiveTrust, ResolvedNewtonClip } from './options.js';
export { EigenBlock, InverseBlock, LayerBlock } from './blocks.js';
export { EkfacBlock } from './ekfac-block.js';
export { KFactor } from './kfactor.js';
export { StepRecord, TRUST_CLIP_SLOTS } from './step-record.js';
export type { TrustClipAt } from './step-record.js';
export { stateLike } from './state.js';
export { KFAC } from './kfac-optimizer.js';
export type { KfacOptions } from './kfac-optimizer.js';
export { GradientMomentum } from './gradient-momentum.js';
export type { MomentumOf } from './gradient-momentum.js';
export type { KfacLayer } from './layer.js';
export { linearLayer } from './linear-layer.js';
