/**
 * Pretraining of the demo's small LLaMA as a causal language model on corpus paragraphs.
 *
 * The training text is one token stream (`<s> paragraph </s>` in a seeded order); each step
 * reads `batchSize` windows of `seqLen` tokens at seeded random offsets and takes one AdamW
 * step (linear warm-up, cosine decay). The held-out loss is measured on consecutive windows of
 * a separate stream, next to the loss of a unigram model (token frequencies of the training
 * stream, add-one smoothed) on the same targets. The model is built from the config.json it
 * will be saved with, so a reloaded folder computes the same logits.
 */
import { describe, invalidArgument, KfacError } from '../errors.js';
import { configFromHf } from '../models/config.js';
import { createModel } from '../models/load.js';
import type { TransformerModel } from '../models/base.js';
import { AdamW } from '../optim/adamw.js';
import { warmupCosine } from '../optim/schedule.js';
import { BOS_ID, EOS_ID, PAD_ID } from './bpe.js';
import { rng } from '../util/random.js';
import { Trainer, type TrainerTask } from '../train/trainer.js';

export interface PretrainHyperparameters {
  readonly vocabSize: number;
  readonly hiddenSize: number;
  readonly intermediateSize: number;
  readonly numLayers: number;
  readonly numHeads: number;
  /** Positions per training window (and the model's max_position_embeddings). */
  readonly seqLen: number;
  readonly batchSize: number;
  readonly steps: number;
  readonly lr: number;
  readonly warmup: number;
  readonly weightDecay: number;
  readonly seed: number;
}

export interface PretrainProgress {
  readonly phase: 'tokenizer' | 'pretrain' | 'evaluate' | 'save';
  readonly step: number;
  readonly steps: number;
  /** Running mean of the recent training losses. */
  readonly loss?: number;
  readonly message: string;
}

export interface PretrainResult {
  readonly model: TransformerModel;
  readonly configJson: Record<string, unknown>;
  /** Mean training loss over the last tenth of the steps. */
  readonly trainLoss: number;
  readonly heldOutLoss: number;
  readonly unigramLoss: number;
  readonly firstLoss: number;
  readonly seconds: number;
  readonly tokensSeen: number;
}

/** Aborted by the caller's signal (e.g. Ctrl-C). */
export class AbortedError extends KfacError {
  constructor(message = 'pretraining was aborted') {
    super('ERR_ABORTED', message);
  }
}

export { rng, shuffled } from '../util/random.js';

/** The Hugging Face config.json (transformers v4 spellings) of the demo model. */
export function llamaConfigJson(hp: PretrainHyperparameters): Record<string, unknown> {
  return {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    vocab_size: hp.vocabSize,
    hidden_size: hp.hiddenSize,
    intermediate_size: hp.intermediateSize,
    num_hidden_layers: hp.numLayers,
    num_attention_heads: hp.numHeads,
    num_key_value_heads: hp.numHeads,
    hidden_act: 'silu',
    max_position_embeddings: hp.seqLen,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    rope_scaling: null,
    attention_bias: false,
    attention_dropout: 0,
    mlp_bias: false,
    tie_word_embeddings: true,
    initializer_range: 0.02,
    bos_token_id: BOS_ID,
    eos_token_id: EOS_ID,
    pad_token_id: PAD_ID,
    torch_dtype: 'float32',
    use_cache: true,
  };
}

/** `<s> ids </s>` of every text, concatenated. */
export function tokenStream(encoded: readonly (readonly number[])[]): Int32Array {
  const out = new Int32Array(encoded.reduce((n, e) => n + e.length + 2, 0));
  let k = 0;
  for (const e of encoded) {
    out[k++] = BOS_ID;
    for (const id of e) out[k++] = id;
    out[k++] = EOS_ID;
  }
  return out;
}

/** Cross-entropy (nats) of a unigram model fitted on `train` (add-one smoothed), on the targets of `held`'s windows. */
export function unigramLoss(train: Int32Array, held: Int32Array, vocabSize: number, seqLen: number): number {
  const counts = new Float64Array(vocabSize).fill(1);
  for (const id of train) counts[id]! += 1;
  const total = train.length + vocabSize;
  let sum = 0;
  let n = 0;
  for (let w = 0; (w + 1) * seqLen <= held.length; w++)
    for (let t = 1; t < seqLen; t++) {
      sum -= Math.log(counts[held[w * seqLen + t]!]! / total);
      n++;
    }
  return n ? sum / n : NaN;
}

/** Mean next-token loss of the model on consecutive windows of `held` (eval mode). */
export function heldOutLoss(model: TransformerModel, held: Int32Array, seqLen: number, batchSize: number, maxWindows = 64): number {
  const windows = Math.min(maxWindows, Math.floor(held.length / seqLen));
  if (windows === 0) invalidArgument('held', `at least ${seqLen} tokens`, `${held.length}`);
  const wasTraining = model.training;
  model.eval();
  let sum = 0;
  let count = 0;
  try {
    for (let w = 0; w < windows; w += batchSize) {
      const B = Math.min(batchSize, windows - w);
      const ids = held.slice(w * seqLen, (w + B) * seqLen);
      const out = model.forward({ inputIds: ids, shape: [B, seqLen], labels: ids });
      sum += out.loss! * out.count;
      count += out.count;
    }
  } finally {
    model.train(wasTraining);
  }
  return sum / count;
}

/** Sizes and counts must be positive integers, rates finite and non-negative, the width a multiple of the heads. */
export function checkHyperparameters(hp: PretrainHyperparameters): void {
  const ints = ['vocabSize', 'hiddenSize', 'intermediateSize', 'numLayers', 'numHeads', 'seqLen', 'batchSize', 'steps'] as const;
  for (const k of ints) if (!Number.isInteger(hp[k]) || hp[k] < 1) invalidArgument(`hyperparameters.${k}`, 'a positive integer', describe(hp[k]));
  for (const k of ['lr', 'weightDecay'] as const) if (!Number.isFinite(hp[k]) || hp[k] < 0) invalidArgument(`hyperparameters.${k}`, 'a finite number ≥ 0', describe(hp[k]));
  for (const k of ['warmup', 'seed'] as const) if (!Number.isInteger(hp[k]) || hp[k] < 0) invalidArgument(`hyperparameters.${k}`, 'a non-negative integer', describe(hp[k]));
  if (hp.hiddenSize % hp.numHeads !== 0 || (hp.hiddenSize / hp.numHeads) % 2 !== 0)
    invalidArgument('hyperparameters.hiddenSize', `a multiple of 2·numHeads (${2 * hp.numHeads})`, String(hp.hiddenSize));
}

export interface PretrainOptions {
  hp: PretrainHyperparameters;
  train: Int32Array;
  held: Int32Array;
  onProgress?: (p: PretrainProgress) => void;
  signal?: AbortSignal;
}

/**
 * The pretraining as a TrainerTask: one endless stream of batches of `batchSize` windows of
 * `seqLen` tokens at seeded random offsets (the Trainer stops it after `steps`), the next-token
 * loss in train mode, and the held-out loss as the evaluation.
 */
class PretrainTask implements TrainerTask<Int32Array> {
  constructor(
    readonly model: TransformerModel,
    readonly hp: PretrainHyperparameters,
    readonly train: Int32Array,
    readonly held: Int32Array,
    readonly beforeEvaluate: () => void,
  ) {}
  *batches(): Iterable<Int32Array> {
    const r = rng(this.hp.seed + 17);
    const { seqLen: T, batchSize: B } = this.hp;
    const ids = new Int32Array(B * T);
    for (;;) {
      for (let b = 0; b < B; b++) {
        const off = Math.floor(r() * (this.train.length - T));
        ids.set(this.train.subarray(off, off + T), b * T);
      }
      yield ids;
    }
  }
  lossAndBackward(ids: Int32Array): { loss: number; batchSize: number } {
    const { seqLen: T, batchSize: B } = this.hp;
    if (!this.model.training) this.model.train();
    const loss = this.model.forward({ inputIds: ids, shape: [B, T], labels: ids }).loss!;
    if (Number.isFinite(loss)) this.model.backward();
    return { loss, batchSize: B };
  }
  zeroGrad(): void {
    this.model.zeroGrad();
  }
  grads() {
    return this.model.trainableParameters().flatMap((p) => (p.grad ? [p.grad] : []));
  }
  evaluate(): { loss: number; metrics: Record<string, number> } {
    this.beforeEvaluate();
    return { loss: heldOutLoss(this.model, this.held, this.hp.seqLen, this.hp.batchSize), metrics: {} };
  }
}

/** Trains a fresh model with the Trainer (AdamW, warm-up then cosine decay); yields to the event loop between steps. */
export async function pretrain(o: PretrainOptions): Promise<PretrainResult> {
  const { hp, train, held } = o;
  if (train.length < hp.seqLen + 1) invalidArgument('train', `a token stream longer than seqLen (${hp.seqLen})`, `${train.length} tokens`);
  checkHyperparameters(hp);
  const configJson = llamaConfigJson(hp);
  const model = createModel(configFromHf(configJson), { seed: hp.seed });
  const opt = new AdamW(model.trainableParameters(), { lr: warmupCosine(hp.lr, hp.warmup, hp.steps, 0.1), weightDecay: hp.weightDecay, betas: [0.9, 0.95] });
  const start = performance.now();
  const losses: number[] = [];
  let recent = 0;
  const task = new PretrainTask(model, hp, train, held, () =>
    o.onProgress?.({ phase: 'evaluate', step: hp.steps, steps: hp.steps, message: 'evaluating on held-out speeches' }),
  );
  const trainer = new Trainer(task, { step: () => opt.step() }, {
    maxSteps: hp.steps,
    handleSigint: false,
    onEvent: (e) => {
      if (e.kind !== 'step' || !Number.isFinite(e.loss)) return;
      const step = e.step - 1;
      losses.push(e.loss);
      recent = step === 0 ? e.loss : 0.9 * recent + 0.1 * e.loss;
      const eta = ((performance.now() - start) / 1000 / (step + 1)) * (hp.steps - step - 1);
      o.onProgress?.({ phase: 'pretrain', step: step + 1, steps: hp.steps, loss: recent, message: `pretraining the demo model: step ${step + 1}/${hp.steps}  loss ${recent.toFixed(3)}  ETA ${eta.toFixed(0)}s` });
    },
  });
  const stop = () => trainer.requestStop();
  o.signal?.addEventListener('abort', stop);
  try {
    if (o.signal?.aborted) throw new AbortedError();
    const fit = await trainer.fit();
    if (fit.interrupted) throw new AbortedError();
    if (fit.diverged) {
      const last = fit.history.at(-1);
      throw new KfacError('ERR_NOT_FINITE', `pretraining diverged at step ${fit.state.step} (loss ${last?.kind === 'step' ? last.loss : NaN})`);
    }
    const evaluation = [...fit.history].reverse().find((e) => e.kind === 'eval');
    const tail = losses.slice(-Math.max(1, Math.floor(losses.length / 10)));
    return {
      model,
      configJson,
      trainLoss: tail.reduce((a, b) => a + b, 0) / tail.length,
      heldOutLoss: evaluation?.loss ?? heldOutLoss(model, held, hp.seqLen, hp.batchSize),
      unigramLoss: unigramLoss(train, held, hp.vocabSize, hp.seqLen),
      firstLoss: losses[0]!,
      seconds: (performance.now() - start) / 1000,
      tokensSeen: hp.steps * hp.batchSize * hp.seqLen,
    };
  } catch (e) {
    model.dispose();
    throw e;
  } finally {
    o.signal?.removeEventListener('abort', stop);
    opt.dispose();
  }
}
