/** File formats and tokenizers: safetensors, Hugging Face config.json and tokenizer.json, llama2.c checkpoints. */
export { MAX_HEADER_BYTES, SafetensorsFile, ShardedSafetensors, loadSafetensors, openSafetensors, readJsonFile, saveSafetensors, serializeSafetensors } from './safetensors.js';
export type { FloatDType, SafetensorsDType, SaveOptions, TensorInfo, TensorSource, WritableTensor } from './safetensors.js';
export { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from './bytes.js';
export { Tokenizer, longestFirstLengths } from './tokenizer.js';
export type { BatchEncoding, DecodeOptions, EncodeOptions, Encoding, TokenizerOptions } from './tokenizer.js';
export { MODEL_FAMILIES, loadModelConfig, parseModelConfig } from './config.js';
export type { ModelConfig, ModelFamily, RopeConfig } from './config.js';
export { Llama2cCheckpoint, Llama2cTokenizer, llama2cModelConfig, openLlama2c } from './llama2c.js';
export type { Llama2cEncodeOptions, Llama2cHeader } from './llama2c.js';
export { BASE_MODEL_PREFIX, CanonicalWeights, baseModelWeightName, canonicalNameMap, canonicalWeightName, fixLegacyName, tiedWeightNames } from './names.js';
export { openPretrained } from './pretrained.js';
export type { PretrainedFolder } from './pretrained.js';
