/**
 * `kfac-peft bench step [--shape bert-small|bert-base|llama-125m|stories260k|t5-small|flan-t5-small
 *   | --model DIR] [--peft lora|adapter|prefix|prompt|ia3|bitfit] [--optimizer adamw|kfac]
 *   [--dtype float32|bfloat16] [--threads N] [--batch B] [--seq T] [--target-seq N] [--rounds R]
 *   [--steps S] [--peer torch] [--profile] [--json]`
 */
import { existsSync } from 'node:fs';

import { runStep, STEP_METHODS, STEP_SHAPES, type StepReport } from '../../bench/step.js';
import { info } from '../../runtime.js';
import { parseArgs, UsageError } from '../args.js';
import { Progress } from '../progress.js';
import { formatTable } from '../table.js';

const FLAGS = {
  shape: 'string',
  model: 'string',
  peft: 'string',
  optimizer: 'string',
  dtype: 'string',
  threads: 'int',
  batch: 'int',
  seq: 'int',
  'target-seq': 'int',
  rounds: 'int',
  steps: 'int',
  peer: 'string',
  profile: 'boolean',
  json: 'boolean',
} as const;

export function benchStepUsage(): string {
  return `usage: kfac-peft bench step [--shape ${Object.keys(STEP_SHAPES).join('|')} | --model DIR] [--peft ${STEP_METHODS.join('|')}] [--optimizer adamw|kfac] [--dtype float32|bfloat16] [--threads N] [--batch B] [--seq T] [--target-seq N] [--rounds R] [--steps S] [--peer torch] [--profile] [--json]`;
}

function oneOf<T extends string>(v: unknown, name: string, allowed: readonly T[], fallback: T): T {
  if (v === undefined) return fallback;
  if (!allowed.includes(v as T)) throw new UsageError(`--${name}: one of ${allowed.join('|')}, got ${JSON.stringify(v)}\n${benchStepUsage()}`);
  return v as T;
}

function bounded(v: unknown, name: string, lo: number, hi: number, fallback: number): number {
  if (v === undefined) return fallback;
  const n = v as number;
  if (n < lo || n > hi) throw new UsageError(`--${name}: ${lo} to ${hi}, got ${n}`);
  return n;
}

/** `bench step --help`: the usage and every option. */
export function benchStepHelp(): string {
  return `${benchStepUsage()}

One training step of a PEFT method (forward, backward, optimizer) on a named shape with random
weights, or on a model folder, timed in rounds: the method and optimizer at the defaults of
\`train --peft X --optimizer O\` (K-FAC with its blocks for the method, Newton-step clipping and
adaptive damping), at a constant learning rate. T5 shapes run a seq2seq LM step (source and
target ids, labels). With --peer torch, PyTorch + transformers + PEFT's same method on the same
weights in alternating rounds (KFAC_PEER_PYTHON names the python), and the ratio.

options:
  --shape S          ${Object.keys(STEP_SHAPES).join(', ')} (default bert-small)
  --model DIR        a model folder instead of a shape
  --peft M           ${STEP_METHODS.join(', ')} (default lora)
  --optimizer O      adamw (default) or kfac
  --dtype D          float32 (default) or bfloat16 frozen base weights
  --threads N        worker threads
  --batch B, --seq T the batch shape
  --target-seq N     target tokens per example of a seq2seq model (default seq/4)
  --rounds R         timed rounds (alternating with the peer)
  --steps S          steps per round
  --peer torch       time PyTorch on the same weights
  --profile          time per op family
  --json             the report as JSON on stdout
`;
}

export async function benchStepCommand(argv: readonly string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(benchStepHelp());
    return 0;
  }
  const { positional, flags } = parseArgs(argv, FLAGS);
  if (positional.length) throw new UsageError(`bench step takes no positional arguments, got ${positional.join(' ')}\n${benchStepUsage()}`);
  if (flags['shape'] !== undefined && flags['model'] !== undefined) throw new UsageError('--shape and --model exclude each other');
  const model = flags['model'] as string | undefined;
  if (model !== undefined && !existsSync(model)) throw new UsageError(`--model: ${model} does not exist`);
  const shape = model ? undefined : oneOf(flags['shape'], 'shape', Object.keys(STEP_SHAPES), 'bert-small');
  const progress = new Progress();
  let r: StepReport;
  try {
    r = await runStep({
      ...(shape ? { shape } : {}),
      ...(model ? { model } : {}),
      peft: oneOf(flags['peft'], 'peft', STEP_METHODS, 'lora'),
      optimizer: oneOf(flags['optimizer'], 'optimizer', ['adamw', 'kfac'] as const, 'adamw'),
      dtype: oneOf(flags['dtype'], 'dtype', ['float32', 'bfloat16'] as const, 'float32'),
      threads: bounded(flags['threads'], 'threads', 1, 256, info().cpu.defaultThreads),
      batch: bounded(flags['batch'], 'batch', 1, 4096, 8),
      seq: bounded(flags['seq'], 'seq', 1, 8192, 128),
      ...(flags['target-seq'] !== undefined ? { targetSeq: bounded(flags['target-seq'], 'target-seq', 1, 8192, 32) } : {}),
      rounds: bounded(flags['rounds'], 'rounds', 1, 1000, 5),
      stepsPerRound: bounded(flags['steps'], 'steps', 1, 1000, 2),
      peer: flags['peer'] === undefined ? undefined : oneOf(flags['peer'], 'peer', ['torch'] as const, 'torch'),
      profile: !!flags['profile'],
      progress: (m) => progress.update(m),
    });
  } finally {
    progress.done();
  }
  if (flags['json']) {
    process.stdout.write(JSON.stringify({ machine: { cpu: info().cpu.brand, kernel: info().cpu.kernel, node: process.version }, ...r }, null, 2) + '\n');
    return 0;
  }
  const load = (l: number[]) => l.map((x) => x.toFixed(2)).join(' ');
  const sizes = r.targetSeq === null ? `seq ${r.seq}` : `source ${r.seq} + target ${r.targetSeq}`;
  process.stdout.write(`one ${r.peft} step of ${r.what} (${r.task}): ${r.optimizer}, ${r.dtype}, batch ${r.batch} × ${sizes}, ${r.threads} thread(s); ${r.params} parameters, ${r.trainable} trainable${r.peerTrainable !== undefined ? ` (peer: ${r.peerTrainable})` : ''}\n`);
  const rows = [[r.ours.name, r.ours.medianMs, r.ours.meanMs, r.ours.minMs, r.ours.tokensPerSecond, r.ours.loss]];
  if (r.peer) rows.push([r.peer.name, r.peer.medianMs, r.peer.meanMs, r.peer.minMs, r.peer.tokensPerSecond, r.peer.loss]);
  process.stdout.write(formatTable(['side', 'median ms', 'mean ms', 'min ms', 'tokens/s', 'last loss'], rows) + '\n');
  if (r.ratio !== undefined) process.stdout.write(`ours/peer speed (peer median / our median): ${r.ratio.toFixed(3)}\n`);
  if (r.peerMissing) process.stdout.write(`no peer row: ${r.peerMissing}\n`);
  process.stdout.write(`load average before: ${load(r.loadBefore)}; after: ${load(r.loadAfter)}\n`);
  if (r.profile) {
    process.stdout.write('\ntime per op family (ours):\n');
    process.stdout.write(formatTable(['family', 'ms/step', 'share', 'calls/step'], r.profile.map((p) => [p.family, p.msPerStep, p.share, p.callsPerStep])) + '\n');
  }
  return 0;
}
