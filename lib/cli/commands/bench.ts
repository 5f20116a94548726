/** `kfac-peft bench <case> [--sizes …] [--threads …] [--repeats N] [--rounds R] [--json] [--out file] [--no-peer] [--peer-keep-env]` */
import { writeFileSync } from 'node:fs';

import { setBackend } from '../../native/loader.js';
import { info } from '../../runtime.js';
import { parseArgs, UsageError } from '../args.js';
import { benchCases } from '../../bench/registry.js';
import type { BenchRow } from '../../bench/types.js';
import { Progress } from '../progress.js';
import { formatTable } from '../table.js';

const FLAGS = {
  sizes: 'int-list',
  n: 'int-list',
  threads: 'int-list',
  repeats: 'int',
  rounds: 'int',
  json: 'boolean',
  out: 'string',
  'no-peer': 'boolean',
  'peer-keep-env': 'boolean',
  backend: 'string',
} as const;

export function benchUsage(): string {
  const names = Object.keys(benchCases).join('|');
  return `usage: kfac-peft bench <${names}|all> [--sizes N,…] [--threads T,…] [--repeats N] [--rounds R] [--json] [--out FILE] [--no-peer] [--peer-keep-env] [--backend cpu|cuda]\n       kfac-peft bench step [--shape S | --model DIR] [--optimizer adamw|kfac] [--dtype float32|bfloat16] … (kfac-peft help bench step)`;
}

/** `bench --help`: the options and every case of the registry with its description. */
export async function benchHelp(): Promise<string> {
  const cases = await Promise.all(Object.entries(benchCases).map(async ([n, load]) => [n, (await load()).description] as const));
  return `${benchUsage()}

Microbenchmarks of the kernels, each timed against a NumPy/SciPy (OpenBLAS/LAPACK) peer in the same run
when python3 with numpy is available. Prints a table (or JSON rows) of median times and ratios.

cases:
${cases.map(([n, d]) => `  ${n.padEnd(14)} ${d}`).join('\n')}
  all            every case above
  step           one LoRA training step against PyTorch + PEFT (its own options: kfac-peft help bench step)
  train-step     one LoRA step of a real-size random-init shape on cpu or cuda (kfac-peft bench train-step --help)

options:
  --sizes N,…        problem sizes (meaning per case; default: the case's)
  --threads T,…      thread counts (default: 1 and all)
  --repeats N        timed repeats per measurement
  --json             rows as JSON on stdout
  --out FILE         also write the JSON report to FILE
  --no-peer          do not time the peer
  --peer-keep-env    keep OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE for the peer
  --backend cpu|cuda the backend to time (cuda: the CUDA cases)
`;
}

export async function benchCommand(argv: readonly string[]): Promise<number> {
  if (argv[0] === 'step') return (await import('./bench-step.js')).benchStepCommand(argv.slice(1));
  if (argv[0] === 'train-step') return (await import('./bench-train-step.js')).benchTrainStepCommand(argv.slice(1));
  if (argv.includes('--help') || argv.includes('-h')) {
    const which = argv.find((a) => !a.startsWith('-'));
    const load = which === undefined ? undefined : benchCases[which];
    if (which !== undefined && which !== 'all' && !load) throw new UsageError(`unknown bench case ${JSON.stringify(which)}\n${benchUsage()}`);
    process.stdout.write(load ? `usage: kfac-peft bench ${which} [options]\n\n${(await load()).description}\n(options: kfac-peft help bench)\n` : await benchHelp());
    return 0;
  }
  const { positional, flags } = parseArgs(argv, FLAGS);
  const which = positional[0] ?? 'all';
  if (positional.length > 1) throw new UsageError(`bench takes one case, got ${positional.join(' ')}\n${benchUsage()}`);
  const backend = (flags['backend'] as string | undefined) ?? 'cpu';
  if (backend !== 'cpu' && backend !== 'cuda') throw new UsageError(`--backend: 'cpu' or 'cuda', got ${JSON.stringify(backend)}`);
  if (backend === 'cuda') setBackend('cuda'); // the first op below throws a DeviceError saying why when CUDA is unavailable
  const registry = backend === 'cuda' ? (await import('../../bench/cuda.js')).cudaBenchCases : benchCases;
  const names = which === 'all' ? Object.keys(registry) : [which];
  for (const n of names) if (!registry[n]) throw new UsageError(`unknown bench case ${JSON.stringify(n)}${backend === 'cuda' ? ` for --backend cuda (${Object.keys(registry).join('|')})` : ''}\n${benchUsage()}`);
  const maxThreads = info().cpu.defaultThreads;
  const threads = flags['threads'] as number[] | undefined;
  if (threads) for (const t of threads) if (t > 256) throw new UsageError(`--threads: at most 256, got ${t}`);
  const progress = new Progress();
  const rows: BenchRow[] = [];
  const started = new Date().toISOString();
  try {
    for (const name of names) {
      const c = await (registry[name] as () => Promise<import('../../bench/types.js').BenchCase>)();
      rows.push(
        ...(await c.run({
          sizes: (flags['sizes'] ?? flags['n']) as number[] | undefined,
          threads: threads ?? (maxThreads > 1 ? [1, maxThreads] : [1]),
          repeats: (flags['repeats'] as number | undefined) ?? 10,
          ...(flags['rounds'] !== undefined ? { rounds: flags['rounds'] as number } : {}),
          peer: !flags['no-peer'],
          peerKeepEnv: !!flags['peer-keep-env'],
          progress: (m) => progress.update(m),
        })),
      );
    }
  } finally {
    progress.done();
  }
  const report = { started, machine: machineInfo(), ...(backend === 'cuda' ? { cuda: (await import('../../cuda/index.js')).deviceInfo() } : {}), rows, best: bestOf(rows) };
  if (flags['out']) writeFileSync(flags['out'] as string, JSON.stringify(report, null, 2) + '\n');
  if (flags['json']) {
    process.stdout.write(JSON.stringify(report, null, 2) + '\n');
    return 0;
  }
  const peerName = rows.find((r) => r.peer)?.peer;
  process.stdout.write(
    formatTable(
      ['case', 'shape', 'threads', 'ms', 'GFLOP/s', 'GB/s', 'of ceiling', 'peer ms', 'peer GFLOP/s', 'peer/ours'],
      rows.map((r) => [r.case, r.shape, r.backend === 'cuda' ? 'gpu' : r.threads, r.ms, r.gflops, r.gbps, r.ofCeiling, r.peerMs, r.peerGflops, r.ratio]),
    ) + '\n',
  );
  const best = bestOf(rows);
  if (best.some((b) => b.ratio !== undefined)) {
    process.stdout.write(`\nbest thread count each (peer: ${peerName ?? 'none'}):\n`);
    process.stdout.write(
      formatTable(
        ['case', 'shape', 'ours ms', 'threads', 'peer ms', 'threads', 'ours/peer speed'],
        best.map((b) => [b.case, b.shape, b.ms, b.threads, b.peerMs, b.peerThreads, b.ratio]),
      ) + '\n',
    );
  } else if (!flags['no-peer']) {
    process.stdout.write('\n(no peer column: python3 with numpy was not found)\n');
  }
  return 0;
}

export interface BestRow {
  case: string;
  shape: string;
  ms: number;
  threads: number;
  peerMs: number | undefined;
  peerThreads: number | undefined;
  /** best peer time / best our time: ≥ 1 means we are at least as fast. */
  ratio: number | undefined;
}

/** For each (case, shape): our best time over thread counts against the peer's best. */
export function bestOf(rows: readonly BenchRow[]): BestRow[] {
  const groups = new Map<string, BenchRow[]>();
  for (const r of rows) {
    const k = `${r.case}\u0000${r.shape}`;
    groups.set(k, [...(groups.get(k) ?? []), r]);
  }
  return [...groups.values()].map((g) => {
    const ours = g.reduce((a, b) => (b.ms < a.ms ? b : a));
    const withPeer = g.filter((r) => r.peerMs !== undefined);
    const peer = withPeer.length ? withPeer.reduce((a, b) => ((b.peerMs as number) < (a.peerMs as number) ? b : a)) : undefined;
    return {
      case: ours.case,
      shape: ours.shape,
      ms: ours.ms,
      threads: ours.threads,
      peerMs: peer?.peerMs,
      peerThreads: peer?.threads,
      ratio: peer?.peerMs !== undefined ? peer.peerMs / ours.ms : undefined,
    };
  });
}

function machineInfo(): Record<string, unknown> {
  const i = info();
  return { cpu: i.cpu.brand, kernel: i.cpu.kernel, threads: i.cpu.defaultThreads, node: process.version, version: i.version };
}
