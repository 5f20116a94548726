// A stand-in for the `cuda` namespace that runs every call on the CPU kernels, so that the
// parity checks themselves (their float64 references and tolerances) are exercised where no
// GPU exists. "Device" tensors are CPU tensors remembered in a WeakSet; bfloat16 storage is
// emulated by rounding to bfloat16 (nearest even) on upload.
import { DeviceError, Tensor } from '../../dist/index.js';
import { native } from '../../dist/native/loader.js';

const onDevice = new WeakSet();
const mark = (t) => (onDevice.add(t), t);
const h = (t, name) => {
  if (!onDevice.has(t)) throw new DeviceError(`${name}: expected a cuda tensor, got a cpu tensor`, { argument: name });
  return t.handle;
};
const wrap = (nt) => mark(Tensor.fromNative(nt));

function bf16(values) {
  const f = Float32Array.from(values);
  const u = new Uint32Array(f.buffer);
  for (let i = 0; i < u.length; i++) u[i] = ((u[i] + 0x7fff + ((u[i] >>> 16) & 1)) & 0xffff0000) >>> 0;
  return f;
}

export const loopbackApi = {
  available: () => true,
  toDevice: (t, o = {}) => mark(o.dtype === 'bfloat16' ? Tensor.from(bf16(t.toArray()), t.shape) : t.clone()),
  toHost: (t) => (h(t, 'tensor'), t.clone()),
  zeros: (shape) => mark(Tensor.zeros(shape)),
  matmul(a, b, o = {}) {
    const r = native().matmul(h(a, 'a'), h(b, 'b'), o.out ? h(o.out, 'out') : null, { transA: !!o.transA, transB: !!o.transB, alpha: o.alpha ?? 1, beta: o.beta ?? 0 });
    return o.out ?? wrap(r);
  },
  factorUpdate: (x, F, o = {}) => native().factorUpdate(h(x, 'x'), h(F, 'factor'), { beta: o.beta ?? 0, scale: o.scale ?? 1, bias: !!o.bias }),
  eigh(a, o = {}) {
    const r = native().eigh(h(a, 'a'), null, null, o);
    return { values: wrap(r.values), vectors: wrap(r.vectors), retriedFloat64: r.retriedFloat64 };
  },
  eighBatched(a, o = {}) {
    const r = native().eighBatched(h(a, 'a'), null, null, o);
    return { values: wrap(r.values), vectors: wrap(r.vectors), retried: r.retried };
  },
  eighRefresh(a, prev, o = {}) {
    const { previousValues, ...rest } = o;
    const r = native().eighRefresh(h(a, 'a'), h(prev, 'previousVectors'), previousValues ? h(previousValues, 'previousValues') : null, null, null, rest);
    return { ...r, values: wrap(r.values), vectors: wrap(r.vectors) };
  },
  preconditionEigen: (grad, f, damping, out, bias = null) =>
    native().preconditionEigen(h(grad, 'grad'), bias ? h(bias.gradBias, 'gradBias') : null, h(f.QA, 'QA'), h(f.dA, 'dA'), h(f.QG, 'QG'), h(f.dG, 'dG'), damping, h(out, 'out'), bias ? h(bias.outBias, 'outBias') : null),
  preconditionInverseFactors: (grad, A, G, damping, out, bias = null) =>
    native().preconditionInverseFactors(h(grad, 'grad'), bias ? h(bias.gradBias, 'gradBias') : null, h(A, 'A'), h(G, 'G'), damping, h(out, 'out'), bias ? h(bias.outBias, 'outBias') : null),
  clipNewtonStep(ts, o) {
    const hs = ts.map((t, i) => h(t, `tensors[${i}]`));
    if (o.mode === 'fisher') return native().clipNewtonStep(hs, { mode: 'fisher', c: o.c, lr: o.lr, grads: o.grads.map((t, i) => h(t, `grads[${i}]`)) });
    return native().clipNewtonStep(hs, { mode: o.mode ?? 'global', maxNorm: o.maxNorm });
  },
  adamwStep: (p, g, st, o) =>
    native().adamwStep(h(p, 'param'), h(g, 'grad'), h(st.expAvg, 'expAvg'), h(st.expAvgSq, 'expAvgSq'), st.maxExpAvgSq ? h(st.maxExpAvgSq, 'maxExpAvgSq') : null, { ...o, amsgrad: !!o.amsgrad, maximize: !!o.maximize }),
  sgdStep: (p, g, buf, o) =>
    native().sgdStep(h(p, 'param'), h(g, 'grad'), buf ? h(buf, 'momentumBuffer') : null, { lr: o.lr, momentum: o.momentum ?? 0, dampening: o.dampening ?? 0, weightDecay: o.weightDecay ?? 0, nesterov: !!o.nesterov, maximize: !!o.maximize, firstStep: o.firstStep !== false }),
};
