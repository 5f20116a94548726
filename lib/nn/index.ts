/** Neural-network building blocks: modules with explicit forward/backward, and the paired kernels under them. */
export { Module, ParamSlot } from './module.js';
export type { Parameter } from './module.js';
export { Linear, Embedding, LayerNorm, RMSNorm, GELU, SiLU, SwiGLUMLP, Dropout, RoPE, Attention, CrossEntropyLoss } from './layers.js';
export type { KVCache, EmbeddingHook, LinearAdapter, LinearOptions, EmbeddingOptions, LayerNormOptions, SwiGLUMLPOptions, RoPEOptions, AttentionModuleOptions } from './layers.js';
export * as functional from './functional.js';
export type { LinearLayout, GeluApproximate, RopeConvention, AttentionOptions, AttentionBackwardOptions, CrossEntropyOptions } from './functional.js';
export { fusions, setFusions } from './fusion.js';
export type { Fusions } from './fusion.js';
