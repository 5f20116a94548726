/** Linear algebra on tensors. */
export { matmul } from './matmul.js';
export type { MatmulOptions } from './matmul.js';
