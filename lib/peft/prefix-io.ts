/**
 * Prefix tuning in the Hugging Face PEFT format (PREFIX_TUNING): `adapter_config.json` with
 * PrefixTuningConfig's fields (sorted, two-space indented; num_attention_heads and token_dim are
 * the key/value heads Hkv and Hkv·D, as PEFT records them for grouped-query models) and
 * `adapter_model.safetensors` with `prompt_embeddings` [n, L·2·Hkv·D] — the prefix's values, also
 * with the reparameterisation MLP (PEFT saves the MLP's output, not the MLP) — and
 * `base_model.<parameter path>` for the modules to save. A loaded prefix is the table (PEFT's
 * inference form); its config is written back verbatim. Loading checks the config against the
 * model and every key and shape before anything is applied: a failed load leaves the model as it
 * came.
 */
import { join } from 'node:path';

import { ConfigError, describe, invalidArgument, ShapeError } from '../errors.js';
import { readJsonObject, SafetensorsFile, serializeSafetensors } from '../io/safetensors.js';
import type { Module, Parameter } from '../nn/module.js';
import { Tensor } from '../tensor/tensor.js';
import { writeFilesAtomic } from '../util/atomic.js';
import { ADAPTER_CONFIG, ADAPTER_WEIGHTS } from './adapter.js';
import { applyPrefixTuning, type PrefixState, prefixTargets, prefixState, removePrefixTuning, requirePrefix } from './prefix.js';
import { PROMPT_HEAD_PREFIX, PROMPT_KEY, readPromptFolder } from './prompt-io.js';
import { peftTaskType, sortedJson } from './config-json.js';



export function prefixHeadParameters(model: Module, s: PrefixState = requirePrefix(model)): Parameter[] {
  return model.parameters().filter((p) => s.modulesToSave.some((h) => p.name.startsWith(`${h}.`)));
}

/** adapter_config.json of a prefix-tuned model, with PEFT's field names. */
export function prefixConfigJson(model: Module): Record<string, unknown> {
  const s = requirePrefix(model);
  if (s.rawConfig) return s.rawConfig;
  const t = peftTaskType(model);
  const heads = t === 'SEQ_CLS' ? ['classifier', 'score', ...s.modulesToSaveNames.filter((n) => n !== 'classifier' && n !== 'score')] : [...s.modulesToSaveNames];
  return {
    auto_mapping: null,
    base_model_name_or_path: s.baseModelNameOrPath,
    encoder_hidden_size: s.encoderHiddenSize,
    inference_mode: true,
    init_weights: null,
    modules_to_save: heads.length ? heads : null,
    num_attention_heads: s.kvHeads,
    num_layers: s.targets.tableLayers,
    num_transformer_submodules: s.targets.submodules,
    num_virtual_tokens: s.n,
    peft_type: 'PREFIX_TUNING',
    prefix_projection: s.encoder.transform !== null,
    revision: null,
    task_type: t,
    token_dim: s.tokenDim,
  };
}

/** The tensors savePrefixTuning writes: the prefix values [n, L·2·Hkv·D] and the modules to save. */
export function prefixTensors(model: Module): Map<string, Tensor> {
  const s = requirePrefix(model);
  const out = new Map<string, Tensor>([[PROMPT_KEY, Tensor.from(s.values(), [s.n, s.width])]]);
  for (const p of prefixHeadParameters(model, s)) out.set(`${PROMPT_HEAD_PREFIX}${p.name}`, p.tensor);
  return out;
}

export function savePrefixTuning(model: Module, dir: string): void {
  const cfg = prefixConfigJson(model);
  const tensors = prefixTensors(model);
  try {
    writeFilesAtomic(dir, [
      { name: ADAPTER_WEIGHTS, bytes: serializeSafetensors(tensors) },
      { name: ADAPTER_CONFIG, bytes: new TextEncoder().encode(sortedJson(cfg)) },
    ]);
  } finally {
    tensors.get(PROMPT_KEY)?.dispose();
  }
}

/**
 * Reads a PEFT PREFIX_TUNING folder into a model without a PEFT method: the config must fit the
 * model (num_layers, token_dim = Hkv·D and num_transformer_submodules as prefixTargets says),
 * `prompt_embeddings` must be [num_virtual_tokens, num_layers·2·token_dim], every other key a
 * parameter of a module to save. On any error the model is left as it came.
 */
export function loadPrefixTuning(model: Module, dir: string): PrefixState {
  if (typeof dir !== 'string') invalidArgument('dir', 'a PEFT prefix-tuning folder', describe(dir));
  if (prefixState(model)) invalidArgument('model', 'a model without prefix tuning (call removePrefixTuning first)', 'a prefix-tuned model');
  const cfgPath = join(dir, ADAPTER_CONFIG);
  const raw = readJsonObject(cfgPath);
  if (raw['peft_type'] !== 'PREFIX_TUNING') throw new ConfigError(`peft_type ${describe(raw['peft_type'])} is not a prefix-tuning adapter (PREFIX_TUNING)`, { file: cfgPath });
  const n = raw['num_virtual_tokens'];
  if (!Number.isInteger(n) || (n as number) < 1) throw new ConfigError(`num_virtual_tokens must be a positive integer, got ${describe(n)}`, { file: cfgPath });
  const targets = prefixTargets(model);
  const subs = raw['num_transformer_submodules'] ?? targets.submodules;
  if (subs !== targets.submodules)
    throw new ConfigError(`num_transformer_submodules ${describe(subs)}: this model takes ${targets.submodules} (${targets.submodules === 2 ? 'encoder-decoder' : 'decoder-only or encoder-only'})`, { file: cfgPath });
  const { kvHeads, headDim } = targets;
  const expect = { num_layers: targets.tableLayers, token_dim: kvHeads * headDim, num_attention_heads: kvHeads };
  for (const [k, want] of Object.entries(expect)) {
    const got = raw[k];
    if (got !== undefined && got !== null && got !== want) throw new ConfigError(`${k} ${describe(got)} does not match the model (${want})`, { file: cfgPath });
  }
  const mts = raw['modules_to_save'];
  if (!(mts === null || mts === undefined || (Array.isArray(mts) && mts.every((x) => typeof x === 'string')))) throw new ConfigError(`modules_to_save must be null or a list of names, got ${describe(mts)}`, { file: cfgPath });
  const wpath = join(dir, ADAPTER_WEIGHTS);
  const file = SafetensorsFile.open(wpath);
  if (!file.names.includes(PROMPT_KEY)) throw new ConfigError(`${PROMPT_KEY} is missing from the adapter`, { file: wpath });
  const info = file.info(PROMPT_KEY);
  const want = [n as number, targets.tableLayers * 2 * kvHeads * headDim];
  if (info.shape.length !== 2 || info.shape[0] !== want[0] || info.shape[1] !== want[1])
    throw new ShapeError(`${PROMPT_KEY}: the file has shape [${info.shape.join(', ')}], the model expects [${want.join(', ')}]`, { argument: PROMPT_KEY, expected: `[${want.join(', ')}]`, got: `[${info.shape.join(', ')}]` });
  const flags = model.parameters().map((p) => p.trainable);
  const base = raw['base_model_name_or_path'];
  const state = applyPrefixTuning(model, { numVirtualTokens: n as number, modulesToSave: [...new Set((mts as string[] | null | undefined) ?? [])], baseModelNameOrPath: typeof base === 'string' ? base : null });
  try {
    readPromptFolder(file, wpath, prefixHeadParameters(model, state), state.encoder.embedding.weight.tensor);
    state.rawConfig = raw;
    return state;
  } catch (e) {
    removePrefixTuning(model);
    model.parameters().forEach((p, i) => (p.trainable = flags[i] ?? p.trainable));
    throw e;
  }
}
