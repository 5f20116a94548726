/** First-order optimizers, gradient clipping and schedules. */
export { Optimizer } from './optimizer.js';
export type { OptimizerState } from './optimizer.js';
export { AdamW } from './adamw.js';
export type { AdamWOptions } from './adamw.js';
export { SGD } from './sgd.js';
export type { SGDOptions } from './sgd.js';
export { Shampoo } from './shampoo.js';
export type { ShampooOptions, ShampooTelemetry } from './shampoo.js';
export { clipGradNorm } from './clip.js';
export type { GradClipResult } from './clip.js';
export * as schedules from './schedule.js';
export type { Hyper, Param } from './types.js';
