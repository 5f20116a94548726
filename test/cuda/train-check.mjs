// The device training check: N steps (default 20; scripts/gpu-check.sh runs 50) of K-FAC with
// Newton-step clipping at its defaults on LoRA adapters (q_proj, v_proj, r = 4) of stories260K,
// once with the model on the CPU and once loaded straight to cuda (loadModel(path, { device:
// 'cuda' }): one tensor at a time, state follows the weights), on the same batches of real text.
// Prints one JSON line with both loss curves, the time per step of each side and the verdict.
//
//   node test/cuda/train-check.mjs <stories260K.bin> [--steps 20] [--loopback] [--checkpointing]
//
// --checkpointing runs the device side with gradient checkpointing (K-FAC capturing each block
// during the backward): the values are the same, so the same tolerance applies.
//
// --loopback runs the cuda side on the CPU loopback (no GPU needed): the losses must then be
// identical, which checks this script itself. Exit codes: 0 pass, 1 losses out of tolerance,
// 2 bad usage or missing model, 3 the device run could not start (e.g. an nn op without a cuda
// kernel: a typed DeviceError that names the op).
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
  console.error(`usage: node test/cuda/train-check.mjs <stories260K.bin> [--steps N] [--loopback] (model: ${modelPath ?? 'not given'})`);
  process.exit(2);
}
const loopback = flag('--loopback');
if (loopback) native()._cpuLoopback();

const TOL0 = 1e-4;
const TOL = 1e-2;

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
  const m = device === 'cuda' ? loadModel(modelPath, { device: 'cuda', checkpointing }) : loadModel(modelPath);
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
  console.log(JSON.stringify({ ok: false, steps, loopback, cpu: cpu.losses, error: e instanceof Error ? e.message : String(e), reason: noKernel ? 'an op the step needs has no cuda kernel: the device run cannot start' : 'the device run failed' }));
  process.exit(3);
}
const rel = cpu.losses.map((l, i) => Math.abs(dev.losses[i] - l) / Math.abs(l));
const bad = rel.map((r, i) => ({ step: i, rel: r, tol: i === 0 ? TOL0 : TOL })).filter((x) => !(x.rel <= x.tol));
const ok = bad.length === 0 && (!loopback || rel.every((r) => r === 0));
console.log(JSON.stringify({ ok, steps, loopback, checkpointing, tolerance: { step0: TOL0, later: TOL }, cpu: cpu.losses, cuda: dev.losses, maxRel: Math.max(...rel), outOfTolerance: bad, ms: { cpu: cpu.ms, cuda: dev.ms }, msPerStep: { cpu: cpu.ms / steps, cuda: dev.ms / steps } }));
process.exit(ok ? 0 : 1);
