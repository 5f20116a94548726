// Fine-tune a BERT sequence classifier with LoRA and K-FAC + Newton-step clipping.
//
//   npm run build:ts && node examples/bert-classifier.mjs
//
// The model is the tiny BERT checkpoint of the test fixtures (2 layers, hidden 32, vocabulary 50);
// point MODEL at any Hugging Face BERT/RoBERTa/DistilBERT folder to use a real one. The task is
// synthetic so that it runs anywhere: a sequence is positive when it contains token 7.
import { fileURLToPath } from 'node:url';

import { kfac, models, peft } from 'kfac-peft';

const MODEL = process.env.MODEL ?? fileURLToPath(new URL('../test/fixtures/models/bert-cls', import.meta.url));
const B = 32; // sequences per batch
const T = 12; // tokens per sequence
const STEPS = 100;

/** A batch of B random sequences (ids 1..49, position 0 is [CLS]-like id 1) and their labels. */
function makeBatch(seed) {
  let s = seed >>> 0;
  const rand = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
  const inputIds = new Int32Array(B * T);
  const labels = new Int32Array(B);
  for (let b = 0; b < B; b++) {
    labels[b] = rand() < 0.5 ? 1 : 0;
    inputIds[b * T] = 1;
    for (let t = 1; t < T; t++) {
      let id = 2 + Math.floor(rand() * 48);
      if (id === 7) id = 8; // token 7 appears only where the label puts it
      inputIds[b * T + t] = id;
    }
    if (labels[b] === 1) inputIds[b * T + 1 + Math.floor(rand() * (T - 1))] = 7;
  }
  return { inputIds, shape: [B, T], labels };
}

function accuracy(model, batch) {
  model.eval();
  const logits = model.forward({ ...batch, labels: null }).logits.toArray(); // [B, 2]
  let right = 0;
  for (let b = 0; b < B; b++) right += Number((logits[2 * b + 1] > logits[2 * b] ? 1 : 0) === batch.labels[b]);
  return right / B;
}

const model = models.loadModel(MODEL, { task: 'sequence-classification', numLabels: 2, seed: 0 });
const lora = peft.applyLora(model, { targetModules: ['query', 'value'], r: 4, alpha: 8 }); // + the classifier head
console.log(lora.summary);

const layers = peft.kfacLayersForLora(model, { heads: true }); // lora_A/lora_B (and the head) as K-FAC layers
const opt = new kfac.KFAC(layers, peft.untrackedParameters(model, layers), {
  lr: 0.05,
  damping: 0.01,
  inverseEvery: 5,
  newtonClip: { maxNorm: 0.5 },
});

const dev = makeBatch(999);
const before = accuracy(model, dev);
let first = NaN;
let last = NaN;
let clipped = 0;
for (let step = 0; step < STEPS; step++) {
  model.train();
  model.zeroGrad();
  const out = model.forward(makeBatch(step + 1));
  model.backward();
  const t = opt.step({ batchSize: B });
  if (t.clipped) clipped++;
  if (step === 0) first = out.loss;
  last = out.loss;
}
const after = accuracy(model, dev);
console.log(`train loss: ${first.toFixed(4)} -> ${last.toFixed(4)}`);
console.log(`Newton step clipped on ${clipped} of ${STEPS} steps`);
console.log(`dev accuracy: ${before.toFixed(3)} -> ${after.toFixed(3)}`);
opt.dispose();
model.dispose(); // frees native memory now (a finalizer would do it later)
