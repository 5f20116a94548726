// Adapt a LLaMA language model to new text with LoRA and K-FAC + Newton-step clipping, then
// generate from it.
//
//   npm run build:ts && node examples/llama-lm.mjs
//
// Uses the real 260K-parameter TinyStories model (llama2.c format) from the shared data folder when
// it is there (KFAC_PEFT_DATA, default ../shared/data); otherwise it says so and exits.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { io, kfac, models, peft } from 'kfac-peft';

const DATA = process.env.KFAC_PEFT_DATA ?? fileURLToPath(new URL('../../shared/data', import.meta.url));
const checkpoint = join(DATA, 'llama2c', 'stories260K.bin');
const tokenizerFile = join(DATA, 'llama2c', 'tok512.bin');
if (!existsSync(checkpoint) || !existsSync(tokenizerFile)) {
  console.log(`skipped: ${checkpoint} is absent (set KFAC_PEFT_DATA to the shared data folder)`);
  process.exit(0);
}

const model = models.loadModel(checkpoint, { task: 'causal-lm' });
const tok = io.Llama2cTokenizer.open(tokenizerFile, model.config.vocabSize);
const prompt = 'Once upon a time, there was a';
const story = 'Once upon a time, there was a purple dragon named Bob. Bob loved to drink tea with his friend the frog.';

const greedy = () => {
  model.eval();
  const ids = models.generate(model, tok.encode(prompt), { maxNewTokens: 20 });
  return tok.decode([...ids]);
};
console.log(`before: ${prompt}${greedy()}`);

// LoRA on the attention projections; everything else frozen.
const lora = peft.applyLora(model, { targetModules: ['q_proj', 'v_proj', 'o_proj'], r: 4, alpha: 8 });
console.log(lora.summary);
const layers = peft.kfacLayersForLora(model);
const opt = new kfac.KFAC(layers, peft.untrackedParameters(model, layers), {
  lr: 0.1,
  damping: 0.01,
  newtonClip: { maxNorm: 1 },
});

const ids = Int32Array.from(tok.encode(story)); // one sequence; labels are the ids (shifted inside)
const batch = { inputIds: ids, shape: [1, ids.length], labels: ids };
let first = NaN;
let last = NaN;
for (let step = 0; step < 30; step++) {
  model.train();
  model.zeroGrad();
  const out = model.forward(batch);
  model.backward();
  opt.step({ batchSize: 1 });
  if (step === 0) first = out.loss;
  last = out.loss;
}
console.log(`loss on the story: ${first.toFixed(4)} -> ${last.toFixed(4)}`);
console.log(`after: ${prompt}${greedy()}`);

peft.mergeLora(model); // W += s·B·A: the adapted model without the LoRA branches
console.log(`merged: ${prompt}${greedy()}`);
opt.dispose();
model.dispose();
