/**
 * The external check: the real stories260K llama2.c model (../shared/data/llama2c) continues
 * "Once upon a time" greedily exactly as llama2.c does, token for token, for 64 tokens.
 *
 * The expected ids come from tools/llama2c_reference.py, an independent numpy re-implementation
 * of run.c (float64; its float32 run gives the same ids, and the smallest gap between the best
 * and second-best logit over the 64 steps is 0.07, far above float32 noise). The decoded text
 * must begin with the sentence llama2.c documents for this model.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { describe, expect, test } from 'vitest';

import { FormatError } from '../../lib/errors.js';
import { Llama2cTokenizer } from '../../lib/io/llama2c.js';
import { generate, loadModel } from '../../lib/models/index.js';
import { sharedData, skipNote } from '../support/shared-data.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const DATA = sharedData('llama2c');
const CKPT = join(DATA ?? '', 'stories260K.bin');
const TOK = join(DATA ?? '', 'tok512.bin');

interface Fixture {
  prompt: string;
  promptIds: number[];
  generatedIds: number[];
  text: string;
}

const fixture = JSON.parse(readFileSync(join(HERE, '..', 'fixtures', 'llama2c', 'stories260K-greedy.json'), 'utf8')) as Fixture;

describe.skipIf(DATA === undefined)(`stories260K (llama2.c)${skipNote(DATA, 'llama2c')}`, () => {
  test('loads every weight of the checkpoint under Hugging Face names', () => {
    using model = loadModel(CKPT);
    expect(model.task).toBe('causal-lm');
    expect(model.config).toMatchObject({ family: 'llama', hiddenSize: 64, intermediateSize: 172, numLayers: 5, numHeads: 8, numKvHeads: 4, vocabSize: 512, maxPositions: 512, ropeConvention: 'interleaved', tieWordEmbeddings: true });
    expect(model.loadReport.fresh).toEqual([]);
    expect(model.loadReport.dropped).toEqual([]);
    expect(new Set(model.loadReport.loaded)).toEqual(new Set(model.parameterNames()));
    expect(model.parameterNames()).toContain('model.layers.4.self_attn.k_proj.weight');
    // 260K parameters: 512·64 embedding + 5 layers + final norm.
    expect(model.parameters().reduce((s, p) => s + p.tensor.size, 0)).toBe(512 * 64 + 5 * (64 + 64 * 64 + 2 * 32 * 64 + 64 * 64 + 64 + 3 * 172 * 64) + 64);
  });

  test('greedy continuation of "Once upon a time" matches llama2.c for 64 tokens', () => {
    using model = loadModel(CKPT);
    const tok = Llama2cTokenizer.open(TOK, model.config.vocabSize);
    expect(tok.encode(fixture.prompt)).toEqual(fixture.promptIds);
    const ids = generate(model, tok.encode('Once upon a time'), { maxNewTokens: 64 });
    expect(Array.from(ids)).toEqual(fixture.generatedIds);
    const text = tok.decode([...fixture.promptIds, ...ids]);
    expect(text.startsWith('Once upon a time, there was a little girl named Lily.')).toBe(true);
    expect(text).toBe(fixture.text);
    console.log(`stories260K: ${JSON.stringify(text)}`);
  });

  test('the KV-cache steps give the logits of a full forward over the whole sequence', () => {
    using model = loadModel(CKPT);
    model.eval();
    const seq = Int32Array.from([...fixture.promptIds, ...fixture.generatedIds]);
    const T = seq.length - 1;
    const full = model.forward({ inputIds: seq.subarray(0, T), shape: [1, T] }).logits.toArray();
    const V = 512;
    // argmax of the full forward at each generated position is the next generated token
    for (let t = fixture.promptIds.length - 1; t < T; t++) {
      let best = 0;
      for (let v = 1; v < V; v++) if (full[t * V + v]! > full[t * V + best]!) best = v;
      expect(best, `position ${t}`).toBe(seq[t + 1]);
    }
    // and the cached logits of the last step equal the full forward's last row
    const cache = model.createCache(1, T);
    try {
      model.forwardCached(seq.subarray(0, T - 1), 1, T - 1, cache);
      const last = model.forwardCached(seq.subarray(T - 1, T), 1, 1, cache).toArray();
      let err = 0;
      let scale = 0;
      for (let v = 0; v < V; v++) {
        err = Math.max(err, Math.abs(last[v]! - full[(T - 1) * V + v]!));
        scale = Math.max(scale, Math.abs(full[(T - 1) * V + v]!));
      }
      expect(err / scale).toBeLessThan(1e-5);
    } finally {
      cache.dispose();
    }
  });

  test('the loss of its own greedy story is low, and one gradient step lowers it', () => {
    using model = loadModel(CKPT);
    model.eval();
    const seq = Int32Array.from([...fixture.promptIds, ...fixture.generatedIds]);
    const batch = { inputIds: seq, shape: [1, seq.length] as const, labels: seq };
    model.zeroGrad();
    const before = model.forward(batch).loss!;
    expect(before).toBeLessThan(1);
    model.backward();
    for (const p of model.parameters()) {
      const w = p.tensor.toArray();
      const g = p.grad!.toArray();
      for (let i = 0; i < w.length; i++) w[i] = w[i]! - 0.05 * g[i]!;
      p.tensor.set(w);
    }
    const after = model.forward(batch).loss!;
    expect(after).toBeLessThan(before);
  });

  test('sampling is reproducible from its seed and differs across seeds', () => {
    using model = loadModel(CKPT);
    const a = generate(model, fixture.promptIds, { maxNewTokens: 24, temperature: 1, topP: 0.9, seed: 7 });
    const b = generate(model, fixture.promptIds, { maxNewTokens: 24, temperature: 1, topP: 0.9, seed: 7 });
    const c = generate(model, fixture.promptIds, { maxNewTokens: 24, temperature: 1, topP: 0.9, seed: 8 });
    expect(Array.from(a)).toEqual(Array.from(b));
    expect(Array.from(a)).not.toEqual(Array.from(c));
  });

  test('a truncated checkpoint is a FormatError', () => {
    const bytes = readFileSync(CKPT);
    const dir = mkdtempSync(join(tmpdir(), 'kfac-models-'));
    try {
      const tmp = join(dir, 'truncated.bin');
      writeFileSync(tmp, bytes.subarray(0, bytes.length - 4));
      expect(() => loadModel(tmp)).toThrow(FormatError);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
