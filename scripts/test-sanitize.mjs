// Runs the native-heavy test files against the ASan+UBSan build of the addon
// (scripts/build-sanitize.mjs) and fails on any sanitizer report.
//
//   node scripts/test-sanitize.mjs [--quick] [--no-build] [-j N] [--max-seconds S] [test files...]
//
// --quick: the subset CI runs. Without it: every native-heavy file. --max-seconds: the test run
// is stopped and fails when it takes longer (default 900; CI's time box).
// The addon is loaded by a Node that is not instrumented, so the ASan runtime must be the first
// library in the process: LD_PRELOAD=$(g++ -print-file-name=libasan.so). KFAC_PEFT_BINARY with
// KFAC_PEFT_BINARY_ONLY=1 makes the loader take the sanitized binary or fail (never the normal
// build); KFAC_BACKEND=cpu keeps a CUDA binary out of the way.
//
// Leak checking is off (detect_leaks=0): Node and V8 do not free their heaps, isolates and
// wrapped objects at exit by design (finalizers are not run at process exit), so LeakSanitizer
// would report thousands of allocations that are not leaks, most of them outside our code.
// Every other ASan check (overflows, use-after-free, double free, use-after-return) stays on.
// ASan reports go to files under build-sanitize/reports/ (log_path), so a report from a test's
// child process or a worker that died is seen too; UBSan (a separate runtime with GCC) writes to
// stderr, which is scanned; halt_on_error makes either one end the process, failing the run.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const quick = args.includes('--quick');
const noBuild = args.includes('--no-build');
const jIdx = args.indexOf('-j');
const jobs = jIdx >= 0 ? args[jIdx + 1] : '2';
const mIdx = args.indexOf('--max-seconds');
const maxSeconds = mIdx >= 0 ? Number(args[mIdx + 1]) : 900;
const named = args.filter((a, i) => !a.startsWith('-') && !(jIdx >= 0 && i === jIdx + 1) && !(mIdx >= 0 && i === mIdx + 1));

// The files whose work is mostly native: every op family, the tensor handle, malformed calls.
const QUICK = [
  'test/tensor/tensor.test.ts',
  'test/tensor/ops.test.ts',
  'test/linalg/matmul.test.ts',
  'test/linalg/gemm-kernels.test.ts',
  'test/fuzz/fuzz.test.ts',
  'test/nn/nn-errors.test.ts',
  'test/nn/nn-linear.test.ts',
  'test/nn/nn-loss.test.ts',
  'test/nn/nn-norm-act.test.ts',
  'test/nn/nn-attention.test.ts',
  'test/kfac/kfac-kernels.test.ts',
  'test/kfac/kfac-ekfac-ops.test.ts',
  'test/kfac/kfac-quadratic.test.ts',
  'test/kfac/kfac-step-record.test.ts',
  'test/linalg/eigh.test.ts',
];
const FULL = [
  ...QUICK,
  'test/optim/optim.test.ts',
  'test/kfac/kfac-nn.test.ts',
  'test/kfac/kfac-optimizer.test.ts',
  'test/nn/nn-train.test.ts',
  'test/models/models-grad.test.ts',
  'test/models/models-api.test.ts',
  'test/peft/peft-lora.test.ts',
  'test/peft/peft-kfac.test.ts',
];
const files = named.length ? named : quick ? QUICK : FULL;

if (!noBuild) {
  const b = spawnSync(process.execPath, [join(root, 'scripts', 'build-sanitize.mjs'), '-j', jobs], { cwd: root, stdio: 'inherit' });
  if (b.status !== 0) process.exit(b.status ?? 1);
}
const binary = join(root, 'build-sanitize', 'kfac_peft.node');
if (!existsSync(binary)) {
  console.error(`kfac-peft: ${binary} is missing; run node scripts/build-sanitize.mjs`);
  process.exit(1);
}
const cxx = process.env.CXX || 'g++';
const libasan = spawnSync(cxx, ['-print-file-name=libasan.so'], { encoding: 'utf8' }).stdout.trim();
if (!libasan.startsWith('/') || !existsSync(libasan)) {
  console.error(`kfac-peft: the ASan runtime was not found (${cxx} -print-file-name=libasan.so gave '${libasan}')`);
  process.exit(1);
}
const reports = join(root, 'build-sanitize', 'reports');
rmSync(reports, { recursive: true, force: true });
mkdirSync(reports, { recursive: true });

const env = {
  ...process.env,
  LD_PRELOAD: [libasan, process.env.LD_PRELOAD].filter(Boolean).join(':'),
  ASAN_OPTIONS: `detect_leaks=0:abort_on_error=0:halt_on_error=1:detect_stack_use_after_return=1:log_path=${join(reports, 'asan')}`,
  UBSAN_OPTIONS: `halt_on_error=1:print_stacktrace=1:log_path=${join(reports, 'ubsan')}`,
  KFAC_PEFT_BINARY: binary,
  KFAC_PEFT_BINARY_ONLY: '1',
  KFAC_BACKEND: 'cpu',
};
// The canary: a deliberate use after free and a signed overflow in a small library built with the
// same flags, loaded the same way, must each stop Node with a report; otherwise the setup is
// broken and a clean run below would prove nothing.
const canary = join(root, 'build-sanitize', 'canary.so');
const cc = spawnSync(cxx, ['-shared', '-fPIC', '-O1', '-g', '-fsanitize=address,undefined', '-fno-omit-frame-pointer', '-o', canary, join(root, 'test', 'sanitize', 'canary.cpp')], { stdio: 'inherit' });
if (cc.status !== 0) process.exit(cc.status ?? 1);
for (const kind of ['asan', 'ubsan']) {
  const dir = join(root, 'build-sanitize', 'canary-reports');
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const cenv = { ...env, SANITIZE_CANARY: kind, ASAN_OPTIONS: env.ASAN_OPTIONS.replace(/log_path=[^:]*/, `log_path=${join(dir, 'asan')}`), UBSAN_OPTIONS: env.UBSAN_OPTIONS.replace(/log_path=[^:]*/, `log_path=${join(dir, 'ubsan')}`) };
  const r = spawnSync(process.execPath, ['-e', `try { process.dlopen({ exports: {} }, ${JSON.stringify(canary)}); } catch {}`], { env: cenv, encoding: 'utf8' });
  const logs = readdirSync(dir).map((f) => readFileSync(join(dir, f), 'utf8')).join('');
  const want = kind === 'asan' ? /AddressSanitizer: heap-use-after-free/ : /runtime error: signed integer overflow/;
  if (r.status === 0 || !want.test(logs + r.stderr)) {
    console.error(`kfac-peft: the ${kind} canary was not caught (exit ${r.status}); the sanitizer setup is broken:\n${logs}${r.stderr}`);
    process.exit(1);
  }
}
console.log('kfac-peft: the sanitizer canaries (use after free, signed overflow) were caught');

// A first load proves the sanitized binary is the one in use before any test runs.
const probe = spawnSync(
  process.execPath,
  ['--input-type=module', '-e', `import { native, nativePath } from ${JSON.stringify(join(root, 'dist', 'native', 'loader.js'))}; native(); console.log(nativePath());`],
  { cwd: root, env, encoding: 'utf8' },
);
if (probe.status !== 0 || probe.stdout.trim() !== binary) {
  console.error(`kfac-peft: the sanitized addon did not load (build dist/ with npm run build:ts first):\n${probe.stdout}${probe.stderr}`);
  process.exit(1);
}

console.log(`kfac-peft: ${files.length} test files under ASan+UBSan (${binary})`);
const t0 = Date.now();
const vitest = join(root, 'node_modules', 'vitest', 'vitest.mjs');
// Its own process group, so the time box stops vitest's workers too.
const child = spawn(process.execPath, [vitest, 'run', ...files], { cwd: root, env, stdio: ['ignore', 'inherit', 'pipe'], detached: true });
const stopGroup = () => {
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    // already gone
  }
};
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => (stopGroup(), process.exit(130)));
let stderr = '';
child.stderr.on('data', (d) => {
  process.stderr.write(d);
  stderr += d.toString();
});
let timedOut = false;
const timer = setTimeout(() => {
  timedOut = true;
  stopGroup();
}, maxSeconds * 1000);
const code = await new Promise((resolve) => child.on('close', (c, sig) => resolve(c ?? (sig ? 128 : 1))));
clearTimeout(timer);

const found = readdirSync(reports).map((f) => join(reports, f));
const inline = /ERROR: AddressSanitizer|runtime error:|ERROR: LeakSanitizer/.test(stderr);
for (const f of found) console.error(`\n---- ${f} ----\n${readFileSync(f, 'utf8')}`);
const secs = ((Date.now() - t0) / 1000).toFixed(0);
if (found.length || inline) {
  console.error(`kfac-peft: SANITIZER REPORT (${found.length} report file(s) in ${reports}) after ${secs} s`);
  process.exit(1);
}
if (timedOut) {
  console.error(`kfac-peft: the sanitized test run took over ${maxSeconds} s and was stopped`);
  process.exit(1);
}
if (code !== 0) {
  console.error(`kfac-peft: the sanitized test run failed (exit ${code}) after ${secs} s`);
  process.exit(code);
}
console.log(`kfac-peft: no sanitizer report in ${files.length} files (${secs} s)`);
