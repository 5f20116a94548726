// The device training check: N steps (default 20; scripts/gpu-check.sh runs 50) of K-FAC with
// Newton-step clipping at its defaults on LoRA adapters (q_proj, v_proj, r = 4) of stories260K,
// once with the model on the CPU and once loaded straight to cuda (loadModel(path, { device:
// 'cuda' }): one tensor at a time, state follows the weights), on the same batches of real text.
// Prints one JSON line with both loss curves, the time per step of each side and the verdict.
//
//   node test/cuda/train-check.mjs <stories260K.bin> [--steps 20] [--loopback | --emulation]
//                                  [--checkpointing] [--bf16]
//
// --checkpointing runs the device side with gradient checkpointing (K-FAC capturing each block
// during the backward): the values are the same, so the same tolerance applies.
//
// --bf16: mixed precision as PEFT users run it. Both sides store the frozen weights in bf16
// (dtype 'bfloat16', the same rounded weights); the device side also stores its activations in
// bf16 (activations 'bfloat16'), the CPU side keeps them in float32. The tolerance is then that
// of bf16 storage (below).
//
// --loopback runs the cuda side on the CPU loopback (no GPU needed): the losses must then be
// identical, which checks this script itself. --emulation runs it on the CUDA emulation (the
// device's kernel bodies on the host; no GPU needed), the one host device that stores bf16
// activations: with --bf16 that checks the bf16 tolerance without a GPU. Exit codes: 0 pass,
// 1 losses out of tolerance, 2 bad usage or missing model, 3 the device run could not start
// (e.g. an nn op without a cuda kernel: a typed DeviceError that names the op).
//
// Tolerance (relative to the CPU loss): step 0 is a forward pass of the initial weights, where
// the two devices differ only by float32 rounding in a different summation order (cuBLAS vs the
// CPU GEMM: |Δ| ≲ K·u·Σ|x·w| with K ≤ 512, u = 2⁻²⁴, i.e. ≲ 3e-5 relative on the logits and less
// on the cross-entropy): 1e-4. Later steps add the difference of the updates: the eigenbases
// of the factors (syevd vs the CPU solver) agree up to rotations inside clustered eigenvalues,
// which change the preconditioned step only through rounding, and the trust-ratio clip bounds
// every update to 0.003·‖θ‖, so a rounding difference cannot be amplified into a different
// trajectory within 20 steps: 1e-2 relative. Over 50 steps the same holds: the per-step
// difference of the weights is a rounding difference (≲ 1e-5 relative), and with every step
// bounded by the clip the differences add up at most linearly (≲ 50·1e-5 = 5e-4 relative on the
// weights, less on the loss), still twenty times inside 1e-2. The 20 steps lower the loss by about half (0.42 at
// step 0, 0.19 at step 19 on the CPU; each step has its own batch), so a device that
// preconditions wrongly, or not at all, is far outside it.
//
// With --bf16 the device rounds every stored activation once (u = 2⁻⁸ relative) where the CPU
// keeps float32, so the two runs are two slightly different computations whose losses drift
// apart step by step; and over 50 steps the loss falls from 0.42 to about 0.03 (the batches
// repeat the same 69-token text), so a difference relative to each step's own loss would
// measure the drift against an ever smaller number. The bf16 check therefore measures every
// step's |Δ| against the first step's CPU loss: at most 2u = 2⁻⁷ ≈ 7.8e-3 of it at step 0 (a
// forward of the same bf16 weights, only the activations rounded: the bound the emulation tests
// use, test/cuda/cuda-emulation-bf16-train.test.ts) and 3e-2 of it after. On the CUDA emulation
// (the device's kernel bodies on the host, --emulation) the 50 steps measured 3.1e-4 at step 0
// and 1.4e-2 at most (step 35, |Δ| = 0.0059); a device differs from the emulation by float32
// summation order only, far below bf16's rounding. A device that preconditions wrongly, or not
// at all, misses the fall from 0.42 to 0.03 by far more than 3e-2 · 0.42 = 0.013.
import { readFileSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { DeviceError } from '../../dist/index.js';
import { KFAC } from '../../dist/kfac/kfac-optimizer.js';
import { captureBlockwise, loadModel } from '../../dist/models/index.js';
import { native } from '../../dist/native/loader.js';
import { applyLora, kfacLayersForLora, untrackedParameters } from '../../dist/peft/index.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const flag = (name) => args.includes(name);
const value = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : dflt;
};
const modelPath = args.find((a, i) => !a.startsWith('--') && args[i - 1] !== '--steps');
const checkpointing = flag('--checkpointing');
const steps = Number(value('--steps', '20'));
if (!modelPath || !existsSync(modelPath) || !Number.isInteger(steps) || steps < 1) {
  console.error(`usage: node test/cuda/train-check.mjs <stories260K.bin> [--steps N] [--loopback | --emulation] [--checkpointing] [--bf16] (model: ${modelPath ?? 'not given'})`);
  process.exit(2);
}
const loopback = flag('--loopback');
const emulation = flag('--emulation');
const bf16 = flag('--bf16');
if (loopback && emulation) {
  console.error('train-check: --loopback or --emulation, not both');
  process.exit(2);
}
if (loopback) native()._cpuLoopback();
if (emulation) native()._cudaEmulation();

const TOL0 = bf16 ? 2 ** -7 : 1e-4;
const TOL = bf16 ? 3e-2 : 1e-2;

// Real text: the documented greedy story of stories260K (69 tokens), in windows of 32.
const fx = JSON.parse(readFileSync(join(HERE, '..', 'fixtures', 'llama2c', 'stories260K-greedy.json'), 'utf8'));
const text = [...fx.promptIds, ...fx.generatedIds];
const B = 2, T = 32;
function batch(step) {
  const ids = new Int32Array(B * T);
  for (let b = 0; b < B; b++) {
    const start = (step * 7 + b * 17) % (text.length - T);
    for (let t = 0; t < T; t++) ids[b * T + t] = text[start + t];
  }
  return { inputIds: ids, shape: [B, T], labels: ids };
}

function run(device) {
  const half = bf16 ? { dtype: 'bfloat16' } : {};
  const m = device === 'cuda' ? loadModel(modelPath, { device: 'cuda', checkpointing, ...half, ...(bf16 ? { activations: 'bfloat16' } : {}) }) : loadModel(modelPath, half);
  try {
    applyLora(m, { targetModules: ['q_proj', 'v_proj'], r: 4, alpha: 8 });
    const layers = kfacLayersForLora(m);
    const opt = new KFAC(layers, untrackedParameters(m, layers), {});
    if (m.checkpointing) captureBlockwise(m, opt);
    const losses = [];
    const t0 = process.hrtime.bigint();
    try {
      for (let s = 0; s < steps; s++) {
        m.zeroGrad();
        const out = m.forward(batch(s));
        m.backward();
        // the loss rides in K-FAC's step record: the step's one wait for the device
        opt.step({ batchSize: B, losses: [out.lossValue] });
        losses.push(out.loss);
      }
    } finally {
      opt.dispose();
    }
    return { losses, ms: Number(process.hrtime.bigint() - t0) / 1e6 };
  } finally {
    m.dispose();
  }
}

const cpu = run('cpu');
let dev;
try {
  dev = run('cuda');
} catch (e) {
  const noKernel = e instanceof DeviceError && /has no cuda kernel/.test(e.message);
  console.log(JSON.stringify({ ok: false, steps, loopback, emulation, bf16, cpu: cpu.losses, error: e instanceof Error ? e.message : String(e), reason: noKernel ? 'an op the step needs has no cuda kernel: the device run cannot start' : 'the device run failed' }));
  process.exit(3);
}
// f32: each step's difference relative to its own CPU loss; bf16: relative to the first CPU loss (above)
const rel = cpu.losses.map((l, i) => Math.abs(dev.losses[i] - l) / Math.abs(bf16 ? cpu.losses[0] : l));
const bad = rel.map((r, i) => ({ step: i, rel: r, tol: i === 0 ? TOL0 : TOL })).filter((x) => !(x.rel <= x.tol));
const ok = bad.length === 0 && (!loopback || rel.every((r) => r === 0));
console.log(JSON.stringify({ ok, steps, loopback, emulation, checkpointing, bf16, tolerance: { step0: TOL0, later: TOL, of: bf16 ? 'the first CPU loss' : "each step's CPU loss" }, cpu: cpu.losses, cuda: dev.losses, maxRel: Math.max(...rel), outOfTolerance: bad, ms: { cpu: cpu.ms, cuda: dev.ms }, msPerStep: { cpu: cpu.ms / steps, cuda: dev.ms / steps } }));
process.exit(ok ? 0 : 1);
