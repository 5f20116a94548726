/** Linear algebra on tensors. */
export { matmul } from './matmul.js';
export type { MatmulOptions } from './matmul.js';
export { eigh, eighRefresh, eighBatched } from './eigh.js';
export type { EighOptions, EighOut, EighResult, EighRefreshOptions, EighRefreshResult, EighBatchedResult } from './eigh.js';
export { dampedInverse } from './cholesky.js';
export type { DampedInverseOptions } from './cholesky.js';
