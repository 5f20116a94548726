/** `kfac-peft compare --model … --data … --runs <configs> [--seeds 1,2,3]`: optimizers side by side, one report. */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import { setNumThreads } from '../../runtime.js';
import { compareRun, compareRuns, comparisonTable, type Comparison, meanCurves } from '../../train/compare.js';
import { writeReport } from '../../train/report.js';
import { DEFAULT_OPTIMIZER, executeRun, monitorOf, prepareRun, type RunConfig } from '../../train/run.js';
import { writeJsonAtomic } from '../../train/trainer.js';
import { parseArgs, UsageError } from '../args.js';
import { checkOutDir, defaultOutDir } from '../run-common.js';
import { withDevice } from '../device.js';
import { appliesTo, completeRun, notApplicable, parseRunValue, RUN_FLAGS, runFlagKinds, runFlagsHelp, runOverrides } from '../run-flags.js';
import { formatTable } from '../table.js';
import { TrainDisplay } from '../train-display.js';
import { checkPeft, COMMON_FLAGS } from './train.js';

export const COMPARE_USAGE = `usage: kfac-peft compare --model <dir|file.bin> --data <dir|file> --runs <configs> [options]

Runs several optimizer settings on the same model, data and seeds, then writes one report to --out:
report.html (curves against steps and wall time, the table), SVGs, compare.json, and runs/<name>/
(each run's metrics.jsonl, adapter, run.json).

--runs   comma-separated runs; each is an optimizer followed by ':key=value' overrides of the options
         below, e.g. "adamw:lr=1e-3,adamw:lr=3e-3,kfac,kfac:newton-clip=1,kfac:grad-clip=1";
         or a .json file holding an array of { "optimizer": …, "lr": …, "name": … } objects.
--seeds  comma-separated seeds, each run is repeated per seed (default: --seed)
--baseline NAME  the run the others are measured against (default: the best AdamW run)
  --peft lora, --out DIR, --overwrite, --threads N, --json, --quiet as for train
shared options (each run may override them):
${runFlagsHelp()}
`;

/** Parses --runs into per-run overrides. */
export function parseRunsSpec(spec: string): Record<string, unknown>[] {
  if (spec.endsWith('.json')) {
    if (!existsSync(spec)) throw new UsageError(`--runs ${spec}: no such file`);
    let j: unknown;
    try {
      j = JSON.parse(readFileSync(spec, 'utf8'));
    } catch (e) {
      throw new UsageError(`--runs ${spec}: not valid JSON (${e instanceof Error ? e.message : String(e)})`);
    }
    if (!Array.isArray(j) || j.length === 0) throw new UsageError(`--runs ${spec}: expected a non-empty array of run objects`);
    return j.map((o, i) => {
      if (o === null || typeof o !== 'object' || Array.isArray(o)) throw new UsageError(`--runs ${spec}: entry ${i} is not an object`);
      return Object.fromEntries(Object.entries(o as Record<string, unknown>).map(([k, v]) => [k, Array.isArray(v) ? v.join(',') : String(v)]));
    });
  }
  const runs = spec.split(',').map((s) => s.trim());
  if (runs.some((r) => r === '')) throw new UsageError(`--runs: empty run in ${JSON.stringify(spec)}`);
  return runs.map((r) => {
    const [head, ...rest] = r.split(':');
    const o: Record<string, unknown> = {};
    if (head!.includes('=')) rest.unshift(head!);
    else o['optimizer'] = head;
    for (const kv of rest) {
      const eq = kv.indexOf('=');
      if (eq <= 0) throw new UsageError(`--runs: expected key=value in ${JSON.stringify(r)}, got ${JSON.stringify(kv)}`);
      o[kv.slice(0, eq)] = kv.slice(eq + 1);
    }
    return o;
  });
}

/** Options that define the model and data every run shares (the comparison is on the same model, data and seeds). */
const SHARED_ONLY = ['model', 'data', 'dev', 'seed', 'tokenizer', 'text-column', 'text-pair-column', 'label-column'];

/**
 * The runs' configurations: each run's own options over the shared ones. A shared option goes
 * only to the runs whose optimizer and PEFT method read it (`--damping` to the K-FAC runs of
 * `--runs adamw,kfac`); one that no run reads is a UsageError, and so is a run's own option that
 * its optimizer or method does not read.
 */
export function runConfigs(shared: Partial<RunConfig>, specs: Record<string, unknown>[]): RunConfig[] {
  const used = new Set<keyof RunConfig>();
  const configs = specs.map((s) => {
    const o: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(s)) {
      if (!RUN_FLAGS[k]) throw new UsageError(`--runs: unknown option ${JSON.stringify(k)} (options: ${Object.keys(RUN_FLAGS).join(', ')})`);
      if (SHARED_ONLY.includes(k)) throw new UsageError(`--runs: ${k} is shared by all runs; give it once as --${k}`);
      o[RUN_FLAGS[k].key] = parseRunValue(k, String(v));
    }
    const own = o as Partial<RunConfig>;
    const optimizer = own.optimizer ?? shared.optimizer ?? DEFAULT_OPTIMIZER;
    const peft = own.peft ?? shared.peft ?? 'lora';
    const given: Partial<RunConfig> = { ...own };
    for (const key of Object.keys(shared) as (keyof RunConfig)[]) {
      if (shared[key] === undefined || notApplicable(key, optimizer, peft)) continue;
      used.add(key);
      if (!(key in own)) (given as Record<string, unknown>)[key] = shared[key];
    }
    if (!('name' in o)) delete given.name;
    const c = completeRun(given);
    if (!('name' in o)) c.name = [`${c.optimizer} lr=${c.lr}`, ...Object.entries(s).filter(([k]) => k !== 'optimizer' && k !== 'lr').map(([k, v]) => `${k}=${String(v)}`)].join(' ');
    return c;
  });
  for (const key of Object.keys(shared) as (keyof RunConfig)[]) {
    if (shared[key] === undefined || used.has(key)) continue;
    const why = appliesTo(key);
    if (why) throw new UsageError(`${why}, and no run of --runs is one`);
  }
  const names = configs.map((c) => c.name);
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup) throw new UsageError(`--runs: two runs are both named ${JSON.stringify(dup)}; give one a name=…`);
  return configs;
}

const slug = (s: string) => s.replace(/[^A-Za-z0-9.=+-]+/g, '_').replace(/^_+|_+$/g, '');

/** The folder of one run under `<out>/runs/`. */
export function runDirName(name: string, seed: number, multiSeed: boolean): string {
  return `${slug(name)}${multiSeed ? `-seed${seed}` : ''}`;
}

export interface CompareOutcome {
  comparison: Comparison;
  interrupted: boolean;
}

/** Runs every configuration × seed into `out` and writes the report; shared by `compare` and `demo`. */
export async function runComparison(configs: RunConfig[], seeds: number[], out: string, o: { quiet?: boolean; baseline?: string; title?: string; details?: string[] } = {}): Promise<CompareOutcome> {
  const first = prepareRun(configs[0]!);
  const prepared = configs.map((c) => prepareRun(c, { data: first.data, codec: first.codec }));
  const { monitor, mode } = monitorOf(first.data);
  const runs = [];
  let interrupted = false;
  const total = prepared.length * seeds.length;
  let k = 0;
  outer: for (const p of prepared)
    for (const seed of seeds) {
      k += 1;
      const label = `[${k}/${total}] ${p.config.name}${seeds.length > 1 ? ` seed ${seed}` : ''}`;
      const display = new TrainDisplay(label, monitor, process.stderr, !!o.quiet);
      const r = await executeRun({ ...p, config: { ...p.config, seed } }, join(out, 'runs', runDirName(p.config.name, seed, seeds.length > 1)), { onEvent: (e, t) => display.event(e, t) });
      display.clear();
      runs.push(compareRun(r, seed));
      if (r.fit.interrupted) {
        interrupted = true;
        break outer;
      }
    }
  const comparison = compareRuns(runs, monitor, mode, o.baseline);
  const table = comparisonTable(comparison);
  writeJsonAtomic(join(out, 'compare.json'), { monitor, mode, baseline: comparison.baseline, seeds, rows: comparison.rows, runs: runs.map((r) => ({ ...r.summary, seed: r.seed })), configs });
  writeReport(out, {
    title: o.title ?? `Optimizer comparison — ${first.data.source}`,
    metricName: monitor,
    mode,
    runs: meanCurves(comparison),
    table,
    details: [`model ${configs[0]!.model}`, `data ${first.data.source} (${first.data.train.length} train / ${first.data.dev.length} dev)`, `seeds ${seeds.join(', ')} (curves: mean over seeds)`, ...(o.details ?? [])],
  });
  return { comparison, interrupted };
}

export async function compareCommand(argv: readonly string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(COMPARE_USAGE);
    return 0;
  }
  const { positional, flags } = parseArgs(argv, { ...runFlagKinds(), ...COMMON_FLAGS, runs: 'string', seeds: 'string', baseline: 'string' });
  if (positional.length > 0) throw new UsageError(`compare takes no positional arguments, got ${positional.join(' ')}`);
  checkPeft(flags['peft']);
  if (flags['runs'] === undefined) throw new UsageError('--runs is required (e.g. --runs adamw:lr=1e-3,kfac:newton-clip=1)');
  const shared = runOverrides(flags);
  if (!shared.model) throw new UsageError('--model is required');
  if (!shared.data) throw new UsageError('--data is required');
  const configs = runConfigs(shared, parseRunsSpec(flags['runs'] as string)).map((c) => withDevice(c, !!flags['quiet']));
  const seeds = flags['seeds'] === undefined ? [configs[0]!.seed] : (flags['seeds'] as string).split(',').map((s) => parseRunValue('seed', s.trim()) as number);
  const baseline = flags['baseline'] as string | undefined;
  if (baseline !== undefined && !configs.some((c) => c.name === baseline)) throw new UsageError(`--baseline ${JSON.stringify(baseline)} is not one of the runs (${configs.map((c) => c.name).join(', ')})`);
  const out = (flags['out'] as string | undefined) ?? defaultOutDir('compare');
  checkOutDir(out, { overwrite: !!flags['overwrite'] });
  if (flags['threads'] !== undefined) setNumThreads(flags['threads'] as number);
  const { comparison, interrupted } = await runComparison(configs, seeds, out, { quiet: !!flags['quiet'], ...(baseline ? { baseline } : {}), details: [`command kfac-peft compare ${argv.join(' ')}`] });
  if (flags['json']) process.stdout.write(JSON.stringify({ out, baseline: comparison.baseline, monitor: comparison.monitor, rows: comparison.rows }, null, 2) + '\n');
  else {
    const t = comparisonTable(comparison);
    process.stdout.write(formatTable(t.head, t.rows) + `\nreport: ${join(out, 'report.html')}\n`);
  }
  return interrupted ? 130 : 0;
}
