/**
 * `kfac-peft bench train-step --shape llama-125m|llama-1b|llama-3b|bert-base [--device cuda|cpu]
 *   [--optimizer adamw|kfac] [--seq 512 --batch 8] [--dtype bfloat16] [--gradient-checkpointing]
 *   [--layers N --hidden N --vocab N] [--steps S --warmup W] [--peak-size N] [--peer torch] [--json]`
 */
import { runTrainStep, TRAIN_SHAPES, type TrainStepReport } from '../../bench/train-step.js';
import { parseArgs, UsageError } from '../args.js';
import { withOomContext } from '../../models/index.js';
import { cliDevice } from '../device.js';
import { Progress } from '../progress.js';
import { formatTable } from '../table.js';

const FLAGS = {
  shape: 'string',
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
  json: 'boolean',
} as const;

export function benchTrainStepHelp(): string {
  return `usage: kfac-peft bench train-step --shape ${Object.keys(TRAIN_SHAPES).join('|')} [--device cpu|cuda|auto] [--optimizer adamw|kfac] [--seq T] [--batch B] [--dtype float32|bfloat16] [--activations float32|bfloat16] [--gradient-checkpointing] [--peer torch] [--json]

One LoRA step (r = 16 on every linear layer of the blocks) of a random-init model of a real shape:
tokens/s, step time, peak memory, share of the step in GEMMs, TFLOP/s of the step and of its GEMMs
against a bf16 GEMM peak timed in the same run; with --optimizer kfac (K-FAC + Newton-step clipping
at its default) also AdamW on the same model and the K-FAC/AdamW step ratio. --peer torch times
PyTorch + PEFT (+ kfac-pytorch where it imports) on the same shape and device.

options:
  --shape S                  ${Object.keys(TRAIN_SHAPES).join(', ')} (required)
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
  const shape = oneOf(flags['shape'], 'shape', Object.keys(TRAIN_SHAPES));
  const device = cliDevice(flags['device'] === undefined ? undefined : oneOf(flags['device'], 'device', ['cpu', 'cuda', 'auto'] as const), !!flags['json']);
  const progress = new Progress();
  const t0 = Date.now();
  let r: TrainStepReport;
  try {
    const layers = bounded(flags['layers'], 'layers', 1, 256, undefined);
    const hidden = bounded(flags['hidden'], 'hidden', 8, 65536, undefined);
    const vocab = bounded(flags['vocab'], 'vocab', 2, 1 << 20, undefined);
    r = await runTrainStep({
      shape,
      device,
      optimizer: oneOf(flags['optimizer'], 'optimizer', ['adamw', 'kfac'] as const, 'adamw'),
      dtype: oneOf(flags['dtype'], 'dtype', ['float32', 'bfloat16'] as const, 'float32'),
      activations: oneOf(flags['activations'], 'activations', ['float32', 'bfloat16'] as const, 'float32'),
      checkpointing: !!flags['gradient-checkpointing'],
      batch: bounded(flags['batch'], 'batch', 1, 4096, 8)!,
      seq: bounded(flags['seq'], 'seq', 2, 32768, 512)!,
      ...(layers === undefined ? {} : { layers }),
      ...(hidden === undefined ? {} : { hidden }),
      ...(vocab === undefined ? {} : { vocab }),
      steps: bounded(flags['steps'], 'steps', 1, 10000, 10)!,
      warmup: bounded(flags['warmup'], 'warmup', 0, 1000, 2)!,
      peakSize: bounded(flags['peak-size'], 'peak-size', 16, 32768, device === 'cuda' ? 8192 : 1024)!,
      peer: flags['peer'] === undefined ? undefined : oneOf(flags['peer'], 'peer', ['torch'] as const),
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
          ['K-FAC: refreshes and damping probes among the timed steps', `${r.refreshesTimed} and ${r.probesTimed}${r.refreshStepMs === null ? '' : ` (a refresh step ${r.refreshStepMs.toFixed(1)} ms)`}`],
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
  process.stdout.write(`load average before: ${load(r.loadBefore)}; after: ${load(r.loadAfter)}\n`);
  return 0;
}
