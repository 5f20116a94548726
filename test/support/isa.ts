/**
 * Which CPU micro-kernel families this machine can run, and a record of the ones the tests
 * actually ran (printed as a summary at the end of the suite by test/support/isa-summary.setup.ts).
 *
 * Tests that loop over ISAs use `KERNELS` with `it.skipIf(!k.available)` and a title that
 * carries `k.skip` ("skipped: this CPU lacks …"), so a missing ISA is reported, never silently
 * passed over; each test that ran a kernel calls `recordKernel`.
 */
import { appendFileSync } from 'node:fs';

import { native } from '../../lib/native/loader.js';

export type KernelName = 'generic' | 'avx2' | 'avx512';

interface CpuInfo {
  brand: string;
  avx2: boolean;
  fma: boolean;
  avx512f: boolean;
}

export const CPU: CpuInfo = native().info().cpu;

export interface KernelIsa {
  name: KernelName;
  available: boolean;
  /** Empty when available, else " (skipped: this CPU lacks …)" for test titles. */
  skip: string;
}

const lacks = (what: string) => ` (skipped: this CPU lacks ${what})`;

export const KERNELS: readonly KernelIsa[] = [
  { name: 'generic', available: true, skip: '' },
  { name: 'avx2', available: CPU.avx2 && CPU.fma, skip: CPU.avx2 && CPU.fma ? '' : lacks('AVX2+FMA') },
  { name: 'avx512', available: CPU.avx512f, skip: CPU.avx512f ? '' : lacks('AVX-512F') },
];

/** Environment variable naming the file the records go to (set by the global setup). */
export const ISA_LOG_ENV = 'KFAC_PEFT_ISA_LOG';

/** Notes that `family` (e.g. "sgemm") ran on kernel `kernel` with `detail` (e.g. "1 and 2 threads"). */
export function recordKernel(family: string, kernel: string, detail = ''): void {
  const file = process.env[ISA_LOG_ENV];
  if (file) appendFileSync(file, `${JSON.stringify({ family, kernel, detail })}\n`);
}
