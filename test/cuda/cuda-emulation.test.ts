/**
 * The CUDA emulation (native/emu): the nn ops' CUDA kernel bodies and adapters run on the host
 * with the device launch geometry (every block and thread; block kernels phase by phase between
 * barriers) and the cuBLAS calls stood in by the CPU GEMM. Each case runs an op on the emulated
 * cuda device and on the CPU, and checks the emulated result against a float64 reference (the
 * tolerances of test/support/nn-helpers.ts) and against the CPU kernel. Outputs are poisoned
 * with NaN first, so an element a launch geometry misses shows.
 */
import { beforeAll, describe, expect, it } from 'vitest';

import { nn, Tensor } from '../../lib/index.js';
import { cudaStatus, native } from '../../lib/native/loader.js';
import { nnCases } from './parity-nn.mjs';
import { bf16Round, COLS, type Dev, emulationPossible, nanT, onBoth, put, read, ROWS } from '../support/emulation.js';
import { erf, expectClose, geluErf, geluTanh, input, refLinear, refRope, rng, silu } from '../support/nn-helpers.js';

const F = nn.functional;
const gpu = cudaStatus().usable && native().cuda !== undefined;
const emulated = emulationPossible();

describe.skipIf(!emulated)('the CUDA emulation', () => {
  beforeAll(() => native()._cudaEmulation());

  it('lists every op under cuda', () => {
    const list = native().opList();
    for (const o of list) expect(o.cuda, o.name).toBe(true);
  });

  describe('activations', () => {
    const cases: [string, (x: number) => number, (x: number) => number][] = [
      ['gelu erf', geluErf, (x) => 0.5 * (1 + erf(x / Math.SQRT2)) + (x * Math.exp(-0.5 * x * x)) / Math.sqrt(2 * Math.PI)],
      ['gelu tanh', geluTanh, (x) => numDeriv(geluTanh, x)],
      ['silu', silu, (x) => numDeriv(silu, x)],
    ];
    for (const N of ROWS)
      for (const C of COLS)
        it.each(cases)(`%s forward and backward, [${N}, ${C}], and in place`, (name, f, df) => {
          const x = input(N * C, N * 1009 + C, 2.5);
          const d = input(N * C, N + C + 17);
          const fwd = (xt: Tensor, out: Tensor): Tensor =>
            name === 'silu' ? F.siluForward(xt, out) : F.geluForward(xt, out, name === 'gelu erf' ? 'erf' : 'tanh');
          const bwd = (xt: Tensor, dt: Tensor, dx: Tensor): Tensor =>
            name === 'silu' ? F.siluBackward(xt, dt, dx) : F.geluBackward(xt, dt, dx, name === 'gelu erf' ? 'erf' : 'tanh');
          const ref = Float64Array.from(x.f64, f);
          const dref = Float64Array.from(x.f64, (v, i) => df(v) * d.f64[i]!);
          onBoth((dev) => [fwd(put(x.f32, [N, C], dev), nanT([N, C], dev))], [ref], `${name} forward`, 1e-6, 1e-5);
          onBoth((dev) => [bwd(put(x.f32, [N, C], dev), put(d.f32, [N, C], dev), nanT([N, C], dev))], [dref], `${name} backward`, 1e-5, 1e-4);
          // in place: out aliases x, dx aliases dout
          const xi = put(x.f32, [N, C], 'cuda');
          expectClose(read(fwd(xi, xi)), ref, `${name} forward in place`, 1e-6, 1e-5);
          const xd = put(x.f32, [N, C], 'cuda'), di = put(d.f32, [N, C], 'cuda');
          expectClose(read(bwd(xd, di, di)), dref, `${name} backward in place`, 1e-5, 1e-4);
        });

    it.each(ROWS.flatMap((N) => COLS.map((C) => [N, C])))('swiglu forward and backward, [%i, %i]', (N, C) => {
      const g = input(N * C, N * 7 + C, 2.5), u = input(N * C, N * 11 + C), d = input(N * C, N * 13 + C);
      const sig = (v: number): number => 1 / (1 + Math.exp(-v));
      const ref = Float64Array.from(g.f64, (v, i) => silu(v) * u.f64[i]!);
      const dg = Float64Array.from(g.f64, (v, i) => d.f64[i]! * u.f64[i]! * sig(v) * (1 + v * (1 - sig(v))));
      const du = Float64Array.from(g.f64, (v, i) => d.f64[i]! * silu(v));
      const s = [N, C];
      onBoth((dev) => [F.swigluForward(put(g.f32, s, dev), put(u.f32, s, dev), nanT(s, dev))], [ref], 'swiglu forward', 1e-6, 1e-5);
      onBoth((dev) => {
        const dgate = nanT(s, dev), dup = nanT(s, dev);
        F.swigluBackward(put(g.f32, s, dev), put(u.f32, s, dev), put(d.f32, s, dev), dgate, dup);
        return [dgate, dup];
      }, [dg, du], 'swiglu backward', 1e-5, 1e-4);
      // in place: dgate aliases dout, dup aliases up
      const gt = put(g.f32, s, 'cuda'), ut = put(u.f32, s, 'cuda'), dt = put(d.f32, s, 'cuda');
      F.swigluBackward(gt, ut, dt, dt, ut);
      expectClose(read(dt), dg, 'swiglu dgate in place', 1e-5, 1e-4);
      expectClose(read(ut), du, 'swiglu dup in place', 1e-5, 1e-4);
    });

    const gates: [nn.functional.GateActivation, (x: number) => number, (x: number) => number][] = [
      ['gelu', geluErf, (x) => 0.5 * (1 + erf(x / Math.SQRT2)) + (x * Math.exp(-0.5 * x * x)) / Math.sqrt(2 * Math.PI)],
      ['gelu_tanh', geluTanh, (x) => numDeriv(geluTanh, x)],
      ['relu', (x) => Math.max(x, 0), (x) => (x > 0 ? 1 : 0)],
      ['silu', silu, (x) => numDeriv(silu, x)],
    ];
    it.each(gates)('gated unit %s (with relu: relu itself too), forward and backward on odd sizes, against float64 and the CPU', (act, f, df) => {
      for (const N of ROWS)
        for (const C of COLS) {
          const g = input(N * C, N * 5 + C, 2.5), u = input(N * C, N * 3 + C), d = input(N * C, N * 17 + C);
          const s = [N, C];
          const ref = Float64Array.from(g.f64, (v, i) => f(v) * u.f64[i]!);
          const dg = Float64Array.from(g.f64, (v, i) => d.f64[i]! * u.f64[i]! * df(v));
          const du = Float64Array.from(g.f64, (v, i) => d.f64[i]! * f(v));
          onBoth((dev) => [F.gatedForward(put(g.f32, s, dev), put(u.f32, s, dev), nanT(s, dev), act)], [ref], `gated ${act}`, 1e-6, 1e-5);
          onBoth((dev) => {
            const dgate = nanT(s, dev), dup = nanT(s, dev);
            F.gatedBackward(put(g.f32, s, dev), put(u.f32, s, dev), put(d.f32, s, dev), dgate, dup, act);
            return [dgate, dup];
          }, [dg, du], `gated ${act} backward`, 1e-5, 1e-4);
          if (act !== 'relu') continue;
          onBoth((dev) => [F.reluForward(put(g.f32, s, dev), nanT(s, dev))], [Float64Array.from(g.f64, f)], 'relu', 0, 0, true);
          onBoth((dev) => [F.reluBackward(put(g.f32, s, dev), put(d.f32, s, dev), nanT(s, dev))], [Float64Array.from(g.f64, (v, i) => df(v) * d.f64[i]!)], "relu'", 0, 0, true);
        }
    });
  });
});

describe.skipIf(!emulated)('the CUDA emulation: GEMM ops and index ops', () => {
  beforeAll(() => native()._cudaEmulation());

  /** dx = dy·W (+ dx0), dW0 + dyᵀ·x, db0 + Σ dy, in float64 (W as [OUT, IN]). */
  function refLinearBackward(x: Float64Array, W: Float64Array, dy: Float64Array, N: number, IN: number, OUT: number, dx0: Float64Array | null, dW0: Float64Array, db0: Float64Array) {
    const dx = new Float64Array(N * IN), dW = Float64Array.from(dW0), db = Float64Array.from(db0);
    for (let n = 0; n < N; n++)
      for (let o = 0; o < OUT; o++) {
        const g = dy[n * OUT + o]!;
        db[o]! += g;
        for (let i = 0; i < IN; i++) {
          dx[n * IN + i]! += g * W[o * IN + i]!;
          dW[o * IN + i]! += g * x[n * IN + i]!;
        }
      }
    if (dx0) for (let k = 0; k < dx.length; k++) dx[k]! += dx0[k]!;
    return { dx, dW, db };
  }

  const SHAPES: [number, number][] = [[1, 3], [129, 1], [3, 1000], [129, 129]];
  for (const N of ROWS)
    it.each(SHAPES)(`linear float32 [${N}, %i] → %i: forward, dx (= and +=), dW +=, db +=; Conv1D layout`, (IN, OUT) => {
      const x = input(N * IN, N * 3 + IN), W = input(OUT * IN, IN * 5 + OUT), b = input(OUT, OUT + 9);
      const dy = input(N * OUT, N + OUT + 1), dx0 = input(N * IN, 41), dW0 = input(OUT * IN, 42), db0 = input(OUT, 43);
      onBoth((dev) => [F.linearForward(put(x.f32, [N, IN], dev), put(W.f32, [OUT, IN], dev), put(b.f32, [OUT], dev), nanT([N, OUT], dev))],
        [refLinear(x.f64, W.f64, b.f64, N, IN, OUT, false)], 'linear forward', 1e-5, 1e-4);
      const want = refLinearBackward(x.f64, W.f64, dy.f64, N, IN, OUT, null, dW0.f64, db0.f64);
      const acc = refLinearBackward(x.f64, W.f64, dy.f64, N, IN, OUT, dx0.f64, dW0.f64, db0.f64);
      for (const accumulateDx of [false, true])
        onBoth((dev) => {
          const dx = accumulateDx ? put(dx0.f32, [N, IN], dev) : nanT([N, IN], dev);
          const dW = put(dW0.f32, [OUT, IN], dev), db = put(db0.f32, [OUT], dev);
          F.linearBackward(put(x.f32, [N, IN], dev), put(W.f32, [OUT, IN], dev), put(dy.f32, [N, OUT], dev), { dx, dW, db, accumulateDx });
          return [dx, dW, db];
        }, [accumulateDx ? acc.dx : want.dx, want.dW, want.db], `linear backward accumulateDx=${accumulateDx}`, 1e-5, 1e-4);
      // Conv1D: W stored [IN, OUT]
      const Wt = new Float32Array(IN * OUT);
      for (let o = 0; o < OUT; o++) for (let i = 0; i < IN; i++) Wt[i * OUT + o] = W.f32[o * IN + i]!;
      const dW0t = new Float32Array(IN * OUT), dWt = new Float64Array(IN * OUT);
      for (let o = 0; o < OUT; o++) for (let i = 0; i < IN; i++) { dW0t[i * OUT + o] = dW0.f32[o * IN + i]!; dWt[i * OUT + o] = want.dW[o * IN + i]!; }
      onBoth((dev) => {
        const y = F.linearForward(put(x.f32, [N, IN], dev), put(Wt, [IN, OUT], dev), null, nanT([N, OUT], dev), 'conv1d');
        const dx = nanT([N, IN], dev), dW = put(dW0t, [IN, OUT], dev);
        F.linearBackward(put(x.f32, [N, IN], dev), put(Wt, [IN, OUT], dev), put(dy.f32, [N, OUT], dev), { dx, dW, db: null }, 'conv1d');
        return [y, dx, dW];
      }, [refLinear(x.f64, W.f64, null, N, IN, OUT, false), want.dx, dWt], 'conv1d forward and backward', 1e-5, 1e-4);
    });

  it('empty extents: linear with IN = 0 gives the bias, OUT = 0 gives dx = 0; zero rows write nothing and do not fail', () => {
    const b = input(3, 1);
    for (const dev of ['cpu', 'cuda'] as Dev[]) {
      expectClose(read(F.linearForward(put(new Float32Array(0), [2, 0], dev), put(new Float32Array(0), [3, 0], dev), put(b.f32, [3], dev), nanT([2, 3], dev))), [...b.f64, ...b.f64], `y = b on ${dev}`, 0, 0);
      const dx = nanT([2, 4], dev);
      F.linearBackward(put(new Float32Array(8), [2, 4], dev), put(new Float32Array(0), [0, 4], dev), put(new Float32Array(0), [2, 0], dev), { dx, dW: null, db: null });
      expect(Array.from(read(dx)), `dx on ${dev}`).toEqual(new Array(8).fill(0));
      const e = put(new Float32Array(0), [0, 5], dev);
      F.layerNormForward(e, put(new Float32Array(5), [5], dev), null, 1e-5, e, nanT([0], dev), nanT([0], dev));
      F.rmsNormForward(e, put(new Float32Array(5), [5], dev), 1e-5, e, nanT([0], dev));
      expect(F.crossEntropy(e, new Int32Array(0), e)).toEqual({ loss: 0, count: 0 });
      F.embeddingForward(new Int32Array(0), put(new Float32Array(10), [2, 5], dev), e);
    }
  });

  it.each(ROWS.flatMap((N) => SHAPES.map(([i, o]) => [N, i, o])))('linear with a bfloat16 weight [%i, %i] → %i: x and dy rounded to bf16, float32 accumulation', (N, IN, OUT) => {
    const x = input(N * IN, N * 7 + IN), W = input(OUT * IN, IN * 3 + OUT), b = input(OUT, 5), dy = input(N * OUT, N + OUT), db0 = input(OUT, 6);
    const xr = Float64Array.from(bf16Round(x.f32)), Wr = Float64Array.from(bf16Round(W.f32)), dyr = Float64Array.from(bf16Round(dy.f32));
    const want = refLinearBackward(xr, Wr, dyr, N, IN, OUT, null, new Float64Array(OUT * IN), db0.f64);
    // db sums the float32 dy (not rounded)
    const db = Float64Array.from(db0.f64);
    for (let n = 0; n < N; n++) for (let o = 0; o < OUT; o++) db[o]! += dy.f64[n * OUT + o]!;
    onBoth((dev) => {
      const Wb = Tensor.from(W.f32, [OUT, IN]).to(dev, { dtype: 'bfloat16' });
      const y = F.linearForward(put(x.f32, [N, IN], dev), Wb, put(b.f32, [OUT], dev), nanT([N, OUT], dev));
      const dx = nanT([N, IN], dev), dbt = put(db0.f32, [OUT], dev);
      F.linearBackward(put(x.f32, [N, IN], dev), Wb, put(dy.f32, [N, OUT], dev), { dx, dW: null, db: dbt });
      return [y, dx, dbt];
    }, [refLinear(xr, Wr, b.f64, N, IN, OUT, false), want.dx, db], 'bf16 linear', 1e-5, 1e-4);
  });

  it.each(ROWS.flatMap((N) => COLS.map((C) => [N, C])))('embedding [%i ids] × C=%i: gather, and the scatter-add in id order (the CPU\'s bits)', (N, C) => {
    const V = 5, r = rng(N * 100 + C);
    const ids = Int32Array.from({ length: N }, () => Math.floor(r() * V)); // repeats for N > 5
    const W = input(V * C, C + 3), dout = input(N * C, N + C), dW0 = input(V * C, 99);
    const gathered = new Float64Array(N * C), dW = Float64Array.from(dW0.f64);
    for (let n = 0; n < N; n++) for (let c = 0; c < C; c++) { gathered[n * C + c] = W.f64[ids[n]! * C + c]!; dW[ids[n]! * C + c]! += dout.f64[n * C + c]!; }
    onBoth((dev) => [F.embeddingForward(ids, put(W.f32, [V, C], dev), nanT([N, C], dev))], [gathered], 'embedding forward', 0, 0, true);
    onBoth((dev) => {
      const d = put(dW0.f32, [V, C], dev);
      F.embeddingBackward(ids, put(dout.f32, [N, C], dev), d);
      return [d];
    }, [dW], 'embedding backward', 1e-6, 1e-6, true);
  });

  it('kv_cache_write places time steps offset … offset + T − 1 and leaves the rest', () => {
    const B = 2, T = 3, Tcap = 7, Hkv = 3, D = 5, offset = 2;
    const src = input(B * T * Hkv * D, 7), cache0 = input(B * Tcap * Hkv * D, 8);
    const want = Float64Array.from(cache0.f64);
    for (let b = 0; b < B; b++) for (let t = 0; t < T; t++) for (let k = 0; k < Hkv * D; k++) want[((b * Tcap + offset + t) * Hkv * D) + k] = src.f64[(b * T + t) * Hkv * D + k]!;
    onBoth((dev) => [F.kvCacheWrite(put(src.f32, [B, T, Hkv, D], dev), put(cache0.f32, [B, Tcap, Hkv, D], dev), offset)], [want], 'kv cache', 0, 0, true);
  });

  it.each(COLS.flatMap((C) => [[C, 0], [C, 0.3], [C, 1]]))('dropout n=33×%i p=%f: the CPU\'s mask bit for bit, forward and backward, in place', (C, p) => {
    const n = 33 * C, x = input(n, C + 1), seed = 1234 + C;
    const cpu = read(F.dropoutForward(put(x.f32, [33, C], 'cpu'), nanT([33, C], 'cpu'), p, seed));
    const dev = read(F.dropoutForward(put(x.f32, [33, C], 'cuda'), nanT([33, C], 'cuda'), p, seed));
    expect(Buffer.from(dev.buffer).equals(Buffer.from(cpu.buffer)), 'the CPU mask').toBe(true);
    const scale = p < 1 ? Math.fround(1 / (1 - p)) : 0;
    let dropped = 0, wrong = 0;
    for (let i = 0; i < n; i++) {
      if (dev[i] === 0) dropped++;
      else if (dev[i] !== Math.fround(x.f32[i]! * scale)) wrong++;
    }
    expect(wrong, 'kept elements not scaled by 1/(1 − p)').toBe(0);
    if (p === 0) expect(dropped).toBe(0);
    if (p === 1) expect(dropped).toBe(n);
    if (p === 0.3 && n > 1000) expect(Math.abs(dropped / n - 0.3)).toBeLessThan(0.05);
    const inPlace = put(x.f32, [33, C], 'cuda');
    F.dropoutBackward(inPlace, inPlace, p, seed);
    expect(Buffer.from(read(inPlace).buffer).equals(Buffer.from(cpu.buffer)), 'backward in place').toBe(true);
  });

  const ROPE: [number, number, number, number][] = [[1, 1, 1, 2], [2, 7, 3, 8], [1, 33, 2, 130]];
  for (const convention of ['half', 'interleaved'] as const)
    it.each(ROPE)(`rope ${convention} [%i, %i, %i, %i] offset 5: forward, backward (the inverse rotation), in place`, (B, T, H, D) => {
      const n = B * T * H * D, x = input(n, n + D), opts = { offset: 5, base: 10000, convention };
      const s = [B, T, H, D];
      onBoth((dev) => [F.ropeForward(put(x.f32, s, dev), nanT(s, dev), opts)], [refRope(x.f64, B, T, H, D, 5, 10000, convention)], 'rope forward', 1e-6, 1e-5);
      // backward of the rotation R is Rᵀ: Rᵀ·(R·x) = x
      const y = F.ropeForward(put(x.f32, s, 'cuda'), nanT(s, 'cuda'), opts);
      expectClose(read(F.ropeBackward(y, y, opts)), x.f64, 'rope backward ∘ forward, in place', 1e-6, 1e-5);
      onBoth((dev) => [F.ropeBackward(put(x.f32, s, dev), nanT(s, dev), opts)], [refRopeTransposed(x.f64, B, T, H, D, 5, 10000, convention)], 'rope backward', 1e-6, 1e-5);
    });
});

describe.skipIf(!emulated)('the nn parity cases (run CPU vs device on a GPU) on the emulated device', () => {
  beforeAll(() => native()._cudaEmulation());
  for (const c of nnCases) it(c.name, () => c.run('cuda'));
});

describe.skipIf(!gpu)('on a real GPU', () => {
  it('the emulation is refused (a CUDA backend is registered)', () => {
    expect(() => native()._cudaEmulation()).toThrow(/CUDA emulation is for builds without a CUDA backend/);
  });
});

/** A float64 central difference (h = 1e-5: error ~1e-10, far below the float32 tolerances). */
function numDeriv(f: (x: number) => number, x: number): number {
  const h = 1e-5 * Math.max(1, Math.abs(x));
  return (f(x + h) - f(x - h)) / (2 * h);
}

/** The transposed rotation of refRope (rotation by −angle), by definition. */
function refRopeTransposed(x: Float64Array, B: number, T: number, H: number, D: number, offset: number, base: number, convention: 'half' | 'interleaved'): Float64Array {
  const y = new Float64Array(x.length), half = D / 2;
  for (let r = 0; r < B * T * H; r++) {
    const t = Math.floor(r / H) % T;
    for (let i = 0; i < half; i++) {
      const a = (offset + t) * base ** ((-2 * i) / D);
      const [i1, i2] = convention === 'half' ? [r * D + i, r * D + i + half] : [r * D + 2 * i, r * D + 2 * i + 1];
      y[i1] = x[i1]! * Math.cos(a) + x[i2]! * Math.sin(a);
      y[i2] = -x[i1]! * Math.sin(a) + x[i2]! * Math.cos(a);
    }
  }
  return y;
}
