/**
 * The Hugging Face PEFT adapter format: a folder with `adapter_config.json` (LoraConfig's fields,
 * sorted, two-space indented) and `adapter_model.safetensors`, whose keys are
 * `base_model.model.<module path>.lora_A.weight` / `.lora_B.weight` for each adapted layer and
 * `base_model.model.<parameter path>` for the modules to save (PEFT strips its
 * `modules_to_save.default.` wrapper when saving, as the real adapters show).
 *
 * saveAdapter writes both files atomically; its output is a function of the adapter's values and
 * configuration only, so save → load → save gives identical bytes. A config read by loadAdapter is
 * written back verbatim (fields PEFT knows and this library does not use are kept).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { ConfigError, describe, FileError, FormatError, invalidArgument, ShapeError } from '../errors.js';
import { SafetensorsFile, serializeSafetensors } from '../io/safetensors.js';
import type { Module } from '../nn/module.js';
import { Tensor } from '../tensor/tensor.js';
import { writeFilesAtomic } from '../util/atomic.js';
import { applyLora, type LoraConfig, type LoraState, loraState, removeLora, requireLora, type ResolvedLoraConfig, savedHeadParameters, setRawConfig, type TargetModules } from './lora.js';
import { peftTaskType, sortedJson } from './config-json.js';

export const ADAPTER_CONFIG = 'adapter_config.json';
export const ADAPTER_WEIGHTS = 'adapter_model.safetensors';
/** PEFT's prefix of every key in adapter_model.safetensors. */
export const PEFT_PREFIX = 'base_model.model.';


function targetsToJson(t: TargetModules): string | string[] {
  if (t instanceof RegExp) return t.source;
  if (typeof t === 'string') return /^[A-Za-z0-9_.-]+$/.test(t) && t !== 'all-linear' ? [t] : t;
  return [...t];
}

/** adapter_config.json of a fresh adapter, with PEFT's field names. */
export function peftConfigJson(c: ResolvedLoraConfig, model: Module, modulesToSave: readonly string[]): Record<string, unknown> {
  const given = c.modulesToSave;
  return {
    alpha_pattern: {},
    auto_mapping: null,
    base_model_name_or_path: c.baseModelNameOrPath,
    bias: 'none',
    fan_in_fan_out: c.fanInFanOut,
    inference_mode: true,
    init_lora_weights: c.init === 'gaussian' ? 'gaussian' : true,
    layers_pattern: null,
    layers_to_transform: null,
    lora_alpha: c.alpha,
    lora_dropout: c.dropout,
    modules_to_save: given.length || modulesToSave.length ? [...given] : null,
    peft_type: 'LORA',
    r: c.r,
    rank_pattern: {},
    revision: null,
    target_modules: targetsToJson(c.targetModules),
    task_type: peftTaskType(model),
    use_dora: false,
    use_rslora: c.useRslora,
  };
}


/** The tensors saveAdapter writes, by PEFT key (views of the live parameters). */
export function adapterTensors(model: Module): Map<string, Tensor> {
  const s = requireLora(model, 'model');
  const out = new Map<string, Tensor>();
  for (const b of s.branches) {
    if (b.merged) invalidArgument('model', 'unmerged LoRA layers (call unmergeLora before saving)', `${b.path} merged`);
    out.set(`${PEFT_PREFIX}${b.path}.lora_A.weight`, b.loraA.weight.tensor);
    out.set(`${PEFT_PREFIX}${b.path}.lora_B.weight`, b.loraB.weight.tensor);
  }
  for (const p of savedHeadParameters(model, s)) out.set(`${PEFT_PREFIX}${p.name}`, p.tensor);
  return out;
}

/** @internal The two files of an adapter, serialized (nothing written). */
export function adapterFiles(model: Module): { name: string; bytes: Uint8Array }[] {
  const s = requireLora(model, 'model');
  const cfg = s.rawConfig ?? peftConfigJson(s.config, model, s.modulesToSave);
  return [
    { name: ADAPTER_WEIGHTS, bytes: serializeSafetensors(adapterTensors(model)) },
    { name: ADAPTER_CONFIG, bytes: new TextEncoder().encode(sortedJson(cfg)) },
  ];
}

/** Writes adapter_config.json and adapter_model.safetensors into `dir` (created if missing), atomically. */
export function saveAdapter(model: Module, dir: string): void {
  writeFilesAtomic(dir, adapterFiles(model));
}

function readConfig(dir: string): Record<string, unknown> {
  const path = join(dir, ADAPTER_CONFIG);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new FileError(path, `cannot read: ${e instanceof Error ? e.message : String(e)}`, { cause: e, hint: 'a PEFT adapter folder holds adapter_config.json and adapter_model.safetensors' });
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new FormatError(path, `not valid JSON: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new FormatError(path, 'expected a JSON object');
  return v as Record<string, unknown>;
}

const empty = (v: unknown) => v === undefined || v === null || (typeof v === 'object' && Object.keys(v as object).length === 0);

/** Converts a PEFT adapter_config.json object to a LoraConfig, refusing what this library does not implement. */
export function loraConfigFromPeft(raw: Record<string, unknown>, file = ADAPTER_CONFIG): LoraConfig {
  const bad = (msg: string, hint?: string): never => {
    throw new ConfigError(msg, { file, ...(hint ? { hint } : {}) });
  };
  if (raw['peft_type'] !== 'LORA') bad(`peft_type ${describe(raw['peft_type'])} is not supported (only "LORA")`);
  const r = raw['r'];
  if (typeof r !== 'number' || !Number.isInteger(r) || r < 1) bad(`r must be a positive integer, got ${describe(r)}`);
  const alpha = raw['lora_alpha'] ?? 8;
  if (typeof alpha !== 'number' || !Number.isFinite(alpha)) bad(`lora_alpha must be a number, got ${describe(alpha)}`);
  const dropout = raw['lora_dropout'] ?? 0;
  if (typeof dropout !== 'number' || !(dropout >= 0 && dropout < 1)) bad(`lora_dropout must be in [0, 1), got ${describe(dropout)}`);
  if ((raw['bias'] ?? 'none') !== 'none') bad(`bias ${describe(raw['bias'])} is not supported (only "none")`);
  if (raw['use_dora'] === true) bad('DoRA (use_dora) is not supported');
  if (raw['lora_bias'] === true) bad('lora_bias is not supported');
  for (const k of ['rank_pattern', 'alpha_pattern', 'layers_to_transform', 'layers_pattern', 'layer_replication', 'target_parameters', 'trainable_token_indices'])
    if (!empty(raw[k])) bad(`${k} is not supported`, `remove ${k} or use a single rank and alpha`);
  const tm = raw['target_modules'];
  if (!(typeof tm === 'string' || (Array.isArray(tm) && tm.length > 0 && tm.every((x) => typeof x === 'string')))) bad(`target_modules must be a string or a list of names, got ${describe(tm)}`);
  const mts = raw['modules_to_save'];
  if (mts !== undefined && mts !== null && !(Array.isArray(mts) && mts.every((x) => typeof x === 'string'))) bad(`modules_to_save must be a list of names or null, got ${describe(mts)}`);
  const rs = raw['use_rslora'] ?? false;
  if (typeof rs !== 'boolean') bad(`use_rslora must be a boolean, got ${describe(rs)}`);
  const init = raw['init_lora_weights'] ?? true;
  const base = raw['base_model_name_or_path'];
  // A string is a pattern for PEFT (re.fullmatch); a list is matched by name.
  let pattern: RegExp | undefined;
  if (typeof tm === 'string' && tm !== 'all-linear') {
    try {
      pattern = new RegExp(tm);
    } catch (e) {
      bad(`target_modules ${JSON.stringify(tm)} is not a valid regular expression (${e instanceof Error ? e.message : String(e)})`);
    }
  }
  return {
    targetModules: tm === 'all-linear' ? 'all-linear' : pattern ?? (tm as string[]),
    r: r as number,
    alpha: alpha as number,
    dropout: dropout as number,
    useRslora: rs as boolean,
    init: init === 'gaussian' ? 'gaussian' : 'kaiming',
    modulesToSave: (mts as string[] | null | undefined) ?? null,
    baseModelNameOrPath: typeof base === 'string' ? base : null,
  };
}

export interface LoadAdapterReport {
  /** The adapter's state on the model. */
  state: LoraState;
  /** Keys read from adapter_model.safetensors (all of them). */
  keys: string[];
  /** Module paths of the saved heads that were loaded. */
  modulesToSave: string[];
}

/**
 * Reads a PEFT LoRA adapter folder into `model`: applies LoRA from adapter_config.json when the
 * model has none (or checks that its LoRA matches: rank, scale, targets), then copies every tensor
 * of adapter_model.safetensors into its parameter. Every key must name an adapted layer or a
 * parameter of a module to save, with the same shape, and every adapted layer must be in the file.
 */
export function loadAdapter(model: Module, dir: string): LoadAdapterReport {
  if (typeof dir !== 'string') invalidArgument('dir', 'an adapter folder', describe(dir));
  const raw = readConfig(dir);
  const cfgPath = join(dir, ADAPTER_CONFIG);
  const cfg = loraConfigFromPeft(raw, cfgPath);
  let state = loraState(model);
  if (!state) {
    checkRankAgainstWeights(cfg.r ?? 8, join(dir, ADAPTER_WEIGHTS), cfgPath);
    const flags = model.parameters().map((p) => p.trainable);
    state = applyLora(model, cfg);
    setRawConfig(model, raw);
    try {
      return loadTensors(model, dir, state);
    } catch (e) {
      // Leave the model as it came: no LoRA, the same trainable flags.
      removeLora(model);
      model.parameters().forEach((p, i) => (p.trainable = flags[i] ?? p.trainable));
      throw e;
    }
  } else {
    const want = cfg.useRslora ? (cfg.alpha ?? 8) / Math.sqrt(cfg.r ?? 8) : (cfg.alpha ?? 8) / (cfg.r ?? 8);
    if (state.config.r !== cfg.r || Math.abs(state.config.scale - want) > 1e-12 * Math.abs(want))
      throw new ConfigError(`the model's LoRA (r ${state.config.r}, scale ${state.config.scale}) differs from the adapter's (r ${cfg.r}, scale ${want})`, { file: cfgPath });
  }
  return loadTensors(model, dir, state);
}

/**
 * The rank in adapter_config.json sizes the LoRA matrices applyLora allocates: before that, every
 * lora_A in the weights file (header only) must have that many rows, so a corrupt r (1048576) is a
 * ConfigError instead of gigabytes allocated and then refused.
 */
function checkRankAgainstWeights(r: number, wpath: string, cfgPath: string): void {
  const file = SafetensorsFile.open(wpath);
  for (const key of file.names) {
    if (!/\.lora_A(?:\.[^.]+)?\.weight$/.test(key)) continue;
    const rows = file.info(key).shape[0];
    if (rows !== r) throw new ConfigError(`r is ${r}, but ${key} in ${wpath} has ${rows ?? 'no'} rows`, { file: cfgPath });
  }
}

/** Checks every key of the weights file against the model, then copies them in (nothing is copied when a check fails). */
function loadTensors(model: Module, dir: string, state: LoraState): LoadAdapterReport {
  const wpath = join(dir, ADAPTER_WEIGHTS);
  const file = SafetensorsFile.open(wpath);
  const branches = new Map(state.branches.map((b) => [b.path, b]));
  const params = new Map(model.parameters().map((p) => [p.name, p]));
  const seenLora = new Set<string>();
  const heads = new Set<string>();
  const plan: { key: string; into: Tensor; onLoad?: () => void }[] = [];
  for (const key of file.names) {
    if (!key.startsWith(PEFT_PREFIX)) throw new FormatError(wpath, `key ${JSON.stringify(key)} does not start with ${JSON.stringify(PEFT_PREFIX)}`);
    // Saved files carry neither PEFT's wrapper (`.modules_to_save.default.`) nor the adapter name
    // (`lora_A.default.weight`); a state dict taken from a live PeftModel does, so both forms are read.
    const name = key.slice(PEFT_PREFIX.length).replace(/\.modules_to_save\.[^.]+\./, '.');
    const m = /^(.*)\.(lora_A|lora_B)(?:\.[^.]+)?\.weight$/.exec(name);
    let into: Tensor;
    if (m) {
      const b = branches.get(m[1]!);
      if (!b) throw new ConfigError(`${key}: the model has no LoRA layer ${JSON.stringify(m[1])}`, { file: wpath, hint: `adapted layers: ${[...branches.keys()].slice(0, 4).join(', ')}…` });
      into = (m[2] === 'lora_A' ? b.loraA : b.loraB).weight.tensor;
      seenLora.add(`${m[1]}.${m[2]}`);
    } else {
      const p = params.get(name);
      if (!p) throw new ConfigError(`${key}: the model has no parameter ${JSON.stringify(name)}`, { file: wpath });
      const owner = name.slice(0, name.lastIndexOf('.'));
      if (!state.modulesToSave.some((h) => owner === h || owner.startsWith(`${h}.`)))
        throw new ConfigError(`${key}: ${JSON.stringify(name)} is neither a LoRA weight nor in a module to save (${state.modulesToSave.join(', ') || 'none'})`, {
          file: wpath,
          hint: 'list its module in modules_to_save',
        });
      into = p.tensor;
      plan.push({
        key,
        into,
        onLoad: () => {
          p.trainable = true;
          heads.add(owner);
        },
      });
      const info = file.info(key);
      if (info.shape.length !== into.shape.length || info.shape.some((d, i) => d !== into.shape[i]))
        throw new ShapeError(`${key}: the file has shape [${info.shape.join(', ')}], the model [${into.shape.join(', ')}]`, { argument: key, expected: `[${into.shape.join(', ')}]`, got: `[${info.shape.join(', ')}]` });
      continue;
    }
    const info = file.info(key);
    if (info.shape.length !== into.shape.length || info.shape.some((d, i) => d !== into.shape[i]))
      throw new ShapeError(`${key}: the file has shape [${info.shape.join(', ')}], the model [${into.shape.join(', ')}]`, { argument: key, expected: `[${into.shape.join(', ')}]`, got: `[${info.shape.join(', ')}]` });
    plan.push({ key, into });
  }
  const missing = state.branches.flatMap((b) => ['lora_A', 'lora_B'].filter((w) => !seenLora.has(`${b.path}.${w}`)).map((w) => `${PEFT_PREFIX}${b.path}.${w}.weight`));
  if (missing.length) throw new ConfigError(`${missing.length} LoRA weights are missing from the adapter, e.g. ${missing[0]}`, { file: wpath });
  // Everything checked: copy.
  for (const step of plan) {
    step.into.set(file.readFloat32(step.key));
    step.onLoad?.();
  }
  return { state, keys: [...file.names], modulesToSave: [...heads] };
}
