/** File formats and tokenizers: safetensors, Hugging Face config.json and tokenizer.json, llama2.c checkpoints. */
export { MAX_HEADER_BYTES, SafetensorsFile, ShardedSafetensors, loadSafetensors, openSafetensors, readJsonFile, saveSafetensors, serializeSafetensors } from './safetensors.js';
export type { FloatDType, SafetensorsDType, SaveOptions, TensorInfo, TensorSource, WritableTensor } from './safetensors.js';
export { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from './bytes.js';
