// Precondition your own model with kfac.KfacPreconditioner.
//
//   npm run build:ts && node examples/own-model.mjs
//
// Any linear map s = W·a (+ b) whose input rows a and output-gradient rows g are known after a
// forward and backward pass can be a K-FAC layer. Here: a two-layer MLP of nn modules, a
// regression target, and the preconditioner rewriting the gradients before a plain SGD step —
// the preconditioner only rewrites gradients, so any optimizer can apply them.
import { kfac, nn, optim, Tensor } from 'kfac-peft';

const N = 128; // examples per batch
const IN = 8;
const HIDDEN = 32;

// Inputs X ~ N(0, 1) and a smooth nonlinear target with 2 outputs.
const X = Tensor.randn([N, IN], { seed: 1 });
const x = X.toArray();
const target = new Float32Array(N * 2);
for (let i = 0; i < N; i++) {
  target[2 * i] = Math.sin(x[IN * i]) + x[IN * i + 1] * x[IN * i + 2];
  target[2 * i + 1] = Math.cos(x[IN * i + 3]) - 0.5 * x[IN * i + 4];
}

function train(usePreconditioner) {
  const fc1 = new nn.Linear(IN, HIDDEN, { seed: 3 });
  const act = new nn.GELU();
  const fc2 = new nn.Linear(HIDDEN, 2, { seed: 4 });
  const params = [...fc1.parameters('fc1.'), ...fc2.parameters('fc2.')];
  const sgd = new optim.SGD(params, { lr: usePreconditioner ? 0.2 : 0.5, momentum: 0.9 });
  // The K-FAC layers: views of the Linear modules' weights, inputs and output gradients.
  const pre = usePreconditioner
    ? new kfac.KfacPreconditioner([kfac.linearLayer('fc1', fc1), kfac.linearLayer('fc2', fc2)], {
        damping: 0.01,
        factorDecay: 0.95,
        inverseEvery: 5,
        newtonClip: { maxNorm: 1, mode: 'global' },
      })
    : null;

  // Mean squared error ½‖y − t‖²/N: forward, loss, backward by hand (modules have explicit backward).
  // The output gradient lives in one tensor for the whole run: fc2 keeps it as its `g` until step().
  const d = Tensor.zeros([N, 2]);
  const lossAndBackward = () => {
    const y = fc2.forward(act.forward(fc1.forward(X))).toArray();
    const dy = new Float32Array(y.length);
    let loss = 0;
    for (let i = 0; i < y.length; i++) {
      const e = y[i] - target[i];
      loss += (0.5 * e * e) / N;
      dy[i] = e / N;
    }
    fc1.zeroGrad();
    fc2.zeroGrad();
    d.set(dy);
    fc1.backward(act.backward(fc2.backward(d)));
    return loss;
  };

  const first = lossAndBackward();
  let telemetry;
  for (let step = 0; step < 60; step++) {
    if (step > 0) lossAndBackward();
    if (pre) telemetry = pre.step({ batchSize: N }); // ∇W ← clipped Newton step, in place
    sgd.step();
  }
  const last = lossAndBackward();
  pre?.dispose();
  sgd.dispose();
  for (const m of [fc1, act, fc2]) m.dispose();
  d.dispose();
  return { first, last, telemetry };
}

const plain = train(false);
const precond = train(true);
console.log(`SGD alone   loss: ${plain.first.toFixed(4)} -> ${plain.last.toFixed(4)}`);
console.log(`K-FAC + SGD loss: ${precond.first.toFixed(4)} -> ${precond.last.toFixed(4)}`);
const t = precond.telemetry;
console.log(`last step: pre-clip Newton-step norm ${t.preClipNorm.toFixed(3)}, clip scale ${t.clipScale.toFixed(3)}, clipped on ${(100 * t.clipRate).toFixed(0)}% of steps`);
X.dispose();
