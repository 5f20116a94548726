/**
 * IA3 adapters in the Hugging Face PEFT format: `adapter_config.json` (IA3Config's fields, sorted,
 * two-space indented, peft_type "IA3") and `adapter_model.safetensors` with one key per adapted
 * layer, `base_model.model.<path>.ia3_l`, of shape [out, 1] (output scaling) or [1, in]
 * (feed-forward input scaling) as PEFT stores it, plus `base_model.model.<parameter path>` for the
 * modules to save. Loading checks every key and shape before anything is applied: a failed load
 * leaves the model as it was.
 */
import { join } from 'node:path';

import { ConfigError, describe, FormatError, invalidArgument, ShapeError } from '../errors.js';
import { readJsonObject, SafetensorsFile, serializeSafetensors } from '../io/safetensors.js';
import type { Module } from '../nn/module.js';
import type { Tensor } from '../tensor/tensor.js';
import { writeFilesAtomic } from '../util/atomic.js';
import { ADAPTER_CONFIG, ADAPTER_WEIGHTS, PEFT_PREFIX } from './adapter.js';
import { applyIa3, type Ia3Config, type Ia3State, ia3HeadParameters, ia3State, removeIa3, requireIa3, setIa3RawConfig } from './ia3.js';
import type { TargetModules } from './lora.js';
import { peftTaskType, sortedJson } from './config-json.js';


function targetsToJson(t: TargetModules | null): string | string[] | null {
  if (t === null) return null;
  if (t instanceof RegExp) return t.source;
  if (typeof t === 'string') return /^[A-Za-z0-9_.-]+$/.test(t) ? [t] : t;
  return [...t];
}

/** adapter_config.json of a fresh IA3 adapter, with PEFT's field names. */
export function ia3ConfigJson(s: Ia3State, model: Module): Record<string, unknown> {
  const c = s.config;
  return {
    auto_mapping: null,
    exclude_modules: null,
    base_model_name_or_path: c.baseModelNameOrPath,
    fan_in_fan_out: s.branches.some((b) => b.base.layout === 'conv1d'),
    feedforward_modules: targetsToJson(c.feedforwardModules) ?? [],
    inference_mode: true,
    init_ia3_weights: c.initIa3Weights,
    modules_to_save: c.modulesToSave.length ? [...c.modulesToSave] : null,
    peft_type: 'IA3',
    revision: null,
    target_modules: targetsToJson(c.targetModules),
    task_type: peftTaskType(model),
  };
}


/** The tensors saveIa3Adapter writes, by PEFT key (ia3_l reshaped to PEFT's [out, 1] / [1, in]). */
export function ia3AdapterTensors(model: Module): Map<string, Tensor> {
  const s = requireIa3(model, 'model');
  const out = new Map<string, Tensor>();
  for (const b of s.branches) {
    if (b.merged) invalidArgument('model', 'unmerged IA3 layers (call unmergeIa3 before saving)', `${b.path} merged`);
    const t = b.vector.weight.tensor;
    const n = t.shape[0]!;
    out.set(`${PEFT_PREFIX}${b.path}.ia3_l`, t.reshape(b.feedforward ? [1, n] : [n, 1]));
  }
  for (const p of ia3HeadParameters(model, s)) out.set(`${PEFT_PREFIX}${p.name}`, p.tensor);
  return out;
}

export function saveIa3Adapter(model: Module, dir: string): void {
  const s = requireIa3(model, 'model');
  const cfg = s.rawConfig ?? ia3ConfigJson(s, model);
  writeFilesAtomic(dir, [
    { name: ADAPTER_WEIGHTS, bytes: serializeSafetensors(ia3AdapterTensors(model)) },
    { name: ADAPTER_CONFIG, bytes: new TextEncoder().encode(sortedJson(cfg)) },
  ]);
}

function targetsFromJson(v: unknown, field: string, file: string): TargetModules | null {
  if (v === null || v === undefined) return null;
  if (typeof v === 'string') {
    try {
      return new RegExp(v);
    } catch (e) {
      throw new ConfigError(`${field} ${JSON.stringify(v)} is not a valid regular expression (${e instanceof Error ? e.message : String(e)})`, { file });
    }
  }
  if (Array.isArray(v) && v.every((x) => typeof x === 'string' && x !== '')) return v.length ? (v as string[]) : null;
  throw new ConfigError(`${field} must be a string or a list of names, got ${describe(v)}`, { file });
}

/** Converts a PEFT IA3 adapter_config.json object to an Ia3Config. */
export function ia3ConfigFromPeft(raw: Record<string, unknown>, file = ADAPTER_CONFIG): Ia3Config {
  if (raw['peft_type'] !== 'IA3') throw new ConfigError(`peft_type ${describe(raw['peft_type'])} is not an IA3 adapter`, { file });
  for (const k of ['exclude_modules', 'layers_to_transform', 'layers_pattern'])
    if (raw[k] !== undefined && raw[k] !== null && !(Array.isArray(raw[k]) && (raw[k] as unknown[]).length === 0)) throw new ConfigError(`${k} is not supported`, { file });
  const tm = targetsFromJson(raw['target_modules'], 'target_modules', file);
  if (tm === null) throw new ConfigError('target_modules is missing', { file });
  const mts = raw['modules_to_save'];
  if (mts !== undefined && mts !== null && !(Array.isArray(mts) && mts.every((x) => typeof x === 'string'))) throw new ConfigError(`modules_to_save must be a list of names or null, got ${describe(mts)}`, { file });
  const init = raw['init_ia3_weights'] ?? true;
  if (typeof init !== 'boolean') throw new ConfigError(`init_ia3_weights must be a boolean, got ${describe(init)}`, { file });
  const base = raw['base_model_name_or_path'];
  return {
    targetModules: tm,
    feedforwardModules: targetsFromJson(raw['feedforward_modules'], 'feedforward_modules', file),
    modulesToSave: (mts as string[] | null | undefined) ?? null,
    initIa3Weights: init,
    baseModelNameOrPath: typeof base === 'string' ? base : null,
  };
}

/**
 * Reads a PEFT IA3 adapter folder into a model without an adapter: applies IA3 from the config,
 * checks every key (each names an adapted layer with PEFT's shape, or a parameter of a module to
 * save; every adapted layer is present), then copies. On any error the model is left as it came.
 */
export function loadIa3Adapter(model: Module, dir: string): { state: Ia3State; keys: string[] } {
  if (typeof dir !== 'string') invalidArgument('dir', 'an adapter folder', describe(dir));
  if (ia3State(model)) invalidArgument('model', 'a model without IA3 (call removeIa3 first)', 'a model with IA3 applied');
  const cfgPath = join(dir, ADAPTER_CONFIG);
  const raw = readJsonObject(cfgPath);
  const cfg = ia3ConfigFromPeft(raw, cfgPath);
  const wpath = join(dir, ADAPTER_WEIGHTS);
  const file = SafetensorsFile.open(wpath);
  const flags = model.parameters().map((p) => p.trainable);
  const state = applyIa3(model, cfg);
  try {
    setIa3RawConfig(model, raw);
    const branches = new Map(state.branches.map((b) => [b.path, b]));
    const params = new Map(model.parameters().map((p) => [p.name, p]));
    const plan: { key: string; into: Tensor }[] = [];
    const seen = new Set<string>();
    for (const key of file.names) {
      if (!key.startsWith(PEFT_PREFIX)) throw new FormatError(wpath, `key ${JSON.stringify(key)} does not start with ${JSON.stringify(PEFT_PREFIX)}`);
      const name = key.slice(PEFT_PREFIX.length).replace(/\.modules_to_save\.[^.]+\./, '.');
      const m = /^(.*)\.ia3_l(?:\.[^.]+)?$/.exec(name);
      const info = file.info(key);
      let into: Tensor;
      let want: number[];
      if (m) {
        const b = branches.get(m[1]!);
        if (!b) throw new ConfigError(`${key}: the model has no IA3 layer ${JSON.stringify(m[1])}`, { file: wpath });
        into = b.vector.weight.tensor;
        const n = into.shape[0]!;
        want = b.feedforward ? [1, n] : [n, 1];
        seen.add(b.path);
      } else {
        const p = params.get(name);
        const owner = name.slice(0, name.lastIndexOf('.'));
        if (!p || !state.modulesToSave.some((h) => owner === h || owner.startsWith(`${h}.`)))
          throw new ConfigError(`${key}: ${JSON.stringify(name)} is neither an IA3 vector nor a parameter of a module to save`, { file: wpath });
        into = p.tensor;
        want = [...into.shape];
      }
      if (info.shape.length !== want.length || info.shape.some((d, i) => d !== want[i]))
        throw new ShapeError(`${key}: the file has shape [${info.shape.join(', ')}], the model expects [${want.join(', ')}]`, { argument: key, expected: `[${want.join(', ')}]`, got: `[${info.shape.join(', ')}]` });
      plan.push({ key, into });
    }
    const missing = state.branches.filter((b) => !seen.has(b.path));
    if (missing.length) throw new ConfigError(`${missing.length} IA3 vectors are missing from the adapter, e.g. ${PEFT_PREFIX}${missing[0]!.path}.ia3_l`, { file: wpath });
    for (const step of plan) step.into.set(file.readFloat32(step.key));
    return { state, keys: [...file.names] };
  } catch (e) {
    removeIa3(model); // nothing was copied or merged yet
    model.parameters().forEach((p, i) => (p.trainable = flags[i] ?? p.trainable));
    throw e;
  }
}
