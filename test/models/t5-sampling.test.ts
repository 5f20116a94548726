/**
 * Sampling for T5 (temperature, top-k, top-p from a seeded generator, the decoder-only sampler of
 * lib/models/generate.ts): a seed reproduces a sample and other seeds give others; vanishing
 * temperature, a tiny top-p and top-k = 1 are greedy decoding; on a 7-token vocabulary the
 * first token's counts over many rows follow softmax(logits / T) (a chi-square bound), restricted
 * and renormalised under top-k. Top-k on a decoder-only model too.
 */
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import { InvalidArgumentError } from '../../lib/errors.js';
import { createT5, generate, generateSeq2Seq, greedySeq2Seq, loadModel, type T5Model } from '../../lib/models/index.js';
import { hostValues } from '../../lib/models/t5.js';

const FIX = join(import.meta.dirname, '..', 'fixtures', 'models');
const SRC = [5, 17, 42, 8, 77, 3];

describe('T5 sampling', () => {
  it('a seed reproduces a sample; seeds differ; greedy limits', () => {
    using m = loadModel(join(FIX, 't5-v1_1')) as unknown as T5Model & Disposable;
    const o = { maxNewTokens: 8, eosTokenId: null };
    const greedy = Array.from(generateSeq2Seq(m, SRC, o));
    const s = (seed: number, extra = {}) => Array.from(generateSeq2Seq(m, SRC, { ...o, temperature: 1.5, seed, ...extra }));
    expect(s(5)).toEqual(s(5));
    const distinct = new Set(Array.from({ length: 8 }, (_, i) => s(i).join(',')));
    expect(distinct.size).toBeGreaterThan(2);
    expect(Array.from(generateSeq2Seq(m, SRC, { ...o, temperature: 1e-4, seed: 3 }))).toEqual(greedy);
    expect(s(3, { topP: 1e-6 })).toEqual(greedy);
    expect(s(3, { topK: 1 })).toEqual(greedy);
    expect(() => generateSeq2Seq(m, SRC, { ...o, temperature: 1, numBeams: 2 })).toThrow(InvalidArgumentError);
    expect(() => generateSeq2Seq(m, SRC, { ...o, temperature: 1, topK: 0 })).toThrow(/topK/);
    expect(() => generateSeq2Seq(m, SRC, { ...o, temperature: -1 })).toThrow(/temperature/);
  });

  it('first-token counts follow softmax(logits / T), and its top-k renormalisation (chi-square)', () => {
    using m = createT5({ vocabSize: 7, hiddenSize: 8, intermediateSize: 8, numLayers: 1, numHeads: 2, dropout: 0 }, { seed: 3, initStd: 0.5 });
    const T = 2;
    const src = Int32Array.from([2, 5, 3, 4]);
    m.eval();
    const st = m.startDecoding(src, 1, 4, null, 1);
    const logits = hostValues(m.decodeStep(Int32Array.of(m.config.decoderStartTokenId), 1, st));
    st.dispose();
    const V = 7;
    const probs = (keep: number[]): number[] => {
      const e = Array.from(logits, (l, i) => (keep.includes(i) ? Math.exp(l / T) : 0));
      const z = e.reduce((a, b) => a + b, 0);
      return e.map((x) => x / z);
    };
    const N = 3000;
    const counts = (extra: object): number[] => {
      const rows = greedySeq2Seq(m, new Int32Array(N * 4).map((_, i) => src[i % 4]!), [N, 4], null, { maxNewTokens: 1, eosTokenId: null, temperature: T, seed: 11, ...extra });
      const c = new Array<number>(V).fill(0);
      for (const r of rows) c[r[0]!]!++;
      return c;
    };
    const chi2 = (c: number[], p: number[]): number => p.reduce((s, pi, i) => (pi > 0 ? s + (c[i]! - N * pi) ** 2 / (N * pi) : s), 0);
    const all = [...Array(V).keys()];
    const p = probs(all);
    expect(Math.min(...p) * N, 'every expected count ≥ 5 (the chi-square approximation holds)').toBeGreaterThan(5);
    // 99.99 % quantiles: 27.9 for 6 degrees of freedom, 18.4 for 2
    expect(chi2(counts({}), p)).toBeLessThan(27.9);
    const top3 = all.sort((a, b) => logits[b]! - logits[a]! || a - b).slice(0, 3);
    const c3 = counts({ topK: 3 });
    expect(c3.reduce((s, c, i) => (top3.includes(i) ? s : s + c), 0), 'no token outside the top 3').toBe(0);
    expect(chi2(c3, probs(top3))).toBeLessThan(18.4);
    // and a wrong distribution is rejected by the same bound (the test can fail)
    expect(chi2(counts({}), probs(top3.slice(0, 2).concat(all.filter((i) => !top3.includes(i)))))).toBeGreaterThan(27.9);
  });
});

describe('top-k on a decoder-only model', () => {
  it('top-k = 1 is greedy; larger k samples', () => {
    using m = loadModel(join(FIX, 'llama-gqa'));
    const prompt = [3, 17, 42, 8];
    const greedy = Array.from(generate(m, prompt, { maxNewTokens: 6 }));
    expect(Array.from(generate(m, prompt, { maxNewTokens: 6, temperature: 1.5, topK: 1, seed: 9 }))).toEqual(greedy);
    const many = new Set(Array.from({ length: 6 }, (_, s) => Array.from(generate(m, prompt, { maxNewTokens: 6, temperature: 1.5, topK: 5, seed: s })).join(',')));
    expect(many.size).toBeGreaterThan(1);
  });
});
