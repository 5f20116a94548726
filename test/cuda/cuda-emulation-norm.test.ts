/**
 * The CUDA emulation (see test/cuda/cuda-emulation.test.ts) of the row-reduction kernels: LayerNorm,
 * RMSNorm and softmax cross-entropy run a block per row with shared-memory trees between barriers;
 * the emulator runs those phases in order (threads ascending or descending on alternate blocks and
 * phases, so an unordered race shows as rows that disagree). Checked against float64 references
 * and the CPU on rows 1, 7, 33 × C 1, 3, 129, 1000, in place included.
 */
import { beforeAll, describe, expect, it } from 'vitest';

import { nn } from '../../lib/index.js';
import { native } from '../../lib/native/loader.js';
import { COLS, emulationPossible, nanT, onBoth, put, read, ROWS } from '../support/emulation.js';
import { expectClose, input, refCrossEntropy, refLayerNorm, refRmsNorm, rng } from '../support/nn-helpers.js';

const F = nn.functional;
const CASES = ROWS.flatMap((N) => COLS.map((C) => [N, C]));

/** Float64 norm backward: dx, dw0 + Σ dout·x̂, db0 + Σ dout (rms: no mean, no db). */
function refNormBackward(x: Float64Array, w: Float64Array, g: Float64Array, N: number, C: number, eps: number, rms: boolean, dw0: Float64Array, db0: Float64Array) {
  const dx = new Float64Array(N * C), dw = Float64Array.from(dw0), db = Float64Array.from(db0);
  for (let n = 0; n < N; n++) {
    let m = 0;
    if (!rms) for (let c = 0; c < C; c++) m += x[n * C + c]! / C;
    let v = 0;
    for (let c = 0; c < C; c++) v += (x[n * C + c]! - m) ** 2 / C;
    const r = 1 / Math.sqrt(v + eps);
    let sg = 0, sgx = 0;
    for (let c = 0; c < C; c++) {
      const xh = (x[n * C + c]! - m) * r, dh = g[n * C + c]! * w[c]!;
      sg += dh / C;
      sgx += (dh * xh) / C;
      dw[c]! += g[n * C + c]! * xh;
      db[c]! += g[n * C + c]!;
    }
    for (let c = 0; c < C; c++) {
      const xh = (x[n * C + c]! - m) * r;
      dx[n * C + c] = r * (g[n * C + c]! * w[c]! - (rms ? 0 : sg) - xh * sgx);
    }
  }
  return { dx, dw, db };
}

describe.skipIf(!emulationPossible())('the CUDA emulation: norms and cross-entropy', () => {
  beforeAll(() => native()._cudaEmulation());

  for (const bias of [true, false])
    it.each(CASES)(`LayerNorm bias=${bias} [%i, %i]: out, mean, rstd; dx, dw +=, db +=; in place`, (N, C) => {
      const eps = 1e-5, x = input(N * C, N * 31 + C, 2), w = input(C, C + 1), b = input(C, C + 2), g = input(N * C, 77);
      const dw0 = input(C, 5), db0 = input(C, 6), s = [N, C];
      const means = new Float64Array(N), rstds = new Float64Array(N);
      for (let n = 0; n < N; n++) {
        let m = 0, v = 0;
        for (let c = 0; c < C; c++) m += x.f64[n * C + c]! / C;
        for (let c = 0; c < C; c++) v += (x.f64[n * C + c]! - m) ** 2 / C;
        means[n] = m;
        rstds[n] = 1 / Math.sqrt(v + eps);
      }
      onBoth((dev) => {
        const out = nanT(s, dev), mean = nanT([N], dev), rstd = nanT([N], dev);
        F.layerNormForward(put(x.f32, s, dev), put(w.f32, [C], dev), bias ? put(b.f32, [C], dev) : null, eps, out, mean, rstd);
        return [out, mean, rstd];
      }, [refLayerNorm(x.f64, w.f64, bias ? b.f64 : null, N, C, eps), means, rstds], 'layernorm forward', 1e-5, 1e-5);
      const want = refNormBackward(x.f64, w.f64, g.f64, N, C, eps, false, dw0.f64, db0.f64);
      onBoth((dev) => {
        const xt = put(x.f32, s, dev), wt = put(w.f32, [C], dev), mean = nanT([N], dev), rstd = nanT([N], dev);
        F.layerNormForward(xt, wt, null, eps, nanT(s, dev), mean, rstd);
        const dx = nanT(s, dev), dw = put(dw0.f32, [C], dev), db = put(db0.f32, [C], dev);
        F.layerNormBackward(xt, wt, mean, rstd, put(g.f32, s, dev), { dx, dw, db: bias ? db : null });
        return [dx, dw, db];
      }, [want.dx, want.dw, bias ? want.db : db0.f64], 'layernorm backward', 2e-5, 1e-4);
      // in place: out = x in the forward, dx = dout in the backward
      const xi = put(x.f32, s, 'cuda'), wt = put(w.f32, [C], 'cuda'), mean = nanT([N], 'cuda'), rstd = nanT([N], 'cuda');
      F.layerNormForward(xi, wt, null, eps, xi, mean, rstd);
      expectClose(read(xi), refLayerNorm(x.f64, w.f64, null, N, C, eps), 'layernorm forward in place', 1e-5, 1e-5);
      const xt = put(x.f32, s, 'cuda'), gi = put(g.f32, s, 'cuda');
      F.layerNormBackward(xt, wt, mean, rstd, gi, { dx: gi, dw: null, db: null });
      expectClose(read(gi), want.dx, 'layernorm dx in place', 2e-5, 1e-4);
    });

  it.each(CASES)('RMSNorm [%i, %i]: out, rstd; dx, dw +=; in place', (N, C) => {
    const eps = 1e-6, x = input(N * C, N * 17 + C, 2), w = input(C, C + 4), g = input(N * C, 78), dw0 = input(C, 9), s = [N, C];
    const rstds = new Float64Array(N);
    for (let n = 0; n < N; n++) {
      let v = 0;
      for (let c = 0; c < C; c++) v += x.f64[n * C + c]! ** 2 / C;
      rstds[n] = 1 / Math.sqrt(v + eps);
    }
    onBoth((dev) => {
      const out = nanT(s, dev), rstd = nanT([N], dev);
      F.rmsNormForward(put(x.f32, s, dev), put(w.f32, [C], dev), eps, out, rstd);
      return [out, rstd];
    }, [refRmsNorm(x.f64, w.f64, N, C, eps), rstds], 'rmsnorm forward', 1e-5, 1e-5);
    const want = refNormBackward(x.f64, w.f64, g.f64, N, C, eps, true, dw0.f64, new Float64Array(C));
    onBoth((dev) => {
      const xt = put(x.f32, s, dev), wt = put(w.f32, [C], dev), rstd = nanT([N], dev);
      F.rmsNormForward(xt, wt, eps, nanT(s, dev), rstd);
      const dx = nanT(s, dev), dw = put(dw0.f32, [C], dev);
      F.rmsNormBackward(xt, wt, rstd, put(g.f32, s, dev), { dx, dw });
      return [dx, dw];
    }, [want.dx, want.dw], 'rmsnorm backward', 2e-5, 1e-4);
    const xi = put(x.f32, s, 'cuda'), wt = put(w.f32, [C], 'cuda'), rstd = nanT([N], 'cuda');
    F.rmsNormForward(xi, wt, eps, xi, rstd);
    expectClose(read(xi), refRmsNorm(x.f64, w.f64, N, C, eps), 'rmsnorm forward in place', 1e-5, 1e-5);
    const xt = put(x.f32, s, 'cuda'), gi = put(g.f32, s, 'cuda');
    F.rmsNormBackward(xt, wt, rstd, gi, { dx: gi, dw: null });
    expectClose(read(gi), want.dx, 'rmsnorm dx in place', 2e-5, 1e-4);
  });

  it.each(CASES)('cross-entropy [%i rows, V=%i] with ignored rows: loss (double), count, dlogits = dscale·∂loss/∂z; in place', (N, V) => {
    const z = input(N * V, N * 13 + V, 4), r = rng(N + V), ignore = -100, dscale = 0.7;
    const t = Int32Array.from({ length: N }, (_, n) => (n % 3 === 1 ? ignore : Math.floor(r() * V)));
    const count = t.filter((v) => v !== ignore).length;
    const dz = new Float64Array(N * V);
    for (let n = 0; n < N; n++) {
      if (t[n] === ignore) continue;
      let mx = -Infinity, se = 0;
      for (let v = 0; v < V; v++) mx = Math.max(mx, z.f64[n * V + v]!);
      for (let v = 0; v < V; v++) se += Math.exp(z.f64[n * V + v]! - mx);
      for (let v = 0; v < V; v++) dz[n * V + v] = (dscale / count) * (Math.exp(z.f64[n * V + v]! - mx) / se - (v === t[n] ? 1 : 0));
    }
    const loss = refCrossEntropy(z.f64, t, N, V, ignore);
    const res: Record<string, { loss: number; count: number }> = {};
    onBoth((dev) => {
      const d = nanT([N, V], dev);
      res[dev] = F.crossEntropy(put(z.f32, [N, V], dev), t, d, { ignoreIndex: ignore, dscale });
      return [d];
    }, [dz], 'cross-entropy dlogits', 1e-6, 1e-4);
    expect(res.cuda!.count).toBe(count);
    expect(Math.abs(res.cuda!.loss - loss)).toBeLessThan(1e-6 * Math.max(1, Math.abs(loss)));
    expect(Math.abs(res.cuda!.loss - res.cpu!.loss)).toBeLessThan(1e-6 * Math.max(1, Math.abs(loss)));
    // without dlogits, and in place (dlogits = logits)
    const zt = put(z.f32, [N, V], 'cuda');
    expect(Math.abs(F.crossEntropy(zt, t, null, { ignoreIndex: ignore }).loss - loss)).toBeLessThan(1e-6 * Math.max(1, Math.abs(loss)));
    const again = F.crossEntropy(zt, t, zt, { ignoreIndex: ignore, dscale });
    expect(Math.abs(again.loss - loss)).toBeLessThan(1e-6 * Math.max(1, Math.abs(loss)));
    expectClose(read(zt), dz, 'cross-entropy in place', 1e-6, 1e-4);
  });

  it('cross-entropy with every row ignored: loss 0, count 0, dlogits 0', () => {
    const z = input(3 * 5, 1), d = nanT([3, 5], 'cuda');
    const r = F.crossEntropy(put(z.f32, [3, 5], 'cuda'), Int32Array.from([-1, -1, -1]), d, { ignoreIndex: -1 });
    expect(r).toEqual({ loss: 0, count: 0 });
    expect(Array.from(read(d))).toEqual(new Array(15).fill(0));
  });
});
