/**
 * `kfac-peft inspect PATH [--json]`: what a file or folder holds, read from headers only (no
 * weights are loaded): a Hugging Face model folder, a llama2.c .bin checkpoint or tokenizer, a
 * .safetensors file, a PEFT adapter folder, a training checkpoint (adapter + optimizer state +
 * trainer state) or a training run folder (its checkpoints).
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

import { FileError, FormatError, KfacError } from '../../errors.js';
import { parseModelConfig, type ModelConfig } from '../../io/config.js';
import { Llama2cTokenizer, openLlama2c } from '../../io/llama2c.js';
import { openSafetensors, readJsonFile, SafetensorsFile, type TensorSource } from '../../io/safetensors.js';
import { ADAPTER_CONFIG, ADAPTER_WEIGHTS, OPTIMIZER_META, OPTIMIZER_WEIGHTS } from '../../peft/index.js';
import { listCheckpoints } from '../../train/checkpoints.js';
import { parseArgs, UsageError } from '../args.js';

export const INSPECT_USAGE = `usage: kfac-peft inspect PATH [--json]

Describes PATH from its headers (no weights are loaded):
  model folder (config.json + safetensors)   architecture, parameter count, dtypes, tensor shapes
  llama2.c .bin checkpoint / tokenizer       the header's architecture and tensors / the vocabulary size
  .safetensors file                          tensors, dtypes, shapes, metadata
  PEFT adapter folder                        method, rank, alpha, target modules, base model, tensors
  training checkpoint                        the adapter, the optimizer state (kind, step, tensors),
                                             the trainer state (step, epoch, data position, best)
  training run folder (kfac-peft train --out) its checkpoints and whether the final adapter is there

options:
  --json    the description as JSON
`;

interface TensorRow {
  name: string;
  dtype: string;
  shape: number[];
}

function tensorsOf(src: TensorSource): { parameters: number; bytes: number; dtypes: Record<string, number>; tensors: TensorRow[] } {
  const tensors: TensorRow[] = [];
  const dtypes: Record<string, number> = {};
  let parameters = 0;
  let bytes = 0;
  for (const n of src.names) {
    const i = src.info(n);
    const count = i.shape.reduce((a, b) => a * b, 1);
    parameters += count;
    bytes += i.byteLength;
    dtypes[i.dtype] = (dtypes[i.dtype] ?? 0) + count;
    tensors.push({ name: n, dtype: i.dtype, shape: [...i.shape] });
  }
  return { parameters, bytes, dtypes, tensors };
}

function architecture(c: ModelConfig): Record<string, unknown> {
  return {
    family: c.family,
    architectures: c.architectures,
    vocabSize: c.vocabSize,
    hiddenSize: c.hiddenSize,
    layers: c.numLayers,
    heads: c.numHeads,
    kvHeads: c.numKvHeads,
    intermediateSize: c.intermediateSize,
    context: c.maxPositionEmbeddings,
    positions: c.positions,
    tiedEmbeddings: c.tieWordEmbeddings,
    ...(c.labels ? { labels: c.labels } : {}),
  };
}

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

function adapterInfo(dir: string): Record<string, unknown> {
  const raw = readJsonFile(join(dir, ADAPTER_CONFIG)) as Record<string, unknown>;
  const w = tensorsOf(SafetensorsFile.open(join(dir, ADAPTER_WEIGHTS)));
  return {
    peft: {
      method: raw['peft_type'] ?? null,
      r: raw['r'] ?? null,
      alpha: raw['lora_alpha'] ?? null,
      dropout: raw['lora_dropout'] ?? null,
      targets: raw['target_modules'] ?? null,
      modulesToSave: raw['modules_to_save'] ?? null,
      baseModel: raw['base_model_name_or_path'] ?? null,
      taskType: raw['task_type'] ?? null,
    },
    ...w,
  };
}

function checkpointInfo(dir: string): Record<string, unknown> {
  const meta = readJsonFile(join(dir, OPTIMIZER_META)) as Record<string, unknown>;
  if (meta['format'] !== 'kfac-peft-optimizer') throw new FormatError(join(dir, OPTIMIZER_META), 'not a kfac-peft optimizer state file');
  const files = (meta['files'] ?? {}) as Record<string, string>;
  const mismatched = Object.entries(files)
    .filter(([f, h]) => !existsSync(join(dir, f)) || sha256(readFileSync(join(dir, f))) !== h)
    .map(([f]) => f);
  const state = tensorsOf(SafetensorsFile.open(join(dir, OPTIMIZER_WEIGHTS)));
  const s = (meta['state'] ?? {}) as Record<string, unknown>;
  const extra = (meta['extra'] ?? {}) as Record<string, unknown>;
  const groups: Record<string, number> = {};
  for (const t of state.tensors) {
    const k = t.name.split(/[./]/).at(-1)!;
    groups[k] = (groups[k] ?? 0) + 1;
  }
  const pre = (s['preconditioner'] ?? {}) as Record<string, unknown>;
  const inner = (s['sgd'] ?? s) as Record<string, unknown>;
  const counters = Object.fromEntries(['method', 'preconditionedSteps', 'clippedSteps'].filter((k) => pre[k] !== undefined).map((k) => [k, pre[k]]));
  return {
    optimizer: { kind: meta['kind'] ?? s['kind'] ?? null, step: inner['step'] ?? pre['step'] ?? null, ...counters, tensors: state.tensors.length, values: state.parameters, bytes: state.bytes, tensorsByKind: groups },
    trainer: extra['trainer'] ?? null,
    intact: mismatched.length === 0,
    ...(mismatched.length ? { mismatched } : {}),
    ...(existsSync(join(dir, ADAPTER_CONFIG)) ? { adapter: adapterInfo(dir) } : {}),
  };
}

/** The description of PATH (throws a FileError naming it when it is none of the known kinds). */
export function inspectPath(path: string): Record<string, unknown> {
  let st;
  try {
    st = statSync(path);
  } catch (e) {
    throw new FileError(path, `cannot open: ${e instanceof Error ? e.message : String(e)}`);
  }
  const has = (f: string) => existsSync(join(path, f));
  if (st.isDirectory()) {
    if (has(OPTIMIZER_META)) return { path, kind: has(ADAPTER_CONFIG) ? 'checkpoint' : 'optimizer-state', ...checkpointInfo(path) };
    if (has(ADAPTER_CONFIG)) return { path, kind: 'adapter', ...adapterInfo(path) };
    if (has('config.json') && (has('model.safetensors') || has('model.safetensors.index.json'))) {
      const c = parseModelConfig(readJsonFile(join(path, 'config.json')), join(path, 'config.json'));
      return { path, kind: 'model', architecture: architecture(c), dtype: c.dtype ?? null, ...tensorsOf(openSafetensors(path)) };
    }
    if (has('run.json') || has('metrics.jsonl') || has('checkpoints')) {
      const checkpoints = listCheckpoints(path).map((c) => ({ path: c.dir, step: c.step, kind: c.kind }));
      return { path, kind: 'run', checkpoints, adapter: has(join('adapter', ADAPTER_CONFIG)) ? join(path, 'adapter') : null, summary: has('run.json') ? readJsonFile(join(path, 'run.json')) : null };
    }
    throw new FileError(path, 'not a model folder (config.json + model.safetensors), adapter folder (adapter_config.json), checkpoint (optimizer.json) or run folder');
  }
  if (path.endsWith('.safetensors')) {
    const f = SafetensorsFile.open(path);
    return { path, kind: 'safetensors', metadata: f.metadata ?? null, ...tensorsOf(f) };
  }
  if (path.endsWith('.bin')) {
    let asModel: KfacError;
    try {
      const l = openLlama2c(path);
      return { path, kind: 'llama2c', architecture: architecture(l.config), ...tensorsOf(l) };
    } catch (e) {
      if (!(e instanceof KfacError)) throw e;
      asModel = e;
    }
    try {
      const t = Llama2cTokenizer.open(path);
      return { path, kind: 'llama2c-tokenizer', vocabSize: t.vocabSize, maxTokenLength: t.maxTokenLength };
    } catch {
      throw asModel;
    }
  }
  throw new FileError(path, 'not a model folder, llama2.c .bin, .safetensors file, adapter folder, checkpoint or run folder');
}

const fmt = (n: number) => (n >= 1e6 ? `${(n / 1e6).toFixed(2)}M` : n >= 1e3 ? `${(n / 1e3).toFixed(1)}K` : String(n));

function text(d: Record<string, unknown>): string {
  const lines = [`${d['path']}: ${d['kind']}`];
  const put = (k: string, v: unknown) => lines.push(`  ${k.padEnd(14)} ${typeof v === 'string' ? v : JSON.stringify(v)}`);
  if (d['architecture']) for (const [k, v] of Object.entries(d['architecture'] as object)) put(k, v);
  const peft = (d['peft'] ?? (d['adapter'] as Record<string, unknown> | undefined)?.['peft']) as Record<string, unknown> | undefined;
  if (peft) for (const [k, v] of Object.entries(peft)) if (v !== null) put(k, v);
  for (const k of ['vocabSize', 'maxTokenLength', 'intact', 'mismatched'] as const) if (d[k] !== undefined) put(k, d[k]);
  const o = d['optimizer'] as Record<string, unknown> | undefined;
  if (o) {
    const extra = ['method', 'preconditionedSteps', 'clippedSteps'].filter((k) => o[k] !== undefined).map((k) => `${k} ${o[k]}`);
    put('optimizer', [`${o['kind']}`, `step ${o['step']}`, ...extra].join(', '));
    put('  state', `${o['tensors']} tensors, ${fmt(o['values'] as number)} values (${((o['bytes'] as number) / 1024).toFixed(1)} KiB): ${Object.entries(o['tensorsByKind'] as Record<string, number>).map(([k, v]) => `${k} ×${v}`).join(', ')}`);
  }
  const tr = d['trainer'] as { step: number; epoch: number; batchInEpoch: number; best: { value: number; step: number } | null } | null | undefined;
  if (tr) put('trainer', `step ${tr.step}, epoch ${tr.epoch}, ${tr.batchInEpoch} batches into the epoch, best ${tr.best ? `${tr.best.value} at step ${tr.best.step}` : '–'}`);
  if (typeof d['adapter'] === 'string' || d['adapter'] === null) put('adapter', d['adapter'] ?? 'none (the run has not finished)');
  for (const c of (d['checkpoints'] as { path: string; step: number | null; kind: string }[] | undefined) ?? []) put('checkpoint', `${c.path}  (${c.kind}, step ${c.step ?? '?'})`);
  const t = (d['tensors'] ? d : (d['adapter'] as Record<string, unknown> | undefined)) as { parameters?: number; dtypes?: Record<string, number>; tensors?: TensorRow[] } | undefined;
  if (t?.tensors) {
    put('parameters', `${fmt(t.parameters!)} (${t.parameters})`);
    put('dtypes', Object.entries(t.dtypes!).map(([k, v]) => `${k} ${fmt(v)}`).join(', '));
    lines.push(`  tensors (${t.tensors.length}):`);
    const w = Math.max(...t.tensors.map((x) => x.name.length));
    for (const x of t.tensors) lines.push(`    ${x.name.padEnd(w)}  ${x.dtype.padEnd(4)} [${x.shape.join(', ')}]`);
  }
  return lines.join('\n') + '\n';
}

export async function inspectCommand(argv: readonly string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(INSPECT_USAGE);
    return 0;
  }
  const { positional, flags } = parseArgs(argv, { json: 'boolean' });
  if (positional.length !== 1) throw new UsageError(`inspect takes one PATH, got ${positional.length === 0 ? 'none' : positional.join(' ')}`);
  const d = inspectPath(positional[0]!);
  process.stdout.write(flags['json'] ? JSON.stringify(d, null, 2) + '\n' : text(d));
  return 0;
}
