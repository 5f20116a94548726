// Compare optimizers on one fine-tuning task: the same model, data, LoRA and seed for each.
//
//   npm run build:ts && node examples/compare-optimizers.mjs
//
// The tiny BERT of the test fixtures with LoRA on query/value, a synthetic task (positive when a
// sequence contains token 7), and three optimizers side by side. For real comparisons over seeds
// with a report, see `kfac-peft compare` (docs/CLI.md) and BENCHMARKS.md.
import { fileURLToPath } from 'node:url';

import { kfac, models, optim, peft } from 'kfac-peft';

const MODEL = process.env.MODEL ?? fileURLToPath(new URL('../test/fixtures/models/bert-cls', import.meta.url));
const B = 32;
const T = 12;
const STEPS = 60;

function makeBatch(seed) {
  let s = seed >>> 0;
  const rand = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
  const inputIds = new Int32Array(B * T);
  const labels = new Int32Array(B);
  for (let b = 0; b < B; b++) {
    labels[b] = rand() < 0.5 ? 1 : 0;
    inputIds[b * T] = 1;
    for (let t = 1; t < T; t++) inputIds[b * T + t] = 8 + Math.floor(rand() * 42);
    if (labels[b] === 1) inputIds[b * T + 1 + Math.floor(rand() * (T - 1))] = 7;
  }
  return { inputIds, shape: [B, T], labels };
}

const OPTIMIZERS = {
  'AdamW lr=1e-2': (model) => new optim.AdamW(model.trainableParameters(), { lr: 1e-2, weightDecay: 0 }),
  'SGD lr=0.1 momentum=0.9': (model) => new optim.SGD(model.trainableParameters(), { lr: 0.1, momentum: 0.9 }),
  'K-FAC lr=0.05 clip=0.5': (model) => {
    const layers = peft.kfacLayersForLora(model, { heads: true });
    return new kfac.KFAC(layers, peft.untrackedParameters(model, layers), { lr: 0.05, damping: 0.01, inverseEvery: 5, newtonClip: { maxNorm: 0.5 } });
  },
};

const dev = makeBatch(999);
const rows = [];
for (const [name, make] of Object.entries(OPTIMIZERS)) {
  const model = models.loadModel(MODEL, { task: 'sequence-classification', numLabels: 2, seed: 0 });
  peft.applyLora(model, { targetModules: ['query', 'value'], r: 4, alpha: 8 });
  const opt = make(model);
  const t0 = performance.now();
  let loss = NaN;
  for (let step = 0; step < STEPS; step++) {
    model.train();
    model.zeroGrad();
    loss = model.forward(makeBatch(step + 1)).loss;
    model.backward();
    opt.step({ batchSize: B });
  }
  const msPerStep = (performance.now() - t0) / STEPS;
  model.eval();
  const out = model.forward(dev);
  const logits = out.logits.toArray();
  let right = 0;
  for (let b = 0; b < B; b++) right += Number((logits[2 * b + 1] > logits[2 * b] ? 1 : 0) === dev.labels[b]);
  rows.push({ name, trainLoss: loss, devLoss: out.loss, devAccuracy: right / B, msPerStep });
  opt.dispose();
  model.dispose();
}

console.log('optimizer                   train loss  dev loss  dev acc  ms/step');
for (const r of rows)
  console.log(`${r.name.padEnd(28)}${r.trainLoss.toFixed(4).padStart(10)}${r.devLoss.toFixed(4).padStart(10)}${r.devAccuracy.toFixed(3).padStart(9)}${r.msPerStep.toFixed(1).padStart(9)}`);
const best = rows.reduce((a, b) => (b.devLoss < a.devLoss ? b : a));
console.log(`lowest dev loss: ${best.name}`);
