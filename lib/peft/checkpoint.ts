/**
 * Optimizer state files and training checkpoints.
 *
 * `optimizer.safetensors` holds the optimizer's stateDict() tensors (AdamW moments, SGD momentum
 * buffers, K-FAC factors, eigenbases and inverses) under their state names; `optimizer.json`
 * holds the JSON metadata (kind, step counters, per-parameter scalars, the preconditioner's
 * counters), the SHA-256 of the files it belongs to, and, in a checkpoint, the LoRA dropout
 * seeds and counters, so a resumed run draws the same masks. A checkpoint adds the adapter (PEFT format).
 *
 * All files of one save are serialized first and then written with writeFilesAtomic (temporary
 * file in the same folder + rename, optimizer.json last): a failure leaves the previous files as
 * they were; a reader that finds files from two different saves refuses them (hash mismatch).
 */
import { createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';

import { describe, FileError, FormatError, invalidArgument, KfacError } from '../errors.js';
import { SafetensorsFile, serializeSafetensors } from '../io/safetensors.js';
import { KFAC } from '../kfac/kfac-optimizer.js';
import type { Module } from '../nn/module.js';
import { Optimizer, type OptimizerState } from '../optim/optimizer.js';
import type { Tensor } from '../tensor/tensor.js';
import { ADAPTER_CONFIG, ADAPTER_WEIGHTS, adapterFiles, loadAdapter } from './adapter.js';
import { writeFilesAtomic } from '../util/atomic.js';
import { loraState } from './lora.js';
import { checkOptimizerState } from './state-check.js';

export const OPTIMIZER_WEIGHTS = 'optimizer.safetensors';
export const OPTIMIZER_META = 'optimizer.json';
const FORMAT = 'kfac-peft-optimizer';
const VERSION = 1;

/** The optimizers a checkpoint can hold: AdamW, SGD (any first-order Optimizer) or KFAC. */
export type AnyOptimizer = Optimizer | KFAC;

interface Snapshot {
  meta: Record<string, unknown>;
  tensors: Record<string, Tensor>;
}

function snapshot(opt: AnyOptimizer): Snapshot {
  if (opt instanceof KFAC) return opt.stateDict();
  if (opt instanceof Optimizer) {
    const s = opt.stateDict();
    return { meta: { kind: s.kind, step: s.step, perParam: s.perParam }, tensors: s.tensors };
  }
  return invalidArgument('optimizer', 'an Optimizer (AdamW, SGD) or a KFAC optimizer', describe(opt));
}

function restore(opt: AnyOptimizer, meta: Record<string, unknown>, tensors: Record<string, Tensor>): void {
  if (opt instanceof KFAC) return opt.loadStateDict({ meta, tensors });
  const state: OptimizerState = { kind: meta['kind'] as string, step: meta['step'] as number, perParam: meta['perParam'] as OptimizerState['perParam'], tensors };
  opt.loadStateDict(state);
}

const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

interface PendingBytes {
  name: string;
  bytes: Uint8Array;
}

/** The optimizer's two files (optimizer.json last), with the hashes of `companions` recorded. */
function optimizerFiles(opt: AnyOptimizer, extra: Record<string, unknown>, companions: readonly PendingBytes[]): PendingBytes[] {
  const snap = snapshot(opt);
  let weights: Uint8Array;
  try {
    weights = serializeSafetensors(snap.tensors);
  } finally {
    for (const t of Object.values(snap.tensors)) t.dispose();
  }
  const files: Record<string, string> = {};
  for (const f of [...companions, { name: OPTIMIZER_WEIGHTS, bytes: weights }]) files[f.name] = sha256(f.bytes);
  const meta = { format: FORMAT, version: VERSION, kind: snap.meta['kind'], state: snap.meta, ...extra, files };
  return [{ name: OPTIMIZER_WEIGHTS, bytes: weights }, { name: OPTIMIZER_META, bytes: new TextEncoder().encode(`${JSON.stringify(meta, null, 2)}\n`) }];
}

/** Writes optimizer.safetensors and optimizer.json into `dir` atomically. */
export function saveOptimizerState(optimizer: AnyOptimizer, dir: string): void {
  const files = optimizerFiles(optimizer, {}, []);
  writeFilesAtomic(dir, files);
}

function readMeta(dir: string): Record<string, unknown> {
  const path = join(dir, OPTIMIZER_META);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new FileError(path, `cannot read: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new FormatError(path, `not valid JSON: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
  if (v === null || typeof v !== 'object' || (v as Record<string, unknown>)['format'] !== FORMAT)
    throw new FormatError(path, `not a ${FORMAT} file`);
  if ((v as Record<string, unknown>)['version'] !== VERSION) throw new FormatError(path, `version ${describe((v as Record<string, unknown>)['version'])} is not supported (expected ${VERSION})`);
  return v as Record<string, unknown>;
}

function checkHashes(dir: string, meta: Record<string, unknown>): Map<string, Uint8Array> {
  const files = meta['files'] as Record<string, string> | undefined;
  const out = new Map<string, Uint8Array>();
  if (!files || typeof files !== 'object') throw new FormatError(join(dir, OPTIMIZER_META), 'no "files" record');
  for (const [name, want] of Object.entries(files)) {
    const path = join(dir, name);
    // Only plain regular files beside optimizer.json: never a path out of the folder or a device.
    if (typeof want !== 'string' || name === '' || name === '.' || name === '..' || /[/\\]/.test(name))
      throw new FormatError(join(dir, OPTIMIZER_META), `"files" must map file names in the folder to SHA-256 hashes, got ${JSON.stringify(name)}: ${describe(want)}`);
    let bytes: Uint8Array;
    try {
      if (!statSync(path).isFile()) throw new Error('not a regular file');
      bytes = readFileSync(path);
    } catch (e) {
      throw new FileError(path, `cannot read: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
    }
    if (sha256(bytes) !== want)
      throw new FormatError(path, `does not belong to this ${OPTIMIZER_META} (SHA-256 differs)`, { hint: 'the folder mixes files of two saves (an interrupted save); use an earlier checkpoint' });
    out.set(name, bytes);
  }
  return out;
}

function loadOptimizerFrom(opt: AnyOptimizer, meta: Record<string, unknown>, weights: Uint8Array, name: string): void {
  const file = SafetensorsFile.fromBytes(weights, name);
  const tensors: Record<string, Tensor> = {};
  try {
    for (const k of file.names) tensors[k] = file.tensor(k);
    checkOptimizerState(join(dirname(name), OPTIMIZER_META), name, meta['state'], tensors, opt instanceof KFAC ? 'kfac' : opt.kind);
    try {
      restore(opt, meta['state'] as Record<string, unknown>, tensors);
    } catch (e) {
      if (e instanceof KfacError) throw e;
      throw new FormatError(join(dirname(name), OPTIMIZER_META), `the optimizer state does not fit this optimizer (${e instanceof Error ? e.message : String(e)})`, { cause: e });
    }
  } finally {
    for (const t of Object.values(tensors)) t.dispose();
  }
}

/** Restores an optimizer from optimizer.safetensors and optimizer.json in `dir`. */
export function loadOptimizerState(optimizer: AnyOptimizer, dir: string): void {
  const meta = readMeta(dir);
  const bytes = checkHashes(dir, meta);
  loadOptimizerFrom(optimizer, meta, bytes.get(OPTIMIZER_WEIGHTS)!, join(dir, OPTIMIZER_WEIGHTS));
}

export interface Checkpoint {
  /** A model with LoRA applied (its adapter is saved in PEFT format). */
  model: Module;
  optimizer: AnyOptimizer;
  /** Extra JSON-able values stored in optimizer.json (e.g. the data position). */
  extra?: Record<string, unknown>;
}

/** Writes a training checkpoint (adapter + optimizer state + LoRA dropout seeds and counters) into `dir`, atomically. */
export function saveCheckpoint(dir: string, ckpt: Checkpoint): void {
  const s = loraState(ckpt.model);
  if (!s) invalidArgument('model', 'a model with LoRA applied', 'a model without LoRA');
  const adapter = adapterFiles(ckpt.model);
  const dropout = Object.fromEntries(s.branches.map((b) => [b.path, { seed: b.dropout.seed, calls: b.dropout.calls }]));
  const files = [...adapter, ...optimizerFiles(ckpt.optimizer, { lora: { dropout }, extra: ckpt.extra ?? {} }, adapter)];
  writeFilesAtomic(dir, files);
}

/**
 * Restores a checkpoint written by saveCheckpoint: the adapter into `model` (applying LoRA when
 * it has none), the optimizer state, the LoRA dropout seeds and counters. Returns the stored `extra`.
 */
export function loadCheckpoint(dir: string, ckpt: Omit<Checkpoint, 'extra'>): Record<string, unknown> {
  const meta = readMeta(dir);
  const bytes = checkHashes(dir, meta);
  if (!bytes.has(ADAPTER_WEIGHTS) || !bytes.has(ADAPTER_CONFIG)) throw new FormatError(join(dir, OPTIMIZER_META), 'not a checkpoint: no adapter files recorded');
  loadAdapter(ckpt.model, dir);
  const s = loraState(ckpt.model)!;
  const drop = ((meta['lora'] as Record<string, unknown> | undefined)?.['dropout'] ?? {}) as Record<string, { seed?: unknown; calls?: unknown }>;
  for (const b of s.branches) {
    const d = drop[b.path];
    if (typeof d?.seed === 'number') b.dropout.seed = d.seed;
    if (typeof d?.calls === 'number') b.dropout.calls = d.calls;
  }
  loadOptimizerFrom(ckpt.optimizer, meta, bytes.get(OPTIMIZER_WEIGHTS)!, join(dir, OPTIMIZER_WEIGHTS));
  return (meta['extra'] as Record<string, unknown> | undefined) ?? {};
}
