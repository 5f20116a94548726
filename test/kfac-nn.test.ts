/** K-FAC on nn.Linear modules: a two-layer MLP regression trained through linearLayer(). */
import { describe, expect, it } from 'vitest';

import { InvalidArgumentError, kfac, nn, optim, ops, Tensor } from '../lib/index.js';
import { randomF32 } from './helpers.js';

function mlp(seed: number) {
  const l1 = new nn.Linear(6, 16, { seed });
  const act = new nn.GELU();
  const l2 = new nn.Linear(16, 2, { seed: seed + 10 });
  return { l1, act, l2 };
}

/** Mean squared error ½‖y − t‖²/N with its gradient; runs forward and backward. */
function step(m: ReturnType<typeof mlp>, X: Tensor, T: Float32Array): number {
  const h = m.l1.forward(X);
  const a = m.act.forward(h);
  const y = m.l2.forward(a).toArray();
  const N = X.shape[0]!;
  const d = new Float32Array(y.length);
  let loss = 0;
  for (let i = 0; i < y.length; i++) {
    const e = y[i]! - T[i]!;
    loss += (0.5 * e * e) / N;
    d[i] = e / N;
  }
  m.l1.zeroGrad();
  m.l2.zeroGrad();
  const da = m.l2.backward(Tensor.from(d, [N, 2]))!;
  const dh = m.act.backward(da);
  m.l1.backward(dh);
  return loss;
}

describe('K-FAC on nn.Linear', () => {
  const N = 64;
  const X = Tensor.from(randomF32(N * 6, 1), [N, 6]);
  const T = new Float32Array(N * 2);
  const xa = X.toArray();
  for (let i = 0; i < N; i++) {
    T[2 * i] = Math.sin(2 * xa[6 * i]!) + xa[6 * i + 1]! * xa[6 * i + 2]!;
    T[2 * i + 1] = Math.cos(xa[6 * i + 3]!) - xa[6 * i + 4]!;
  }

  it('trains a small MLP faster than AdamW on the same data', () => {
    const run = (make: (m: ReturnType<typeof mlp>) => { step(): void }, steps: number) => {
      const m = mlp(3);
      const o = make(m);
      let loss = Infinity;
      for (let s = 0; s < steps; s++) {
        loss = step(m, X, T);
        o.step();
      }
      return step(m, X, T) || loss;
    };
    const kfacLoss = run((m) => {
      const k = new kfac.KFAC([kfac.linearLayer('l1', m.l1), kfac.linearLayer('l2', m.l2)], [], { lr: 0.3, momentum: 0.5, damping: 1e-2, inverseEvery: 5, newtonClip: { maxNorm: 0.5 } });
      return { step: () => k.step({ batchSize: N }) };
    }, 40);
    const adamLoss = Math.min(
      ...[3e-3, 1e-2, 3e-2].map((lr) =>
        run((m) => new optim.AdamW([...m.l1.parameters('l1.'), ...m.l2.parameters('l2.')], { lr, weightDecay: 0 }), 40),
      ),
    );
    const initial = step(mlp(3), X, T);
    expect(kfacLoss).toBeLessThan(initial * 0.5);
    expect(kfacLoss).toBeLessThan(adamLoss);
  });

  it('writes the preconditioned step into the Linear gradients', () => {
    const m = mlp(5);
    step(m, X, T);
    const before = m.l1.weight.grad!.clone();
    const pre = new kfac.KfacPreconditioner([kfac.linearLayer('l1', m.l1), kfac.linearLayer('l2', m.l2)], { damping: 1e-3, newtonClip: null });
    const t = pre.step({ batchSize: N });
    expect(t.preconditioned).toBe(true);
    const diff = Tensor.zeros(before.shape);
    ops.add(before, m.l1.weight.grad!, diff);
    expect(ops.norm(diff)).toBeGreaterThan(0);
    expect(Number.isFinite(t.preClipNorm)).toBe(true);
  });

  it('refuses Conv1D-layout weights and missing passes with typed errors', () => {
    expect(() => kfac.linearLayer('c', new nn.Linear(3, 4, { layout: 'conv1d' }))).toThrow(InvalidArgumentError);
    const fresh = kfac.linearLayer('f', new nn.Linear(3, 4));
    expect(() => fresh.input()).toThrow(InvalidArgumentError);
  });
});
