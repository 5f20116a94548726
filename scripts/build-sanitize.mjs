// Builds the CPU addon with AddressSanitizer and UndefinedBehaviorSanitizer into its own folder,
// build-sanitize/kfac_peft.node, leaving the normal build (build/Release) alone. Same sources as
// binding.gyp (scripts/native-sources.cjs), same defines; -O1 -g so reports carry line numbers and
// the instrumented code stays fast enough to test. Incremental: an object is recompiled only when
// its source or a header it includes (from the compiler's .d file) is newer.
//
//   node scripts/build-sanitize.mjs [-j N]
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const args = process.argv.slice(2);
const jobs = Math.max(1, Number(args.includes('-j') ? args[args.indexOf('-j') + 1] : 2) || 2);
const out = join(root, 'build-sanitize');
const target = join(out, 'kfac_peft.node');
const cxx = process.env.CXX || 'g++';

const srcs = spawnSync(process.execPath, [join(root, 'scripts', 'native-sources.cjs'), 'native/core', 'native/cpu', 'native/emu', 'native/napi'], { cwd: root, encoding: 'utf8' })
  .stdout.split(/\s+/)
  .filter(Boolean);
const version = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).version;
export const SANITIZE_FLAGS = ['-fsanitize=address,undefined', '-fno-omit-frame-pointer'];
const cflags = [
  '-std=c++17', '-O1', '-g', '-fPIC', '-pthread', '-fexceptions', '-fvisibility=hidden', '-m64',
  '-Wall', '-Wextra', '-Wno-unused-parameter', ...SANITIZE_FLAGS,
  '-DNAPI_VERSION=8', '-DNAPI_CPP_EXCEPTIONS', `-DKFAC_VERSION="${version}"`, '-DBUILDING_NODE_EXTENSION',
  `-I${require('node-api-headers').include_dir}`, `-I${require('node-addon-api').include_dir.replace(/^"|"$/g, '')}`,
];

function mtime(p) {
  try {
    return statSync(p).mtimeMs;
  } catch {
    return -1;
  }
}

/** True when obj is missing or older than its source or any dependency the .d file lists. */
function stale(src, obj, dep) {
  const t = mtime(obj);
  if (t < 0 || !existsSync(dep)) return true;
  if (mtime(join(root, src)) > t) return true;
  const deps = readFileSync(dep, 'utf8').replace(/\\\n/g, ' ').split(':').slice(1).join(':').split(/\s+/).filter(Boolean);
  return deps.some((d) => mtime(d.startsWith('/') ? d : join(root, d)) > t);
}

function compile(src) {
  const obj = join(out, 'obj', src.replace(/\.(cpp|cc)$/, '.o'));
  mkdirSync(dirname(obj), { recursive: true });
  return new Promise((resolve) => {
    const p = spawn(cxx, [...cflags, '-MMD', '-MF', obj.replace(/\.o$/, '.d'), '-c', src, '-o', obj], { cwd: root, stdio: 'inherit' });
    p.on('close', (code) => resolve({ src, obj, code }));
  });
}

const t0 = Date.now();
mkdirSync(out, { recursive: true });
const objs = srcs.map((s) => join(out, 'obj', s.replace(/\.(cpp|cc)$/, '.o')));
const todo = srcs.filter((s, i) => stale(s, objs[i], objs[i].replace(/\.o$/, '.d')));
let failed = 0;
let next = 0;
async function worker() {
  while (next < todo.length) {
    const src = todo[next++];
    console.log(`  CXX(asan,ubsan) ${src}`);
    const r = await compile(src);
    if (r.code !== 0) failed++;
  }
}
await Promise.all(Array.from({ length: Math.min(jobs, todo.length) }, worker));
if (failed) {
  console.error(`kfac-peft: the sanitizer build failed (${failed} file(s), see above)`);
  process.exit(1);
}
if (todo.length || mtime(target) < Math.max(...objs.map(mtime))) {
  const r = spawnSync(cxx, ['-shared', '-pthread', ...SANITIZE_FLAGS, '-o', target, ...objs], { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
}
console.log(`kfac-peft: ${target} ready (${todo.length} of ${srcs.length} sources compiled, ${((Date.now() - t0) / 1000).toFixed(0)} s)`);
