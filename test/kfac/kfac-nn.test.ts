/** K-FAC on nn.Linear modules: a two-layer MLP regression trained through linearLayer(). */
import { describe, expect, it } from 'vitest';

import { InvalidArgumentError, kfac, nn, optim, Tensor } from '../../lib/index.js';
import { randomF32 } from '../support/helpers.js';

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
      for (let s = 0; s < steps; s++) {
        step(m, X, T);
        o.step();
      }
      return step(m, X, T); // a NaN here fails the comparisons below
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

  it('writes the preconditioned step into the Linear gradients: G·P·A + λP = [∇W | ∇b] for each layer', () => {
    const m = mlp(5);
    step(m, X, T);
    const lin = { l1: m.l1, l2: m.l2 };
    /** [∇W | ∇b] as a float64 dout × (din + 1) matrix (the bias is A's last column). */
    const joined = (l: InstanceType<typeof nn.Linear>) => {
      const [dout, din] = l.weight.tensor.shape as [number, number];
      const w = l.weight.grad!.toArray();
      const b = l.bias!.grad!.toArray();
      const out = new Float64Array(dout * (din + 1));
      for (let i = 0; i < dout; i++) {
        for (let j = 0; j < din; j++) out[i * (din + 1) + j] = w[i * din + j]!;
        out[i * (din + 1) + din] = b[i]!;
      }
      return { out, dout, D: din + 1 };
    };
    const before = { l1: joined(m.l1), l2: joined(m.l2) };
    const damping = 1e-2;
    const pre = new kfac.KfacPreconditioner([kfac.linearLayer('l1', m.l1), kfac.linearLayer('l2', m.l2)], { damping, newtonClip: null });
    const t = pre.step({ batchSize: N });
    expect(t.preconditioned).toBe(true);
    expect(Number.isFinite(t.preClipNorm)).toBe(true);
    for (const name of ['l1', 'l2'] as const) {
      const { A, G } = pre.factors(name);
      const { out: P, dout, D } = joined(lin[name]);
      const grad = before[name].out;
      // residual G·P·A + λP − ∇ in float64, relative to ‖∇‖
      let res = 0;
      let ref = 0;
      let moved = 0;
      for (let i = 0; i < dout; i++)
        for (let j = 0; j < D; j++) {
          let v = damping * P[i * D + j]! - grad[i * D + j]!;
          for (let k = 0; k < dout; k++) {
            let pa = 0;
            for (let l = 0; l < D; l++) pa += P[k * D + l]! * A[l * D + j]!;
            v += G[i * dout + k]! * pa;
          }
          res += v * v;
          ref += grad[i * D + j]! ** 2;
          moved += (P[i * D + j]! - grad[i * D + j]!) ** 2;
        }
      expect(Math.sqrt(res / ref), name).toBeLessThan(1e-3);
      expect(Math.sqrt(moved / ref), name).toBeGreaterThan(0.1); // the gradients were rewritten
    }
    pre.dispose();
  });

  it('refuses Conv1D-layout weights and missing passes with typed errors', () => {
    expect(() => kfac.linearLayer('c', new nn.Linear(3, 4, { layout: 'conv1d' }))).toThrow(InvalidArgumentError);
    const fresh = kfac.linearLayer('f', new nn.Linear(3, 4));
    expect(() => fresh.input()).toThrow(InvalidArgumentError);
  });
});
