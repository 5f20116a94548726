/**
 * The bottleneck-adapter folder (no Hugging Face PEFT type exists for it), in PEFT's layout
 * (docs/PEFT.md#bottleneck-adapters):
 * - `adapter_config.json` (sorted keys, two-space indented): `peft_type` "BOTTLENECK",
 *   `format_version` 1, `kind` ("houlsby" | "pfeiffer"), `reduction_factor`, `non_linearity`,
 *   `residual`, `scaling`, `attention_modules` and `ffn_modules` (the adapted module paths),
 *   `modules_to_save`, `task_type`, `base_model_name_or_path`;
 * - `adapter_model.safetensors`: float32 `base_model.model.<path>.adapter_down.weight` [m, d],
 *   `.adapter_down.bias` [m], `.adapter_up.weight` [d, m], `.adapter_up.bias` [d] per adapted
 *   projection, and `base_model.model.<parameter path>` for the modules to save.
 * loadBottleneck checks every key and shape, and that every adapter is complete, before copying;
 * a failed load leaves the model as it came.
 */
import { join } from 'node:path';

import { ConfigError, describe, FormatError, invalidArgument, ShapeError } from '../errors.js';
import { readJsonObject, SafetensorsFile, serializeSafetensors } from '../io/safetensors.js';
import type { Module } from '../nn/module.js';
import type { Tensor } from '../tensor/tensor.js';
import { writeFilesAtomic } from '../util/atomic.js';
import { ADAPTER_CONFIG, ADAPTER_WEIGHTS, PEFT_PREFIX } from './adapter.js';
import { applyBottleneck, type BottleneckConfig, type BottleneckState, bottleneckHeadParameters, bottleneckParameters, removeBottleneck, requireBottleneck } from './bottleneck.js';
import { peftTaskType } from './config-json.js';

export const BOTTLENECK_TYPE = 'BOTTLENECK';


/** adapter_config.json of a model with bottleneck adapters. */
export function bottleneckConfigJson(model: Module): Record<string, unknown> {
  const s = requireBottleneck(model);
  const c = s.config;
  const given = c.modulesToSave.filter((n) => n !== 'classifier' && n !== 'score');
  return {
    attention_modules: s.branches.filter((b) => b.site === 'attention').map((b) => b.path),
    base_model_name_or_path: c.baseModelNameOrPath,
    ffn_modules: s.branches.filter((b) => b.site === 'ffn').map((b) => b.path),
    format_version: 1,
    kind: c.kind,
    modules_to_save: given.length ? given : null,
    non_linearity: c.nonLinearity,
    peft_type: BOTTLENECK_TYPE,
    reduction_factor: c.reductionFactor,
    residual: c.residual,
    scaling: c.scaling,
    task_type: peftTaskType(model),
  };
}

/** The tensors saveBottleneck writes, by key. */
export function bottleneckTensors(model: Module): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  for (const p of [...bottleneckParameters(model), ...bottleneckHeadParameters(model)]) out.set(`${PEFT_PREFIX}${p.name}`, p.tensor);
  return out;
}

export function saveBottleneck(model: Module, dir: string): void {
  const cfg = bottleneckConfigJson(model);
  writeFilesAtomic(dir, [
    { name: ADAPTER_WEIGHTS, bytes: serializeSafetensors(bottleneckTensors(model)) },
    { name: ADAPTER_CONFIG, bytes: new TextEncoder().encode(`${JSON.stringify(cfg, null, 2)}\n`) },
  ]);
}

const paths = (v: unknown, field: string, file: string): string[] => {
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string' && x !== '')) throw new ConfigError(`${field} must be a list of module paths, got ${describe(v)}`, { file });
  return v as string[];
};

/** Converts a BOTTLENECK adapter_config.json object to a BottleneckConfig. */
export function bottleneckConfigFromJson(raw: Record<string, unknown>, file = ADAPTER_CONFIG): BottleneckConfig {
  if (raw['peft_type'] !== BOTTLENECK_TYPE) throw new ConfigError(`peft_type ${describe(raw['peft_type'])} is not a bottleneck-adapter folder ("${BOTTLENECK_TYPE}")`, { file });
  if (raw['format_version'] !== 1) throw new ConfigError(`format_version ${describe(raw['format_version'])} is not supported (1)`, { file });
  const kind = raw['kind'];
  if (kind !== 'houlsby' && kind !== 'pfeiffer') throw new ConfigError(`kind must be "houlsby" or "pfeiffer", got ${describe(kind)}`, { file });
  const act = raw['non_linearity'];
  if (act !== 'relu' && act !== 'gelu' && act !== 'silu') throw new ConfigError(`non_linearity must be relu, gelu or silu, got ${describe(act)}`, { file });
  const rf = raw['reduction_factor'];
  if (!Number.isInteger(rf) || (rf as number) < 1) throw new ConfigError(`reduction_factor must be a positive integer, got ${describe(rf)}`, { file });
  if (typeof raw['residual'] !== 'boolean') throw new ConfigError(`residual must be a boolean, got ${describe(raw['residual'])}`, { file });
  if (typeof raw['scaling'] !== 'number' || !Number.isFinite(raw['scaling'])) throw new ConfigError(`scaling must be a finite number, got ${describe(raw['scaling'])}`, { file });
  const attn = paths(raw['attention_modules'] ?? [], 'attention_modules', file);
  const ffn = paths(raw['ffn_modules'], 'ffn_modules', file);
  if (ffn.length === 0) throw new ConfigError('ffn_modules is empty', { file });
  if (kind === 'houlsby' && attn.length === 0) throw new ConfigError('attention_modules is empty for a Houlsby adapter', { file });
  const mts = raw['modules_to_save'];
  if (!(mts === null || mts === undefined || (Array.isArray(mts) && mts.every((x) => typeof x === 'string'))))
    throw new ConfigError(`modules_to_save must be null or a list of names, got ${describe(mts)}`, { file });
  const base = raw['base_model_name_or_path'];
  return {
    kind,
    reductionFactor: rf as number,
    nonLinearity: act,
    residual: raw['residual'],
    scaling: raw['scaling'],
    ...(attn.length ? { attentionModules: attn } : {}),
    ffnModules: ffn,
    modulesToSave: (mts as string[] | null | undefined) ?? null,
    baseModelNameOrPath: typeof base === 'string' ? base : null,
  };
}

/**
 * Reads a bottleneck-adapter folder into a model without a PEFT method: applies the adapters
 * from the config (every listed path must be an adapted projection of this model), checks every
 * key and shape, then copies. On any error the model is left as it came.
 */
export function loadBottleneck(model: Module, dir: string): BottleneckState {
  if (typeof dir !== 'string') invalidArgument('dir', 'a bottleneck-adapter folder', describe(dir));
  const cfgPath = join(dir, ADAPTER_CONFIG);
  const raw = readJsonObject(cfgPath);
  const cfg = bottleneckConfigFromJson(raw, cfgPath);
  const wpath = join(dir, ADAPTER_WEIGHTS);
  const file = SafetensorsFile.open(wpath);
  const flags = model.parameters().map((p) => p.trainable);
  const state = applyBottleneck(model, cfg);
  try {
    const listed = [...((cfg.attentionModules as string[] | undefined) ?? []), ...(cfg.ffnModules as string[])];
    const adapted = new Set(state.branches.map((b) => b.path));
    const absent = listed.find((p) => !adapted.has(p));
    if (absent) throw new ConfigError(`the folder adapts ${JSON.stringify(absent)}, which is not an output projection of this model`, { file: cfgPath });
    const allowed = new Map([...bottleneckParameters(model), ...bottleneckHeadParameters(model)].map((p) => [p.name, p]));
    const plan: { key: string; into: Tensor }[] = [];
    const seen = new Set<string>();
    for (const key of file.names) {
      if (!key.startsWith(PEFT_PREFIX)) throw new FormatError(wpath, `key ${JSON.stringify(key)} does not start with ${JSON.stringify(PEFT_PREFIX)}`);
      const name = key.slice(PEFT_PREFIX.length);
      const p = allowed.get(name);
      if (!p) throw new ConfigError(`${key}: ${JSON.stringify(name)} is neither an adapter parameter nor a parameter of a module to save`, { file: wpath });
      const info = file.info(key);
      const want = p.tensor.shape;
      if (info.shape.length !== want.length || info.shape.some((d, i) => d !== want[i]))
        throw new ShapeError(`${key}: the file has shape [${info.shape.join(', ')}], the model [${want.join(', ')}]`, { argument: key, expected: `[${want.join(', ')}]`, got: `[${info.shape.join(', ')}]` });
      plan.push({ key, into: p.tensor });
      seen.add(name);
    }
    const missing = bottleneckParameters(model).filter((p) => !seen.has(p.name));
    if (missing.length) throw new ConfigError(`${missing.length} adapter tensors are missing from the folder, e.g. ${PEFT_PREFIX}${missing[0]!.name}`, { file: wpath });
    for (const step of plan) step.into.set(file.readFloat32(step.key));
    return state;
  } catch (e) {
    removeBottleneck(model); // nothing was copied yet
    model.parameters().forEach((p, i) => (p.trainable = flags[i] ?? p.trainable));
    throw e;
  }
}
