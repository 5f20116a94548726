// Load a Hugging Face PEFT LoRA adapter, run it, and save it back in the same format.
//
//   npm run build:ts && node examples/load-peft-adapter.mjs
//
// Uses the real DistilBERT LoRA adapter (q_lin/v_lin, r = 8, classifier saved) and the
// bert-base-uncased tokenizer from the shared data folder (KFAC_PEFT_DATA, default ../shared/data);
// without it, it says so and exits. The adapter's base model (distilbert-base-uncased) is not in
// that folder, so the base here is randomly initialised with the same dimensions: with your own
// copy of the base, use models.loadModel(dir) instead and the predictions become meaningful.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { io, models, peft } from 'kfac-peft';

const DATA = process.env.KFAC_PEFT_DATA ?? fileURLToPath(new URL('../../shared/data', import.meta.url));
const adapterDir = join(DATA, 'peft', 'distilbert-lora-imdb');
const tokenizerDir = join(DATA, 'tokenizers', 'bert-base-uncased');
if (!existsSync(adapterDir) || !existsSync(tokenizerDir)) {
  console.log(`skipped: ${adapterDir} or ${tokenizerDir} is absent (set KFAC_PEFT_DATA to the shared data folder)`);
  process.exit(0);
}

const base =
  process.env.BASE_MODEL !== undefined
    ? models.loadModel(process.env.BASE_MODEL, { task: 'sequence-classification', numLabels: 2 })
    : models.createBert(
        { modelType: 'distilbert', vocabSize: 30522, hiddenSize: 768, intermediateSize: 3072, numLayers: 6, numHeads: 12, maxPositions: 512 },
        { task: 'sequence-classification', numLabels: 2, seed: 0 },
      );

// Applies LoRA from adapter_config.json, then copies every tensor of adapter_model.safetensors.
const report = peft.loadAdapter(base, adapterDir);
console.log(`loaded ${report.keys.length} tensors; adapted layers: ${report.state.branches.length}; heads: ${report.modulesToSave.join(', ')}`);
console.log(`r = ${report.state.config.r}, alpha = ${report.state.config.alpha}, targets: ${report.state.config.targetModules}`);

const tok = io.Tokenizer.fromFile(tokenizerDir);
const enc = tok.encodeBatch(['a wonderful, moving film', 'a dull and tedious mess'], { maxLength: 32, padding: 'longest' });
base.eval();
const [B, T] = [enc.ids.length, enc.ids[0].length]; // padded to the longest: rows of equal length
const out = base.forward({ inputIds: Int32Array.from(enc.ids.flat()), shape: [B, T], attentionMask: enc.attentionMask.flat() });
const logits = out.logits.toArray();
console.log(`logits shape: [${out.logits.shape.join(', ')}]; first row: ${[...logits.slice(0, 2)].map((v) => v.toFixed(4)).join(', ')}`);

// Saved again, the adapter is byte for byte the file it came from.
const tmp = mkdtempSync(join(tmpdir(), 'kfac-peft-example-'));
try {
  peft.saveAdapter(base, tmp);
  const same = readFileSync(join(tmp, 'adapter_model.safetensors')).equals(readFileSync(join(adapterDir, 'adapter_model.safetensors')));
  console.log(`saved again: adapter_model.safetensors identical: ${same}`);
} finally {
  rmSync(tmp, { recursive: true, force: true });
  base.dispose();
}
