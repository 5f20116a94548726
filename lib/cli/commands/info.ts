/** `kfac-peft info [--json]`: version, backends, CPU features, threads. */
import { info } from '../../runtime.js';
import { parseArgs } from '../args.js';

export const INFO_USAGE = `usage: kfac-peft info [--json]

Prints the version, the native binary in use, the backends (cpu, cuda) and the selected one, the
CPU's features and kernels, and the thread count (KFAC_NUM_THREADS overrides it).

options:
  --json    the same as a JSON object
`;

export async function infoCommand(argv: readonly string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(INFO_USAGE);
    return 0;
  }
  const { positional, flags } = parseArgs(argv, { json: 'boolean' });
  if (positional.length) throw new (await import('../args.js')).UsageError(`info takes no arguments, got ${positional.join(' ')}`);
  const i = info();
  if (flags['json']) {
    process.stdout.write(JSON.stringify({ ...i, node: process.version, platform: `${process.platform}-${process.arch}` }, null, 2) + '\n');
    return 0;
  }
  const yes = (b: boolean) => (b ? 'yes' : 'no');
  process.stdout.write(
    [
      `kfac-peft ${i.version}`,
      `node       ${process.version} (${process.platform}-${process.arch}, N-API ${i.napiVersion})`,
      `binary     ${i.binary}`,
      `backends   ${i.backends.join(', ')}`,
      `backend    ${i.backend.selected} (${i.backend.reason})`,
      `cuda       ${i.cuda.usable ? `${i.cuda.info?.devices[0]?.name ?? 'device'}, runtime ${i.cuda.info?.runtimeVersion}, driver ${i.cuda.info?.driverVersion}` : (i.cuda.reason ?? 'unavailable')}`,
      `cpu        ${i.cpu.brand || 'unknown'}`,
      `features   avx2 ${yes(i.cpu.avx2)}, fma ${yes(i.cpu.fma)}, avx512f ${yes(i.cpu.avx512f)}, avx512bf16 ${yes(i.cpu.avx512bf16)}, amx-bf16 ${yes(i.cpu.amxBf16)}`,
      `kernels    ${i.cpu.kernel}; bf16 GEMM ${i.cpu.bf16Kernel}${i.cpu.bf16Kernel === 'portable' ? ' (no bf16 instructions: widens to float32)' : ''}${i.cpu.bf16KernelWarning ? ` (${i.cpu.bf16KernelWarning})` : ''}`,
      `memory     ${(i.memory.allocatedBytes / 2 ** 20).toFixed(1)} MiB in tensors, ${(i.memory.cachedBytes / 2 ** 20).toFixed(1)} MiB cached (limit ${(i.memory.cacheLimitBytes / 2 ** 20).toFixed(0)} MiB; KFAC_HOST_CACHE_BYTES)`,
      `threads    ${i.cpu.threads} (default ${i.cpu.defaultThreads}; KFAC_NUM_THREADS overrides)`,
    ].join('\n') + '\n',
  );
  return 0;
}
