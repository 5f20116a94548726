/**
 * The modules composed into a tiny causal transformer layer, trained with AdamW on a fixed
 * batch: the loss must fall, buffers must be reused from step to step, and a frozen module
 * must stay bit-for-bit unchanged.
 */
import { describe, expect, it } from 'vitest';

import { nn, ops, optim, Tensor } from '../../lib/index.js';

class TinyLM extends nn.Module {
  readonly emb: InstanceType<typeof nn.Embedding>;
  readonly ln1: InstanceType<typeof nn.RMSNorm>;
  readonly attn: InstanceType<typeof nn.Attention>;
  readonly ln2: InstanceType<typeof nn.LayerNorm>;
  readonly mlp: InstanceType<typeof nn.SwiGLUMLP>;
  readonly head: InstanceType<typeof nn.Linear>;
  readonly loss = new nn.CrossEntropyLoss();
  #h: Tensor | null = null;
  #h2: Tensor | null = null;

  constructor(V: number, C: number) {
    super();
    this.emb = this.registerModule('emb', new nn.Embedding(V, C, { std: 0.5, seed: 1 }));
    this.ln1 = this.registerModule('ln1', new nn.RMSNorm(C));
    this.attn = this.registerModule('attn', new nn.Attention(C, { heads: 4, kvHeads: 2, rope: { convention: 'half' }, bias: false, seed: 2 }));
    this.ln2 = this.registerModule('ln2', new nn.LayerNorm(C));
    this.mlp = this.registerModule('mlp', new nn.SwiGLUMLP(C, 2 * C, { seed: 3 }));
    this.head = this.registerModule('head', new nn.Linear(C, V, { bias: false, seed: 4 }));
  }

  forward(ids: Int32Array, B: number, T: number, targets: Int32Array): number {
    const x = this.emb.forward(ids, [B, T]);
    const h = this.workspace('h', x.shape);
    ops.add(x, this.attn.forward(this.ln1.forward(x)), h); // residual
    const h2 = this.workspace('h2', x.shape);
    ops.add(h, this.mlp.forward(this.ln2.forward(h)), h2);
    // the same shape gives the same workspace tensors on every step
    if (this.#h) expect(h === this.#h && h2 === this.#h2).toBe(true);
    expect(h).not.toBe(h2);
    this.#h = h;
    this.#h2 = h2;
    return this.loss.forward(this.head.forward(h2), targets);
  }

  backward(): void {
    const dh2 = this.head.backward(this.loss.backward())!;
    const dh = this.workspace('dh', dh2.shape);
    ops.add(dh2, this.ln2.backward(this.mlp.backward(dh2)), dh);
    const dx = this.workspace('dx', dh.shape);
    ops.add(dh, this.ln1.backward(this.attn.backward(dh)), dx);
    this.emb.backward(dx);
  }
}

describe('training a tiny transformer layer', () => {
  it('AdamW on a fixed batch: the loss falls, outputs are reused, a frozen module does not move', () => {
    const [V, C, B, T] = [11, 16, 3, 9];
    const model = new TinyLM(V, C);
    model.ln2.freeze();
    const ids = Int32Array.from({ length: B * T }, (_, i) => (i * 7 + 3) % V);
    // Next-token targets; the last position of each sequence is ignored.
    const targets = Int32Array.from({ length: B * T }, (_, i) => ((i + 1) % T === 0 ? -100 : ids[i + 1]!));
    const params = model.parameters().filter((p) => p.trainable);
    expect(params.map((p) => p.name)).toContain('attn.q_proj.weight');
    expect(params.map((p) => p.name)).not.toContain('ln2.weight');
    const opt = new optim.AdamW(params, { lr: 1e-2, weightDecay: 0 });
    const ln2w = model.ln2.weight.tensor.toArray();
    const losses: number[] = [];
    let firstLogits: Tensor | null = null;
    for (let step = 0; step < 40; step++) {
      model.zeroGrad();
      losses.push(model.forward(ids, B, T, targets));
      firstLogits ??= model.head.forward(model.head.input!);
      model.backward();
      opt.step();
    }
    expect(losses.every(Number.isFinite)).toBe(true);
    expect(losses[39]!).toBeLessThan(0.5 * losses[0]!);
    expect(model.head.forward(model.head.input!)).toBe(firstLogits); // same buffer every step
    expect(Array.from(model.ln2.weight.tensor.toArray())).toEqual(Array.from(ln2w));
    model.dispose();
    opt.dispose();
  });
});
