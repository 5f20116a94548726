/** The demo's model and data: a small LLaMA pretrained on the State of the Union corpus, and a task from the same corpus. */
export { DEMO_HYPERPARAMETERS, DEMO_TASK, modelFiles, prepareDemo, pretrainingText, sampleText } from './prepare.js';
export type { DemoResult, PrepareDemoOptions } from './prepare.js';
export { BOS_ID, BpeEncoder, EOS_ID, PAD_ID, SPECIAL_TOKENS, UNK_ID, tokenizerConfigJson, tokenizerJson, trainBpe } from './bpe.js';
export type { BpeOptions, BpeResult } from './bpe.js';
export { CACHE_NAME, MANIFEST, checkCache, defaultCacheRoot, writeCache } from './cache.js';
export { AbortedError, checkHyperparameters, heldOutLoss, llamaConfigJson, pretrain, rng, shuffled, tokenStream, unigramLoss } from './pretrain.js';
export type { PretrainHyperparameters, PretrainOptions, PretrainProgress, PretrainResult } from './pretrain.js';
export { ERAS, buildTask, loadTaskFolder, toTsv } from './task.js';
export type { BuiltTask, TaskJson, TaskKind, TaskOptions, TaskRow } from './task.js';
export { PARTIES, normalizeText, paragraphsOf, readSotu, sotuDataDir, sotuVersion, splitParagraphs, splitSentences } from './sotu.js';
export type { Paragraph, ParagraphOptions, Speech } from './sotu.js';
