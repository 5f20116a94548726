/**
 * `kfac-peft bench train-step --shape llama-125m|llama-1b|llama-3b|bert-base | --config FILE [--device cuda|cpu]
 *   [--optimizer adamw|kfac] [--seq 512 --batch 8] [--dtype bfloat16] [--gradient-checkpointing]
 *   [--layers N --hidden N --vocab N] [--steps S --warmup W] [--peak-size N] [--peer torch]
 *   [--factor-every K --inverse-every M] [--flops] [--json]`
 */
import { readFileSync } from 'node:fs';

import { runTrainStep, shapeConfig, stepRunConfig, TRAIN_SHAPES, type TrainStepOptions, type TrainStepReport } from '../../bench/train-step.js';
import { countTrainStep, type TrainFlops } from '../../bench/train-flops.js';
import { parseArgs, UsageError } from '../args.js';
import { notApplicable } from '../run-flags.js';
import { withOomContext } from '../../models/index.js';
import { cliDevice } from '../device.js';
import { Progress } from '../progress.js';
import { formatTable } from '../table.js';

const FLAGS = {
  shape: 'string',
  config: 'string',
  device: 'string',
  optimizer: 'string',
  dtype: 'string',
  activations: 'string',
  'gradient-checkpointing': 'boolean',
  batch: 'int',
  seq: 'int',
  layers: 'int',
  hidden: 'int',
  vocab: 'int',
  steps: 'int',
  warmup: 'int',
  'peak-size': 'int',
  peer: 'string',
  'factor-every': 'int',
  'inverse-every': 'int',
  flops: 'boolean',
  json: 'boolean',
} as const;

export function benchTrainStepHelp(): string {
  return `usage: kfac-peft bench train-step --shape ${Object.keys(TRAIN_SHAPES).join('|')} | --config FILE [--device cpu|cuda|auto] [--optimizer adamw|kfac] [--seq T] [--batch B] [--dtype float32|bfloat16] [--activations float32|bfloat16] [--gradient-checkpointing] [--peer torch] [--factor-every K] [--inverse-every M] [--flops] [--json]

One LoRA step (r = 16 on every linear layer of the blocks) of a random-init model of a real shape:
tokens/s, step time, peak memory, share of the step in GEMMs, TFLOP/s of the step and of its GEMMs
against a bf16 GEMM peak timed in the same run; with --optimizer kfac (K-FAC + Newton-step clipping
at its default) also AdamW on the same model and the K-FAC/AdamW step ratio. --peer torch times
PyTorch + PEFT (+ kfac-pytorch where it imports) on the same shape and device.

options:
  --shape S                  ${Object.keys(TRAIN_SHAPES).join(', ')} (this or --config)
  --config FILE              a Hugging Face config.json of a llama or bert model instead of a shape
  --device D                 cpu (default) | cuda | auto
  --optimizer O              adamw (default) | kfac
  --seq T, --batch B         the batch shape (default 512 × 8)
  --dtype D                  float32 (default) | bfloat16 frozen base weights
  --activations D            float32 (default) | bfloat16 activations (on cuda)
  --gradient-checkpointing   recompute each block in the backward
  --layers N, --hidden N, --vocab N
                             shrink the shape (tests, small machines; heads = hidden / 64)
  --steps S, --warmup W      timed and warm-up steps (default 10 and 2)
  --peak-size N              side of the square bf16 GEMM of the peak (default 8192 on cuda, 1024 on cpu)
  --peer torch               time PyTorch + PEFT in a worker (KFAC_PEER_PYTHON names the python)
  --factor-every K, --inverse-every M
                             K-FAC's factor-update and refresh intervals (default 1 and 10, as train)
  --flops                    count, do not time: the step's FLOPs and K-FAC's work per step and per
                             refresh, from a one-layer copy of the shape (seconds, any machine;
                             docs/KFAC.md#cost)
  --json                     the report as JSON on stdout
`;
}

function oneOf<T extends string>(v: unknown, name: string, allowed: readonly T[], fallback?: T): T {
  if (v === undefined && fallback !== undefined) return fallback;
  if (!allowed.includes(v as T)) throw new UsageError(`--${name}: expected ${allowed.join(' | ')}, got ${v === undefined ? 'nothing' : JSON.stringify(v)}`);
  return v as T;
}

function bounded(v: unknown, name: string, lo: number, hi: number, fallback: number | undefined): number | undefined {
  if (v === undefined) return fallback;
  const n = v as number;
  if (n < lo || n > hi) throw new UsageError(`--${name}: expected ${lo} to ${hi}, got ${n}`);
  return n;
}

const gib = (b: number | null) => (b === null ? 'not measured' : `${(b / 2 ** 30).toFixed(2)} GiB`);
const fmt = (v: number | null, d = 2) => (v === null ? 'not measured' : v.toFixed(d));

export async function benchTrainStepCommand(argv: readonly string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(benchTrainStepHelp());
    return 0;
  }
  const { positional, flags } = parseArgs(argv, FLAGS);
  if (positional.length) throw new UsageError(`bench train-step takes no positional arguments, got ${positional.join(' ')}`);
  let shape: string;
  let config: Record<string, unknown> | undefined;
  if (flags['config'] !== undefined) {
    if (flags['shape'] !== undefined) throw new UsageError('--shape and --config: give one (a named shape, or a Hugging Face config.json)');
    shape = flags['config'] as string;
    config = readStepConfig(shape);
  } else shape = oneOf(flags['shape'], 'shape', Object.keys(TRAIN_SHAPES));
  const factorEvery = bounded(flags['factor-every'], 'factor-every', 1, 1e6, undefined);
  const inverseEvery = bounded(flags['inverse-every'], 'inverse-every', 1, 1e6, undefined);
  const intervals = { ...(factorEvery === undefined ? {} : { factorEvery }), ...(inverseEvery === undefined ? {} : { inverseEvery }) };
  // the shape and its batch, shared by the count and the timed run
  const layers = bounded(flags['layers'], 'layers', 1, 256, undefined);
  const hidden = bounded(flags['hidden'], 'hidden', 8, 65536, undefined);
  const vocab = bounded(flags['vocab'], 'vocab', 2, 1 << 20, undefined);
  const shaped = {
    shape,
    ...(config ? { config } : {}),
    ...(layers === undefined ? {} : { layers }),
    ...(hidden === undefined ? {} : { hidden }),
    ...(vocab === undefined ? {} : { vocab }),
    batch: bounded(flags['batch'], 'batch', 1, 4096, 8)!,
    seq: bounded(flags['seq'], 'seq', 2, 32768, 512)!,
  };
  // counting needs no device: a count asked for cuda on a machine without one is still a count
  if (flags['flops']) return countCommand(shaped, !!flags['json'], intervals);
  const optimizer = oneOf(flags['optimizer'], 'optimizer', ['adamw', 'kfac'] as const, 'adamw');
  // K-FAC's intervals time nothing in an AdamW row: refused as train refuses them (the count above takes them with any optimizer)
  for (const key of Object.keys(intervals) as (keyof typeof intervals)[]) {
    const why = notApplicable(key, optimizer, 'lora');
    if (why) throw new UsageError(why);
  }
  const device = cliDevice(flags['device'] === undefined ? undefined : oneOf(flags['device'], 'device', ['cpu', 'cuda', 'auto'] as const), !!flags['json']);
  const progress = new Progress();
  const t0 = Date.now();
  let r: TrainStepReport;
  try {
    r = await runTrainStep({
      ...shaped,
      device,
      optimizer,
      dtype: oneOf(flags['dtype'], 'dtype', ['float32', 'bfloat16'] as const, 'float32'),
      activations: oneOf(flags['activations'], 'activations', ['float32', 'bfloat16'] as const, 'float32'),
      checkpointing: !!flags['gradient-checkpointing'],
      steps: bounded(flags['steps'], 'steps', 1, 10000, 10)!,
      warmup: bounded(flags['warmup'], 'warmup', 0, 1000, 2)!,
      peakSize: bounded(flags['peak-size'], 'peak-size', 16, 32768, device === 'cuda' ? 8192 : 1024)!,
      peer: flags['peer'] === undefined ? undefined : oneOf(flags['peer'], 'peer', ['torch'] as const),
      ...intervals,
      // on a terminal a live line; elsewhere (a log, the GPU check) one line per stage with the
      // time so far, so a run stopped from outside still shows where its time went
      progress: (m) => (progress.enabled ? progress.update(m) : process.stderr.write(`bench train-step ${shape} [${((Date.now() - t0) / 1000).toFixed(1)} s]: ${m}\n`)),
    });
  } catch (e) {
    throw withOomContext(`bench train-step ${shape}`, e);
  } finally {
    progress.done();
  }
  if (flags['json']) {
    process.stdout.write(JSON.stringify(r, null, 2) + '\n');
    return 0;
  }
  const load = (l: number[]) => l.map((x) => x.toFixed(2)).join(' ');
  process.stdout.write(
    `one LoRA step (r=16, all linear layers) of ${r.shape} on ${r.device} (${r.deviceName}): ${r.optimizer}, ${r.dtype}${r.activations === 'bfloat16' ? ', bf16 activations' : ''}${r.checkpointing ? ', gradient checkpointing' : ''}, batch ${r.batch} × seq ${r.seq}; ${r.params} parameters, ${r.trainable} trainable\n`,
  );
  const rows: (string | number)[][] = [
    ['step ms (median / mean / min)', `${r.stepMs.median.toFixed(1)} / ${r.stepMs.mean.toFixed(1)} / ${r.stepMs.min.toFixed(1)}`],
    ...(r.optimizer === 'kfac'
      ? [
          ['K-FAC: refreshes, damping probes and factor updates among the timed steps', `${r.refreshesTimed}, ${r.probesTimed} and ${r.capturesTimed}${r.refreshStepMs === null ? '' : ` (a refresh step ${r.refreshStepMs.toFixed(1)} ms)`}`],
          ['first step (every factor decomposed cold)', r.firstStepMs === null ? 'not measured (no warm-up step)' : `${r.firstStepMs.toFixed(1)} ms`],
        ]
      : []),
    ['tokens/s', r.tokensPerSecond.toFixed(0)],
    ['peak memory', gib(r.peakMemoryBytes)],
    ...(r.deviceCache
      ? [['device allocations per step: tensors / raw (cudaMalloc)', `${r.deviceCache.allocationsPerStep.toFixed(1)} / ${r.deviceCache.rawAllocationsPerStep.toFixed(1)} (caching ${r.deviceCache.caching ? 'on' : 'off'}; ${gib(r.deviceCache.reservedBytes)} reserved)`]]
      : []),
    ...(r.hostSyncsPerStep
      ? [['host waits on the stream per step (the bench\'s own included)', `${r.hostSyncsPerStep.run.toFixed(1)}${r.hostSyncsPerStep.adamw === null ? '' : ` (AdamW ${r.hostSyncsPerStep.adamw.toFixed(1)})`}`]]
      : []),
    ['GEMM share of the step (linear layers)', r.gemmShare === null ? 'not measured' : `${(100 * r.gemmShare).toFixed(1)} %`],
    ['step TFLOP/s (linear + attention FLOPs / step time)', fmt(r.stepTflops, 3)],
    ['GEMM TFLOP/s (linear FLOPs / time in GEMM calls)', fmt(r.gemmTflops, 3)],
    ['bf16 GEMM peak TFLOP/s', `${fmt(r.peakBf16Tflops, 3)} (${r.peakNote})`],
    ['K-FAC / AdamW step (means)', r.kfacOverAdamw === null ? 'not measured' : `${r.kfacOverAdamw.toFixed(3)} (AdamW ${r.adamwStepMs!.toFixed(1)} ms)`],
    [
      'peer, AdamW',
      r.peer
        ? `${r.peer.name}: ${r.peer.stepMs.toFixed(1)} ms, ${r.peer.tokensPerSecond.toFixed(0)} tokens/s, peak ${gib(r.peer.peakMemoryBytes)}`
        : `not measured${r.peerMissing ? ` (${r.peerMissing})` : ''}`,
    ],
    ...(r.peer && r.optimizer === 'kfac'
      ? [
          [
            'peer, kfac-pytorch',
            r.peer.kfac
              ? `${r.peer.kfac.version}: ${r.peer.kfac.stepMs.toFixed(1)} ms, ${r.peer.kfac.tokensPerSecond.toFixed(0)} tokens/s, peak ${gib(r.peer.kfac.peakMemoryBytes)}`
              : `not measured (${r.peer.kfacMissing ?? 'no reason given'})`,
          ],
        ]
      : []),
  ];
  process.stdout.write(formatTable(['', 'value'], rows) + '\n');
  if (r.kfacFlops) process.stdout.write('\n' + flopsTable(r.kfacFlops) + '\n');
  process.stdout.write(`load average before: ${load(r.loadBefore)}; after: ${load(r.loadAfter)}\n`);
  return 0;
}

const tf = (x: number) => `${(x / 1e12).toFixed(x < 1e10 ? 4 : 2)} TFLOP`;

/** K-FAC's counted work beside the model's step (docs/KFAC.md#cost). */
export function flopsTable(f: TrainFlops): string {
  const k = f.kfac;
  const model = f.model.linear + f.model.attention;
  const rows: (string | number)[][] = [
    ['model step: linear + attention (LoRA forward and backward)', `${tf(model)} (${tf(f.model.linear)} + ${tf(f.model.attention)})`],
    ['K-FAC factors: large (refreshed) / small (every step), largest n', `${k.factors.large} / ${k.factors.small}, n = ${k.factors.largestDim}`],
    [`factor updates, per capture (every ${k.factorEvery} step${k.factorEvery > 1 ? 's' : ''})`, tf(k.factorUpdates)],
    ['EKFAC second moments, per capture', tf(k.moments)],
    ['preconditioning, per step', tf(k.precondition)],
    [`refresh GEMMs, per refresh (every ${k.inverseEvery} steps)`, tf(k.refreshGemm)],
    ['refresh decompositions, Σ n³ (not in the ratio)', `${(k.refreshN3 / 1e12).toFixed(2)} × 10¹²`],
    ['small factors decomposed per step, Σ n³', `${(k.smallN3 / 1e9).toFixed(3)} × 10⁹`],
    ['K-FAC GEMM FLOPs per step, averaged over the intervals', `${tf(k.perStep)} = ${(100 * f.kfacOverModel).toFixed(1)} % of the model step`],
    [
      `intervals within ${(100 * (f.within?.budget ?? 0.15)).toFixed(0)} % of the model step (GEMMs only)`,
      f.within ? `--factor-every ${f.within.factorEvery} --inverse-every ${f.within.inverseEvery}` : 'none: the preconditioning alone is over half of it',
    ],
  ];
  return formatTable([`K-FAC work, counted (${f.layers} layers, batch ${f.batch} × seq ${f.seq})`, 'FLOPs'], rows);
}

/** `--config FILE`: a Hugging Face config.json of a LLaMA or BERT model, for its random-init step. */
function readStepConfig(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new UsageError(`--config: cannot read ${path} (${e instanceof Error ? e.message : String(e)})`);
  }
  let c: unknown;
  try {
    c = JSON.parse(text);
  } catch (e) {
    throw new UsageError(`--config: ${path} is not JSON (${e instanceof Error ? e.message : String(e)})`);
  }
  if (c === null || typeof c !== 'object' || Array.isArray(c)) throw new UsageError(`--config: ${path} holds no JSON object`);
  const t = (c as Record<string, unknown>)['model_type'];
  if (t !== 'llama' && t !== 'bert') throw new UsageError(`--config: bench train-step builds llama and bert models, ${path} has model_type ${JSON.stringify(t)}`);
  return c as Record<string, unknown>;
}

/** `--flops`: the counts alone, from a one-layer copy of the shape (no step timed). */
function countCommand(
  o: Pick<TrainStepOptions, 'shape' | 'config' | 'layers' | 'hidden' | 'vocab' | 'batch' | 'seq'>,
  json: boolean,
  intervals: { factorEvery?: number; inverseEvery?: number },
): number {
  const cfg = shapeConfig(o);
  const { shape, batch: B, seq: T } = o;
  const f = countTrainStep(cfg, B, T, stepRunConfig('kfac', intervals));
  if (json) {
    process.stdout.write(JSON.stringify({ shape, config: cfg, ...f }, null, 2) + '\n');
    return 0;
  }
  process.stdout.write(`one LoRA step (r=16, all linear layers) of ${shape}, batch ${B} × seq ${T}: K-FAC at train's defaults${intervals.factorEvery || intervals.inverseEvery ? ' but the intervals given' : ''}\n`);
  process.stdout.write(flopsTable(f) + '\n');
  return 0;
}
