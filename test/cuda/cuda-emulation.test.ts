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
import { erf, expectClose, geluErf, geluTanh, input, silu } from '../support/nn-helpers.js';

const F = nn.functional;
const gpu = cudaStatus().usable && native().cuda !== undefined;
const emulated = !native().cuda;

type Dev = 'cpu' | 'cuda';
const put = (a: Float32Array, shape: number[], dev: Dev): Tensor => Tensor.from(a, shape).to(dev);
const nanT = (shape: number[], dev: Dev): Tensor => put(new Float32Array(shape.reduce((p, q) => p * q, 1)).fill(NaN), shape, dev);
const read = (t: Tensor): Float32Array => (t.device === 'cpu' ? t.toArray() : t.to('cpu').toArray());

/** Runs `op` on both devices; each result checked against `ref`, and the two against each other. */
function onBoth(op: (dev: Dev) => Tensor[], refs: ArrayLike<number>[], what: string, atol = 2e-5, rtol = 1e-4): Float32Array[] {
  const cpu = op('cpu').map(read);
  const dev = op('cuda').map(read);
  refs.forEach((r, i) => {
    expectClose(dev[i]!, r, `${what} [${i}] emulated vs float64`, atol, rtol);
    expectClose(dev[i]!, cpu[i]!, `${what} [${i}] emulated vs cpu`, atol, rtol);
  });
  return dev;
}

const ROWS = [1, 7, 33];
const COLS = [1, 3, 129, 1000];

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
  });
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
