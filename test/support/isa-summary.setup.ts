/**
 * Global setup of the suite: gives the test workers a file to record the CPU kernels they ran
 * (test/support/isa.ts), and at the end prints which kernel families ran on which ISA on this machine,
 * which ISAs were skipped and why, and the CPU's other vector extensions no kernel uses.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const ENV = 'KFAC_PEFT_ISA_LOG';

function cpuFlags(): Set<string> {
  try {
    const line = readFileSync('/proc/cpuinfo', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('flags'));
    return new Set((line ?? '').split(':')[1]?.trim().split(/\s+/) ?? []);
  } catch {
    return new Set();
  }
}

export default function setup(): () => Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'kfac-isa-'));
  const file = join(dir, 'kernels.jsonl');
  process.env[ENV] = file;
  return async () => {
    let text = '';
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      // no test recorded a kernel (a filtered run)
    }
    rmSync(dir, { recursive: true, force: true });
    const ran = new Map<string, Map<string, Set<string>>>();
    for (const l of text.split('\n')) {
      if (!l) continue;
      const r = JSON.parse(l) as { family: string; kernel: string; detail: string };
      const fam = ran.get(r.family) ?? new Map<string, Set<string>>();
      const det = fam.get(r.kernel) ?? new Set<string>();
      if (r.detail) det.add(r.detail);
      fam.set(r.kernel, det);
      ran.set(r.family, fam);
    }
    let cpu: { brand: string; avx2: boolean; fma: boolean; avx512f: boolean; kernel: string };
    try {
      cpu = (await import('../../lib/native/loader.js')).native().info().cpu;
    } catch {
      return; // no addon: every kernel test failed already, with the loader's message
    }
    const flags = cpuFlags();
    const has = (f: string) => (flags.has(f) ? 'yes' : 'no');
    const out = [`CPU kernels tested on this machine (${cpu.brand.trim()}; auto picks ${cpu.kernel}):`];
    if (ran.size === 0) out.push('  none (no kernel test ran in this selection)');
    for (const [family, kernels] of [...ran].sort()) {
      const parts = [...kernels].map(([k, d]) => (d.size ? `${k} (${[...d].join(', ')})` : k));
      out.push(`  ${family}: ${parts.join('; ')}`);
    }
    const skipped = [
      ...(cpu.avx2 && cpu.fma ? [] : ['avx2 (no AVX2+FMA)']),
      ...(cpu.avx512f ? [] : ['avx512 (no AVX-512F)']),
    ];
    out.push(`  ISAs skipped: ${skipped.length ? skipped.join(', ') : 'none'}`);
    if (flags.size)
      out.push(`  bf16 GEMM extensions (test/linalg/bf16.test.ts runs the kernels they allow): AVX512-BF16 ${has('avx512_bf16')}, AVX512-VNNI ${has('avx512_vnni')}, AMX ${flags.has('amx_tile') ? 'yes' : 'no'}`);
    process.stdout.write(`\n${out.join('\n')}\n`);
  };
}
