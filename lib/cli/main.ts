/** The `kfac-peft` command line. */
import { KfacError } from '../errors.js';
import { VERSION } from '../version.js';
import { UsageError } from './args.js';

const USAGE = `kfac-peft ${VERSION} — K-FAC with Newton-step clipping for parameter-efficient fine-tuning

usage: kfac-peft <command> [options]

commands:
  info [--json]                 version, backends, CPU features and threads
  demo                          the one-command demo: pretrain a small LLaMA on the State of the
                                Union addresses (cached), fine-tune AdamW vs K-FAC + Newton clip
  train --model M --data D [options]
                                fine-tune LoRA with K-FAC (Newton-step clipping), AdamW or SGD;
                                live progress, JSONL log, PEFT adapter, HTML/SVG report
  eval --model M --data D [--adapter DIR]
                                dev loss and metrics
  generate --model M --prompt P [--adapter DIR] [--max-new-tokens N --temperature T --top-p P --seed S]
                                continue a prompt with a causal LM (greedy at temperature 0), streamed
  inspect PATH [--json]         what a model folder, .bin, adapter, checkpoint or run folder holds
  compare --model M --data D --runs adamw:lr=1e-3,kfac:newton-clip=1 [--seeds 1,2,3]
                                optimizers side by side on the same model, data and seeds; one report
  doctor [--json]               checks the installation (CPU binary, CUDA binary, driver, device)
  bench <case|all> [options]    microbenchmarks of the kernels against OpenBLAS/LAPACK
                                (--sizes N,… --threads T,… --repeats N --json --out FILE --no-peer
                                --backend cpu|cuda)
  help [command]                this text, or a command's options (also: kfac-peft <command> --help;
                                kfac-peft help bench <case>: what a bench case measures)
  --version                     the version

exit codes: 0 success, 1 failure (bad file, diverged run), 2 usage error, 130 interrupted (Ctrl-C)
`;

const COMMANDS = ['info', 'demo', 'train', 'eval', 'generate', 'inspect', 'compare', 'doctor', 'bench'];

export async function main(argv: readonly string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  try {
    switch (cmd) {
      case 'help':
        if (rest[0] !== undefined) {
          if (!COMMANDS.includes(rest[0])) throw new UsageError(`help: unknown command ${JSON.stringify(rest[0])} (one of ${COMMANDS.join(', ')})`);
          return await main([...rest, '--help']);
        }
        process.stdout.write(USAGE);
        return 0;
      case undefined:
      case '--help':
      case '-h':
        process.stdout.write(USAGE);
        return 0;
      case '--version':
      case '-v':
        process.stdout.write(`${VERSION}\n`);
        return 0;
      case 'info':
        return await (await import('./commands/info.js')).infoCommand(rest);
      case 'train':
        return await (await import('./commands/train.js')).trainCommand(rest);
      case 'eval':
        return await (await import('./commands/eval.js')).evalCommand(rest);
      case 'generate':
        return await (await import('./commands/generate.js')).generateCommand(rest);
      case 'inspect':
        return await (await import('./commands/inspect.js')).inspectCommand(rest);
      case 'compare':
        return await (await import('./commands/compare.js')).compareCommand(rest);
      case 'demo':
        return await (await import('./commands/demo.js')).demoCommand(rest);
      case 'doctor':
        return await (await import('./commands/doctor.js')).doctorCommand(rest);
      case 'bench':
        return await (await import('./commands/bench.js')).benchCommand(rest);
      default:
        throw new UsageError(`unknown command ${JSON.stringify(cmd)}`);
    }
  } catch (e) {
    if (e instanceof UsageError) {
      const known = cmd !== undefined && COMMANDS.includes(cmd);
      process.stderr.write(`kfac-peft: ${e.message}\n${known ? `(kfac-peft help ${cmd} lists its options)` : USAGE}\n`);
      return 2;
    }
    if (e instanceof KfacError) {
      process.stderr.write(`kfac-peft: ${e.message}\n`);
      return 1;
    }
    throw e;
  }
}
