/**
 * BitFit: only biases train. applyBitfit unfreezes the `bias` parameters of the matched modules
 * (every module with a bias by default; or those matching `targetModules`) and the modules to
 * save, and freezes everything else. A model without biases (LLaMA, Mistral, Qwen2's MLP) is a
 * BitfitError: there is nothing to train.
 *
 * Format (no PEFT type exists for BitFit), in PEFT's folder layout:
 * - `adapter_config.json`: `{ "peft_type": "BITFIT", "format_version": 1, "target_modules": [..] | null,
 *   "modules_to_save": [..] | null, "task_type": .., "base_model_name_or_path": .. }` (sorted keys);
 * - `adapter_model.safetensors`: one float32 tensor per trained bias, key
 *   `base_model.model.<parameter path>` (e.g. `base_model.model.transformer.h.0.attn.c_attn.bias`),
 *   and the parameters of the modules to save under the same prefix.
 * loadBitfit checks every key and shape, and that every trained bias is present, before copying;
 * a failed load leaves the model as it came.
 */
import { join } from 'node:path';

import { ConfigError, describe, FormatError, invalidArgument, ShapeError } from '../errors.js';
import { readJsonObject, SafetensorsFile, serializeSafetensors } from '../io/safetensors.js';
import type { Module, Parameter } from '../nn/module.js';
import type { Tensor } from '../tensor/tensor.js';
import { writeFilesAtomic } from '../util/atomic.js';
import { ADAPTER_CONFIG, ADAPTER_WEIGHTS, PEFT_PREFIX } from './adapter.js';
import { peftTaskType } from './config-json.js';
import { ia3State } from './ia3.js';
import { installMethod, loraState, type ParameterCounts, type TargetModules, targetMatcher } from './lora.js';

/** A model given to BitFit has no bias to train (among the targets). */
export class BitfitError extends ConfigError {}

export interface BitfitConfig {
  /** Modules whose bias trains (names, list or pattern; default null: every module with a bias). */
  targetModules?: TargetModules | null;
  modulesToSave?: readonly string[] | null;
  baseModelNameOrPath?: string | null;
}

export interface BitfitState {
  readonly targetModules: TargetModules | null;
  /** The trained bias parameters (paths `<module>.bias`), in model order. */
  readonly biases: readonly Parameter[];
  /** Module paths of the modules to save. */
  readonly modulesToSave: string[];
  readonly modulesToSaveNames: readonly string[];
  readonly baseModelNameOrPath: string | null;
  readonly counts: ParameterCounts;
  readonly summary: string;
}

const states = new WeakMap<Module, BitfitState>();
export const bitfitState = (model: Module): BitfitState | undefined => states.get(model);
const CLASSIFIER_HEADS = ['classifier', 'score'];

function requireBitfit(model: Module): BitfitState {
  const s = states.get(model);
  if (!s) invalidArgument('model', 'a model with BitFit applied (applyBitfit or loadBitfit)', 'a model without BitFit');
  return s;
}

/** Unfreezes the biases of the matched modules (and the modules to save), freezing everything else. */
export function applyBitfit(model: Module, config: BitfitConfig = {}): BitfitState {
  if (!model || typeof (model as Module).namedModules !== 'function') invalidArgument('model', 'a Module', describe(model));
  if (states.has(model) || loraState(model) || ia3State(model)) invalidArgument('model', 'a model without a PEFT method', 'a model with one already applied');
  if (config === null || typeof config !== 'object') invalidArgument('config', 'a BitFit config object', describe(config));
  const known = ['targetModules', 'modulesToSave', 'baseModelNameOrPath'];
  for (const k of Object.keys(config)) if (!known.includes(k)) invalidArgument(`config.${k}`, `one of ${known.join(', ')}`, JSON.stringify(k));
  const tm = config.targetModules ?? null;
  const match = tm === null ? () => true : targetMatcher(tm);
  const mts = config.modulesToSave ?? [];
  if (!Array.isArray(mts) || !mts.every((x) => typeof x === 'string' && x !== '')) invalidArgument('modulesToSave', 'a list of module names', describe(mts));
  const names = [...mts];
  const task = (model as { task?: unknown }).task;
  if (task === 'sequence-classification' || task === 'regression') for (const h of CLASSIFIER_HEADS) if (!names.includes(h)) names.push(h);
  const base = config.baseModelNameOrPath ?? null;
  if (base !== null && typeof base !== 'string') invalidArgument('baseModelNameOrPath', 'a string or null', describe(base));
  const heads: string[] = [];
  for (const [path, m] of model.namedModules()) {
    if (path === '' || m.parameters().length === 0 || !names.some((n) => path.endsWith(n)) || heads.some((q) => path.startsWith(`${q}.`))) continue;
    heads.push(path);
  }
  const inHead = (name: string) => heads.some((h) => name.startsWith(`${h}.`));
  const biases = model.parameters().filter((p) => {
    const dot = p.name.lastIndexOf('.');
    return p.name.slice(dot + 1) === 'bias' && match(p.name.slice(0, Math.max(dot, 0))) && !inHead(p.name);
  });
  if (biases.length === 0)
    throw new BitfitError(
      tm === null ? `the model (${model.constructor.name}) has no bias parameters: BitFit has nothing to train` : `no module matching targetModules ${describe(tm instanceof RegExp ? String(tm) : tm)} has a bias`,
      { hint: tm === null ? 'models without biases (LLaMA, Mistral) need another method, e.g. LoRA or IA3' : 'name modules that have a bias, or leave targetModules out' },
    );
  const { counts, summary } = installMethod(model, heads, () => {
    for (const p of biases) p.trainable = true;
  });
  const state: BitfitState = { targetModules: tm, biases, modulesToSave: heads, modulesToSaveNames: [...(config.modulesToSave ?? [])], baseModelNameOrPath: base, counts, summary };
  states.set(model, state);
  return state;
}

/** Forgets BitFit on the model (the biases keep their values; every parameter stays as it is now). */
export function removeBitfit(model: Module): void {
  requireBitfit(model);
  states.delete(model);
}

function headParams(model: Module, s: BitfitState): Parameter[] {
  return model.parameters().filter((p) => s.modulesToSave.some((h) => p.name.startsWith(`${h}.`)));
}

function targetsJson(t: TargetModules | null): string | string[] | null {
  if (t === null) return null;
  if (t instanceof RegExp) return t.source;
  return typeof t === 'string' ? (/^[A-Za-z0-9_.-]+$/.test(t) ? [t] : t) : [...t];
}

/** Writes the BitFit folder (adapter_config.json + adapter_model.safetensors) atomically. */
export function saveBitfit(model: Module, dir: string): void {
  const s = requireBitfit(model);
  const cfg: Record<string, unknown> = {
    base_model_name_or_path: s.baseModelNameOrPath,
    format_version: 1,
    modules_to_save: s.modulesToSaveNames.length ? [...s.modulesToSaveNames] : null,
    peft_type: 'BITFIT',
    target_modules: targetsJson(s.targetModules),
    task_type: peftTaskType(model),
  };
  const tensors = new Map<string, Tensor>();
  for (const p of [...s.biases, ...headParams(model, s)]) tensors.set(`${PEFT_PREFIX}${p.name}`, p.tensor);
  writeFilesAtomic(dir, [
    { name: ADAPTER_WEIGHTS, bytes: serializeSafetensors(tensors) },
    { name: ADAPTER_CONFIG, bytes: new TextEncoder().encode(`${JSON.stringify(cfg, null, 2)}\n`) },
  ]);
}

/** Reads a BitFit folder into a model without a PEFT method: applies BitFit from the config, checks every key, then copies. */
export function loadBitfit(model: Module, dir: string): BitfitState {
  if (typeof dir !== 'string') invalidArgument('dir', 'a BitFit folder', describe(dir));
  const cfgPath = join(dir, ADAPTER_CONFIG);
  const raw = readJsonObject(cfgPath);
  if (raw['peft_type'] !== 'BITFIT') throw new ConfigError(`peft_type ${describe(raw['peft_type'])} is not a BitFit folder ("BITFIT")`, { file: cfgPath });
  if (raw['format_version'] !== 1) throw new ConfigError(`format_version ${describe(raw['format_version'])} is not supported (1)`, { file: cfgPath });
  const tm = raw['target_modules'];
  if (!(tm === null || tm === undefined || typeof tm === 'string' || (Array.isArray(tm) && tm.every((x) => typeof x === 'string'))))
    throw new ConfigError(`target_modules must be null, a pattern or a list of names, got ${describe(tm)}`, { file: cfgPath });
  const mts = raw['modules_to_save'];
  if (!(mts === null || mts === undefined || (Array.isArray(mts) && mts.every((x) => typeof x === 'string'))))
    throw new ConfigError(`modules_to_save must be null or a list of names, got ${describe(mts)}`, { file: cfgPath });
  const wpath = join(dir, ADAPTER_WEIGHTS);
  const file = SafetensorsFile.open(wpath);
  const flags = model.parameters().map((p) => p.trainable);
  const base = raw['base_model_name_or_path'];
  const state = applyBitfit(model, {
    targetModules: tm === null || tm === undefined ? null : typeof tm === 'string' ? new RegExp(tm) : (tm as string[]),
    modulesToSave: (mts as string[] | null | undefined) ?? null,
    baseModelNameOrPath: typeof base === 'string' ? base : null,
  });
  try {
    const allowed = new Map([...state.biases, ...headParams(model, state)].map((p) => [p.name, p]));
    const plan: { key: string; into: Tensor }[] = [];
    const seen = new Set<string>();
    for (const key of file.names) {
      if (!key.startsWith(PEFT_PREFIX)) throw new FormatError(wpath, `key ${JSON.stringify(key)} does not start with ${JSON.stringify(PEFT_PREFIX)}`);
      const name = key.slice(PEFT_PREFIX.length);
      const p = allowed.get(name);
      if (!p) throw new ConfigError(`${key}: ${JSON.stringify(name)} is neither a trained bias nor a parameter of a module to save`, { file: wpath });
      const info = file.info(key);
      const want = p.tensor.shape;
      if (info.shape.length !== want.length || info.shape.some((d, i) => d !== want[i]))
        throw new ShapeError(`${key}: the file has shape [${info.shape.join(', ')}], the model [${want.join(', ')}]`, { argument: key, expected: `[${want.join(', ')}]`, got: `[${info.shape.join(', ')}]` });
      plan.push({ key, into: p.tensor });
      seen.add(name);
    }
    const missing = state.biases.filter((p) => !seen.has(p.name));
    if (missing.length) throw new ConfigError(`${missing.length} biases are missing from the folder, e.g. ${PEFT_PREFIX}${missing[0]!.name}`, { file: wpath });
    for (const step of plan) step.into.set(file.readFloat32(step.key));
    return state;
  } catch (e) {
    states.delete(model);
    model.parameters().forEach((p, i) => (p.trainable = flags[i] ?? p.trainable));
    throw e;
  }
}
