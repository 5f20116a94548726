/** `kfac-peft train --model … --data … [--optimizer kfac|adamw|sgd] [--newton-clip N] …` */
import { join } from 'node:path';

import { executeRun, monitorOf, prepareRun } from '../../train/run.js';
import { writeReport } from '../../train/report.js';
import { curveOf } from '../../train/compare.js';
import { runSummary, readLog } from '../../train/run.js';
import { setNumThreads } from '../../runtime.js';
import { parseArgs, UsageError } from '../args.js';
import { withDevice } from '../device.js';
import { checkOutDir, defaultOutDir, savedRunConfig } from '../run-common.js';
import { completeRun, resumedRun, runFlagKinds, runFlagsHelp, runOverrides } from '../run-flags.js';
import { formatDuration, TrainDisplay } from '../train-display.js';

export const TRAIN_USAGE = `usage: kfac-peft train --model <dir|file.bin> --data <dir|file> [options]
       kfac-peft train --resume --out DIR [options to change]

Fine-tunes LoRA adapters of the model on the data, with a live display on stderr, and writes to --out:
metrics.jsonl (one line per step and evaluation), adapter/ (PEFT format), checkpoint-best/,
run.json (summary), report.html with SVG plots. Ctrl-C saves checkpoint-interrupted/ (exit 130);
--save-every N publishes full checkpoints to checkpoints/step-<N>/ (a crash or kill loses at most N
steps); --resume continues from the newest complete one, with the run's own options (its
config.json): give only --out, and any option you mean to change (each change is printed).

options:
  --peft lora|ia3|bitfit|adapter|prefix|prompt   the parameter-efficient method (default lora)
  --out DIR                    output folder (default runs/train-<date>); must be empty unless --overwrite
  --overwrite | --resume       write into an existing folder / continue its run from the newest checkpoint
  --save-every N               a full checkpoint (adapter, optimizer, trainer state, data position,
                               RNG state) every N steps, each folder published by one rename
  --keep-last K                keep only the newest K periodic checkpoints (default: all)
  --threads N                  CPU threads (default: all the process may use)
  --json                       print the summary as JSON on stdout
  --quiet                      no live display
${runFlagsHelp()}
`;

export const COMMON_FLAGS = { peft: 'string', out: 'string', overwrite: 'boolean', threads: 'int', json: 'boolean', quiet: 'boolean' } as const;

export function checkPeft(v: unknown): void {
  if (v !== undefined && !['lora', 'ia3', 'bitfit', 'adapter', 'prefix', 'prompt'].includes(v as string)) throw new UsageError(`--peft: expected lora | ia3 | bitfit | adapter | prefix | prompt, got ${JSON.stringify(v)}`);
}

export async function trainCommand(argv: readonly string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(TRAIN_USAGE);
    return 0;
  }
  const { positional, flags } = parseArgs(argv, { ...runFlagKinds(), ...COMMON_FLAGS, resume: 'boolean', 'save-every': 'int', 'keep-last': 'int' });
  if (positional.length > 0) throw new UsageError(`train takes no positional arguments, got ${positional.join(' ')}`);
  checkPeft(flags['peft']);
  if (flags['overwrite'] && flags['resume']) throw new UsageError('--overwrite and --resume exclude each other');
  if (flags['keep-last'] !== undefined && flags['save-every'] === undefined) throw new UsageError('--keep-last needs --save-every');
  if (flags['resume'] && flags['out'] === undefined) throw new UsageError('--resume needs --out, the folder of the run to continue');
  const out = (flags['out'] as string | undefined) ?? defaultOutDir('train');
  const quiet = !!flags['quiet'];
  const given = runOverrides(flags);
  const fresh = flags['resume'] ? undefined : completeRun(given); // a usage error before the folder is looked at
  checkOutDir(out, { overwrite: !!flags['overwrite'], resume: !!flags['resume'] });
  const saved = flags['resume'] ? savedRunConfig(out) : undefined;
  if (flags['resume'] && !saved && (!given.model || !given.data)) throw new UsageError(`--resume: ${out} has no config.json (the run's options): give them again, --model and --data with the rest`);
  const config = withDevice(fresh ?? (saved ? resumedRun(saved.config, saved.file, given, (line) => process.stderr.write(`--resume: ${line}\n`)) : completeRun(given)), quiet);
  if (flags['threads'] !== undefined) setNumThreads(flags['threads'] as number);
  const prepared = prepareRun(config);
  const d = prepared.data;
  if (!quiet)
    process.stderr.write(
      `${config.name}: ${config.model} on ${d.source} (${d.kind}, ${Math.min(d.train.length, config.trainLimit ?? Infinity)} train / ${Math.min(d.dev.length, config.evalLimit ?? Infinity)} dev${d.kind === 'causal-lm' ? ' documents' : ''}), LoRA r=${config.loraR}, out ${out}\n`,
    );
  const display = new TrainDisplay(config.name, monitorOf(d).monitor, process.stderr, quiet);
  const result = await executeRun(prepared, out, {
    onEvent: (e, total) => display.event(e, total),
    resume: !!flags['resume'],
    onResume: (dir, step) => quiet || process.stderr.write(`resuming from ${dir} (step ${step})\n`),
    ...(flags['save-every'] ? { saveEvery: flags['save-every'] as number } : {}),
    ...(flags['keep-last'] ? { keepLast: flags['keep-last'] as number } : {}),
  });
  display.clear();
  const s = runSummary(result);
  const history = readLog(join(out, 'metrics.jsonl'));
  writeReport(out, {
    title: `${config.name} — ${d.source}`,
    metricName: result.monitor,
    mode: result.mode,
    runs: [curveOf(config.name, history, result.monitor)],
    details: [`model ${config.model}`, `data ${d.source}`, `seed ${config.seed}`, `command kfac-peft train ${argv.join(' ')}`],
  });
  if (flags['json']) process.stdout.write(JSON.stringify({ ...s, out }, null, 2) + '\n');
  else {
    const best = s.best ? `${s.best.value.toPrecision(4)} at step ${s.best.step}` : '–';
    process.stdout.write(
      `${s.name}: ${s.steps} steps in ${formatDuration(result.fit.state.elapsedMs)} (${s.msPerStep.toFixed(1)} ms/step); final ${s.monitor} ${s.final?.toPrecision(4) ?? '–'}, best ${best}\n` +
        (s.interrupted ? `interrupted: checkpoint saved in ${join(out, 'checkpoint-interrupted')}; continue with --resume --out ${out}\n` : `adapter: ${join(out, 'adapter')}\nreport: ${join(out, 'report.html')}\n`),
    );
  }
  if (s.diverged) {
    process.stderr.write(`kfac-peft: the run diverged (non-finite loss at step ${s.steps + 1}); lower --lr or add --newton-clip / --grad-clip\n`);
    return 1;
  }
  return s.interrupted ? 130 : 0;
}
