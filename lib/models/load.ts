/**
 * loadModel: a Hugging Face folder (config.json + model.safetensors or a sharded index) or a
 * llama2.c `.bin` checkpoint → a model with every weight accounted for.
 *
 * Every parameter of the model must come from the checkpoint, except the head parameters that
 * the task adds fresh (a classifier on a pretrained trunk): those are initialised from `seed`
 * and listed in `report.fresh`. Every checkpoint tensor must land in a parameter, except known
 * non-parameters (position-id and attention-mask buffers, rotary inv_freq) and heads of another
 * task (an LM or pretraining head when loading for classification): those are listed in
 * `report.dropped`. Anything else is a LoadError naming the key.
 */
import { statSync } from 'node:fs';
import { join } from 'node:path';

import { ConfigError, describe, DTypeError, FileError, invalidArgument, KfacError, type KfacErrorDetails } from '../errors.js';
import { type ModelConfig, parseModelConfig } from '../io/config.js';
import { openLlama2c } from '../io/llama2c.js';
import { canonicalWeightName } from '../io/names.js';
import { openSafetensors, readJsonFile, type TensorSource } from '../io/safetensors.js';
import { Linear } from '../nn/layers.js';
import type { ParamSlot } from '../nn/module.js';
import { cast } from '../ops/cast.js';
import { type Device, Tensor } from '../tensor/tensor.js';
import { checkBoolean, checkInteger } from '../util/validate.js';
import { HEAD_MODULE, type ModelOptions, type TransformerModel } from './base.js';
import { checkDeviceFits, type DeviceRequest, resolveDevice, withOomContext } from './device.js';
import { BertModel } from './bert.js';
import { fromModelConfig, type ArchitectureConfig, numLabelsOf, type Task } from './config.js';
import { Gpt2Model } from './gpt2.js';
import { LlamaModel } from './llama.js';
import { isT5Json, type T5Config, t5ConfigFromHf } from './t5-config.js';
import { T5Model } from './t5.js';

/** A checkpoint whose tensors do not match the model: a missing, unexpected or misshapen weight. */
export class LoadError extends KfacError {
  readonly key: string;
  constructor(key: string, message: string, details: KfacErrorDetails = {}) {
    super('ERR_LOAD', message, details);
    this.key = key;
  }
}

export interface LoadOptions {
  /** Default: from config.json's architectures (…ForCausalLM → 'causal-lm', …ForSequenceClassification → classification), else the family's. */
  task?: Task;
  /** Classes or regression outputs (default: config.json's num_labels / id2label, else 2 or 1). */
  numLabels?: number;
  /** Seed of the fresh head's initialisation (default 0). */
  seed?: number;
  /**
   * Storage of the frozen base Linear weights of the transformer blocks (default 'float32').
   * 'bfloat16' halves their memory and runs them on the bf16 GEMM (info().cpu.bf16Kernel);
   * they are frozen (no gradient). Embeddings, norms, heads and adapters stay float32.
   */
  dtype?: 'float32' | 'bfloat16';
  /**
   * Where the weights go (default 'cpu'; 'auto': the GPU when usable). On a device each tensor
   * is read, converted to its target dtype and placed there one at a time: the model is never
   * held whole on the host. Before anything is allocated, a model whose weights exceed the
   * device's free memory is an OutOfMemoryError; a weight of a dtype other than F32/F16/BF16 is
   * a DTypeError naming it.
   */
  device?: DeviceRequest;
  /** Gradient checkpointing per block (ModelOptions.checkpointing). */
  checkpointing?: boolean;
  /**
   * Storage of the activations (ModelOptions.activations): 'bfloat16' for a model
   * on cuda keeps hidden states, attention tensors and logits in bf16, LoRA branches, K-FAC
   * factors, optimizer state and the loss in float32. Default 'float32' (docs/CUDA.md says why).
   */
  activations?: 'float32' | 'bfloat16';
}

const HEAD = HEAD_MODULE;
/** Names of embedding tables (float32 under any dtype). */
const EMBEDDING = /(embed_tokens|tok_embeddings|wte|wpe|word_embeddings|position_embeddings|token_type_embeddings)\.weight$/;

/**
 * A lower bound of the device bytes a checkpoint's weights take in the model: float32 values,
 * with 2-D weights other than embeddings and heads in bfloat16 under that dtype (GPT-2's Conv1D
 * weights stay float32, so the bound is low there, never high).
 */
export function deviceBytesOf(src: TensorSource, dtype: 'float32' | 'bfloat16', skip: (name: string) => boolean = () => false): number {
  let n = 0;
  for (const name of src.names) {
    if (skip(name)) continue; // a key the loader drops (T5's copies of the shared embedding)
    const i = src.info(name);
    const count = i.shape.reduce((a, b) => a * b, 1);
    n += count * (dtype === 'bfloat16' && i.shape.length === 2 && !HEAD.test(name) && !EMBEDDING.test(name) ? 2 : 4);
  }
  return n;
}

/** Refuses, before anything is allocated, a weight whose dtype cannot be placed on the device. */
function checkDeviceDtypes(src: TensorSource, sourceName: string, device: Device): void {
  for (const name of src.names) {
    const d = src.info(name).dtype;
    if (d === 'F32' || d === 'F16' || d === 'BF16') continue;
    // integer buffers (position ids) are dropped by the loader, never placed
    if (/^(I|U)\d+$|^BOOL$/.test(d) && /(position_ids|token_type_ids|masked_bias|attn\.bias)$/.test(name)) continue;
    throw new DTypeError(`${sourceName}: tensor ${JSON.stringify(name)} has dtype ${d}, which cannot be placed on ${device}: weights are read as F32, F16 or BF16 and stored as float32 or bfloat16`, {
      argument: name,
      expected: 'F32, F16 or BF16',
      got: d,
      hint: 'convert the checkpoint to a float dtype (quantized and float64 weights are not read)',
    });
  }
}

/** Stores the base Linear weights of the blocks in bfloat16 and freezes them. */
export function freezeLinearsBf16(model: TransformerModel): number {
  let n = 0;
  for (const [name, m] of model.namedModules()) {
    if (!(m instanceof Linear) || HEAD.test(name) || m.layout !== 'linear' || m.weight.tensor.dtype !== 'float32') continue;
    const old = m.weight.tensor;
    m.weight.tensor = cast(old, 'bfloat16');
    m.weight.trainable = false;
    m.weight.grad?.dispose();
    m.weight.grad = null;
    old.dispose();
    n++;
  }
  return n;
}

export interface LoadReport {
  /** Checkpoint keys loaded, by model parameter name. */
  readonly loaded: readonly string[];
  /** Model parameters initialised fresh (the task's new head). */
  readonly fresh: readonly string[];
  /** Checkpoint keys deliberately not used (buffers, another task's head). */
  readonly dropped: readonly string[];
  readonly source: string;
}

/** A model built from a config (random weights from `seed`). */
export function createModel(config: ArchitectureConfig, options: ModelOptions = {}): TransformerModel {
  switch (config.family) {
    case 'llama':
      return new LlamaModel(config, options);
    case 'bert':
      return new BertModel(config, options);
    case 'gpt2':
      return new Gpt2Model(config, options);
    case 't5':
      return new T5Model(config, options);
    default:
      return invalidArgument('config.family', "'llama', 'bert', 'gpt2' or 't5'", describe((config as { family: unknown }).family));
  }
}

interface Rules {
  /** Keys that are buffers, never parameters. */
  buffer: (k: string) => boolean;
  /** Keys of heads this task does not use. */
  otherHead: (k: string) => boolean;
  /** Model parameters that the task may add fresh. */
  freshOk: (name: string) => boolean;
}

function rulesFor(c: ArchitectureConfig, task: Task): Rules {
  if (c.family === 't5')
    return {
      buffer: () => false,
      // The stacks' embed_tokens are the shared embedding; a tied head is too.
      otherHead: (k) => k === 'encoder.embed_tokens.weight' || k === 'decoder.embed_tokens.weight' || (c.tieWordEmbeddings && k === 'lm_head.weight'),
      freshOk: () => false,
    };
  if (c.family === 'llama')
    return {
      buffer: (k) => k.endsWith('.rotary_emb.inv_freq'),
      otherHead: (k) => (task === 'causal-lm' ? k === 'score.weight' || (c.tieWordEmbeddings && k === 'lm_head.weight') : k === 'lm_head.weight'),
      freshOk: (n) => n === 'score.weight',
    };
  if (c.family === 'gpt2')
    return {
      buffer: (k) => /\.attn\.(bias|masked_bias)$/.test(k),
      otherHead: (k) => k === 'lm_head.weight' || (task === 'causal-lm' && k === 'score.weight'),
      freshOk: (n) => n === 'score.weight',
    };
  const p = c.modelType;
  return {
    buffer: (k) => k.endsWith('embeddings.position_ids') || k.endsWith('embeddings.token_type_ids'),
    otherHead: (k) =>
      k.startsWith('cls.') ||
      k.startsWith('lm_head.') ||
      k.startsWith('vocab_transform.') ||
      k.startsWith('vocab_layer_norm.') ||
      k.startsWith('vocab_projector.') ||
      (p === 'roberta' && k.startsWith('roberta.pooler.')),
    freshOk: (n) => n.startsWith('classifier.') || n.startsWith('pre_classifier.') || n.startsWith('bert.pooler.'),
  };
}

function taskFromConfig(json: Record<string, unknown>): Task | undefined {
  const arch = json['architectures'];
  const a = Array.isArray(arch) && typeof arch[0] === 'string' ? arch[0] : '';
  if (/ForCausalLM$|LMHeadModel$/.test(a)) return 'causal-lm';
  if (/ForSequenceClassification$/.test(a)) return json['problem_type'] === 'regression' || numLabelsOf(json) === 1 ? 'regression' : 'sequence-classification';
  return undefined;
}

const slotCache = new WeakMap<TransformerModel, Map<string, ParamSlot>>();

/** The slots of a model's bfloat16 Linear weights, by parameter name. */
function bf16Slots(model: TransformerModel): Map<string, ParamSlot> {
  let m = slotCache.get(model);
  if (!m) {
    m = new Map();
    for (const [name, mod] of model.namedModules()) if (mod instanceof Linear && mod.weight.tensor.dtype === 'bfloat16') m.set(`${name}.weight`, mod.weight);
    slotCache.set(model, m);
  }
  return m;
}

/**
 * Copies every checkpoint tensor into the model's parameters, initialises the fresh head, and
 * throws a LoadError for anything unaccounted for.
 */
export function loadWeights(model: TransformerModel, src: TensorSource, sourceName: string, seed = 0, std = 0.02): LoadReport {
  const rules = rulesFor(model.config, model.task);
  const params = new Map(model.parameters().map((p) => [p.name, p]));
  const loaded: string[] = [];
  const dropped: string[] = [];
  const seen = new Set<string>();
  const t5 = model.config.family === 't5';
  // A T5 checkpoint without shared.weight holds the embedding under the encoder's name.
  const t5Shared = t5 && !src.names.includes('shared.weight') ? 'encoder.embed_tokens.weight' : null;
  for (const key of src.names) {
    // lib/io's canonical form: the task model's prefix added to bare base-model names, gamma/beta renamed.
    const name = model.config.family === 't5' ? (key === t5Shared ? 'shared.weight' : key) : canonicalWeightName(key, model.config.modelType);
    const p = params.get(name);
    if (!p) {
      if (rules.buffer(name) || rules.otherHead(name)) {
        dropped.push(key);
        continue;
      }
      throw new LoadError(key, `${sourceName}: unexpected weight ${JSON.stringify(key)}: the ${model.config.modelType} model for ${model.task} has no parameter ${JSON.stringify(name)}`, {
        argument: key,
        hint: 'the checkpoint does not match config.json (another architecture or a modified model)',
      });
    }
    if (seen.has(name)) throw new LoadError(key, `${sourceName}: weight ${JSON.stringify(name)} appears twice (as ${JSON.stringify(key)})`, { argument: key });
    const info = src.info(key);
    const want = p.tensor.shape;
    if (info.shape.length !== want.length || info.shape.some((d, i) => d !== want[i]))
      throw new LoadError(key, `${sourceName}: weight ${JSON.stringify(key)} has shape [${info.shape.join(', ')}], the model expects [${want.join(', ')}]`, {
        argument: key,
        expected: `[${want.join(', ')}]`,
        got: `[${info.shape.join(', ')}]`,
        hint: rules.freshOk(name) ? 'a head of another size: pass numLabels to match it, or drop the head from the checkpoint' : 'the checkpoint does not match config.json',
      });
    const slot = p.tensor.dtype === 'bfloat16' && p.tensor.device !== 'cpu' ? bf16Slots(model).get(name) : undefined;
    if (slot) {
      // a bfloat16 weight on a device: converted as it is uploaded (Tensor.set writes float32 storage only)
      const host = Tensor.from(src.readFloat32(key), want);
      try {
        const t = host.to(slot.tensor.device, { dtype: 'bfloat16' });
        slot.tensor.dispose();
        slot.tensor = t;
      } finally {
        host.dispose();
      }
    } else p.tensor.set(src.readFloat32(key));
    seen.add(name);
    loaded.push(name);
  }
  const fresh: string[] = [];
  let s = seed;
  for (const [name, p] of params) {
    if (seen.has(name)) continue;
    if (!rules.freshOk(name)) throw new LoadError(name, `${sourceName}: missing weight ${JSON.stringify(name)}`, { argument: name, hint: 'the checkpoint is incomplete or belongs to another architecture' });
    if (name.endsWith('.bias')) p.tensor.set(new Float32Array(p.tensor.size));
    else {
      using r = Tensor.randn(p.tensor.shape, { seed: s++, std });
      p.tensor.set(r.toArray());
    }
    fresh.push(name);
  }
  return { loaded, fresh, dropped, source: sourceName };
}

/**
 * Refuses a config.json that describes a model far larger than its checkpoint before anything is
 * allocated: the token embedding, the position embeddings, every layer's query projection and
 * MLP are never fresh, so they are a lower bound on the values the weight files must hold. Without
 * this, a corrupt size (num_hidden_layers 2147483647) builds the model first and runs out of
 * memory or time.
 */
function checkConfigFitsWeights(c: ModelConfig, src: TensorSource, cfgPath: string): void {
  const h = c.hiddenSize;
  const least =
    c.vocabSize * h + (c.positions === 'rope' ? 0 : c.maxPositionEmbeddings * h) + c.typeVocabSize * h + c.numLayers * (c.numHeads * c.headDim * h + 2 * h * c.intermediateSize);
  let held = 0;
  for (const name of src.names) held += src.info(name).shape.reduce((a, b) => a * b, 1);
  if (least > held)
    throw new ConfigError(`config.json describes a model of at least ${least} weights, but the checkpoint holds ${held} values`, {
      file: cfgPath,
      hint: 'config.json does not belong to these weights, or one of its sizes is corrupt',
    });
}

/** The T5 form of checkConfigFitsWeights: the embedding, every attention's q and every FF's wi and wo are never fresh. */
function checkT5FitsWeights(c: T5Config, src: TensorSource, cfgPath: string): void {
  const h = c.hiddenSize;
  const inner = c.numHeads * c.headDim;
  const least = c.vocabSize * h + c.numLayers * (inner * h + 2 * h * c.intermediateSize) + c.numDecoderLayers * (2 * inner * h + 2 * h * c.intermediateSize);
  let held = 0;
  for (const name of src.names) held += src.info(name).shape.reduce((a, b) => a * b, 1);
  if (least > held)
    throw new ConfigError(`config.json describes a model of at least ${least} weights, but the checkpoint holds ${held} values`, {
      file: cfgPath,
      hint: 'config.json does not belong to these weights, or one of its sizes is corrupt',
    });
}

/** A model with a report of how its weights were loaded. */
export type LoadedModel = TransformerModel & { readonly loadReport: LoadReport };

/**
 * Loads a Hugging Face folder or a llama2.c `.bin` checkpoint for a task.
 * Weights are read lazily tensor by tensor (F16/BF16 convert to float32).
 *
 * The model is returned in eval mode (dropout off), as transformers' `from_pretrained` does, so
 * its logits are the checkpoint's; training code switches it to train mode (`model.train()`) —
 * the Trainer's tasks do so before every training forward.
 */
export function loadModel(path: string, options: LoadOptions = {}): LoadedModel {
  if (typeof path !== 'string' || path.length === 0) invalidArgument('path', 'a folder or a .bin file path', describe(path));
  if (options === null || typeof options !== 'object') invalidArgument('options', 'an object', describe(options));
  const seed = options.seed === undefined ? 0 : checkInteger(options.seed, 'seed', 0, 2 ** 40);
  if (options.dtype !== undefined && options.dtype !== 'float32' && options.dtype !== 'bfloat16') invalidArgument('dtype', "'float32' or 'bfloat16'", describe(options.dtype));
  const device = options.device === undefined ? 'cpu' : resolveDevice(options.device).device;
  const checkpointing = options.checkpointing === undefined ? false : checkBoolean(options.checkpointing, 'checkpointing');
  const act = options.activations ?? 'float32';
  if (act !== 'float32' && act !== 'bfloat16') invalidArgument('activations', "'float32' or 'bfloat16'", describe(options.activations));
  if (act === 'bfloat16' && device !== 'cuda') invalidArgument('activations', "'float32' on the CPU (bf16 activations are a cuda storage)", "'bfloat16'");
  let isDir: boolean;
  try {
    isDir = statSync(path).isDirectory();
  } catch (e) {
    throw new FileError(path, `cannot open: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
  let config: ArchitectureConfig;
  let src: TensorSource;
  let task: Task;
  let numLabels: number | undefined = options.numLabels;
  if (isDir) {
    const cfgPath = join(path, 'config.json');
    const json = readJsonFile(cfgPath);
    const j = json as Record<string, unknown>;
    if (isT5Json(json)) {
      if (options.task !== undefined && options.task !== 'seq2seq-lm') invalidArgument('task', "'seq2seq-lm' for a T5 model", describe(options.task));
      src = openSafetensors(path);
      const t5c = t5ConfigFromHf(j, cfgPath, src.names.includes('lm_head.weight'));
      checkT5FitsWeights(t5c, src, cfgPath);
      // T5 loads in float32 without checkpointing, on the CPU or straight to the device (one tensor at a time).
      if ((options.dtype ?? 'float32') !== 'float32') invalidArgument('dtype', "'float32' for a T5 model", describe(options.dtype));
      if (checkpointing) invalidArgument('checkpointing', 'false for a T5 model (no checkpointed blocks in the encoder-decoder)', 'true');
      return finishLoad(t5c, src, 'seq2seq-lm', undefined, seed, path, options, device, checkpointing);
    }
    const mc = parseModelConfig(json, cfgPath);
    config = fromModelConfig(mc, j, cfgPath);
    task = options.task ?? taskFromConfig(j) ?? (config.family === 'bert' ? 'sequence-classification' : 'causal-lm');
    if (numLabels === undefined && task !== 'causal-lm') numLabels = numLabelsOf(j);
    src = openSafetensors(path);
    checkConfigFitsWeights(mc, src, cfgPath);
  } else {
    const l = openLlama2c(path);
    config = fromModelConfig(l.config);
    src = l;
    task = options.task ?? 'causal-lm';
  }
  return finishLoad(config, src, task, numLabels, seed, path, options, device, checkpointing);
}

/** The checkpoint keys loadWeights drops without reading, for the device pre-check's bound (T5's tied copies of the embedding). */
function droppedKeys(config: ArchitectureConfig, src: TensorSource, task: Task): (key: string) => boolean {
  if (config.family !== 't5') return () => false;
  const rules = rulesFor(config, task);
  // without shared.weight, the encoder's copy is the one loaded as the shared embedding
  const alias = src.names.includes('shared.weight') ? null : 'encoder.embed_tokens.weight';
  return (k) => k !== alias && rules.otherHead(k);
}

function finishLoad(config: ArchitectureConfig, src: TensorSource, task: Task, numLabels: number | undefined, seed: number, path: string, options: LoadOptions, device: Device, checkpointing: boolean): LoadedModel {
  const dtype = options.dtype ?? 'float32';
  if (device !== 'cpu') {
    checkDeviceDtypes(src, path, device);
    checkDeviceFits(`loading ${path}`, deviceBytesOf(src, dtype, droppedKeys(config, src, task)));
  }
  let model: TransformerModel | null = null;
  try {
    // On a device the weights are made there in their storage dtype and filled tensor by tensor;
    // on the CPU the bf16 weights are cast after loading (as before).
    const act = options.activations ?? 'float32';
    model = createModel(config, { task, ...(numLabels === undefined ? {} : { numLabels }), seed, uninitialised: true, checkpointing, ...(device === 'cpu' ? {} : { device, dtype }), ...(act === 'float32' ? {} : { activations: act }) });
    const report = loadWeights(model, src, path, seed);
    model.eval();
    if (device === 'cpu' && dtype === 'bfloat16') freezeLinearsBf16(model);
    return Object.assign(model, { loadReport: report });
  } catch (e) {
    model?.dispose();
    throw withOomContext(`loading ${path}`, e);
  }
}

