/**
 * Transformer building blocks over the native kernels, each with explicit forward/backward.
 * Parameter names follow Hugging Face (weight, bias; q_proj, k_proj, v_proj, o_proj;
 * gate_proj, up_proj, down_proj) so checkpoints map onto them by name.
 *
 * One file per family: linear.ts, embedding.ts, norms.ts, activations.ts (with Dropout),
 * attention.ts (with RoPE and the KV cache), loss.ts; this index re-exports them.
 */
export { Linear } from './linear.js';
export type { LinearAdapter, LinearOptions } from './linear.js';
export { Embedding } from './embedding.js';
export type { EmbeddingHook, EmbeddingOptions } from './embedding.js';
export { LayerNorm, RMSNorm } from './norms.js';
export type { LayerNormOptions } from './norms.js';
export { Dropout, GELU, SiLU, SwiGLUMLP } from './activations.js';
export type { SwiGLUMLPOptions } from './activations.js';
export { Attention, RoPE } from './attention.js';
export type { AttentionModuleOptions, KVCache, RoPEOptions } from './attention.js';
export { CrossEntropyLoss } from './loss.js';
