/** Linear algebra on tensors. */
export { matmul } from './matmul.js';
export type { MatmulOptions } from './matmul.js';
export { dampedInverse } from './cholesky.js';
export type { DampedInverseOptions } from './cholesky.js';
