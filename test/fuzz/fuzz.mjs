// The seeded mutation fuzzer of the file readers (safetensors, sharded indexes, config.json,
// tokenizer.json, llama2.c checkpoints and tokenizers, PEFT adapter folders, optimizer state,
// checkpoints). Each input is written to a folder and read in a child process (worker.mjs), so a
// crash is seen; each read has a time limit (a hang) and a peak-memory cap (unbounded
// allocation). Every input must end in success or a typed KfacError.
//
//   npm run fuzz -- [--seconds N | --cases N] [--seed S] [--target T[,T…]] [--case I] [--save DIR] [--no-minimize]
//
// Case I of target T under seed S is always the same input: a failing case prints the command
// that reruns it alone. --save DIR writes each (minimised) failing input with a meta.json, the
// form the regression test (test/fuzz/fuzz-readers.test.ts) reads from test/fixtures/fuzz/.
// docs/ROBUSTNESS.md describes the targets, the mutations and what was found.
// Needs the compiled library (npm run build:ts).
import { fork } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

import { caseSeed, prng } from './mutate.mjs';
import { makeCase, TARGETS } from './targets.mjs';

const here = dirname(fileURLToPath(import.meta.url));
export const TARGET_NAMES = Object.keys(TARGETS);
const PASS = new Set(['ok', 'typed']);

/** One child process running readers; restarted after a crash, a hang or a memory finding. */
export class Worker {
  #child = null;
  #ready = null;
  #pending = null;
  #stderr = '';
  #seq = 0;

  #start() {
    this.#stderr = '';
    const child = fork(join(here, 'worker.mjs'), [], {
      execArgv: ['--max-old-space-size=1024', '--stack-size=2000'],
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
      env: { ...process.env, KFAC_BACKEND: 'cpu' },
    });
    child.stderr.on('data', (d) => {
      this.#stderr = (this.#stderr + d.toString()).slice(-4000);
    });
    this.#ready = new Promise((resolve, reject) => {
      child.once('message', (m) => (m?.ready ? resolve() : reject(new Error('the fuzz worker did not start'))));
      child.once('exit', (code, sig) => reject(new Error(`the fuzz worker exited while starting (${code ?? sig}): ${this.#stderr}`)));
    });
    child.on('message', (m) => {
      if (this.#pending && m?.id === this.#pending.id) this.#pending.resolve(m);
    });
    child.on('exit', (code, signal) => {
      if (this.#child === child) this.#child = null;
      if (this.#pending?.child === child) this.#pending.resolve({ status: 'crash', name: signal ?? `exit ${code}`, message: `the reader process died (${signal ?? `exit code ${code}`})`, stderr: this.#stderr });
    });
    this.#child = child;
  }

  /** Sends one message; resolves with the answer, or {status: 'crash' | 'hang'}. */
  async call(msg, timeoutMs) {
    if (!this.#child) this.#start();
    await this.#ready;
    const child = this.#child;
    const id = ++this.#seq;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#pending = null;
        this.kill();
        resolve({ status: 'hang', name: 'timeout', message: `no answer within ${timeoutMs} ms` });
      }, timeoutMs);
      this.#pending = {
        id,
        child,
        resolve: (m) => {
          clearTimeout(timer);
          this.#pending = null;
          if (m.status === 'alloc') this.kill();
          resolve(m);
        },
      };
      child.send({ ...msg, id });
    });
  }

  kill() {
    const c = this.#child;
    this.#child = null;
    if (c) c.kill('SIGKILL');
  }
}

function writeCase(dir, files) {
  rmSync(dir, { recursive: true, force: true });
  for (const [rel, bytes] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, rel)), { recursive: true });
    writeFileSync(join(dir, rel), bytes);
  }
}

/** Runs one case folder; a timeout is retried once with three times the limit before it counts as a hang (machines under load). */
export async function runCase(worker, target, dir, variant, timeoutMs) {
  let res = await worker.call({ op: 'run', target, dir, variant }, timeoutMs);
  if (res.status === 'hang') res = await worker.call({ op: 'run', target, dir, variant }, 3 * timeoutMs);
  return res;
}

/** Same failure: same outcome and the same kind of error. */
const sameFailure = (a, b) => a.status === b.status && (a.status === 'hang' || a.status === 'crash' || a.name === b.name);

/** Shrinks the mutated file while the failure stays the same (chunk removal, halving the chunk). */
async function minimize(worker, target, c, failure, dir, timeoutMs, budgetMs = 30_000) {
  const t0 = Date.now();
  let bytes = c.files[c.file];
  for (let chunk = Math.max(1, bytes.length >> 1); chunk >= 1 && Date.now() - t0 < budgetMs; chunk >>= 1) {
    for (let at = 0; at < bytes.length && Date.now() - t0 < budgetMs; ) {
      const trial = new Uint8Array(bytes.length - Math.min(chunk, bytes.length - at));
      trial.set(bytes.subarray(0, at));
      trial.set(bytes.subarray(at + chunk), at);
      const files = { ...c.files, [c.file]: trial };
      if (TARGETS[target].fixup && c.ops.includes('fixHashes')) TARGETS[target].fixup(files);
      writeCase(dir, files);
      const res = await worker.call({ op: 'run', target, dir, variant: c.variant }, timeoutMs);
      if (sameFailure(res, failure)) {
        bytes = files[c.file];
        c.files = files;
      } else at += chunk;
    }
  }
  return c;
}

/**
 * Fuzzes the targets. `cases` (per target) or `seconds` (all targets, round robin) bounds the
 * run; `only` runs one case index. Returns {counts, findings}.
 */
export async function runFuzz({ seed = 1, targets = TARGET_NAMES, cases, seconds, only, timeoutMs = 5000, minimizeFindings = false, save, log = () => {} } = {}) {
  const tmp = mkdtempSync(join(tmpdir(), 'kfac-fuzz-'));
  const worker = new Worker();
  const findings = [];
  const counts = {};
  try {
    const seedsOf = {};
    for (const t of targets) {
      if (!TARGETS[t]) throw new Error(`unknown target ${t} (targets: ${TARGET_NAMES.join(', ')})`);
      const sdir = join(tmp, `seeds-${t}`);
      const res = await worker.call({ op: 'seeds', target: t, dir: sdir }, 120_000);
      if (res.status !== 'ok') throw new Error(`building the ${t} seeds failed: ${res.message}\n${res.stack ?? ''}`);
      seedsOf[t] = res.seeds.map((s) => ({ name: s.name, variant: s.variant, files: Object.fromEntries(s.files.map((f) => [f, new Uint8Array(readFileSync(join(s.dir, f)))])) }));
      counts[t] = { ok: 0, typed: 0, failed: 0 };
      // every seed must pass (a real file may be refused with a typed error, e.g. an unsupported rope)
      for (const [i, s] of seedsOf[t].entries()) {
        writeCase(join(tmp, 'case'), s.files);
        const r = await runCase(worker, t, join(tmp, 'case'), s.variant, timeoutMs);
        if (!PASS.has(r.status)) throw new Error(`seed ${i} (${s.name}) of ${t} does not read cleanly: ${r.status} ${r.name}: ${r.message}`);
      }
    }
    const deadline = seconds === undefined ? Infinity : Date.now() + seconds * 1000;
    const per = only !== undefined ? 1 : cases ?? Infinity;
    for (let i = 0; i < per && Date.now() < deadline; i++) {
      for (const t of targets) {
        if (Date.now() >= deadline) break;
        const index = only ?? i;
        const c = makeCase(t, seedsOf[t], prng(caseSeed(seed, t, index)));
        const dir = join(tmp, 'case');
        writeCase(dir, c.files);
        const res = await runCase(worker, t, dir, c.variant, timeoutMs);
        if (PASS.has(res.status)) {
          counts[t][res.status]++;
          continue;
        }
        counts[t].failed++;
        const repro = `npm run fuzz -- --target ${t} --seed ${seed} --case ${index}`;
        const f = { target: t, seed, case: index, seedName: c.seedName, file: c.file, ops: c.ops, variant: c.variant, ...res, repro };
        if (minimizeFindings) {
          await minimize(worker, t, c, res, join(tmp, 'min'), timeoutMs);
          f.minimizedBytes = c.files[c.file].length;
        }
        findings.push(f);
        log(`FAIL ${t} case ${index} (seed input ${c.seedName}, ${c.file} by ${c.ops.join('+')}): ${res.status} ${res.name}: ${res.message?.split('\n')[0]}\n  reproduce: ${repro}`);
        if (res.stack) log(res.stack.split('\n').slice(0, 6).join('\n'));
        if (res.stderr) log(res.stderr.slice(-1500));
        if (save) {
          const d = join(save, `${t}-${seed}-${index}`);
          writeCase(join(d, 'files'), c.files);
          writeFileSync(join(d, 'meta.json'), `${JSON.stringify({ target: t, variant: c.variant, seed, case: index, file: c.file, ops: c.ops, found: { status: res.status, name: res.name, message: res.message } }, null, 2)}\n`);
          log(`  saved: ${d}`);
        }
      }
    }
  } finally {
    worker.kill();
    rmSync(tmp, { recursive: true, force: true });
  }
  return { counts, findings };
}

function parseArgs(argv) {
  const o = { minimizeFindings: true };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    const num = () => {
      const v = Number(val());
      if (!Number.isFinite(v) || v < 0) throw new Error(`${a} needs a non-negative number`);
      return v;
    };
    if (a === '--seconds') o.seconds = num();
    else if (a === '--cases') o.cases = num();
    else if (a === '--seed') o.seed = num();
    else if (a === '--case') o.only = num();
    else if (a === '--timeout-ms') o.timeoutMs = num();
    else if (a === '--target') o.targets = val().split(',');
    else if (a === '--save') o.save = val();
    else if (a === '--no-minimize') o.minimizeFindings = false;
    else throw new Error(`unknown option ${a}`);
  }
  if (o.seconds === undefined && o.cases === undefined && o.only === undefined) o.seconds = 60;
  return o;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  let opts;
  try {
    opts = parseArgs(process.argv.slice(2));
  } catch (e) {
    console.error(`fuzz: ${e.message}`);
    process.exit(2);
  }
  const t0 = Date.now();
  const { counts, findings } = await runFuzz({ ...opts, log: (s) => console.log(s) });
  for (const [t, c] of Object.entries(counts)) console.log(`${t.padEnd(18)} ${String(c.ok + c.typed + c.failed).padStart(7)} inputs: ${c.ok} read, ${c.typed} typed errors, ${c.failed} failures`);
  console.log(`seed ${opts.seed ?? 1}, ${((Date.now() - t0) / 1000).toFixed(1)} s, ${findings.length} failing input(s)`);
  process.exit(findings.length ? 1 : 0);
}

/**
 * Runs saved inputs (folders with meta.json and files/, as --save writes them) through the same
 * reader process. Returns [{dir, meta, result}].
 */
export async function runSaved(dirs, timeoutMs = 5000) {
  const worker = new Worker();
  const out = [];
  try {
    for (const d of dirs) {
      const meta = JSON.parse(readFileSync(join(d, 'meta.json'), 'utf8'));
      out.push({ dir: d, meta, result: await runCase(worker, meta.target, join(d, 'files'), meta.variant, timeoutMs) });
    }
  } finally {
    worker.kill();
  }
  return out;
}
