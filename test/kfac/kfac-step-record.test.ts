/**
 * The step record's ops (native/core/kfac_ops.h: sum_squares_to, trust_clip, ema_commit;
 * lib/kfac/step-record.ts): a K-FAC step leaves its reductions and its trust-ratio clip's outcome
 * in a record tensor and reads it once.
 *  - On the CPU they reproduce, bit for bit, what the preconditioner computed on the host before
 *    (sumSquaresMany, dotMany and the host's trust-ratio formulas with ops.scale / clipNewtonStep,
 *    ported here as the reference), and the record carries every float64 exactly, so CPU runs did
 *    not move.
 *  - On the emulated cuda device (the bodies of native/cuda/record_body.h) they match a float64
 *    reference, write their outcome without a download, and a step with NaN or Inf is left as it
 *    was and reported.
 */
import { beforeAll, describe, expect, it } from 'vitest';

import { InvalidArgumentError, ops, ShapeError, Tensor } from '../../lib/index.js';
import { clipNewtonStep } from '../../lib/kfac/clip.js';
import { kroneckerQuadraticMany } from '../../lib/kfac/precondition.js';
import { StepRecord } from '../../lib/kfac/step-record.js';
import { native } from '../../lib/native/loader.js';
import { emulationPossible } from '../support/emulation.js';
import { randomF32 } from '../support/helpers.js';

const FLOOR = 1e-3;

/** The host trust-ratio clip the preconditioner ran before the record (the reference on the CPU). */
function hostTrustClip(steps: Tensor[], params: Tensor[], k: number, mode: 'global' | 'per-tensor'): { norm: number; scale: number; clipped: boolean; threshold: number } {
  const sums = ops.sumSquaresMany(mode === 'global' ? params : [...params, ...steps]);
  const pSq = sums.slice(0, params.length);
  const n = params.reduce((acc, p) => acc + p.size, 0);
  const rmsAll = Math.max(Math.sqrt(pSq.reduce((a, b) => a + b, 0) / n), FLOOR);
  if (mode === 'global') {
    const tau = k * rmsAll * Math.sqrt(n);
    const r = clipNewtonStep(steps, { mode: 'global', maxNorm: tau });
    return { norm: r.norm, scale: r.scale, clipped: r.clipped, threshold: tau };
  }
  const norms = steps.map((_, i) => Math.sqrt(sums[params.length + i]!));
  let scale = 1;
  let threshold = Infinity;
  steps.forEach((p, i) => {
    const ni = params[i]!.size;
    const tau = k * Math.sqrt(ni) * Math.max(Math.sqrt(pSq[i]! / ni), rmsAll);
    threshold = Math.min(threshold, tau);
    if (norms[i]! > tau) {
      const si = tau / norms[i]!;
      ops.scale(p, si, p);
      scale = Math.min(scale, si);
    }
  });
  return { norm: Math.sqrt(norms.reduce((a, b) => a + b * b, 0)), scale, clipped: scale < 1, threshold };
}

/** The same formulas in float64 from float64 sums (the device's reference). */
function f64TrustClip(steps: Float32Array[], params: Float32Array[], k: number, perTensor: boolean): { out: Float64Array[]; norm: number; scale: number; threshold: number; clipped: boolean } {
  const sq = (a: Float32Array) => a.reduce((s, v) => s + v * v, 0);
  const pSq = params.map(sq);
  const sSq = steps.map(sq);
  const n = params.reduce((a, p) => a + p.length, 0);
  const rms = Math.max(Math.sqrt(pSq.reduce((a, b) => a + b, 0) / n), FLOOR);
  const norm = Math.sqrt(sSq.reduce((a, b) => a + b, 0));
  let scales: number[];
  let threshold: number;
  if (!perTensor) {
    threshold = k * rms * Math.sqrt(n);
    scales = steps.map(() => (norm > threshold ? threshold / norm : 1));
  } else {
    const taus = params.map((p, i) => k * Math.sqrt(p.length) * Math.max(Math.sqrt(pSq[i]! / p.length), rms));
    threshold = Math.min(...taus);
    scales = sSq.map((s, i) => (Math.sqrt(s) > taus[i]! ? taus[i]! / Math.sqrt(s) : 1));
  }
  const scale = Math.min(...scales);
  return { out: steps.map((s, i) => Float64Array.from(s, (v) => v * Math.fround(scales[i]!))), norm, scale, threshold, clipped: scale < 1 };
}

const SIZES = [7, 165, 1, 129, 40];
/** Weights of scale ~1 and steps of very different sizes, so that some clip and some do not. */
function inputs(seed: number): { params: Float32Array[]; steps: Float32Array[] } {
  const params = SIZES.map((n, i) => randomF32(n, seed + i));
  const steps = SIZES.map((n, i) => randomF32(n, seed + 50 + i).map((v) => v * 10 ** (i - 2)));
  return { params, steps };
}

describe('the step record on the CPU', () => {
  for (const mode of ['per-tensor', 'global'] as const)
    for (const k of [1e-3, 0.05, 3, 1e4])
      it(`trustClip (${mode}, k = ${k}): the host formulas' steps and telemetry bit for bit`, () => {
        const { params, steps } = inputs(7);
        const P = params.map((p, i) => Tensor.from(p, [SIZES[i]!]));
        const want = steps.map((s, i) => Tensor.from(s, [SIZES[i]!]));
        const got = steps.map((s, i) => Tensor.from(s, [SIZES[i]!]));
        const ref = hostTrustClip(want, P, k, mode);
        const rec = new StepRecord();
        rec.begin(P[0]!, 8);
        const { at } = rec.trustClip(got, P, k, FLOOR, mode === 'per-tensor');
        const v = rec.read();
        got.forEach((g, i) => expect(g.toArray(), `step ${i}`).toEqual(want[i]!.toArray()));
        expect(v[at]).toBe(ref.norm);
        expect(v[at + 1]).toBe(ref.scale);
        expect(v[at + 2]).toBe(ref.threshold);
        expect(v[at + 3]).toBe(ref.clipped ? 1 : 0);
        expect(v[at + 4]).toBe(0);
        if (k === 1e-3) expect(ref.clipped).toBe(true);
        if (k === 1e4) expect(ref.clipped).toBe(false);
        rec.dispose();
      });

  for (const mode of ['global', 'per-tensor'] as const)
    it(`trustClip with fixed (newtonClip: { maxNorm }, ${mode}): clipNewtonStep's steps and numbers bit for bit`, () => {
      for (const tau of [1e-3, 0.7, 1e6]) {
        const { params, steps } = inputs(17);
        const S1 = steps.map((s) => Tensor.from(s, [s.length]));
        const S2 = steps.map((s) => Tensor.from(s, [s.length]));
        const P = params.map((p) => Tensor.from(p, [p.length]));
        const want = clipNewtonStep(S1, { mode, maxNorm: tau });
        const rec = new StepRecord();
        rec.begin(P[0]!, 8);
        const { at } = rec.trustClip(S2, P, tau, FLOOR, mode === 'per-tensor', true);
        const v = rec.read();
        expect([v[at], v[at + 1], v[at + 2], v[at + 3], v[at + 4]], `τ ${tau}`).toEqual([want.norm, want.scale, tau, want.clipped ? 1 : 0, 0]);
        S2.forEach((s, i) => expect(s.toArray(), `τ ${tau} step ${i}`).toEqual(S1[i]!.toArray()));
        rec.dispose();
      }
    });

  it('trustClip with NaN in a step: nothing is scaled, the record names it (1 + its index)', () => {
    const { params, steps } = inputs(11);
    steps[3]![5] = NaN;
    const P = params.map((p, i) => Tensor.from(p, [SIZES[i]!]));
    for (const perTensor of [true, false]) {
      const S = steps.map((s, i) => Tensor.from(s, [SIZES[i]!]));
      const rec = new StepRecord();
      rec.begin(P[0]!, 8);
      const { at } = rec.trustClip(S, P, 1e-3, FLOOR, perTensor);
      const v = rec.read();
      expect(v[at + 4]).toBe(4);
      S.forEach((s, i) => expect(Array.from(s.toArray()).map(String)).toEqual(Array.from(steps[i]!).map(String)));
      rec.dispose();
    }
  });

  it('sums and dots: sumSquaresMany and dotMany bit for bit, and the flag (1: all finite, 0: not)', () => {
    const xs = [0, 3, 1000, 17].map((n, i) => Tensor.from(randomF32(n, 30 + i).map((v) => v * 1e3), [n]));
    const rec = new StepRecord();
    rec.begin(xs[0]!, 12);
    const a = rec.sums(xs, true);
    const bad = Tensor.from(new Float32Array([1, Infinity, 2]), [3]);
    const b = rec.sums([xs[1]!, bad], true);
    const c = rec.sums([xs[2]!]);
    const d = rec.dots(xs, xs.map((x) => Tensor.from(randomF32(x.size, 99), x.shape)));
    const v = rec.read();
    const want = ops.sumSquaresMany(xs);
    want.forEach((w, i) => expect(v[a.at + i]).toBe(w));
    expect(v[a.flag]).toBe(1);
    expect(v[b.flag]).toBe(0);
    expect(v[b.at + 1]).toBe(Infinity);
    expect(c.flag).toBe(-1);
    expect(v[c.at]).toBe(want[2]);
    const ys = xs.map((x) => Tensor.from(randomF32(x.size, 99), x.shape));
    expect(Array.from(v.subarray(d, d + xs.length))).toEqual(ops.dotMany(xs, ys));
    rec.dispose();
  });

  it('values and the flag\'s checked slots: a loss copied in exactly; a NaN or Inf there makes the flag 0', () => {
    const rec = new StepRecord();
    const pair = (v: number) => Tensor.from(new Float32Array(new Float64Array([v]).buffer), [2]);
    for (const [bad, want] of [
      [0.1, 1],
      [NaN, 0],
      [-Infinity, 0],
    ] as const) {
      rec.begin(Tensor.zeros([1]), 6);
      const at = rec.values([pair(2.5), pair(bad)]);
      const s = rec.sums([Tensor.from(new Float32Array([3, 4]), [2])], true, { at, count: 2 });
      const v = rec.read();
      expect([v[at], v[at + 1]]).toEqual([2.5, bad]);
      expect(v[s.at]).toBe(25);
      expect(v[s.flag], String(bad)).toBe(want);
    }
    rec.begin(Tensor.zeros([1]), 2);
    expect(() => rec.values([Tensor.zeros([3])])).toThrow(/values\[0\] holds 3 floats/);
    rec.dispose();
  });

  it('emaCommit: scale then axpy bit for bit when the guard is 1, nothing when it is 0', () => {
    const F0 = randomF32(37, 3);
    const X = Tensor.from(randomF32(37, 4), [37]);
    const rec = new StepRecord();
    rec.begin(X, 4);
    const ok = rec.sums([X], true);
    const no = rec.sums([Tensor.from(new Float32Array([NaN]), [1])], true);
    const want = Tensor.from(F0, [37]);
    ops.scale(want, 0.95, want);
    ops.axpy(1 - 0.95, X, want);
    const F = Tensor.from(F0, [37]);
    rec.emaCommit(F, X, 0.95, ok.flag);
    expect(F.toArray()).toEqual(want.toArray());
    const G = Tensor.from(F0, [37]);
    rec.emaCommit(G, X, 0.95, no.flag);
    expect(G.toArray()).toEqual(F0);
    rec.dispose();
  });

  it('bad arguments are typed errors naming them', () => {
    const a = Tensor.zeros([4]);
    const b = Tensor.zeros([5]);
    const rec = new StepRecord();
    rec.begin(a, 2);
    const n = native();
    expect(() => n.trustClip([a.handle], [b.handle], { k: 1, floor: FLOOR, perTensor: true }, rec.tensor.handle, 0)).toThrow(ShapeError);
    expect(() => n.trustClip([a.handle], [a.handle], { k: 1, floor: FLOOR, perTensor: true }, rec.tensor.handle, 0)).toThrow(/params\[0\]: expected memory separate from steps\[0\]/);
    // a weight that is another step's memory, anywhere in the lists
    const s3 = [Tensor.zeros([4]), Tensor.zeros([4]), Tensor.zeros([4])];
    const p3 = [Tensor.zeros([4]), s3[2]!, Tensor.zeros([4])];
    expect(() => n.trustClip(s3.map((t) => t.handle), p3.map((t) => t.handle), { k: 1, floor: FLOOR, perTensor: true }, rec.tensor.handle, 0)).toThrow(
      /params\[1\]: expected memory separate from steps\[2\]/,
    );
    expect(() => n.trustClip([a.handle], [Tensor.zeros([4]).handle], { k: 0, floor: FLOOR, perTensor: true }, rec.tensor.handle, 0)).toThrow(InvalidArgumentError);
    expect(() => n.trustClip([a.handle], [Tensor.zeros([4]).handle], { k: 1, floor: FLOOR, perTensor: true }, rec.tensor.handle, 100)).toThrow(/offset/);
    expect(() => n.sumSquaresTo([a.handle], rec.tensor.handle, 0, 0)).toThrow(/flag/);
    // the checked slots gate a flag, apart from the sums and the flag
    expect(() => n.sumSquaresTo([a.handle], rec.tensor.handle, 0, -1, 1, 1)).toThrow(/flag: expected a flag slot/);
    expect(() => n.sumSquaresTo([a.handle], rec.tensor.handle, 0, 1, 0, 1)).toThrow(/checkAt: expected checked slots apart/);
    expect(() => n.sumSquaresTo([], rec.tensor.handle, 0, 1, 1, 1)).toThrow(/checkAt/);
    expect(() => n.sumSquaresTo([], rec.tensor.handle, 0, 0, 1, 40)).toThrow(/offset/);
    expect(() => n.emaCommit(a.handle, b.handle, 0.5, rec.tensor.handle, 0)).toThrow(ShapeError);
    expect(() => n.emaCommit(a.handle, Tensor.zeros([4]).handle, 1.5, rec.tensor.handle, 0)).toThrow(/beta/);
    // the record's own checks: room for what is written, begin() first
    expect(() => rec.sums(Array.from({ length: 40 }, () => a))).toThrow(InvalidArgumentError);
    rec.dispose();
    expect(() => new StepRecord().sums([a])).toThrow(/begin\(\) comes before/);
  });
});

describe.skipIf(!emulationPossible())('the step record on the emulated cuda device', () => {
  beforeAll(() => native()._cudaEmulation());

  for (const perTensor of [true, false])
    it(`trustClip (${perTensor ? 'per-tensor' : 'global'}): float64 reference, no download until the read`, () => {
      for (const k of [1e-3, 0.05, 1e4]) {
        const { params, steps } = inputs(21);
        // a step spanning several chunks of the reduction
        params.push(randomF32(40000, 90));
        steps.push(randomF32(40000, 91).map((v) => v * 0.3));
        const P = params.map((p) => Tensor.from(p, [p.length]).to('cuda'));
        const S = steps.map((s) => Tensor.from(s, [s.length]).to('cuda'));
        const ref = f64TrustClip(steps, params, k, perTensor);
        const rec = new StepRecord();
        rec.begin(P[0]!, 8);
        const before = native()._loopbackTransfers().downloads;
        const { at } = rec.trustClip(S, P, k, FLOOR, perTensor);
        expect(native()._loopbackTransfers().downloads).toBe(before);
        const v = rec.read();
        expect(native()._loopbackTransfers().downloads).toBe(before + 1);
        const rel = (a: number, b: number) => Math.abs(a - b) / Math.abs(b);
        expect(rel(v[at]!, ref.norm)).toBeLessThan(1e-12);
        expect(rel(v[at + 1]!, ref.scale)).toBeLessThan(1e-12);
        expect(rel(v[at + 2]!, ref.threshold)).toBeLessThan(1e-12);
        expect(v[at + 3]).toBe(ref.clipped ? 1 : 0);
        S.forEach((s, i) => {
          const host = s.to('cpu').toArray();
          host.forEach((x, j) => expect(Math.abs(x - ref.out[i]![j]!), `k ${k} step ${i}[${j}]`).toBeLessThanOrEqual(2 ** -23 * Math.abs(ref.out[i]![j]!)));
        });
        rec.dispose();
      }
    });

  for (const perTensor of [true, false])
    it(`trustClip with fixed (the norm clip, ${perTensor ? 'per-tensor' : 'global'}): float64 reference, no download until the read`, () => {
      for (const tau of [1e-3, 0.7, 1e6]) {
        const { params, steps } = inputs(23);
        steps.push(randomF32(40000, 92).map((v) => v * 0.3));
        params.push(randomF32(40000, 93));
        const sq = steps.map((x) => x.reduce((a, v) => a + v * v, 0));
        const total = Math.sqrt(sq.reduce((a, b) => a + b, 0));
        const scales = steps.map((_, i) => Math.min(1, tau / (perTensor ? Math.sqrt(sq[i]!) : total)));
        const S = steps.map((x) => Tensor.from(x, [x.length]).to('cuda'));
        const P = params.map((x) => Tensor.from(x, [x.length]).to('cuda'));
        const rec = new StepRecord();
        rec.begin(P[0]!, 8);
        const before = native()._loopbackTransfers().downloads;
        const { at } = rec.trustClip(S, P, tau, FLOOR, perTensor, true);
        expect(native()._loopbackTransfers().downloads).toBe(before);
        const v = rec.read();
        const rel = (a: number, b: number) => Math.abs(a - b) / Math.abs(b);
        expect(rel(v[at]!, total)).toBeLessThan(1e-12);
        expect(rel(v[at + 1]!, Math.min(...scales))).toBeLessThan(1e-12);
        expect(v[at + 2]).toBe(tau);
        expect(v[at + 3]).toBe(Math.min(...scales) < 1 ? 1 : 0);
        S.forEach((t, i) => {
          const host = t.to('cpu').toArray();
          host.forEach((x, j) => {
            const want = steps[i]![j]! * scales[i]!;
            expect(Math.abs(x - want), `τ ${tau} step ${i}[${j}]`).toBeLessThanOrEqual(2 ** -23 * Math.abs(want) + 1e-45);
          });
        });
        rec.dispose();
      }
    });

  it('values and the flag\'s checked slots on the device: a loss copied in exactly, a NaN there makes the flag 0, no download until the read', () => {
    const rec = new StepRecord();
    const pair = (v: number) => Tensor.from(new Float32Array(new Float64Array([v]).buffer), [2]).to('cuda');
    for (const [bad, want] of [
      [0.1, 1],
      [NaN, 0],
      [Infinity, 0],
    ] as const) {
      const losses = [pair(2.5), pair(bad)];
      rec.begin(Tensor.zeros([1]).to('cuda'), 6);
      const before = native()._loopbackTransfers().downloads;
      const at = rec.values(losses);
      const s = rec.sums([Tensor.from(new Float32Array([3, 4]), [2]).to('cuda')], true, { at, count: 2 });
      expect(native()._loopbackTransfers().downloads).toBe(before);
      const v = rec.read();
      expect([v[at], v[at + 1]]).toEqual([2.5, bad]);
      expect(v[s.at]).toBe(25);
      expect(v[s.flag], String(bad)).toBe(want);
    }
    rec.dispose();
  });

  it('dots and kroneckerQuadratics (adaptive damping\'s probe): the CPU numbers, written without a download', () => {
    const sizes = [0, 9, 16384 + 5];
    const xs = sizes.map((n, i) => randomF32(n, 80 + i));
    const ys = sizes.map((n, i) => randomF32(n, 90 + i));
    const terms = [
      [5, 3, true],
      [4, 6, false],
      [7, 2, true],
    ].map(([dout, din, bias], i) => {
      const Da = (din as number) + (bias ? 1 : 0);
      const spd = (n: number, seed: number) => {
        const r = randomF32(n * n, seed);
        const a = new Float32Array(n * n);
        for (let p = 0; p < n; p++)
          for (let q = 0; q < n; q++) {
            let v = 0;
            for (let k = 0; k < n; k++) v += r[p * n + k]! * r[q * n + k]!;
            a[p * n + q] = v;
          }
        return Tensor.from(a, [n, n]);
      };
      return { dW: Tensor.from(randomF32((dout as number) * (din as number), 100 + i), [dout as number, din as number]), db: bias ? Tensor.from(randomF32(dout as number, 110 + i), [dout as number]) : null, A: spd(Da, 120 + i), G: spd(dout as number, 130 + i) };
    });
    const cpuDots = ops.dotMany(xs.map((x) => Tensor.from(x, [x.length])), ys.map((y) => Tensor.from(y, [y.length])));
    const cpuCurv = kroneckerQuadraticMany(terms);
    const on = (t: Tensor | null) => (t ? t.to('cuda') : null);
    const rec = new StepRecord();
    rec.begin(Tensor.zeros([1]).to('cuda'), 8);
    const before = native()._loopbackTransfers().downloads;
    const d = rec.dots(xs.map((x) => Tensor.from(x, [x.length]).to('cuda')), ys.map((y) => Tensor.from(y, [y.length]).to('cuda')));
    const q = rec.kroneckerQuadratics(terms.map((t) => ({ dW: on(t.dW)!, db: on(t.db), A: on(t.A)!, G: on(t.G)! })));
    expect(native()._loopbackTransfers().downloads).toBe(before);
    const v = rec.read();
    cpuDots.forEach((w, i) => expect(Math.abs(v[d + i]! - w), `dot ${i}`).toBeLessThanOrEqual(1e-12 * (Math.abs(w) + 1)));
    // the device sums each term's rows in the order the host added them: the same float64 number
    cpuCurv.forEach((w, i) => expect(v[q + i], `curvature ${i}`).toBe(w));
    rec.dispose();
  });

  it('trustClip with Inf in a step: nothing scaled, reported', () => {
    const { params, steps } = inputs(5);
    steps[1]![0] = -Infinity;
    const P = params.map((p) => Tensor.from(p, [p.length]).to('cuda'));
    const S = steps.map((s) => Tensor.from(s, [s.length]).to('cuda'));
    const rec = new StepRecord();
    rec.begin(P[0]!, 8);
    const { at } = rec.trustClip(S, P, 1e-3, FLOOR, true);
    expect(rec.read()[at + 4]).toBe(2);
    S.forEach((s, i) => expect(s.to('cpu').toArray()).toEqual(steps[i]!));
    rec.dispose();
  });

  it('sums, emaCommit and copyRangeIf: the CPU values, the guard read where the tensors live', () => {
    const xs = [0, 5, 16385, 33].map((n, i) => randomF32(n, 60 + i));
    const D = xs.map((x) => Tensor.from(x, [x.length]).to('cuda'));
    const rec = new StepRecord();
    rec.begin(D[0]!, 12);
    const a = rec.sums(D, true);
    const b = rec.sums([Tensor.from(new Float32Array([NaN, 1]), [2]).to('cuda')], true);
    const F0 = randomF32(33, 70);
    const F = Tensor.from(F0, [33]).to('cuda');
    const G = Tensor.from(F0, [33]).to('cuda');
    rec.emaCommit(F, D[3]!, 0.9, a.flag);
    rec.emaCommit(G, D[3]!, 0.9, b.flag);
    const dst = Tensor.from(F0, [33]).to('cuda');
    const kept = Tensor.from(F0, [33]).to('cuda');
    rec.copyRangeIf(D[2]!, 100, dst, 4, 20, a.flag);
    rec.copyRangeIf(D[2]!, 100, kept, 4, 20, b.flag);
    const v = rec.read();
    const copied = Float32Array.from(F0);
    copied.set(xs[2]!.subarray(100, 120), 4);
    expect(dst.to('cpu').toArray()).toEqual(copied);
    expect(kept.to('cpu').toArray()).toEqual(F0);
    const want = ops.sumSquaresMany(xs.map((x) => Tensor.from(x, [x.length])));
    want.forEach((w, i) => expect(Math.abs(v[a.at + i]! - w)).toBeLessThanOrEqual(1e-12 * (w + 1)));
    expect(v[a.flag]).toBe(1);
    expect(v[b.flag]).toBe(0);
    const cpu = Tensor.from(F0, [33]);
    ops.scale(cpu, 0.9, cpu);
    ops.axpy(1 - 0.9, Tensor.from(xs[3]!, [33]), cpu);
    expect(F.to('cpu').toArray()).toEqual(cpu.toArray());
    expect(G.to('cpu').toArray()).toEqual(F0);
    rec.dispose();
  });
});
