/** Transformer models with explicit forward/backward: LLaMA family, BERT family, GPT-2; loading and generation. */
export { TransformerModel } from './base.js';
export type { ModelOptions } from './base.js';
export { KVCache } from './common.js';
export type { Batch, ForwardOutput } from './common.js';
export { bertConfig, configFromHf, fromModelConfig, gpt2Config, llamaConfig } from './config.js';
export type { BertConfig, BertConfigInit, BertModelType, Gpt2Config, Gpt2ConfigInit, LlamaConfig, LlamaConfigInit, LlamaModelType, ArchitectureConfig, Task } from './config.js';
export { createLlama, LlamaModel } from './llama.js';
export { BertModel, createBert } from './bert.js';
export { createGpt2, Gpt2Model } from './gpt2.js';
export { createModel, deviceBytesOf, LoadError, loadModel, loadWeights } from './load.js';
export { checkDeviceFits, deviceMemory, OOM_HINT, resolveDevice, withOomContext } from './device.js';
export type { DeviceRequest, ResolvedDevice } from './device.js';
export type { LoadedModel, LoadOptions, LoadReport } from './load.js';
export { captureBlockwise } from './checkpoint.js';
export type { BlockBackwardContext, BlockCapture } from './checkpoint.js';
export { generate } from './generate.js';
export type { GenerateOptions } from './generate.js';
