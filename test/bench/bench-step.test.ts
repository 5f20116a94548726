/**
 * `bench step` on a tiny random T5 (in process): each PEFT method trains the seq2seq step with
 * AdamW and K-FAC at the train defaults — the loss of the fixed batch is finite and falls, and the
 * trainable count is the method's own (counted from the shapes) — and BitFit on the bias-less T5
 * is the method's typed error, named after the flag.
 */
import { describe, expect, test } from 'vitest';

import { runStep } from '../../lib/bench/step.js';
import { BitfitError } from '../../lib/peft/index.js';

// d_model 16, 2 heads of d_kv 8 (inner 16), d_ff 32, 2 + 2 layers, no dropout (a deterministic loss)
const TINY_T5 = { model_type: 't5', vocab_size: 64, d_model: 16, d_kv: 8, num_heads: 2, d_ff: 32, num_layers: 2, num_decoder_layers: 2, feed_forward_proj: 'relu', dropout_rate: 0, tie_word_embeddings: true };
const [D, INNER, FF, R] = [16, 16, 32, 8];
// LoRA (r 8) on q and v: 2 per encoder layer (self-attention), 4 per decoder layer (self and cross)
const LORA = (2 * 2 + 2 * 4) * R * (D + INNER);
// IA3 on k, v (output scaled) and wo (feed-forward: input scaled)
const IA3 = 2 * (2 * INNER + FF) + 2 * (4 * INNER + FF);
// Pfeiffer bottleneck after every feed-forward (reduction 16: d_model 16 → 1 → 16, with biases)
const ADAPTER = 4 * (D * 1 + 1 + 1 * D + D);

const opts = { config: TINY_T5, dtype: 'float32' as const, threads: 1, batch: 2, seq: 8, targetSeq: 4, rounds: 1, stepsPerRound: 4, peer: undefined, profile: false, progress: () => {} };

describe('bench step on T5', () => {
  test.each([
    ['lora', 'adamw', LORA],
    ['lora', 'kfac', LORA],
    ['ia3', 'adamw', IA3],
    ['ia3', 'kfac', IA3],
    ['adapter', 'kfac', ADAPTER],
  ] as const)('%s with %s: finite loss that falls on the fixed batch, the method\'s trainable count', async (peft, optimizer, count) => {
    const r = await runStep({ ...opts, peft, optimizer });
    expect(r.task).toBe('seq2seq-lm');
    expect(r.peft).toBe(peft);
    expect(r.targetSeq).toBe(4);
    expect(r.trainable).toBe(count);
    expect(r.losses).toHaveLength(6);
    for (const l of r.losses) expect(Number.isFinite(l)).toBe(true);
    expect(r.losses.at(-1)!).toBeLessThan(r.losses[0]!);
    expect(r.ours.medianMs).toBeGreaterThan(0);
    // tokens/s counts source and target tokens
    expect(r.ours.tokensPerSecond).toBeCloseTo((2 * (8 + 4) * 1000) / r.ours.medianMs, 6);
  });

  test('bitfit on a model without biases is the typed BitFit error naming --peft', async () => {
    const p = runStep({ ...opts, peft: 'bitfit', optimizer: 'adamw' });
    await expect(p).rejects.toBeInstanceOf(BitfitError);
    await expect(p).rejects.toThrow(/--peft bitfit on config: .*no bias parameters/);
  });

  test('T5 refuses bfloat16 storage with a typed error naming dtype', async () => {
    await expect(runStep({ ...opts, dtype: 'bfloat16', optimizer: 'adamw' })).rejects.toThrow(/dtype/);
  });
});
