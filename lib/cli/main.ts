/** The `kfac-peft` command line. */
import { KfacError } from '../errors.js';
import { VERSION } from '../version.js';
import { UsageError } from './args.js';

const USAGE = `kfac-peft ${VERSION} — K-FAC with Newton-step clipping for parameter-efficient fine-tuning

usage: kfac-peft <command> [options]

commands:
  info [--json]                 version, backends, CPU features and threads
  doctor [--json]               checks the installation (CPU binary, CUDA binary, driver, device)
  bench <case|all> [options]    microbenchmarks of the kernels against OpenBLAS/LAPACK
                                (--sizes N,… --threads T,… --repeats N --json --out FILE --no-peer
                                --backend cpu|cuda)
  help                          this text
`;

export async function main(argv: readonly string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  try {
    switch (cmd) {
      case undefined:
      case 'help':
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
      case 'doctor':
        return await (await import('./commands/doctor.js')).doctorCommand(rest);
      case 'bench':
        return await (await import('./commands/bench.js')).benchCommand(rest);
      default:
        throw new UsageError(`unknown command ${JSON.stringify(cmd)}`);
    }
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`kfac-peft: ${e.message}\n\n${USAGE}`);
      return 2;
    }
    if (e instanceof KfacError) {
      process.stderr.write(`kfac-peft: ${e.message}\n`);
      return 1;
    }
    throw e;
  }
}
