/**
 * Prompt tuning in the Hugging Face PEFT format (PROMPT_TUNING): `adapter_config.json` with
 * PromptTuningConfig's fields (sorted, two-space indented) and `adapter_model.safetensors` with
 * `prompt_embeddings` [n·s, C] (s = num_transformer_submodules: 1, or 2 on an encoder-decoder
 * model as PEFT writes it for SEQ_2_SEQ_LM) and, for the modules to save,
 * `base_model.<parameter path>` (PEFT's prompt-learning models are not wrapped in a tuner, so the
 * prefix is `base_model.`; the `modules_to_save.default.` wrapper is stripped). Loading checks the config and every key and shape
 * before anything is applied: a failed load leaves the model as it came.
 */
import { join } from 'node:path';

import { ConfigError, describe, invalidArgument, ShapeError } from '../errors.js';
import { readJsonObject, SafetensorsFile, serializeSafetensors } from '../io/safetensors.js';
import type { Module, Parameter } from '../nn/module.js';
import { Tensor } from '../tensor/tensor.js';
import { writeFilesAtomic } from '../util/atomic.js';
import { ADAPTER_CONFIG, ADAPTER_WEIGHTS } from './adapter.js';
import { applyPromptTuning, type PromptTuningState, promptState, removePromptTuning, requirePrompt, wordEmbedding } from './prompt.js';
import { peftTaskType, sortedJson } from './config-json.js';

export const PROMPT_KEY = 'prompt_embeddings';
/** Prefix of the modules-to-save keys in PEFT's prompt-learning files. */
export const PROMPT_HEAD_PREFIX = 'base_model.';

interface ModelShape {
  task?: string;
  config?: { numHeads?: number; numLayers?: number };
}



/** Parameters of the modules to save. */
export function promptHeadParameters(model: Module, s: PromptTuningState = requirePrompt(model)): Parameter[] {
  return model.parameters().filter((p) => s.modulesToSave.some((h) => p.name.startsWith(`${h}.`)));
}

/** adapter_config.json of a prompt-tuned model, with PEFT's field names. */
export function promptConfigJson(model: Module): Record<string, unknown> {
  const s = requirePrompt(model);
  const c = (model as ModelShape).config ?? {};
  const t = peftTaskType(model);
  const heads = t === 'SEQ_CLS' ? ['classifier', 'score', ...s.modulesToSaveNames.filter((n) => n !== 'classifier' && n !== 'score')] : [...s.modulesToSaveNames];
  return {
    auto_mapping: null,
    base_model_name_or_path: s.baseModelNameOrPath,
    inference_mode: true,
    modules_to_save: heads.length ? heads : null,
    num_attention_heads: c.numHeads ?? null,
    num_layers: c.numLayers ?? null,
    num_transformer_submodules: s.numTransformerSubmodules,
    num_virtual_tokens: s.numVirtualTokens,
    peft_type: 'PROMPT_TUNING',
    prompt_tuning_init: s.init,
    prompt_tuning_init_text: s.initText,
    revision: null,
    task_type: t,
    token_dim: s.hook.dim,
    tokenizer_kwargs: null,
    tokenizer_name_or_path: s.tokenizerNameOrPath,
  };
}

export function promptTensors(model: Module): Map<string, Tensor> {
  const s = requirePrompt(model);
  const out = new Map<string, Tensor>([[PROMPT_KEY, s.hook.prompt.weight.tensor]]);
  for (const p of promptHeadParameters(model, s)) out.set(`${PROMPT_HEAD_PREFIX}${p.name}`, p.tensor);
  return out;
}

export function savePromptTuning(model: Module, dir: string): void {
  const cfg = promptConfigJson(model);
  writeFilesAtomic(dir, [
    { name: ADAPTER_WEIGHTS, bytes: serializeSafetensors(promptTensors(model)) },
    { name: ADAPTER_CONFIG, bytes: new TextEncoder().encode(sortedJson(cfg)) },
  ]);
}

/**
 * Reads a PEFT PROMPT_TUNING folder into a model without a PEFT method: the config must fit the
 * model (token_dim = hidden size; two transformer submodules only on an encoder-decoder model),
 * `prompt_embeddings` must be [num_virtual_tokens · num_transformer_submodules, token_dim], every other key a parameter of a module to save. On any error
 * the model is left as it came.
 */
export function loadPromptTuning(model: Module, dir: string): PromptTuningState {
  if (typeof dir !== 'string') invalidArgument('dir', 'a PEFT prompt-tuning folder', describe(dir));
  if (promptState(model)) invalidArgument('model', 'a model without prompt tuning (call removePromptTuning first)', 'a prompt-tuned model');
  const cfgPath = join(dir, ADAPTER_CONFIG);
  const raw = readJsonObject(cfgPath);
  if (raw['peft_type'] !== 'PROMPT_TUNING') throw new ConfigError(`peft_type ${describe(raw['peft_type'])} is not a prompt-tuning adapter (PROMPT_TUNING)`, { file: cfgPath });
  const n = raw['num_virtual_tokens'];
  if (!Number.isInteger(n) || (n as number) < 1) throw new ConfigError(`num_virtual_tokens must be a positive integer, got ${describe(n)}`, { file: cfgPath });
  const seq2seq = (model as ModelShape).task === 'seq2seq-lm';
  const subs = raw['num_transformer_submodules'] ?? (seq2seq ? 2 : 1);
  if (!(subs === 1 || (subs === 2 && seq2seq)))
    throw new ConfigError(`num_transformer_submodules ${describe(subs)}: ${seq2seq ? '1 or 2' : '1 (2 is for encoder-decoder models)'} expected`, { file: cfgPath });
  const [, emb] = wordEmbedding(model);
  const dim = raw['token_dim'];
  if (dim !== undefined && dim !== null && dim !== emb.dim) throw new ConfigError(`token_dim ${describe(dim)} does not match the model's hidden size ${emb.dim}`, { file: cfgPath });
  const mts = raw['modules_to_save'];
  if (!(mts === null || mts === undefined || (Array.isArray(mts) && mts.every((x) => typeof x === 'string')))) throw new ConfigError(`modules_to_save must be null or a list of names, got ${describe(mts)}`, { file: cfgPath });
  const str = (k: string) => (typeof raw[k] === 'string' ? (raw[k] as string) : null);
  const wpath = join(dir, ADAPTER_WEIGHTS);
  const file = SafetensorsFile.open(wpath);
  if (!file.names.includes(PROMPT_KEY)) throw new ConfigError(`${PROMPT_KEY} is missing from the adapter`, { file: wpath });
  const info = file.info(PROMPT_KEY);
  const want = [(n as number) * (subs as number), emb.dim];
  if (info.shape.length !== 2 || info.shape[0] !== want[0] || info.shape[1] !== want[1])
    throw new ShapeError(`${PROMPT_KEY}: the file has shape [${info.shape.join(', ')}], the model expects [${want.join(', ')}]`, { argument: PROMPT_KEY, expected: `[${want.join(', ')}]`, got: `[${info.shape.join(', ')}]` });
  const flags = model.parameters().map((p) => p.trainable);
  const names = [...new Set((mts as string[] | null | undefined) ?? [])];
  const state = applyPromptTuning(model, {
    numVirtualTokens: n as number,
    ...(seq2seq ? { numTransformerSubmodules: subs as 1 | 2 } : {}),
    modulesToSave: names,
    baseModelNameOrPath: str('base_model_name_or_path'),
    tokenizerNameOrPath: str('tokenizer_name_or_path'),
  });
  try {
    readPromptFolder(file, wpath, promptHeadParameters(model, state), state.hook.prompt.weight.tensor);
    state.init = raw['prompt_tuning_init'] === 'TEXT' ? 'TEXT' : 'RANDOM';
    state.initText = str('prompt_tuning_init_text');
    return state;
  } catch (e) {
    removePromptTuning(model);
    model.parameters().forEach((p, i) => (p.trainable = flags[i] ?? p.trainable));
    throw e;
  }
}

/** @internal A tensor [n·s, C] of the prompt's values on the host (tests, inspection). */
export function promptValues(model: Module): Tensor {
  const t = requirePrompt(model).hook.prompt.weight.tensor;
  return t.device === 'cpu' ? t.clone() : t.to('cpu');
}

/**
 * Reads a prompt-style PEFT weights file into the model: PROMPT_KEY into `prompt`, and every other
 * key into the module-to-save parameter it names (PEFT's `.modules_to_save.<adapter>.` infix
 * removed). Every key and shape is checked before anything is written, so a bad file changes nothing.
 */
export function readPromptFolder(file: SafetensorsFile, wpath: string, heads: Parameter[], prompt: Tensor): void {
  const params = new Map(heads.map((p) => [p.name, p]));
  const plan: { key: string; into: Tensor }[] = [{ key: PROMPT_KEY, into: prompt }];
  for (const key of file.names) {
    if (key === PROMPT_KEY) continue;
    const name = key.startsWith(PROMPT_HEAD_PREFIX) ? key.slice(PROMPT_HEAD_PREFIX.length).replace(/\.modules_to_save\.[^.]+\./, '.') : null;
    const p = name === null ? undefined : params.get(name);
    if (!p) throw new ConfigError(`${key} is neither ${PROMPT_KEY} nor a parameter of a module to save`, { file: wpath });
    const i = file.info(key);
    if (i.shape.length !== p.tensor.rank || i.shape.some((d, k) => d !== p.tensor.shape[k]))
      throw new ShapeError(`${key}: the file has shape [${i.shape.join(', ')}], the model [${p.tensor.shape.join(', ')}]`, { argument: key, expected: `[${p.tensor.shape.join(', ')}]`, got: `[${i.shape.join(', ')}]` });
    plan.push({ key, into: p.tensor });
  }
  for (const step of plan) step.into.set(file.readFloat32(step.key));
}
