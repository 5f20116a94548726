/**
 * `kfac-peft generate --model M [--adapter DIR] --prompt P [--max-new-tokens N] [--temperature T]
 * [--top-p P] [--top-k K] [--seed S] [--num-beams N]`: continues a prompt with a causal language model (a Hugging Face folder
 * or a llama2.c .bin with its tokenizer), streaming the text to stdout as tokens are chosen.
 * Greedy (argmax) at temperature 0, the default; seeded sampling above it.
 */
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';

import { FileError, KfacError } from '../../errors.js';
import { readJsonFile } from '../../io/safetensors.js';
import type { ArchitectureConfig } from '../../models/config.js';
import { generate, virtualTokens } from '../../models/generate.js';
import { generateSeq2Seq, loadModel, T5Model, withOomContext } from '../../models/index.js';
import { cliDevice } from '../device.js';
import { loadAdapterFor } from '../load-adapter.js';
import { prefixState } from '../../peft/prefix.js';
import { setNumThreads } from '../../runtime.js';
import { openTextCodec } from '../../train/text.js';
import { parseArgs, UsageError } from '../args.js';

export const GENERATE_USAGE = `usage: kfac-peft generate --model <dir|file.bin> --prompt TEXT [options]

Continues TEXT with a causal language model (LLaMA, Mistral, Qwen2, GPT-2 folders, or a llama2.c
.bin checkpoint with its tokenizer .bin) and streams the continuation to stdout. Greedy decoding
(argmax) at temperature 0, the default; sampling with --temperature above 0 (seeded: the same
--seed gives the same text). Stops at the model's end-of-sequence token or after N new tokens.

options:
  --model PATH           Hugging Face model folder or llama2.c .bin checkpoint (required)
  --prompt TEXT          the text to continue (required)
  --adapter DIR          an adapter folder for this base model, any method (LoRA, IA3, prompt or
                         prefix tuning, BitFit, bottleneck adapters); virtual tokens and prefixes
                         are used in generation as PEFT's generate() uses them
  --tokenizer FILE       tokenizer.json or llama2.c tokenizer .bin (default: beside the model)
  --max-new-tokens N     tokens to generate (default: 128, at most what the context leaves after
                         the prompt and an adapter's virtual tokens)
  --temperature T        0 (greedy, default) or a softmax temperature above 0 for sampling
  --top-p P              nucleus sampling: keep the likeliest tokens up to mass P, in (0, 1] (default 1)
  --top-k K              sampling from the K likeliest tokens only (default: all; applied before --top-p)
  --seed S               seed of the sampler (default 0)
  --device D             cpu (default) | cuda | auto (the GPU when usable, else the CPU with the reason)
  --dtype T              storage of the frozen base weights: float32 (default) | bfloat16
  --activations T        storage of the activations on cuda: float32 (default) | bfloat16
  --threads N            CPU threads
  --num-beams N          beam search with N beams (encoder-decoder models such as T5; default 1)
  --json                 print {prompt, promptIds, ids, text} as JSON instead of streaming

An encoder-decoder model (T5, Flan-T5) reads TEXT as its source and prints the generated target
(greedy, sampled with --temperature, or beam search with --num-beams).
`;

const FLAGS = {
  model: 'string', prompt: 'string', adapter: 'string', tokenizer: 'string', 'max-new-tokens': 'string', temperature: 'string', 'top-p': 'string', 'top-k': 'string', seed: 'string', 'num-beams': 'string', device: 'string', dtype: 'string', activations: 'string', threads: 'int', json: 'boolean',
} as const;

function number(flag: string, raw: string | undefined, ok: (v: number) => boolean, what: string): number | undefined {
  if (raw === undefined) return undefined;
  const v = raw.trim() === '' ? NaN : Number(raw);
  if (!Number.isFinite(v) || !ok(v)) throw new UsageError(`--${flag}: expected ${what}, got ${JSON.stringify(raw)}`);
  return v;
}

/** Text streamed so far is only ever extended: a partial UTF-8 character (U+FFFD at the end) waits for its next token. */
class TextStream {
  #shown = '';
  constructor(
    readonly decode: (ids: readonly number[]) => string,
    readonly prefix: readonly number[],
    readonly write: (s: string) => void,
  ) {
    this.#shown = decode(prefix);
  }
  push(ids: readonly number[], final = false): void {
    const full = this.decode([...this.prefix, ...ids]);
    if (!final && full.endsWith('\uFFFD')) return;
    if (full.startsWith(this.#shown) && full.length > this.#shown.length) {
      this.write(full.slice(this.#shown.length));
      this.#shown = full;
    }
  }
}

/**
 * The ids that end generation: every end-of-sequence id of config.json and generation_config.json
 * (Llama 3 lists several), or for a llama2.c checkpoint BOS and EOS (run.c stops at BOS).
 */
function stopTokens(modelPath: string, config: ArchitectureConfig): number[] {
  const ids = new Set<number>();
  if ('eosTokenId' in config && config.eosTokenId !== null) ids.add(config.eosTokenId);
  if (statSync(modelPath).isDirectory()) {
    for (const f of ['config.json', 'generation_config.json']) {
      const p = join(modelPath, f);
      if (!existsSync(p)) continue;
      const v = (readJsonFile(p) as Record<string, unknown> | null)?.['eos_token_id'];
      for (const id of Array.isArray(v) ? v : [v]) if (Number.isInteger(id) && (id as number) >= 0) ids.add(id as number);
    }
  } else ids.add(1);
  return [...ids];
}

export async function generateCommand(argv: readonly string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(GENERATE_USAGE);
    return 0;
  }
  const { positional, flags } = parseArgs(argv, FLAGS);
  if (positional.length > 0) throw new UsageError(`generate takes no positional arguments, got ${positional.join(' ')} (quote the prompt: --prompt "…")`);
  const modelPath = flags['model'] as string | undefined;
  const prompt = flags['prompt'] as string | undefined;
  if (!modelPath) throw new UsageError('--model is required');
  if (prompt === undefined) throw new UsageError('--prompt is required');
  const maxNew = number('max-new-tokens', flags['max-new-tokens'] as string | undefined, (v) => Number.isInteger(v) && v >= 1, 'an integer ≥ 1');
  const temperature = number('temperature', flags['temperature'] as string | undefined, (v) => v >= 0 && v <= 100, 'a number in [0, 100]') ?? 0;
  const topP = number('top-p', flags['top-p'] as string | undefined, (v) => v > 0 && v <= 1, 'a number in (0, 1]') ?? 1;
  const topK = number('top-k', flags['top-k'] as string | undefined, (v) => Number.isInteger(v) && v >= 1, 'an integer ≥ 1');
  const seed = number('seed', flags['seed'] as string | undefined, (v) => Number.isInteger(v) && v >= 0 && v < 2 ** 32, 'an integer in [0, 2^32)') ?? 0;
  if (flags['threads'] !== undefined) setNumThreads(flags['threads'] as number);

  if (existsSync(modelPath) && statSync(modelPath).isFile() && !modelPath.endsWith('.bin'))
    throw new FileError(modelPath, 'not a model: expected a Hugging Face model folder (config.json + model.safetensors) or a llama2.c .bin checkpoint');
  const beams = number('num-beams', flags['num-beams'] as string | undefined, (v) => Number.isInteger(v) && v >= 1 && v <= 64, 'an integer in [1, 64]') ?? 1;
  const dtype = flags['dtype'] as string | undefined;
  if (dtype !== undefined && dtype !== 'float32' && dtype !== 'bfloat16') throw new UsageError(`--dtype: expected float32 | bfloat16, got ${JSON.stringify(dtype)}`);
  const activations = flags['activations'] as string | undefined;
  if (activations !== undefined && activations !== 'float32' && activations !== 'bfloat16') throw new UsageError(`--activations: expected float32 | bfloat16, got ${JSON.stringify(activations)}`);
  const device = cliDevice(flags['device']);
  const model = loadModel(modelPath, { device, ...(dtype ? { dtype } : {}), ...(activations ? { activations } : {}) });
  try {
    if (model instanceof T5Model) {
      if (temperature > 0 && beams > 1) throw new UsageError('--temperature with --num-beams: sampling takes one beam (beam search is deterministic)');
      const codec = openTextCodec(modelPath, flags['tokenizer'] as string | undefined);
      const adapter = flags['adapter'] as string | undefined;
      if (adapter !== undefined) loadAdapterFor(model, adapter, modelPath);
      const ids = codec.encodeDocument(prompt);
      const gen = Array.from(generateSeq2Seq(model, ids, { maxNewTokens: maxNew ?? 32, numBeams: beams, temperature, topP, seed, ...(topK === undefined ? {} : { topK }) }));
      const end = gen.indexOf(model.config.eosTokenId ?? -1);
      const text = codec.decode((end < 0 ? gen : gen.slice(0, end)).filter((id) => id < codec.vocabSize && id !== model.config.padTokenId));
      process.stdout.write(flags['json'] ? JSON.stringify({ model: modelPath, adapter: adapter ?? null, prompt, promptIds: ids, ids: gen, text, numBeams: beams, temperature, topP, topK: topK ?? null, seed }, null, 2) + '\n' : text + '\n');
      return 0;
    }
    if (beams > 1) throw new UsageError('--num-beams: beam search is available for encoder-decoder models (T5)');
    if (model.task !== 'causal-lm')
      throw new UsageError(`--model ${modelPath}: a ${model.config.modelType} model for ${model.task} cannot generate text (it has no language-model head); use a causal LM`);
    const codec = openTextCodec(modelPath, flags['tokenizer'] as string | undefined);
    if (codec.vocabSize > model.config.vocabSize) throw new KfacError('ERR_CONFIG', `the tokenizer ${codec.source} has ${codec.vocabSize} tokens but the model ${modelPath} only ${model.config.vocabSize} embeddings: not this model's tokenizer`);
    const adapter = flags['adapter'] as string | undefined;
    if (adapter !== undefined) loadAdapterFor(model, adapter, modelPath);
    const ids = codec.encodeDocument(prompt);
    // Prompt tuning's virtual tokens and prefix tuning's prefix take positions of the context too.
    const virtual = virtualTokens(model) + (prefixState(model)?.n ?? 0);
    const ctx = model.config.maxPositions - virtual;
    const of = `the model ${modelPath} has a context of ${model.config.maxPositions} positions${virtual ? `, ${virtual} of them taken by the adapter's virtual tokens` : ''}`;
    if (ids.length === 0) throw new UsageError('--prompt: the prompt encodes to no tokens');
    if (ids.length >= ctx) throw new UsageError(`--prompt: the prompt is ${ids.length} tokens; ${of}, which leaves no room to generate`);
    if (maxNew !== undefined && ids.length + maxNew > ctx)
      throw new UsageError(`--max-new-tokens ${maxNew}: the prompt takes ${ids.length} tokens; ${of}; at most ${ctx - ids.length} new tokens fit`);
    const n = maxNew ?? Math.min(128, ctx - ids.length);
    const stop = stopTokens(modelPath, model.config);
    const json = !!flags['json'];
    // ids the tokenizer does not have (a model whose embedding table is padded beyond it) decode to nothing
    const decode = (x: readonly number[]) => codec.decode(x.filter((id) => id < codec.vocabSize));
    const out: number[] = [];
    const stream = json ? null : new TextStream(decode, ids, (s) => process.stdout.write(s));
    if (stream) process.stdout.write(prompt);
    const gen = generate(model, ids, {
      maxNewTokens: n,
      temperature,
      topP,
      ...(topK === undefined ? {} : { topK }),
      seed,
      stopTokens: stop,
      onToken: (id) => {
        if (stop.includes(id)) return;
        out.push(id);
        stream?.push(out);
      },
    });
    if (stream) {
      stream.push(out, true);
      process.stdout.write('\n');
    } else process.stdout.write(JSON.stringify({ model: modelPath, adapter: adapter ?? null, prompt, promptIds: ids, ids: Array.from(gen), text: decode(out), temperature, topP, topK: topK ?? null, seed }, null, 2) + '\n');
    return 0;
  } catch (e) {
    throw withOomContext('generating', e);
  } finally {
    model.dispose();
  }
}
