/**
 * Agreement with the reference implementation: tiny randomly initialised checkpoints saved by
 * transformers (tools/make_models_fixtures.py) load through loadModel and give the reference's
 * logits, loss and parameter gradients (float32 eval mode, eager attention).
 *
 * Tolerances: logits ≤ 1e-4 relative to the largest |logit| of the case (float32 with a
 * different summation order differs by ~1e-6); gradients ≤ 1e-3 relative to the largest
 * |gradient| of the tensor (they go through the whole backward, twice as many roundings).
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { describe, expect, test } from 'vitest';

import { loadModel } from '../../lib/models/index.js';

const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'models');

interface Expected {
  shape: [number, number];
  inputIds: number[];
  attentionMask: number[] | null;
  tokenTypeIds: number[] | null;
  labels: number[] | null;
  logitsShape: number[];
  logits: number[];
  loss: number;
  grads: Record<string, { shape: number[]; values: number[] }>;
}

function maxRelErr(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let scale = 0;
  for (let i = 0; i < want.length; i++) scale = Math.max(scale, Math.abs(want[i]!));
  let err = 0;
  for (let i = 0; i < want.length; i++) err = Math.max(err, Math.abs(got[i]! - want[i]!));
  return err / Math.max(scale, 1e-30);
}

const CASES: [string, 'causal-lm' | 'sequence-classification' | 'regression'][] = [
  ['llama-gqa', 'causal-lm'],
  ['qwen2-tied', 'causal-lm'],
  ['llama-cls', 'sequence-classification'],
  ['bert-cls', 'sequence-classification'],
  ['bert-reg', 'regression'],
  ['roberta-cls', 'sequence-classification'],
  ['distilbert-cls', 'sequence-classification'],
  ['gpt2-lm', 'causal-lm'],
  ['gpt2-cls', 'sequence-classification'],
  ['mistral-lm', 'causal-lm'],
];

describe('models agree with transformers on tiny checkpoints', () => {
  test.each(CASES)('%s (%s): logits, loss and gradients', (name, task) => {
    const dir = join(FIXTURES, name);
    const exp = JSON.parse(readFileSync(join(dir, 'expected.json'), 'utf8')) as Expected;
    using model = loadModel(dir);
    expect(model.task).toBe(task);
    expect(model.loadReport.fresh).toEqual([]);
    model.eval();
    const labels = exp.labels === null ? null : task === 'regression' ? Float32Array.from(exp.labels) : Int32Array.from(exp.labels);
    model.zeroGrad();
    const out = model.forward({
      inputIds: Int32Array.from(exp.inputIds),
      shape: exp.shape,
      attentionMask: exp.attentionMask,
      tokenTypeIds: exp.tokenTypeIds === null ? null : Int32Array.from(exp.tokenTypeIds),
      labels,
    });
    expect([...out.logits.shape]).toEqual(exp.logitsShape);
    const logitErr = maxRelErr(out.logits.toArray(), exp.logits);
    expect(logitErr, `${name} logits`).toBeLessThan(1e-4);
    expect(Math.abs(out.loss! - exp.loss) / Math.abs(exp.loss), `${name} loss`).toBeLessThan(1e-5);
    model.backward();
    const params = new Map(model.parameters().map((p) => [p.name, p]));
    const gradErrs: Record<string, number> = {};
    for (const [pname, g] of Object.entries(exp.grads)) {
      const p = params.get(pname);
      expect(p, pname).toBeDefined();
      expect([...p!.tensor.shape]).toEqual(g.shape);
      gradErrs[pname] = maxRelErr(p!.grad!.toArray(), g.values);
      expect(gradErrs[pname], `${name} ∂loss/∂${pname}`).toBeLessThan(1e-3);
    }
    console.log(`${name}: logits rel err ${logitErr.toExponential(2)}, grads ${Object.values(gradErrs).map((e) => e.toExponential(2)).join(' ')}`);
  });
});

test('Mistral refuses sequences longer than its sliding window (not implemented)', () => {
  using m = loadModel(join(FIXTURES, 'mistral-lm'));
  expect(m.config).toMatchObject({ modelType: 'mistral', slidingWindow: 16, numKvHeads: 1 });
  expect(() => m.forward({ inputIds: new Int32Array(17), shape: [1, 17] })).toThrow(/sliding window/);
});

describe('loadModel returns a model in eval mode', () => {
  // gpt2-lm has dropout 0.1 in attention, residuals and embeddings: in train mode its logits differ from the reference
  test.each(['gpt2-lm', 'bert-cls'])('%s: the logits equal the reference without calling eval()', (name) => {
    const dir = join(FIXTURES, name);
    const exp = JSON.parse(readFileSync(join(dir, 'expected.json'), 'utf8')) as Expected;
    using model = loadModel(dir);
    expect(model.training).toBe(false);
    const batch = {
      inputIds: Int32Array.from(exp.inputIds),
      shape: exp.shape,
      attentionMask: exp.attentionMask,
      tokenTypeIds: exp.tokenTypeIds === null ? null : Int32Array.from(exp.tokenTypeIds),
    };
    expect(maxRelErr(model.forward(batch).logits.toArray(), exp.logits)).toBeLessThan(1e-4);
    // the same checkpoint in train mode applies dropout: far from the reference (what eval mode protects against)
    model.train();
    expect(maxRelErr(model.forward(batch).logits.toArray(), exp.logits)).toBeGreaterThan(1e-2);
  });
});
