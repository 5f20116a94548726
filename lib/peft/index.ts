/** Parameter-efficient fine-tuning: LoRA, the Hugging Face PEFT adapter format, K-FAC views of LoRA layers, checkpoints. */
export {
  ALL_LINEAR,
  applyLora,
  countParameters,
  formatParameterCounts,
  LoraBranch,
  loraState,
  mergeLora,
  printTrainableParameters,
  removeLora,
  resolveLoraConfig,
  savedHeadParameters,
  targetMatcher,
  unmergeLora,
} from './lora.js';
export type { LoraConfig, LoraState, ParameterCounts, ResolvedLoraConfig, TargetModules } from './lora.js';
export { ADAPTER_CONFIG, ADAPTER_WEIGHTS, adapterTensors, loadAdapter, loraConfigFromPeft, PEFT_PREFIX, peftConfigJson, saveAdapter } from './adapter.js';
export type { LoadAdapterReport } from './adapter.js';
export { kfacLayersForLora, untrackedParameters } from './kfac.js';
export type { KfacLoraOptions } from './kfac.js';
export { loadCheckpoint, loadOptimizerState, OPTIMIZER_META, OPTIMIZER_WEIGHTS, saveCheckpoint, saveOptimizerState } from './checkpoint.js';
export type { AnyOptimizer, Checkpoint } from './checkpoint.js';
export { writeFilesAtomic } from '../util/atomic.js';
export type { PendingFile } from '../util/atomic.js';
export { applyIa3, Ia3Branch, Ia3Vector, ia3HeadParameters, ia3State, mergeIa3, removeIa3, resolveIa3Config, unmergeIa3 } from './ia3.js';
export type { Ia3Config, Ia3State, ResolvedIa3Config } from './ia3.js';
export { ia3AdapterTensors, ia3ConfigFromPeft, ia3ConfigJson, loadIa3Adapter, saveIa3Adapter } from './ia3-adapter.js';
export { columnParam, kfacLayersForIa3 } from './ia3-kfac.js';
export { applyBitfit, BitfitError, bitfitState, loadBitfit, removeBitfit, saveBitfit } from './bitfit.js';
export type { BitfitConfig, BitfitState } from './bitfit.js';
export { kfacLayersForBitfit, untrackedTrainable } from './bitfit-kfac.js';
export { applyBottleneck, ATTENTION_OUTPUTS, BottleneckBranch, bottleneckHeadParameters, bottleneckParameters, bottleneckState, FFN_OUTPUTS, removeBottleneck, resolveBottleneckConfig } from './bottleneck.js';
export type { BottleneckActivation, BottleneckConfig, BottleneckKind, BottleneckState, ResolvedBottleneckConfig } from './bottleneck.js';
export { BOTTLENECK_TYPE, bottleneckConfigFromJson, bottleneckConfigJson, bottleneckTensors, loadBottleneck, saveBottleneck } from './bottleneck-io.js';
export { kfacLayersForBottleneck } from './bottleneck-kfac.js';
export { applyPromptTuning, extendBatch, PromptEmbedding, PromptHook, promptState, removePromptTuning, wordEmbedding } from './prompt.js';
export type { PromptModel, PromptTuningConfig, PromptTuningState } from './prompt.js';
export { loadPromptTuning, PROMPT_HEAD_PREFIX, PROMPT_KEY, promptConfigJson, promptHeadParameters, promptTensors, savePromptTuning } from './prompt-io.js';
export { kfacLayersForPrompt } from './prompt-kfac.js';
export { applyPrefixTuning, attentionCores, PrefixEncoder, PrefixState, prefixState, prefixTargets, removePrefixTuning } from './prefix.js';
export type { PrefixHost, PrefixTargets, PrefixTuningConfig } from './prefix.js';
export { loadPrefixTuning, prefixConfigJson, prefixHeadParameters, prefixTensors, savePrefixTuning } from './prefix-io.js';
export { kfacLayersForPrefix } from './prefix-kfac.js';
